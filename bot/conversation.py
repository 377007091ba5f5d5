"""The life of an answer, owned once for every platform.

An adapter decides whether an event is for the bot and turns it into a `Question`; it hands the
question to `Conversation.answer` with a `Reply`: the platform's way of showing a first sign of work,
previews, the final answer and an apology. Everything else is here: the allow list, the rate limit,
throttled previews, storing the answer, metrics with the same stages on every path, the apology with
whatever was found, and a graceful stop that lets answers in flight finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Coroutine, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from bot.community import EVERY, Deployment, Effective, MemorySettings, SettingsStore, effective
from bot.core import AnswerCore
from bot.errors import BotError
from bot.models import Answer, Question
from bot.platform import (
    HANDOFF_ALREADY,
    HANDOFF_ASKED,
    HANDOFF_FAILED,
    HANDOFF_OFF,
    SLOW_DOWN,
    VOTE_FAILED,
    PlatformOptions,
    thanks,
)
from bot.ports import (
    AnswerStore,
    Budget,
    Budgets,
    Claim,
    Deduplicator,
    Journal,
    Leases,
    RateLimit,
    ThreadMemory,
)
from bot.prompts import unmask_links
from bot.ratelimit import (
    MemoryBudgets,
    MemoryJournal,
    MemoryLeases,
    RateLimiter,
    RecentKeys,
    RecentThreads,
)
from bot.writer import AnswerWriter, new_answer_id

_log = logging.getLogger(__name__)

# How long an apology may take when an answer is cut short by a shutdown.
APOLOGY_TIMEOUT_S = 5.0
# How long a hand-off's lease is held while the moderators' message is being posted.
HANDOFF_LEASE_S = 60.0
# The moderators are called at most this often (in each process), whatever the question rate limit.
HANDOFFS_PER_MEMBER = 3
HANDOFFS_PER_COMMUNITY = 10
HANDOFF_WINDOW_S = 3600.0
# The journal (`claim`): a question's claim lasts CLAIM_TTL_S unless renewed, which its process does every
# RENEW_EVERY_S (and at once after each side effect); every RECOVER_EVERY_S each process looks for
# claims left to expire by a process that died, and continues them.
CLAIM_TTL_S = 30.0
RENEW_EVERY_S = 10.0
RECOVER_EVERY_S = 10.0
RECOVER_BATCH = 20
# The longest a member waits on the answers database or Redis (a hung server: a full disk, a lock, a
# frozen machine) before the reply goes on without it.
STATE_TIMEOUT_S = 5.0


class Reply(Protocol):
    """One answer's way out, implemented by each adapter with its SDK. Render functions stay pure;
    a Reply only sends."""

    async def start(self) -> None:
        """The first visible sign of work (typing, a placeholder). A failure here is not fatal."""

    async def preview(self, text: str) -> None:
        """The answer so far (the model's Markdown). Called no faster than the edit interval."""

    async def final(self, answer: Answer, answer_id: int | None) -> None:
        """The whole answer, with feedback buttons when `answer_id` is given."""

    async def apologise(self, answer: Answer | None) -> None:
        """Never silent: the apology, with whatever sources were found, replacing any partial text."""

    async def say(self, text: str) -> None:
        """A short notice instead of an answer (usage, slow down)."""


@dataclass(frozen=True)
class Services:
    """The core and the shared-state ports every platform's conversation uses, chosen once by the
    composition root (in-process, or Redis and PostgreSQL for several replicas)."""

    core: AnswerCore
    store: AnswerStore
    limiter: RateLimit
    dedupe: Deduplicator
    threads: ThreadMemory
    leases: Leases
    writer: AnswerWriter | None = None  # None: one of the conversation's own
    journal: Journal | None = None  # None: one in this process
    # Hand-offs per member and per community an hour (None: counted in this process).
    handoff_limits: tuple[RateLimit, RateLimit] | None = None
    # Each community's own settings and the deployment's (None: in this process, and the deployment
    # made from each platform's options); each community's tokens spent today (None: in this process).
    settings: SettingsStore | None = None
    deployment: Deployment | None = None
    budgets: Budgets | None = None


# A conversation given no deployment makes one of its platform options (tests, the terminal chat).
_FROM_OPTIONS = Deployment()


def options_deployment(platform: str, options: PlatformOptions) -> Deployment:
    """The deployment of a conversation made from its platform options alone, as one community's bot:
    its hand-off role applies in every community of the platform."""
    return Deployment(
        allowed_channels=options.allowed_channels,
        handoff=f"{platform}:{options.handoff}" if options.handoff else None,
        handoff_community=EVERY,
        rate_limit_per_minute=options.rate_limit_per_minute,
        store_questions=options.store_questions,
    )


@dataclass
class Conversation:
    """The policy for one platform's answers, and the adapters' only way to stored state: answers, votes,
    the rate limit, event de-duplication, thread memory and hand-off leases, each keyed by the question's
    community. `core.observer` is read at each use (tests swap it)."""

    core: AnswerCore
    store: AnswerStore
    limiter: RateLimit
    options: PlatformOptions
    platform: str
    usage: str
    dedupe: Deduplicator
    threads: ThreadMemory
    leases: Leases
    writer: AnswerWriter | None = None
    journal: Journal = field(default_factory=MemoryJournal)
    # Each community's own settings (bot/community.py) and the deployment's, which bound them (by
    # default, made from `options`); each community's LLM tokens spent today.
    settings: SettingsStore = field(default_factory=MemorySettings)
    deployment: Deployment = _FROM_OPTIONS
    budgets: Budgets = field(default_factory=MemoryBudgets)
    state_timeout_s: float = STATE_TIMEOUT_S
    _tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    handoffs_by_member: RateLimit = field(
        default_factory=lambda: RateLimiter(HANDOFFS_PER_MEMBER, window_s=HANDOFF_WINDOW_S)
    )
    handoffs_by_community: RateLimit = field(
        default_factory=lambda: RateLimiter(HANDOFFS_PER_COMMUNITY, window_s=HANDOFF_WINDOW_S)
    )
    closing: bool = False  # stopping: Slack's HTTP events are refused (503), answers in flight finish
    _cut: bool = False  # the grace period is over: nothing more runs

    @classmethod
    def for_platform(
        cls, platform: str, services: Services, *, options: PlatformOptions, usage: str
    ) -> Conversation:
        conversation = cls(
            core=services.core,
            store=services.store,
            limiter=services.limiter,
            options=options,
            platform=platform,
            usage=usage,
            dedupe=services.dedupe,
            threads=services.threads,
            leases=services.leases,
            writer=services.writer,
            journal=services.journal or MemoryJournal(),
        )
        if services.settings is not None:
            conversation.settings = services.settings
        if services.deployment is not None:
            conversation.deployment = services.deployment
        if services.budgets is not None:
            conversation.budgets = services.budgets
        if services.handoff_limits is not None:  # shared counters; else this process's own
            conversation.handoffs_by_member, conversation.handoffs_by_community = services.handoff_limits
        return conversation

    def __post_init__(self) -> None:
        if self.deployment is _FROM_OPTIONS:
            self.deployment = options_deployment(self.platform, self.options)
        if self.writer is None:
            self.writer = AnswerWriter(self.store, timeout_s=self.state_timeout_s)

    @classmethod
    def in_process(
        cls,
        platform: str,
        *,
        core: AnswerCore,
        store: AnswerStore,
        options: PlatformOptions,
        usage: str,
        limiter: RateLimit | None = None,
        leases: Leases | None = None,
        journal: Journal | None = None,
    ) -> Conversation:
        """The one-process default: every port kept in memory unless a shared one is given."""
        services = Services(
            core=core,
            store=store,
            limiter=limiter or RateLimiter(options.rate_limit_per_minute),
            dedupe=RecentKeys(),
            threads=RecentThreads(),
            leases=leases or MemoryLeases(),
            journal=journal,
        )
        return cls.for_platform(platform, services, options=options, usage=usage)

    # -- state the adapters reach through the conversation -------------------------------------------
    async def first_delivery(self, community: str, *keys: str) -> bool:
        """True the first time any of these event keys is seen in `community` (platforms redeliver)."""
        return await self.dedupe.first(*(f"{community}:{k}" for k in keys if k))

    async def thread_is_ours(self, community: str, channel: str, thread: str) -> bool | None:
        """Whether the bot answers in `thread` (None: not known yet)."""
        return await self.threads.get(f"{community}:{channel}", thread)

    async def remember_thread(self, community: str, channel: str, thread: str, ours: bool) -> None:
        await self.threads.remember(f"{community}:{channel}", thread, ours)

    async def vote(self, community: str, answer_id: int, *, voter: str, vote: str) -> str:
        """A member's 👍 / 👎 on an answer of their community; returns what to tell them."""
        try:
            async with asyncio.timeout(self.state_timeout_s):
                recorded = await self.store.vote(answer_id, voter=voter, vote=vote, community=community)
        except Exception as exc:
            _log.warning("could not record a vote (%s)", type(exc).__name__)
            return VOTE_FAILED
        self.core.observer.feedback(self.platform, vote)
        return thanks(vote, recorded)

    def _member(self, community: str, asker: str) -> str:
        return f"{community}:{asker}"

    # -- a community's settings ---------------------------------------------------------------------
    async def effective(self, community: str) -> Effective:
        """The settings that apply in `community`: its own choices within the deployment's ceilings
        (`bot.community.effective`). Served from the settings' cache; if even that cannot answer in
        time, the deployment's values apply."""
        try:
            async with asyncio.timeout(self.state_timeout_s):
                own = await self.settings.get(community)
        except Exception as exc:
            _log.warning(
                "could not read a community's settings (%s); the deployment's apply", type(exc).__name__
            )
            own = None
        return effective(community, own, self.deployment)

    async def stores_questions(self, community: str) -> bool:
        """Whether a question's text may be kept (stored, journaled) in `community`."""
        return (await self.effective(community)).store_questions

    # -- where the bot answers ---------------------------------------------------------------------
    async def allowed_in(self, community: str, channel_ids: Collection[str], *, direct: bool = False) -> bool:
        """Direct messages always; elsewhere, when the community's allow list is empty or names the
        channel (or the channel a thread belongs to)."""
        if direct:
            return True
        allowed = (await self.effective(community)).allowed_channels
        return not allowed or bool(set(channel_ids) & allowed)

    # -- running answers in the background -----------------------------------------------------------
    def spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        """Run `work` as a kept task (the platform's event handler returns at once). While the bot is
        stopping, work that was already on its way (an event acknowledged just before the signal) still
        runs within the grace period; nothing runs once that has ended."""
        if self._cut:
            work.close()
            return
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self, grace_s: float) -> int:
        """Stop taking questions, let answers in flight finish within `grace_s`, then cut the rest short
        (each ends with the apology). Returns how many were cut short."""
        self.closing = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_s
        if self._tasks:
            _log.info("stopping: waiting up to %g s for %d answers in flight", grace_s, len(self._tasks))
        # Answers spawned meanwhile (acknowledged just before the signal) are waited for too.
        while self._tasks and (left := deadline - loop.time()) > 0:
            await asyncio.wait(set(self._tasks), timeout=left)
        self._cut = True
        pending = set(self._tasks)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=APOLOGY_TIMEOUT_S * 2)
            _log.warning("stopping: %d answers were cut short and got the apology", len(pending))
        assert self.writer is not None
        await self.writer.flush(max(deadline - loop.time(), APOLOGY_TIMEOUT_S))  # store what was posted
        return len(pending)

    # -- a human instead -------------------------------------------------------------------------------
    async def handoff(
        self,
        community: str,
        asker: str,
        message: str,
        call: Callable[[str], Awaitable[None]],
        *,
        thread: str | None = None,
    ) -> str:
        """A member pressed "Ask a human" under the answer `message` (the platform's id for that message,
        one the bot posted); `call` posts the one message that mentions the moderators, given the community's
        hand-off role or group as read here (read once: the mention and the check never disagree). Returns what to
        tell the member. The moderators are called at most once per answer (a lease marked done, given
        back if `call` fails), at most HANDOFFS_PER_MEMBER times an hour by one member and
        HANDOFFS_PER_COMMUNITY by one community, whatever the question rate limit. `thread`: where a
        release before per-answer hand-offs recorded one (that thread stays handed off)."""
        role = (await self.effective(community)).handoff
        if role is None:
            return HANDOFF_OFF
        name = f"handoff:{community}:{self.platform}:answer:{message}"
        try:
            async with asyncio.timeout(self.state_timeout_s):
                if thread is not None and await self._handed_off_before(community, thread):
                    return HANDOFF_ALREADY
                lease = await self.leases.acquire(name, HANDOFF_LEASE_S)
        except Exception:
            _log.exception("could not record a hand-off; the moderators were not asked")
            return HANDOFF_FAILED
        if lease is None:
            return HANDOFF_ALREADY
        # Counted only when the moderators would be called (an answer already handed off costs nothing).
        try:
            async with asyncio.timeout(self.state_timeout_s):
                allowed: bool | None = await self.handoffs_by_member.allow(
                    self._member(community, asker)
                ) and await self.handoffs_by_community.allow(community)
        except Exception:
            _log.warning("could not count a hand-off; the moderators were not asked")
            allowed = None
        if not allowed:
            if allowed is False:
                self.core.observer.rate_limited(self.platform)
            with contextlib.suppress(Exception):
                async with asyncio.timeout(self.state_timeout_s):
                    await self.leases.release(lease)
            return SLOW_DOWN if allowed is False else HANDOFF_FAILED
        try:
            await call(role)
        except asyncio.CancelledError:
            # Stopped while posting: the message has most likely gone out, and a second ping is worse
            # than none, so the thread counts as handed off.
            with contextlib.suppress(Exception):
                async with asyncio.timeout(self.state_timeout_s):
                    await self.leases.done(lease)
            raise
        except Exception as exc:
            _log.warning("could not ask the moderators (%s)", type(exc).__name__)
            try:
                async with asyncio.timeout(self.state_timeout_s):
                    await self.leases.release(lease)  # a later press may try again
            except Exception:
                _log.exception("could not undo a hand-off's record")
            return HANDOFF_FAILED
        try:
            async with asyncio.timeout(self.state_timeout_s):
                await self.leases.done(lease)
        except Exception:
            _log.exception("could not record a hand-off as done")
        return HANDOFF_ASKED

    async def _handed_off_before(self, community: str, thread: str) -> bool:
        """A hand-off an earlier release recorded for the whole thread: by thread within the community,
        or, before communities, by thread alone (claims moved into the leases as done)."""
        for name in (f"handoff:{community}:{self.platform}:{thread}", f"handoff:{self.platform}:{thread}"):
            legacy = await self.leases.acquire(name, HANDOFF_LEASE_S)
            if legacy is None:
                return True
            await self.leases.release(legacy)
        return False

    # -- one answer ------------------------------------------------------------------------------------
    # -- the journal: exactly once across crashes ----------------------------------------------------
    async def claim(self, community: str, key: str, entry: Mapping[str, Any] | None = None) -> Claim | None:
        """Claim a question before answering it (`bot.ports.Journal`): None if it is a redelivery of one
        being answered or answered already. A claim taken over from a process that died with it comes
        back `resumed`, with what that process recorded. If the journal cannot be reached in time, the
        in-process de-duplication decides, and the answer goes on unjournaled."""
        name = f"{community}:{self.platform}:{key}"
        try:
            async with asyncio.timeout(self.state_timeout_s):
                return await self.journal.claim(name, dict(entry or {}), CLAIM_TTL_S)
        except Exception as exc:
            _log.warning("could not journal a question (%s); answering it unjournaled", type(exc).__name__)
            if not await self.dedupe.first(name):
                return None
            return Claim(name, "", dict(entry or {}))

    async def recover(
        self, resume: Callable[[Claim], Awaitable[None]], *, every_s: float = RECOVER_EVERY_S
    ) -> None:
        """Continue, once, the questions whose process died with them unfinished (their claims expired):
        nobody else will, since Slack does not re-send an acknowledged event and Discord never
        re-delivers. `resume` rebuilds the question and its reply from the claim's entry and answers it
        (`answer(..., claim=...)`). An interaction whose token has expired is closed, not answered."""
        while True:
            try:
                async with asyncio.timeout(self.state_timeout_s * 2):
                    keys = await self.journal.orphans(RECOVER_BATCH)
            except Exception as exc:
                _log.info("could not look for unfinished questions (%s)", type(exc).__name__)
                keys = []
            prefix = f":{self.platform}:"
            for key in keys:
                if prefix not in key or self.closing:
                    continue
                try:
                    async with asyncio.timeout(self.state_timeout_s):
                        claim = await self.journal.claim(key, {}, CLAIM_TTL_S)
                except Exception:
                    continue
                if claim is None:
                    continue  # another replica took it
                if float(claim.entry.get("expires_at", 0) or 0) and time.time() > float(
                    claim.entry["expires_at"]
                ):
                    _log.info("closed an unfinished question whose interaction expired")
                    await self.finish(claim)
                    continue
                _log.info("continuing a question left unfinished by a stopped process")
                self.core.observer.recovered(self.platform)
                self.spawn(self._resume(resume, claim))
            await asyncio.sleep(every_s)

    async def _resume(self, resume: Callable[[Claim], Awaitable[None]], claim: Claim) -> None:
        try:
            await resume(claim)
        except Exception:
            _log.exception("could not continue an unfinished question")
            await self.finish(claim)

    async def record(self, claim: Claim, steps: Mapping[str, Any]) -> Claim:
        """Record a side effect at once (a thread made for the answer), before the next step."""
        if not claim.holder:
            return claim
        entry = {**claim.entry, **steps}
        try:
            async with asyncio.timeout(self.state_timeout_s):
                await self.journal.record(claim, entry, CLAIM_TTL_S)
        except Exception as exc:
            _log.info("could not record a step of an answer (%s)", type(exc).__name__)
        return replace(claim, entry=entry)

    async def finish(self, claim: Claim | None) -> None:
        """The question is answered (or closed): its claim is done, and kept a day against redeliveries."""
        if claim is None or not claim.holder:
            return
        try:
            async with asyncio.timeout(self.state_timeout_s):
                await self.journal.done(claim)
        except Exception as exc:
            _log.warning("could not mark a question done (%s)", type(exc).__name__)

    async def _hold(self, journaled: _Journaled) -> None:
        """While the answer is worked on, renew its claim every RENEW_EVERY_S with what is recorded so far
        (each side effect is recorded as it happens, by `_Journaled.step`)."""
        while True:
            await asyncio.sleep(RENEW_EVERY_S)
            claim = journaled.claim
            try:
                async with asyncio.timeout(self.state_timeout_s):
                    if not await self.journal.record(claim, claim.entry, CLAIM_TTL_S):
                        _log.warning("lost the claim of a question being answered")
                        return
            except Exception as exc:
                _log.info("could not renew a question's claim (%s)", type(exc).__name__)

    async def answer(
        self,
        question: Question,
        reply: Reply,
        *,
        started: float | None = None,
        claim: Claim | None = None,
    ) -> Answer | None:
        """Answer `question` through `reply`. Never raises (but for cancellation, which apologises first):
        every failure ends in the apology. Returns the answer shown, if any. With `claim` (`claim`), its
        side effects are journaled as they happen and it is marked done when the answer is posted."""
        if claim is None or not claim.holder:
            return await self._answer(
                question, reply, started=started, resumed=claim is not None and claim.resumed
            )
        journaled = _Journaled(self, claim, reply)
        holding = asyncio.create_task(self._hold(journaled))
        try:
            return await self._answer(
                question, reply, started=started, resumed=claim.resumed, journaled=journaled
            )
        finally:
            holding.cancel()
            await asyncio.gather(holding, return_exceptions=True)
            await self.finish(claim)

    async def _answer(
        self,
        question: Question,
        reply: Reply,
        *,
        started: float | None,
        resumed: bool,
        journaled: _Journaled | None = None,
    ) -> Answer | None:
        started = time.monotonic() if started is None else started
        observer = self.core.observer
        if not question.text.strip():
            await _quietly(reply.say(self.usage), "the usage hint")
            return None
        applies = await self.effective(question.community)
        if not resumed and not await self._allow(question, applies):
            observer.rate_limited(self.platform)
            await _quietly(reply.say(SLOW_DOWN), "the slow-down notice")
            return None
        await _quietly(reply.start(), "the first sign of work")  # typing failing must not stop the answer
        if journaled is not None:
            await journaled.step()  # the placeholder is recorded before anything else is done
        first_sign = time.monotonic() - started
        final: Answer | None = None
        found: list[Answer] = []  # the articles found, for an apology if the answer is cut short
        saved = False
        try:
            final = await self._stream(question, reply, found, journaled, budget=self._budget(applies))
            # Posted first, stored after (`bot/writer.py`): the database never holds an answer.
            answer_id = new_answer_id()
            await reply.final(final, answer_id)
            saved = True
            self._save(question, final, answer_id, applies)
        except asyncio.CancelledError:
            observer.answered(self.platform, question, None, first_sign_s=first_sign)
            try:
                async with asyncio.timeout(APOLOGY_TIMEOUT_S):
                    await reply.apologise(final or next(iter(found), None))
            except Exception:
                _log.warning("could not apologise for an answer cut short")
            raise
        except Exception as exc:
            observer.answered(self.platform, question, None, first_sign_s=first_sign)
            if isinstance(exc, BotError):
                _log.warning("answer failed: %s: %s", type(exc).__name__, exc)
            else:
                _log.exception("answer failed")
            shown = final or next(iter(found), None)
            await self.apologise(reply, shown)
            if not saved:  # stored as an "error" answer: the moderators' report counts failures
                error = Answer("", shown.sources if shown else (), "error")
                self._save(question, error, new_answer_id(), applies)
            return None
        observer.answered(self.platform, question, final, first_sign_s=first_sign)
        return final

    async def apologise(self, reply: Reply, answer: Answer | None = None) -> None:
        """Never silent: the apology (with what was found), for any failure, including one that came
        before the question could even be read."""
        await _quietly(reply.apologise(answer), "the apology", level=logging.ERROR)

    async def _allow(self, question: Question, applies: Effective) -> bool:
        """The member is within their community's rate limit (the limiter's own, or the community's
        tighter one)."""
        member = self._member(question.community, question.asker)
        if applies.rate_limit_per_minute == self.deployment.rate_limit_per_minute:
            return await self.limiter.allow(member)
        return await self.limiter.allow(member, applies.rate_limit_per_minute)

    def _budget(self, applies: Effective) -> Budget | None:
        """The token budget an answer in this community counts against when the community chose a
        smaller one than the deployment's: the deployment's (the core's) and its own, its tokens counted
        in both from then on. None: the core's alone."""
        if applies.daily_token_budget == self.deployment.daily_token_budget:
            return None
        return _CommunityBudget(
            getattr(self.core, "budget", None), self.budgets, applies.community, applies.daily_token_budget
        )

    async def _stream(
        self,
        question: Question,
        reply: Reply,
        found: list[Answer],
        journaled: _Journaled | None = None,
        *,
        budget: Budget | None = None,
    ) -> Answer:
        """The core's answer, with throttled previews of the text so far. A failed preview is skipped, and
        so are the rest of that answer's previews: the platform is struggling, and the final answer is
        what matters."""
        text = ""
        last = 0.0  # the first words show at once; later previews wait for the interval
        previews = True
        final: Answer | None = None
        answering = (
            self.core.stream(question, found=found)
            if budget is None
            else self.core.stream(question, found=found, budget=budget)
        )
        async for item in answering:
            if isinstance(item, Answer):
                final = item
                continue
            text += item
            if previews and time.monotonic() - last >= self.options.edit_interval_s:
                last = time.monotonic()
                # Previews show no masked links at all: which addresses are the library's is settled
                # with the final answer.
                previews = await _quietly(reply.preview(unmask_links(text, ())), "a preview")
                if journaled is not None:
                    await journaled.step()  # a first preview message (Discord) is recorded at once
        assert final is not None
        return final

    def _save(self, question: Question, answer: Answer, answer_id: int, applies: Effective) -> None:
        """Queue the answer for storing (`AnswerWriter`): never waits on the database. Where the
        community keeps no questions, the row holds no text of the question or the answer, nor who asked
        where: only its outcome and sources, for the counts."""
        assert self.writer is not None
        if not applies.store_questions:
            question = replace(question, text="", asker="", place="", place_name="", history=())
            answer = replace(answer, text="")
        self.writer.submit(self.platform, question, answer, answer_id)


