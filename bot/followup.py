"""Does a message in a thread lean on the earlier turns, or stand alone? Decided without a language model.

Without an LLM to rewrite a follow-up, the core searches a message that leans on the thread together
with the thread's earlier question, and any other message alone: "what is inner alignment" after a
question about switching AI off is a new topic, and gluing the two made the old topic's articles win.

A message leans on the thread when something in it points back (a transparent set of rules, each
named in `dependence`'s answer):

- it starts by continuing: "and ...", "but ...", "what about ...", "what if ...", "how so?";
- a pronoun or a demonstrative points back: "why would it do that?", "who funds them?", "is this real?",
  "and the second one?", "the latter", "what else did he argue?"; not an "it" that points nowhere ("is
  it possible to align AI?", "how likely is it that...", "does it matter how fast..."), not one whose
  noun came earlier in the same message ("why can't we turn the AI off if it misbehaves?", "X, and why
  is that worrying?", "how do AI companies govern themselves?"), and not "this" or "that" naming its
  own thing ("this intelligence explosion idea");
- a word that needs something said before it is used bare: "example?", "what would a solution look
  like?" (not "a solution to outer alignment"), "why would people build general AI instead?", "tell me
  more", "why did the program end?" (a generic noun with nothing to say which), unless the message
  names its topic elsewhere;
- nothing in it names a topic: "why?", "how so?", "which is harder?".

A new-topic marker ("unrelated, but...", "different question:") overrides them all. Measured on the
project's own two-turn conversations (`benchmarks/data/followups_topics.jsonl`, `benchmarks/followups.py`).

Asked with no thread before it, a message can still mean the community's subject without naming it
(`on_the_subject`): an "it" that points at nothing named ("why not just unplug it") or a fix proposed
with "just" ("just pull the plug lol"); `bot.core` searches it again with the subject named and never
calls it far off-topic.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

# How many earlier questions a dependent message is searched with, when those lean on the thread too.
MAX_EARLIER = 2

_TOKEN = re.compile(r"[a-z0-9]+(?:[-.][a-z0-9]+)*|'(?:s|re|d|ll|ve|m)\b|[,;:.!?()\n]")
_PUNCT = frozenset(",;:.!?()\n")
_CLAUSE_END = frozenset(".!?;\n")
_DASH = re.compile(r"\s[-\u2013\u2014]+\s|\u2014")

_NEW_TOPIC = re.compile(
    r"\b(?:unrelated|off[- ]topic|(?:different|another|new|separate|other|side|random)\s+"
    r"(?:question|topic|subject|thing)|chang(?:e|ing)\s+(?:of\s+|the\s+)?(?:topic|subject)|on another note|"
    r"switching (?:topics?|gears))\b"
)

# Words that open a message without carrying anything: dropped before the leading-word rules.
_FILLERS = frozenset(
    "ok okay k so well right also hmm hm hmmm cool thanks thank thx great interesting nice wow oh ah "
    "alright yes yeah yep no nope sure hey hi".split()
)
_FILLER_PHRASES = ("thank you", "got it", "i see", "makes sense", "that makes sense", "that's interesting")
# A first word (after fillers) that continues the previous message.
_CONTINUE_FIRST = frozenset("and but or then plus though nor".split())
# First two words that continue it.
_CONTINUE_START = frozenset(
    {
        ("what", "about"),
        ("how", "about"),
        ("what", "if"),
        ("how", "so"),
        ("why", "so"),
        ("if", "so"),
        ("if", "not"),
        ("even", "so"),
        ("even", "then"),
        ("in", "that"),
        ("in", "which"),
        ("same", "for"),
        ("same", "with"),
        ("say", "more"),
        ("go", "on"),
        ("meaning", "what"),
        ("like", "what"),
        ("such", "as"),
    }
)
_ALWAYS_BACK = frozenset("former latter aforementioned".split())
# "what else", "who else", "anything else?": not "or something else".
_ELSE_AFTER = frozenset("what who where how which anything".split())
# A word that leans on the thread at the end of a clause: "...instead?", "...then?", "...though?".
_BACK_AT_END = frozenset("instead then though too again either elaborate expand".split())

_PERSONAL = frozenset("they them he him she her".split())
_POSSESSIVE = frozenset("their theirs themselves his himself hers herself".split())
_IT = frozenset(("it", "its", "itself"))
_DEMONSTRATIVE = frozenset(("this", "these", "those"))
# "this century", "these days", "those who": demonstratives that point at no earlier turn.
_DEICTIC_NEXT = frozenset(
    "century decade year years month week day days time era generation who which kind sort type".split()
)
# "any of this", "all of that", "how much of this": a share of the whole discussion, not of a noun the same
# message names ("i only care about my kids' generation, does any of this matter for them?").
_SHARE_OF = frozenset("any all some none much most half part each".split())
# Nouns an "it" or "its" in the same message most likely means: "would an AI let us shut it down?"
_IT_NOUNS = frozenset(
    "ai agi asi system model llm chatbot superintelligence agent robot machine program network tool "
    "optimizer optimiser computer".split()
)
# Words that end a clause another clause follows: a pronoun after one may mean a noun before it.
_JOINTS = (
    frozenset(
        "if when whenever unless once because since until while whether before after so and but or vs "
        "versus , ; that although though even".split()
    )
    | _CLAUSE_END
)
# A clause opened by one of these and naming something ("if an AI gets smart, can we stop it?").
_SUBORDINATORS = frozenset(
    "if when whenever unless once because since until while although after before".split()
)
_WH = frozenset("what why how when where which who whom whose".split())
_AUX = frozenset(
    "is are was were be been being am do does did has have had would will could can should shall might may "
    "must 's 're 'd 'll".split()
)
_PREPOSITIONS = frozenset(
    "about with on for of to in like from into by at after before than against behind without beyond over "
    "under besides despite".split()
)
# "so that", "such that", "now that": "that" joining a clause, not pointing back.
_THAT_JOINS_AFTER = frozenset("so such now given except provided assuming considering".split())
_CONJ = frozenset("and but or so because if".split())
_DO_MODALS = frozenset("do does did can could would will should might may must shall".split())

_ORDINALS = frozenset("first second third fourth fifth last other same previous above next rest".split())
# "one" as a pronoun: "which one", "the second one", "will we ever build one?"; not "no one".
_ONE_BEFORE = frozenset("which another that this each".split()) | _ORDINALS
_ONE_VERBS = frozenset("build make create pick choose get have want need use buy".split())
_NOT_ONE = frozenset("no any every some".split())

# Nouns that need a complement to say what they are about: bare, they lean on the thread.
_RELATIONAL = {
    "example": ("of",),
    "examples": ("of",),
    "instance": ("of",),
    "difference": ("between", "from", "with"),
    "differences": ("between", "from", "with"),
    "alternative": ("to", "for"),
    "alternatives": ("to", "for"),
    "downside": ("of", "to", "with"),
    "downsides": ("of", "to", "with"),
    "drawback": ("of", "to", "with"),
    "drawbacks": ("of", "to", "with"),
    "disadvantages": ("of", "to", "with"),
    "advantages": ("of", "to", "with", "over"),
    "limitation": ("of", "to", "with"),
    "limitations": ("of", "to", "with"),
    "weakness": ("of", "with", "in"),
    "weaknesses": ("of", "with", "in"),
    "criticism": ("of", "to", "against"),
    "criticisms": ("of", "to", "against"),
    "counterargument": ("to", "against", "for"),
    "counterarguments": ("to", "against", "for"),
    "objection": ("to", "against"),
    "objections": ("to", "against"),
    "evidence": ("for", "of", "that", "on", "about"),
    "source": ("for", "on", "about", "of"),
    "sources": ("for", "on", "about", "of"),
    "citation": ("for",),
    "proof": ("of", "for", "that"),
    "reason": ("for", "why", "to", "that", "behind"),
    "reasons": ("for", "why", "to", "that", "behind"),
    "solution": ("to", "for", "of"),
    "solutions": ("to", "for", "of"),
    "implication": ("of", "for"),
    "implications": ("of", "for"),
    "consequences": ("of", "for"),
    "definition": ("of",),
    "explanation": ("of", "for"),
    "analogy": ("for", "of", "between", "to", "with"),
    "tldr": (),
    "eli5": (),
}
# Generic nouns: "the program", "the paper" with nothing after them to say which lean on the thread.
_GENERIC_HEADS = frozenset(
    "program programme paper papers author authors company companies team lab labs org orgs organization "
    "organisation group study experiment book article post video talk idea approach method technique "
    "proposal plan project researcher researchers guy person concept theory framework scenario argument "
    "process step course fellowship".split()
)
# What may follow such a noun to say which one it is: then it stands alone.
_HEAD_SAYS_WHICH = frozenset(
    "of on about for by from called named in at where that which who whose behind with to 's".split()
)
# "more" leans when nothing follows it, or only a request for more of the same.
_MORE_BARE_NEXT = frozenset("please detail details examples example info information".split())
# The field's own words name no particular topic: "an example in AI" still needs one.
_FIELD = frozenset(
    "ai ais agi artificial intelligence safety alignment ml system systems model models".split()
)

# Words that name no topic: with only these, the message is an ellipsis ("why?", "which is harder?").
_NO_TOPIC = (
    frozenset(
        "a an the and but or so if then than too also just even still only really actually already ever "
        "very quite much many more most less least some any all no not none each every both "
        "either neither other another such own same what why how when where which who whom whose whether "
        "i me my mine we us our you your yours it its they them their this that these those there here "
        "he him his she her one ones someone something anything everything nothing people thing things "
        "stuff way ways lot lots kind sort bit "
        "do does did done doing make makes made get gets got go goes going gone say says said think thinks "
        "know knows want wants need needs mean means meant work works worked happen happens happened "
        "matter matters explain tell give show see use used come take find look looks seem seems sound "
        "sounds try tries stop start started end ended begin began fail failed keep let put call called "
        "working doing saying trying using thinking talking planning building summarize summarise summary "
        "simplify clarify rephrase elaborate expand "
        "good bad better worse best worst hard harder hardest easy easier easiest safe safer safest risky "
        "riskier likely likelier unlikely possible impossible true false real right wrong sure certain "
        "different similar important big bigger small smaller fast faster slow slower strong stronger weak "
        "weaker smart smarter dangerous new old main first second third last next "
        "please ok okay yes no yeah so well right also hmm thanks thank cool great interesting nice wow oh "
        "ah alright sure exactly seriously really why example examples more again "
        "in on at of to for from with about by into over under as like".split()
    )
    | _AUX
    | _PERSONAL
    | _POSSESSIVE
)

# "is it possible to...", "how likely is it that...": an "it" that points nowhere.
_EXPLETIVE_ADJ = frozenset(
    "possible impossible true false likely unlikely plausible worth worthwhile hard harder easy easier "
    "difficult feasible safe safer dangerous risky ok okay fine bad good better wrong right necessary "
    "important realistic reasonable late early common normal known clear obvious certain enough useful "
    "ethical moral legal wise sensible fair crazy silly naive irrational rational hopeless inevitable "
    "time sense mistake waste idea".split()
)
_EXPLETIVE_AFTER = frozenset("to that if whether for".split())
_EXPLETIVE_FILL = frozenset("not too really actually even so very be a an make makes made".split())
_EXPLETIVE_VERBS = frozenset("seems seem seemed appears appear turns turn".split())
# "does it matter how fast...", "does it make a difference whether...": "it" stands for what follows.
_CATAPHORA_FILL = frozenset(
    "matter matters mattered make makes made a any big much difference really actually even".split()
)
_CATAPHORA_WH = frozenset("how whether if what which who when where why".split())
_TIME_IT = frozenset("today tomorrow now raining snowing".split())


@functools.lru_cache(maxsize=1024)  # asked of one message by the query, the banner and each later turn
def dependence(text: str) -> str | None:
    """The rule by which the message leans on the earlier turns, or None when it stands alone."""
    raw = _lowered(text)
    if _NEW_TOPIC.search(raw):
        return None
    tokens = _tokens(raw)
    words = [t for t in tokens if t not in _PUNCT]
    if not words:
        return None
    rule = _lead(tokens)
    for i, tok in enumerate(tokens):
        if rule:
            return rule
        rule = _points_back(tokens, i, tok)
    if rule:
        return rule
    if all(w in _NO_TOPIC for w in words):
        return "ellipsis"
    return None


def depends_on_thread(text: str) -> bool:
    """True when the message leans on the earlier turns, so it is searched with them."""
    return dependence(text) is not None


def thread_query(question: str, earlier: Sequence[str]) -> str:
    """The search query for a message of a thread whose earlier questions (the member's, oldest first)
    are `earlier`: the message alone when it stands alone; otherwise the previous question and the
    message, going one question further back (up to MAX_EARLIER) while the earlier one leans too."""
    if not earlier or not depends_on_thread(question):
        return question
    parts = [question]
    for previous in reversed(earlier[-MAX_EARLIER:]):
        parts.insert(0, previous)
        if not depends_on_thread(previous):
            break
    return " ".join(parts)


def _lowered(text: str) -> str:
    """Lower case, with typographic apostrophes made plain ("can\u2019t" -> "can't")."""
    return text.lower().replace("\u2019", "'").replace("\u2018", "'")


def _tokens(raw: str) -> list[str]:
    """Words and clause punctuation; "it's" -> "it", "'s"; "couldn't" -> "could"; a dash is a ";"."""
    raw = _DASH.sub(" ; ", raw)
    raw = raw.replace("can't", "can").replace("won't", "will").replace("n't", "")
    return _TOKEN.findall(raw)


def _lead(tokens: list[str]) -> str | None:
    """A continuing start: "and ...", "but ...", "what about ...", "how so?"."""
    i = 0
    while i < len(tokens):
        two = " ".join(tokens[i : i + 2])
        three = " ".join(tokens[i : i + 3])
        if three in _FILLER_PHRASES:
            i += 3
        elif two in _FILLER_PHRASES:
            i += 2
        elif tokens[i] in _FILLERS or tokens[i] in _PUNCT:
            i += 1
        else:
            break
    rest = [t for t in tokens[i:] if t != ","]
    if rest and rest[0] in _CONTINUE_FIRST:
        return "continues"
    if len(rest) >= 2 and (rest[0], rest[1]) in _CONTINUE_START:
        return "continues"
    return None


def _points_back(tokens: list[str], i: int, tok: str, *, fresh: bool = False) -> str | None:
    prev = tokens[i - 1] if i > 0 else ""
    nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
    at_end = nxt == "" or nxt in _PUNCT
    if tok in _ALWAYS_BACK or (tok == "else" and prev in _ELSE_AFTER):
        return "refers back"
    if tok in _BACK_AT_END and at_end and i > 0 and not (tok == "then" and "if" in tokens[:i]):
        return "refers back"
    if tok in _PERSONAL and not _bound(tokens, i):
        return "pronoun"
    if tok in _POSSESSIVE and not _bound(tokens, i) and not _noun_before(tokens, i, plural=True):
        return "pronoun"
    if tok in _IT and not _expletive(tokens, i) and not _bound(tokens, i) and not _noun_before(tokens, i):
        return "pronoun"
    if tok in _DEMONSTRATIVE and nxt not in _DEICTIC_NEXT and _points(tokens, i, fresh=fresh):
        return "pronoun"
    if tok == "that" and _that_points_back(tokens, i) and _points(tokens, i, fresh=fresh):
        return "pronoun"
    if tok in ("one", "ones") and prev not in _NOT_ONE and not _bound(tokens, i):
        if prev in _ONE_BEFORE or nxt in _AUX or (at_end and (prev in _NO_TOPIC or prev in _ONE_VERBS)):
            return "pronoun"
    if prev == "the" and tok in _ORDINALS and (at_end or nxt in ("one", "ones", "of") or nxt in _AUX):
        return "refers back"
    if tok in _RELATIONAL and _bare(tok, prev, nxt) and not _names_topic(tokens, i):
        return "needs a complement"
    if tok == "more" and (at_end or nxt in _MORE_BARE_NEXT) and not _names_topic(tokens, i):
        return "refers back"
    if (
        prev == "the"
        and tok in _GENERIC_HEADS
        and nxt not in _HEAD_SAYS_WHICH
        and not _names_topic(tokens, i)
    ):
        return "generic noun"
    return None


def _bare(noun: str, prev: str, nxt: str) -> bool:
    """A noun that needs a complement with none: "any examples?", "what would a solution look like?";
    not "an example of...", "the space probe analogy", "for example", "evidence (that) it works"."""
    if nxt in _RELATIONAL[noun] or _names_something(prev) or prev == "for":
        return False
    # "evidence it works": the clause after it is its complement
    return "that" not in _RELATIONAL[noun] or nxt == "" or nxt in _PUNCT or nxt in _AUX


def _names_something(tok: str) -> bool:
    return (
        tok != ""
        and tok not in _PUNCT
        and tok not in _NO_TOPIC
        and tok not in _IT
        and tok not in _DEMONSTRATIVE
    )


def _names_topic(tokens: list[str], i: int) -> bool:
    """Another word of the message names a topic (the field's own words do not)."""
    return any(_names_something(t) and t not in _FIELD for k, t in enumerate(tokens) if k != i)


def _bound(tokens: list[str], i: int) -> bool:
    """A pronoun whose noun came earlier in the same message, in a clause before it: "turn the AI off if
    it misbehaves", "what's an s-risk? someone said it's worse", "if an AI gets smart, can we stop it?"."""
    for j in range(i - 1, -1, -1):
        if tokens[j] not in _JOINTS:
            continue
        if any(_names_something(t) for t in tokens[:j]):
            return True
        if tokens[j] in _SUBORDINATORS and any(_names_something(t) for t in tokens[j + 1 : i]):
            return True
    return False


def _noun_before(tokens: list[str], i: int, *, plural: bool = False) -> bool:
    """An "it"/"its" after an AI-like noun ("would an AI let us shut it down?"), or "their" and
    "themselves" after a plural ("how do AI companies govern themselves?")."""
    before = tokens[:i]
    if plural:
        return any(
            _names_something(t) and t.endswith("s") and not t.endswith(("ss", "us", "is")) for t in before
        )
    return any(t in _IT_NOUNS or (t.endswith(tuple(_IT_NOUNS)) and "-" in t) for t in before)


def _points(tokens: list[str], i: int, *, fresh: bool = False) -> bool:
    """Whether "this", "that" or "these" points at an earlier turn: not when it names its own thing
    ("this intelligence explosion idea", "this idea where two AIs argue"), nor when its noun came earlier.
    After "does", "can", "would"... it is the subject and a verb follows ("does that apply to LLMs?").
    In a message asked `fresh` (no thread before it), a share of it ("any of this", "does all of that
    matter") is a share of the whole subject, whatever the message named before it; in a thread, a noun
    named before it still binds it, so such a message is not glued to the thread's earlier turns."""
    share = fresh and i >= 2 and tokens[i - 1] == "of" and tokens[i - 2] in _SHARE_OF
    head = i - 2 if share else i  # "does any of this..." is inverted as "does this..." is
    prev = tokens[head - 1] if head > 0 else ""
    if prev not in _DO_MODALS:
        run = []
        for t in tokens[i + 1 :]:
            if not (_names_something(t) or t in _FIELD):
                break
            run.append(t)
        if any(t not in _FIELD and t not in _GENERIC_HEADS and t not in _RELATIONAL for t in run):
            return False
        after = tokens[i + 1 + len(run)] if i + 1 + len(run) < len(tokens) else ""
        if run and run[-1] in _GENERIC_HEADS and after in _HEAD_SAYS_WHICH:
            return False
    return share or not _bound(tokens, i)


def _expletive(tokens: list[str], i: int) -> bool:
    """An "it" that points nowhere: "is it possible to...", "how likely is it that...", "it seems",
    "does it matter how...", "is X worth it?", "what day is it today?"."""
    prev = tokens[i - 1] if i > 0 else ""
    after = tokens[i + 1 : i + 5]
    if tokens[i] != "it":
        return False
    if (prev == "worth" and i > 2) or (after and after[0] in _EXPLETIVE_VERBS | _TIME_IT):
        return True
    # "it is/would be/'s (too) ADJ to/that...", "is it ADJ to...", "is it worth donating"
    for k, tok in enumerate(after):
        if tok in _EXPLETIVE_ADJ and (
            tok == "worth" or (k + 1 < len(after) and after[k + 1] in _EXPLETIVE_AFTER)
        ):
            return all(t in _AUX or t in _EXPLETIVE_FILL for t in after[:k])
    # "does it (really) matter how...", "does it make a difference whether..."
    for k, tok in enumerate(after):
        if tok in _CATAPHORA_WH:
            return k > 0 and all(t in _CATAPHORA_FILL for t in after[:k])
        if tok not in _CATAPHORA_FILL:
            break
    # "how likely is it that...", "how hard is it to..."
    before = tokens[max(0, i - 3) : i]
    return bool(after) and after[0] in _EXPLETIVE_AFTER and any(t in _EXPLETIVE_ADJ for t in before)


def _that_points_back(tokens: list[str], i: int) -> bool:
    """ "that" as a pronoun or a pointing word ("why does that matter?", "about that", "that example"),
    not joining a clause ("do experts think that AGI is near?", "an AI that lies")."""
    prev = tokens[i - 1] if i > 0 else ""
    nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
    if prev in _THAT_JOINS_AFTER:
        return False
    if nxt == "" or nxt in _PUNCT:
        return True
    if prev == "" or prev in _PUNCT or prev in _WH or prev in _CONJ or prev in _PREPOSITIONS:
        return True
    if prev in _AUX:
        # "is that true?", "why is that", "what was that example about?": an inverted question; "the
        # worry is that AI..." joins a clause.
        before = tokens[i - 2] if i > 1 else ""
        return before == "" or before in _PUNCT or before in _WH or before in _CONJ or before in _FILLERS
    return False


@functools.lru_cache(maxsize=1024)  # asked of one question by the search and by the coverage decision
def points_at_unnamed(text: str) -> bool:
    """An "it", "this" or "that" in the message points at something it never names ("why not just
    unplug it", "who's even working on this stuff"): asked in an AI-safety community with no thread
    before it, what it points at is the community's subject, so the message is on its topic even when
    its words are not (`bot.core` does not call such a question far off-topic)."""
    tokens = _tokens(_lowered(text))
    for i, tok in enumerate(tokens):
        if tok in _IT or tok in _DEMONSTRATIVE or tok == "that":
            if _points_back(tokens, i, tok, fresh=True) == "pronoun":
                return True
    return False


# A fix proposed with "just" ("just pull the plug lol", "why not just unplug the server", "can't we just
# hardcode the rules?"): the classic objection of the field (aisafety.info answers a row of "Why can't we
# just ...?" questions), so in an AI-safety community what it would fix is the AI, named or not.
# "just" opens a clause, or follows the people who would do it ("we just", "labs should just"), or "why
# not". Not "you": "why don't you just use google" is advice to the member or the bot.
_FIX_BY = frozenset(
    "we they someone somebody anyone people humans humanity labs companies governments".split()
)
_OPENERS = _FILLERS | frozenset("lol lmao honestly bro dude um uh like".split())
# What follows a "just" that proposes nothing: "just a question", "just the two of us", "just so you know".
_NO_FIX_NEXT = (
    frozenset("a an the one some any this that these those there here because so now lol fyi sayin".split())
    | _AUX
    | _WH
    | _PERSONAL
    | _IT
    | _PREPOSITIONS
)
# "just" meaning "a moment ago": "just got here", "just bought a laptop" (regular forms end in -ed or
# -ing; "hit" or "put" could be either, and are read as a fix).
_IRREGULAR_PAST = frozenset(
    "got bought saw made had did went came found heard thought told said left lost sent began became took "
    "gave wrote ran ate read met won spent stole woke slept broke forgot".split()
)
# A request of the member's own or advice to someone present ("just tell me a joke", "just do my
# homework", "just restart your router"): nothing of the field's to fix.
_MEMBER_OR_ADDRESSEE = frozenset("i me my mine myself 'm you your yours yourself u ur".split())
# After "just", a request for the bot to say something ("just answer the question", "just explain how to
# cook rice") or a state of mind ("just want to know", "just curious"): no fix either.
_NO_FIX_VERBS = frozenset(
    "say tell answer reply respond write explain describe define translate summarise summarize list show "
    "give print repeat post send share talk chat want need wonder think feel know hope wish love "
    "curious".split()
)
_NOT_A_FIX_VERB = _NO_FIX_NEXT | _NO_FIX_VERBS | _IRREGULAR_PAST
# "n't" and a bare "dont" as a word of their own ("just don't build AGI" keeps its "not").
_NOT = re.compile(r"n't\b|(?<=\bdo)nt\b")
# Where a clause of a message starts or ends, for this rule: "AI scares me. just pull the plug",
# "hey bot, just pull the plug", "just pull the plug, you know?".
_FIX_CLAUSE_END = _CLAUSE_END | {","}


def _fix_verb(word: str) -> bool:
    """A word that can open a fix: a verb's plain form ("pull", "feed", "air-gap"), not a past or an -ing
    form ("joined", "testing"; "bring" and "speed" are plain) nor a request to the bot or a state of mind."""
    if not word.replace("-", "").isalpha() or word in _NOT_A_FIX_VERB:
        return False
    past = word.endswith("ed") and not word.endswith("eed") and len(word) > 4
    return not past and not (word.endswith("ing") and len(word) > 5)


@functools.lru_cache(maxsize=1024)  # asked of one question by the search and by the coverage decision
def proposes_a_fix(text: str) -> bool:
    """The message proposes a fix with "just" and asks nothing for the member: "just pull the plug lol",
    "why not just turn off the power", "just don't build AGI", not "just tell me a joke", "just joined
    the server" or "just a quick question about pasta". In an AI-safety community what such a fix would
    fix is the community's subject, so the message is on its topic even when its words are far from
    every article."""
    tokens = _tokens(
        _NOT.sub(" not", _lowered(text).replace("can't", "can not").replace("won't", "will not"))
    )
    for i, tok in enumerate(tokens[:-1]):
        if tok != "just":
            continue
        start = max((j + 1 for j in range(i) if tokens[j] in _FIX_CLAUSE_END), default=0)
        opens = all(t in _OPENERS for t in tokens[start:i])
        prev, before = (tokens[i - 1] if i else ""), (tokens[i - 2] if i > 1 else "")
        by = prev in _FIX_BY or (prev in _DO_MODALS and before in _FIX_BY) or (prev, before) == ("not", "why")
        if not (opens or by):
            continue
        verb = i + 1
        if tokens[verb : verb + 2] == ["do", "not"]:  # "just don't build AGI"
            verb += 2
        if verb >= len(tokens) or not _fix_verb(tokens[verb]):
            continue
        clause = tokens[verb:]
        end = next((j for j, t in enumerate(clause) if t in _FIX_CLAUSE_END), len(clause))
        if not any(t in _MEMBER_OR_ADDRESSEE for t in clause[:end]):
            return True
    return False


def on_the_subject(text: str) -> bool:
    """Asked with no thread before it, the message is about the community's subject though it may not
    name it: an "it" pointing at nothing named (`points_at_unnamed`) or a fix proposed with "just"
    (`proposes_a_fix`)."""
    return points_at_unnamed(text) or proposes_a_fix(text)
