"""Is a question written in English? A small, dependency-free check, good enough to choose between
searching the question as it is and translating it first.

The library and its embedding model are English. A question in another language is searched with an
English query (written by the language model), or, without one, gets a reply that says so instead of
a false "the articles don't cover that".

How it decides. Questions in other languages are full of English loanwords ("Was ist Reward Hacking?",
"什么是RLHF？") and English questions of foreign names and phrases ("Schmidhuber", "déjà vu", "raison
d'être"), so neither the words nor the script alone settle it. The evidence is counted instead:

- for English: its function words ("what", "is", "the") and contractions ("what's", "Bostrom's");
- for each other language written in Latin script: its function words, its question words and the few
  verbs questions about a concept are built with ("bedeutet", "funciona"), its elisions ("l'", "dell'"),
  and, at half weight, words with letters English does not use ("ä", "ñ", "ł");
- for other scripts: each word in Cyrillic, Greek, Arabic and the like, and each Chinese or Japanese
  character at half weight (a word there is one or two characters).

A word that belongs to both English and the other language ("is" in Dutch, "die" in German, "a" in
Spanish) counts for neither. The question is in another language when that language has at least one
point of evidence and more than English has: a foreign word must outnumber the English ones, so that a
name or a quoted phrase in an English question does not tip it. `benchmarks/data/languages.jsonl`
measures it (tests/test_language.py).
"""

from __future__ import annotations

import re
import unicodedata

# The most frequent function words of English; a sentence of four words or more uses some of them.
ENGLISH = frozenset(
    """a an the is are was were be been being do does did have has had i you he she it we they me him her
    us them my your his its our their this that these those what which who whom whose why how when where
    can could would should will shall may might must not no and or but if of to in on at by for with
    about from into than then there here as so just also only any some all more most very such""".split()
)