class _CommunityBudget:
    """One answer's token budget: the deployment's daily budget (the core's, for every community
    together) and, when the community chose a smaller one, the community's own; tokens are counted in
    both."""

    def __init__(self, deployment: Budget | None, budgets: Budgets, community: str, daily_tokens: int):
        self.deployment = deployment
        self.budgets = budgets
        self.community = community
        self.daily_tokens = daily_tokens

    async def exhausted(self) -> bool:
        if self.deployment is not None and await self.deployment.exhausted():
            return True
        if self.daily_tokens <= 0:
            return False
        try:
            return await self.budgets.spent(self.community) >= self.daily_tokens
        except Exception as exc:
            _log.warning("could not read a community's token budget (%s)", type(exc).__name__)
            return False

    async def spend(self, tokens: int) -> None:
        if self.deployment is not None:
            await self.deployment.spend(tokens)
        try:
            await self.budgets.spend(self.community, tokens)
        except Exception as exc:
            _log.warning("could not count a community's tokens (%s)", type(exc).__name__)


class _Journaled:
    """An answer's claim, and what of its reply's side effects has been recorded."""

    def __init__(self, conversation: Conversation, claim: Claim, reply: Reply):
        self.conversation = conversation
        self.claim = claim
        self.reply = reply

    async def step(self) -> None:
        """Record the reply's side effects if any is new, before the answer goes on."""
        steps = _checkpoint(self.reply)
        if any(self.claim.entry.get(k) != v for k, v in steps.items()):
            self.claim = await self.conversation.record(self.claim, steps)


def _checkpoint(reply: Reply) -> dict[str, Any]:
    """What the reply has done that another process would need to continue it (its placeholder)."""
    steps = getattr(reply, "checkpoint", None)
    return dict(steps()) if callable(steps) else {}


async def _quietly(step: Awaitable[None], what: str, *, level: int = logging.INFO) -> bool:
    """Run one sending step; a failure is logged (without message text) and does not stop the answer."""
    try:
        await step
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        _log.log(level, "could not send %s: %s", what, type(exc).__name__)
        return False
    return True
