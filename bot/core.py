"""AnswerCore: understand the question, retrieve, decide, compose the answer.

Platform-agnostic: adapters hand it a `Question` and render the `Answer` it gives back. An answer goes
through four stages, each a method with a small frozen result:

- understand: an empty, too long or instructions-only message is replied to at once; otherwise the
  history is trimmed and the search query written (a follow-up condensed, another language
  translated). -> `Understood`
- retrieve: the search within the deadline, the passages for the prompt and the spare ones, and the
  answer aisafety.info's editors wrote, if one fits. -> `Prepared`
- decide: how well the library covers the question (covered, a close call, not covered; see
  `Coverage`), then abstain, English only, retrieval-only (no model, or its budget used up), or the
  model. -> `Decision`
- compose: the reply for that decision. The model's is streamed, its links and citations checked,
  and it falls back to the articles if the model fails.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from bot import followup, prompts
from bot.errors import LLMError, RetrievalError
from bot.gate import find_instructions, searchable
from bot.language import looks_english
from bot.llm import LLM, Message, Usage
from bot.models import Answer, Coverage, Question, Source, Turn
from bot.observability import Observer
from bot.ports import Budget
from bot.smalltalk import REPLIES as SMALL_TALK
from bot.smalltalk import small_talk
from retrieval import rescoring
from retrieval.documents import Passage
from retrieval.errors import LibraryError
from retrieval.search import Retriever

_log = logging.getLogger(__name__)

READ_NEXT = 3
CONDENSE_TIMEOUT_S = 8.0
TOO_LONG = (
    "That question is too long for me ({length:,} characters; the limit is {limit:,}). Please ask it in "
    "a sentence or two, or split it into shorter questions."
)
# What an "it" that points at nothing it names is, in the communities the bot serves (`AnswerCore.search`).
SUBJECT = "AI"
USAGE_HINT = (
    "Ask me a question about AI safety or alignment, for example: *What is the orthogonality thesis?*"
)

# Why an answer is retrieval-only, for the operator's log: each names the setting to change.
NO_KEY = "ANTHROPIC_API_KEY is not set; set it to have the language model write the answers"
_LLM_HINTS = {
    "timeout": "LLM_TIMEOUT_S sets how long to wait",
    "connection": "check ANTHROPIC_BASE_URL and the network",
    "rate-limited": "the Anthropic account's rate limit; LLM_MAX_RETRIES sets the retries",
}


def with_evidence(found: Sequence[Passage], other: Sequence[Passage]) -> list[Passage]:
    """`found` in its order, each article with the better of its scores in `found` and in `other` (the
    same question read another way): the evidence the coverage decision weighs."""
    better = {p.article_id: p for p in other}
    out = []
    for p in found:
        q = better.get(p.article_id)
        out.append(
            p
            if q is None
            else replace(
                p,
                dense_score=max(p.dense_score, q.dense_score),
                title_score=max(p.title_score, q.title_score),
                lead_score=max(p.lead_score, q.lead_score),
                bm25_score=max(p.bm25_score, q.bm25_score),
                offtopic_cosine=min(p.offtopic_cosine, q.offtopic_cosine),
            )
        )
    return out


def budget_spent(day: dt.date) -> str:
    return (
        f"the DAILY_TOKEN_BUDGET of {day.isoformat()} (UTC) is used up; answers have the model's words "
        "again tomorrow, or raise DAILY_TOKEN_BUDGET (0: no budget)"
    )


def llm_failed(exc: LLMError | None, deadline_s: float) -> str:
    """The model's failure as the operator reads it; `exc` None: the answer's deadline passed."""
    if exc is None:
        return f"the language model did not finish within ANSWER_DEADLINE_S ({deadline_s:g} s)"
    hint = _LLM_HINTS.get(exc.kind, "")
    return f"the language model failed ({exc})" + (f"; {hint}" if hint else "")


# abstain: the library does not cover the question. english-only: it could not be searched at all.
# retrieval-only: the articles without the model's words. llm: the model answers from the articles.
Outcome = Literal["abstain", "english-only", "retrieval-only", "llm"]


def heuristic_query(question: str, history: Sequence[Turn]) -> str:
    """Without an LLM, a message that leans on the conversation ("why would it do that?") is searched
    together with the previous question; one that stands alone (a new topic) is searched alone."""
    return followup.thread_query(question, [t.text for t in history if t.role == "user"])


def own_question(question: str, history: Sequence[Turn]) -> bool:
    """The member's message says on its own what they ask: there is no earlier question, or it does
    not lean on one. Only then may the reply lead with a written answer matched to the search."""
    return not any(t.role == "user" for t in history) or not followup.depends_on_thread(question)


@dataclass(frozen=True)
class Understood:
    """The question as the core reads it: a reply at once, or what to search for."""

    text: str  # the question, stripped
    history: tuple[Turn, ...] = ()  # the recent turns that fit the token budget
    query: str = ""  # a self-contained English search query
    own: bool = True  # the question stands on its own (no earlier turn it leans on): see own_question
    reply: Answer | None = None  # nothing to search: empty, too long, or only instructions to the bot


@dataclass(frozen=True)
class Prepared:
    """Everything before the LLM: the search query, the passages found and the prompt."""

    query: str
    passages: list[Passage]
    spare: list[Passage]
    prompt: str
    written: Passage | None = None  # aisafety.info's answer to essentially this question, source [1]

    @property
    def lead(self) -> str:
        """What the reply opens with when aisafety.info's editors have answered the question."""
        w = self.written
        return f"{prompts.written_lead(w.title, w.url)}\n\n" if w is not None else ""

    @property
    def written_id(self) -> str:
        return self.written.article_id if self.written is not None else ""