# Function words, question words and question verbs of languages written in Latin script. Words that
# are also ordinary English words or abbreviations ("die", "come", "son", "mi", "eu", "ai", "op", "von")
# are left out: a name or an abbreviation in an English question must not count for another language.
_LATIN = {
    "de": """der das den dem des ein eine einen einem einer eines und oder aber nicht kein keine ist sind
        wird werden wurde wurden kann können könnte muss müssen soll sollte sollten wollen ich du sie es
        wir ihr mich mir dich dir uns euch sich wer wie wo warum wieso weshalb wann welche welcher welches
        für auf aus bei nach zu zum zur über durch gegen ohne im ins vom dass wenn ob weil auch noch nur
        schon sehr eigentlich einfach bitte haben gibt doch mal denn wäre würde etwas jemand diese dieser
        dieses ja nein bedeutet heißt funktioniert ki""",
    "fr": """le la les un une des du de et ou mais ne pas est sont était être ont je tu il elle nous vous
        ils elles te se moi toi lui leur leurs ce cet cette ces que qui quoi quel quelle quels quelles
        pourquoi comment où quand combien dans pour avec sans sur sous chez entre vers peut peuvent
        pourrait faut au aux est-ce ça cela ceci très aussi moins oui signifie fonctionne ia""",
    "es": """el la los las un una unos unas y o pero es está están ser estar fue de del en por para
        sobre entre hasta desde que qué quién quiénes cuál cuáles cual cómo como dónde cuándo cuánto
        porque también muy más menos se lo le les te nos su sus tu tú él ella ellos nosotros puede pueden
        podría podemos debe debería sí este esta esto estos estas ese esa eso significa funciona ia""",
    "pt": """o os uma umas e ou mas não é são está estão ser foi há de da dos das na nos nas com por
        para sobre entre até que quê quem qual quais como onde quando quanto porque porquê também
        muito mais menos se lhe te seu sua seus suas meu minha você vocês ele ela eles elas isso isto
        esse essa este esta pode podem poderia deve deveria já ainda significa funciona ia""",
    "it": """il lo la gli le un uno una di del della dei degli delle dello alla agli alle da dal
        dalla nel nella nei nelle su sul sulla tra fra e ed o ma è sono essere stato ha hanno che chi
        cosa perché perche quando quanto quale quali anche molto più meno se si ne ti suo sua suoi sue mio
        mia tu lui lei noi voi loro questo questa questi queste quello quella può possono potrebbe
        dovrebbe deve già ancora significa funziona ia""",
    "nl": """de het een en maar niet geen zijn waren wordt worden werd kan kunnen zou zouden moet
        moeten wil willen ik jij je hij zij ze wij jullie mij haar ons hun wat wie waar waarom wanneer hoe
        welke welk van voor aan uit bij naar om tegen zonder tussen onder dat dit deze ook nog als veel
        meer toch eigenlijk wel hebben heeft werkt betekent""",
    "pl": """na o się nie jest są był była było być czy jak jaki jaka jakie dlaczego czemu gdzie kiedy
        kto który która które ile że ale lub albo oraz te tego tej tym jego jej ich mnie ty ja ona ono
        wy oni może mogą można będzie już jeszcze tylko bardzo także też dla od przez przy za nad przed
        bez między czym działa oznacza znaczy""",
    "sv": """och att det som ett är för på med inte av har jag du ni hon vad varför hur när vilken
        vilket vilka kan kunna skulle ska måste också bara mycket eller från sig blir blev fungerar
        betyder""",
    "da": """og det som et er på med ikke af har jeg du hun hvad hvorfor hvordan hvornår hvilken hvilke
        kan kunne skulle skal må også kun meget eller fra blive bliver fungerer betyder hva ikkje""",
    "cs": """je jsou byl být co jak proč kdy kde kdo který která které že ale nebo ve na se za od při
        není také jen velmi může mohou bude již ještě jaký jaká jaké funguje znamená""",
    "tr": """ve bir bu için ile gibi daha çok ama veya nedir nasıl neden niçin nerede hangi yok olan
        olarak olur değil midir mıdır mı mu mü yapay zeka""",
    "id": """apa itu yang dan ke dari ini adalah untuk dengan tidak bisa dapat akan sudah bagaimana
        mengapa kenapa kapan siapa dimana apakah atau tetapi juga sangat lebih kami kita saya anda mereka
        bukan dalam pada oleh karena seperti""",
    "ro": """și este sunt fost ce cum care cine unde când la în cu pentru nu o un una mai foarte dar sau
        ar poate pot să se ne vă lui ei ea el le lor acest această aceasta asta funcționează înseamnă""",
    "vi": """là gì có không của và những các được cho với này đó tại sao thế nào như làm bao nhiêu hay
        hoặc nhưng rất một""",
}
WORDS = {lang: frozenset(words.split()) for lang, words in _LATIN.items()}
# Words of the language that are English words too ("was" and "die" in German, "is" in Dutch, "to" in
# Polish): evidence for neither, so that "Was bedeutet KI-Alignment?" is German and "What did he mean by
# 'die with dignity'?" English.
_SHARED = {
    "de": "was die in an so also man will war hat bin den um am er mit von",
    "fr": "a as me on son ai plus par non",
    "es": "a no me son sin con era al yo ya hay mi he",
    "pt": "a as no do me em eu era um sem",
    "it": "a i in ai come per non dove ci mi vi io con era al",
    "nl": "is was of over door die we me in op al dan heel hem met mag u",
    "pl": "a i w z do to on my we po pod ten ta co no",
    "sv": "i om man de den var men till under vi en",
    "da": "i for men til man den var at de vi han om af sig",
    "cs": "a i v s z to do po on k u o co pro by jen",
    "tr": "de da en ne var mi kim ama",
    "id": "di dan ada",
    "ro": "a pe care din",
    "vi": "ai",
}
SHARED = {lang: frozenset(_SHARED.get(lang, "").split()) for lang in WORDS}
# Elisions: a word's first letters and an apostrophe ("l'alignement", "dell'IA", "c'è").
ELISIONS = {
    "fr": frozenset("l d qu c n j s m jusqu lorsqu puisqu".split()),
    "it": frozenset("l un dell all nell sull dall c cos quest po".split()),
}
# Letters the language writes and English does not (its loanwords aside).
LETTERS = {
    "de": "äöüß",
    "fr": "éèêëàâçîïôûùœ",
    "es": "ñáéíóú",
    "pt": "ãõçáéíóúâêô",
    "it": "àèéìòù",
    "pl": "ąćęłńóśźż",
    "sv": "åäö",
    "da": "æøå",
    "cs": "ěščřžýáíéůúťďň",
    "tr": "çğıöşü",
    "ro": "ăâîșțşţ",
    "vi": "đăơưạảấầẩẫậắằẳẵặẹẻẽếềểễệỉịọỏốồổỗộớờởỡợụủứừửữựỳỵỷỹ",
}
# Particles of names, not counted between two capitalised words ("Hugo de Garis", "Guido van Rossum").
_PARTICLES = frozenset("de da di du van von del della dos das der den ter ten la le".split())
_CONTRACTIONS = frozenset("s t re ll ve d m".split())  # what's, don't, they're, Bostrom's
_OTHER_SCRIPT = "other"

_APOSTROPHES = re.compile("[’`´]")
_WORD = re.compile(r"[^\W\d_]+(?:['-][^\W\d_]+)*")
# Latin abbreviations English writes: "e.g.", "i.e.", "et al.", "vs."
_ABBREVIATIONS = re.compile(r"\b(?:e\.\s?g|i\.\s?e|et al|vs)\b\.?", re.I)


def _script(c: str) -> str:
    name = unicodedata.name(c, "")
    if "LATIN" in name:
        return "latin"
    if name.startswith(("CJK", "HIRAGANA", "KATAKANA")):
        return "cjk"
    return "other"


def _runs(text: str) -> list[tuple[str, str]]:
    """The text's letters in runs of one script: ("latin" | "cjk" | "other", run)."""
    runs: list[tuple[str, str]] = []
    for c in text:
        script = _script(c) if c.isalpha() else ""
        if runs and script and runs[-1][0] == script:
            runs[-1] = (script, runs[-1][1] + c)
        else:
            runs.append((script, c))
    return runs


def evidence(text: str) -> dict[str, float]:
    """Points of evidence for English (`en`), each other Latin-script language, and other scripts
    (`other`). For a language L, the English count of the pair leaves out L's own words (`en:L`)."""
    text = _ABBREVIATIONS.sub(" ", _APOSTROPHES.sub("'", text))
    english: list[str] = []  # English words and contractions
    latin: list[str] = []  # every Latin-script word, for the other languages
    scores = dict.fromkeys([*WORDS, _OTHER_SCRIPT], 0.0)
    plain: list[str] = []
    for script, run in _runs(text):
        if script == "cjk":
            scores[_OTHER_SCRIPT] += 0.5 * len(run)
            plain.append(" ")
        elif script == "other":
            scores[_OTHER_SCRIPT] += 1
            plain.append(" ")
        else:
            plain.append(run)
    tokens = _WORD.findall("".join(plain))
    for i, word in enumerate(tokens):
        if word in _PARTICLES and 0 < i < len(tokens) - 1:
            if tokens[i - 1][0].isupper() and tokens[i + 1][0].isupper():
                continue  # part of a name
        word = word.lower()
        if "'" in word:
            head, _, tail = word.partition("'")
            if tail in _CONTRACTIONS and not any(head in e for e in ELISIONS.values()):
                english.append("'" + tail)
                word = head
            else:
                for lang, heads in ELISIONS.items():
                    scores[lang] += head in heads
                word = tail
        if "-" in word:  # a compound ("KI-Alignment", "co-founder") is one word of no function
            word = "-" if word not in WORDS["fr"] else word
        latin.append(word)
        if word in ENGLISH:
            english.append(word)
    for lang, words in WORDS.items():
        shared = SHARED[lang]
        scores[lang] += sum(w in words and w not in ENGLISH and w not in shared for w in latin)
        letters = LETTERS.get(lang, "")
        scores[lang] += 0.5 * sum(any(c in letters for c in w) and w not in words for w in latin)
        scores[f"en:{lang}"] = sum(w not in words and w not in shared for w in english)
    scores["en"] = len(english)
    return scores


def language_of(text: str) -> str:
    """`en`, the code of the other language the evidence points to, or `other` for another script."""
    scores = evidence(text)
    best, points = "en", 0.0
    for lang in [*WORDS, _OTHER_SCRIPT]:
        against = scores.get(f"en:{lang}", scores["en"])
        if scores[lang] >= 1 and scores[lang] > against and scores[lang] > points:
            best, points = lang, scores[lang]
    return best


def looks_english(text: str) -> bool:
    """False when another language has at least one point of evidence and more than English has; True
    otherwise (short or ambiguous text counts as English)."""
    return language_of(text) == "en"