@dataclass(frozen=True)
class Decision:
    """What the reply to a searched question will be, with what compose needs for it."""

    outcome: Outcome
    prepared: Prepared
    reason: str = ""  # retrieval-only: why the model's words are missing
    nearest: tuple[Source, ...] = ()  # abstain: the closest articles, to read next (none when far off-topic)
    # covered: the articles answer it. close: a close call, answered from the closest articles with a
    # plain word on what they do not cover (outcome llm or retrieval-only). not_covered: abstain or
    # english-only. See `AnswerCore.judge`.
    coverage: Coverage = "covered"
    offtopic: bool = False  # not covered, and far from every article: an off-topic request


@dataclass(frozen=True)
class Judgement:
    """How well the library covers a searched question (`AnswerCore.judge`)."""

    coverage: Coverage
    offtopic: bool = False  # only with not_covered: far off-topic (no nearest articles worth listing)
    # only with not_covered: in another language with no model to translate it, so not really searched
    english_only: bool = False


class AnswerCore:
    def __init__(
        self,
        *,
        retriever: Retriever,
        llm: LLM | None,
        top_k: int = 5,
        abstain_below: float | None = None,
        history_token_budget: int = 1500,
        max_tokens: int = 1024,
        max_question_chars: int = 4000,
        deadline_s: float = 90.0,
        llm_unavailable_reason: str = NO_KEY,
        observer: Observer | None = None,
        budget: Budget | None = None,
    ):
        self.retriever = retriever
        self.llm = llm
        self.top_k = top_k
        self.abstain_below = abstain_below
        self.history_token_budget = history_token_budget
        self.max_tokens = max_tokens
        self.max_question_chars = max_question_chars
        self.deadline_s = deadline_s
        self.llm_unavailable_reason = llm_unavailable_reason
        self.observer = observer or Observer()
        self.budget = budget
        self._told: set[str] = set()  # the operator's reasons for retrieval-only answers, logged once
        if llm is None:
            self.tell_operator(llm_unavailable_reason)

    def tell_operator(self, reason: str) -> None:
        """Why answers are retrieval-only, naming the setting to change: in the log, once per process
        and reason. Members read a label written for them (prompts.retrieval_only_text)."""
        if reason not in self._told:
            self._told.add(reason)
            _log.warning("retrieval-only answers: %s", reason)

    async def aclose(self) -> None:
        """Close the LLM client's connections."""
        if self.llm is not None:
            await self.llm.aclose()

    async def answer(self, question: Question) -> Answer:
        """The whole answer at once (the last item of `stream`)."""
        final: Answer | None = None
        async for item in self.stream(question):
            if isinstance(item, Answer):
                final = item
        assert final is not None
        return final

    async def stream(
        self, question: Question, *, found: list[Answer] | None = None, budget: Budget | None = None
    ) -> AsyncIterator[str | Answer]:
        """Yield the answer text as it arrives, then the final `Answer` (always last, always present),
        which carries its timings: retrieval, first token and done, in seconds from the question.
        `found`, if given, receives the articles found as soon as the search is done (a retrieval-only
        answer), so that an answer cut short still has something to offer. `budget`: the token budget this
        answer counts against instead of the core's (its community's, `Conversation`)."""
        started = time.monotonic()
        timings: dict[str, float] = {}
        understood = await self.understand(question)
        if understood.reply is not None:
            yield _timed(understood.reply, started, timings)
            return
        prepared = await self.retrieve_for(understood)
        timings["retrieval"] = time.monotonic() - started
        self.observer.retrieved(timings["retrieval"])
        decision = await self.decide(understood, prepared, found=found, budget=budget)
        async for item in self.compose(decision, started, budget=budget):
            yield _timed(item, started, timings)

    # Understand

    async def understand(self, question: Question) -> Understood:
        """Read the question. An empty, too long or instructions-only message gets its reply here and is
        never searched; any other gets its trimmed history and its search query."""
        text = question.text.strip()
        if not text:
            # Nothing was asked: not covered, and nothing to write an article about.
            return Understood(
                text, reply=Answer(USAGE_HINT, (), "abstain", coverage="not_covered", offtopic=True)
            )
        if len(text) > self.max_question_chars:
            # Nothing this long is searched or sent to the model: a pasted document, a log, or an attempt
            # to crowd the instructions out of the prompt. The member is told how to ask instead.
            reply = Answer(
                TOO_LONG.format(length=len(text), limit=self.max_question_chars),
                (),
                "abstain",
                coverage="not_covered",
            )
            return Understood(text, reply=reply)
        if self.declines(question):
            _log.info("declined a message of instructions to the bot, with no question in it")
            declined = Answer(prompts.abstain_text(()), (), "abstain", coverage="not_covered", offtopic=True)
            return Understood(text, reply=declined)
        kind = small_talk(text)
        if kind is not None:
            # A greeting or thanks: a friendly word at once, nothing searched, no article to write.
            reply = Answer(SMALL_TALK[kind], (), "abstain", coverage="not_covered", offtopic=True)
            return Understood(text, reply=reply)
        return await self._to_search(question)

    async def _to_search(self, question: Question) -> Understood:
        """The trimmed history and the search query, with no check of the question first."""
        history = prompts.trim_history(question.history, self.history_token_budget)
        query = await self.search_query(question, history)
        own = own_question(searchable(question.text) or question.text, history)
        return Understood(question.text.strip(), history, query, own=own)

    def declines(self, question: Question) -> bool:
        """Nothing but instructions aimed at the bot: no question to search, nothing for the model."""
        return searchable(question.text) is None

    async def search_query(self, question: Question, history: Sequence[Turn]) -> str:
        """A self-contained English search query for the question, using the conversation when there is
        one; a question in another language is translated by the language model. Instructions aimed at
        the bot are not searched for."""
        question = replace(question, text=searchable(question.text) or question.text)
        if not history and (self.llm is None or looks_english(question.text)):
            return question.text
        if self.llm is not None:
            try:
                async with asyncio.timeout(CONDENSE_TIMEOUT_S):
                    condensed = await self.llm.complete(
                        system=prompts.CONDENSE_PROMPT,
                        messages=[Message("user", prompts.condense_message(question.text, history[-4:]))],
                        max_tokens=120,
                    )
                condensed = " ".join(condensed.split())
                if condensed:
                    return condensed
            except (LLMError, TimeoutError) as exc:
                _log.info("could not condense the follow-up (%s); using the recent turns", exc)
        return heuristic_query(question.text, history)

    # Retrieve

    async def prepare(self, question: Question) -> Prepared:
        """Everything before the LLM: the search query, the passages and the prompt."""
        return await self.retrieve_for(await self._to_search(question))

    async def retrieve_for(self, understood: Understood) -> Prepared:
        """Search for the question: the best passages for the prompt, the rest spare for reading next,
        and the written answer among them, if there is one."""
        found = await self.search(understood.text, understood.query, fresh=not understood.history)
        passages, spare = found[: self.top_k], found[self.top_k :]
        # The banner names aisafety.info's question as the member's: never for a search that the
        # thread's earlier question was glued to (or that a follow-up was condensed into).
        written = rescoring.written_answer(passages) if understood.own else None
        prompt = prompts.user_message(
            understood.text, passages, understood.history, written=written is not None
        )
        return Prepared(understood.query, passages, spare, prompt, written)

    async def search(self, text: str, query: str, *, fresh: bool, k: int | None = None) -> list[Passage]:
        """The passages found for the question (`text`, searched as `query`). "why not just unplug it",
        asked in an AI-safety community with no thread before it (`fresh`): "it" is the community's
        subject, and so is what "just pull the plug lol" would stop (`followup.on_the_subject`); so when
        the words alone find nothing that covers the question at all, it is searched again with the
        subject named, and each article found keeps its place but takes the better evidence of the two
        readings (`with_evidence`) when that comes close or covers the question."""
        found = await self.retrieve(query, k=k)
        if fresh and followup.on_the_subject(text):
            if rescoring.judge(found[: self.top_k]).coverage == "not_covered":
                named = await self.retrieve(f"{query} ({SUBJECT})", k=k)
                both = with_evidence(found, named)
                if rescoring.judge(both[: self.top_k]).coverage != "not_covered":
                    return both
        return found

    async def retrieve(self, query: str, *, k: int | None = None) -> list[Passage]:
        try:
            async with asyncio.timeout(self.deadline_s):  # a stuck search ends in an apology, not silence
                return await self.retriever.search(query, k=k or self.top_k + READ_NEXT)
        except LibraryError as exc:  # the store, the embedding model: one base, one user-facing error
            raise RetrievalError(str(exc)) from exc
        except TimeoutError as exc:
            raise RetrievalError(f"the search took over {self.deadline_s:g} s") from exc

    # Decide

    async def decide(
        self,
        understood: Understood,
        prepared: Prepared,
        *,
        found: list[Answer] | None = None,
        budget: Budget | None = None,
    ) -> Decision:
        """What to reply with. A question the library covers, or comes close to (a close call), is
        answered: its articles go into `found` at once, before the budget is asked, so that an answer
        cut short from here on still has them. One it does not cover is abstained on, with the nearest
        articles unless it is far off-topic; without a language model, a question in another language
        that the articles do not plainly cover could not really be searched: english-only, no articles."""
        judged = self.judge(understood.text, prepared.passages, fresh=not understood.history)
        coverage = judged.coverage
        if judged.english_only:
            # Not "the articles don't cover that": the question could not be searched at all, so the
            # articles found for its words are no guide either.
            return Decision("english-only", prepared, coverage="not_covered")
        if coverage == "not_covered":
            nearest: tuple[Source, ...] = ()
            if not judged.offtopic:
                nearest = tuple(
                    _as_source(i, p) for i, p in enumerate(prepared.passages[:READ_NEXT], start=1)
                )
            return Decision(
                "abstain", prepared, nearest=nearest, coverage="not_covered", offtopic=judged.offtopic
            )
        if found is not None:
            found.append(_offer(prepared, coverage))
        if self.llm is None:
            return Decision("retrieval-only", prepared, reason=self.llm_unavailable_reason, coverage=coverage)
        budget = self.budget if budget is None else budget
        if budget is not None and await budget.exhausted():
            reason = budget_spent(dt.datetime.now(dt.UTC).date())
            return Decision("retrieval-only", prepared, reason=reason, coverage=coverage)
        return Decision("llm", prepared, coverage=coverage)

    def judge(self, text: str, passages: Sequence[Passage], *, fresh: bool = True) -> Judgement:
        """How well the library covers the question (`text`, as asked) with these articles found for it:

        - covered: the calibrated abstention model is sure the articles answer it;
        - close: a close call, below that but within the close band (`retrieval.rescoring.judge`): the
          reply gives the closest articles and says plainly what they do not cover;
        - not_covered: below the close band; `offtopic` when well below it too (far from every article),
          unless, asked `fresh` (no thread before it), an "it" or "this" in it points at something it never
          names ("why not just unplug it") or it proposes a fix with "just" ("just pull the plug lol"): in
          an AI-safety community what it means is the AI, so the question is on the community's subject
          though its words are far from every article (`followup.on_the_subject`).

        A message that carried instructions to the bot is never a close call: only a question the
        articles plainly cover reaches the model with them. Without a language model, a question in
        another language that is not plainly covered is not_covered and `english_only` (its words were
        searched untranslated). With ABSTAIN_BELOW set, the best dense cosine decides between covered
        and not covered alone (no close band)."""
        if self.abstain_below is not None:
            below = not passages or max(p.dense_score for p in passages) < self.abstain_below
            judged = Judgement("not_covered") if below else Judgement("covered")
        else:
            topic = rescoring.judge(passages)
            judged = Judgement(topic.coverage, topic.far and not (fresh and followup.on_the_subject(text)))
            if topic.coverage == "close" and find_instructions(text):
                judged = Judgement("not_covered")
        if judged.coverage != "covered" and self.llm is None and not looks_english(text):
            return Judgement("not_covered", english_only=True)
        return judged

    # Compose

    async def compose(
        self, decision: Decision, started: float, *, budget: Budget | None = None
    ) -> AsyncIterator[str | Answer]:
        """Yield the reply the decision calls for: the model's text as it arrives, then the `Answer`.
        The model has what is left of the deadline counted from `started`."""
        prepared = decision.prepared
        query = prepared.query
        if decision.outcome in ("abstain", "english-only"):
            text = (
                prompts.abstain_text(decision.nearest)
                if decision.outcome == "abstain"
                else prompts.ENGLISH_ONLY_TEXT
            )
            yield Answer(
                text,
                (),
                "abstain",
                read_next=decision.nearest,
                search_query=query,
                coverage="not_covered",
                offtopic=decision.offtopic,
            )
            return
        coverage = decision.coverage
        if decision.outcome == "retrieval-only":
            yield await self._retrieval_only(prepared, decision.reason, coverage=coverage)
            return

        llm = self.llm
        assert llm is not None  # decide answers with the model only when there is one
        passages, spare = prepared.passages, prepared.spare
        usage = Usage()
        parts: list[str] = []
        lead = prepared.lead
        if lead:
            yield lead
        try:
            remaining = max(1.0, self.deadline_s - (time.monotonic() - started))
            async with asyncio.timeout(remaining):
                async for delta in llm.stream(
                    system=prompts.SYSTEM_PROMPT,
                    messages=[Message("user", prompts.with_coverage_note(prepared.prompt, coverage))],
                    max_tokens=self.max_tokens,
                    usage=usage,
                ):
                    parts.append(delta)
                    yield delta
        except (LLMError, TimeoutError) as exc:
            kind = exc.kind if isinstance(exc, LLMError) else "deadline"
            _log.info("LLM failed (%s); answering from retrieval only", kind)
            await self._count_tokens(usage, budget)
            self.observer.llm_failed(kind)
            yield await self._retrieval_only(
                prepared,
                llm_failed(exc if isinstance(exc, LLMError) else None, self.deadline_s),
                interrupted=bool(parts),
                coverage=coverage,
            )
            return

        await self._count_tokens(usage, budget)
        library = {p.url for p in passages + spare}
        text = prompts.unmask_links("".join(parts), library)
        cleaned, sources = prompts.renumber_citations(text, passages, keep_first=prepared.written is not None)
        if not cleaned:
            yield await self._retrieval_only(
                prepared, "the language model gave an empty answer", coverage=coverage
            )
            return
        read_next = await self._read_next(sources, passages + spare)
        yield Answer(
            lead + cleaned,
            tuple(sources),
            "llm",
            read_next=read_next,
            search_query=query,
            usage={"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens},
            written_answer=prepared.written_id,
            coverage=coverage,
        )

    async def _count_tokens(self, usage: Usage, budget: Budget | None = None) -> None:
        budget = self.budget if budget is None else budget
        if budget is not None:
            await budget.spend(usage.input_tokens + usage.output_tokens)
        self.observer.llm_tokens(usage.input_tokens, usage.output_tokens)

    async def _retrieval_only(
        self, prepared: Prepared, reason: str, *, interrupted: bool = False, coverage: Coverage = "covered"
    ) -> Answer:
        self.tell_operator(reason)
        offer = _offer(prepared, coverage)
        read_next = await self._read_next(offer.sources, prepared.passages + prepared.spare)
        notice = "The answer was cut off; here is what the articles say instead." if interrupted else ""
        return replace(offer, read_next=read_next, notice=notice, search_query=prepared.query)

    async def _read_next(self, cited: Sequence[Source], ranked: Sequence[Passage]) -> tuple[Source, ...]:
        """Up to three articles not cited: the cited articles' own related articles first, then the next-best."""
        taken = {s.id for s in cited}
        related: list[str] = []
        by_id = {p.article_id: p for p in ranked}
        for s in cited:
            p = by_id.get(s.id)
            for rid in p.related if p else ():
                if rid not in taken and rid not in related:
                    related.append(rid)
        picks: list[Passage] = []
        if related:
            try:
                found = await self.retriever.articles(related[: READ_NEXT * 3])
            except LibraryError as exc:
                _log.info("could not look up related articles: %s", exc)
                found = {}
            picks.extend(found[r] for r in related if r in found)
        for p in ranked:
            picks.append(p)
        out: list[Source] = []
        for p in picks:
            if p.article_id in taken:
                continue
            taken.add(p.article_id)
            out.append(_as_source(len(out) + 1, p))
            if len(out) == READ_NEXT:
                break
        return tuple(out)


def _timed(item: str | Answer, started: float, timings: dict[str, float]) -> str | Answer:
    """Note the first token's time; the final `Answer` gets the done time and carries them all."""
    if isinstance(item, Answer):
        timings["done"] = time.monotonic() - started
        return replace(item, timings=dict(timings))
    if "first_token" not in timings:
        timings["first_token"] = time.monotonic() - started
    return item


def _offer(prepared: Prepared, coverage: Coverage = "covered") -> Answer:
    """The retrieval-only answer: the passages found, numbered, with a short excerpt each; led by the
    answer aisafety.info's editors wrote, when the question is essentially one of theirs. A close call
    offers them as the closest the library has, which may help (`prompts.close_call_text`)."""
    sources = tuple(_as_source(i, p, excerpt=True) for i, p in enumerate(prepared.passages, start=1))
    body = prompts.close_call_text(sources) if coverage == "close" else prompts.retrieval_only_text(sources)
    return Answer(
        prepared.lead + body, sources, "retrieval-only", written_answer=prepared.written_id, coverage=coverage
    )


def _as_source(n: int, p: Passage, *, excerpt: bool = False) -> Source:
    """A passage as a listed source; with its excerpt only where a reply shows it (retrieval-only)."""
    return Source(n, p.article_id, p.title, p.url, prompts.excerpt(p.text) if excerpt else "")
