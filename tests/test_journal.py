"""The journal of questions (`bot.ports.Journal`) on every backend, and the conversation's use of it: a
question claimed once, continued once by another process or replica when the one answering it stopped,
closed when its interaction expired, and recognised across a Redis outage."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from bot.conversation import Conversation
from bot.models import Answer, Question, Source
from bot.observability import Observer
from bot.platform import PlatformOptions
from bot.ports import Claim, Journal
from bot.ratelimit import MemoryJournal
from service.feedback import FeedbackStore
from service.journal import RedisJournal, SqlJournal
from service.metrics import Metrics
from service.redis_state import RedisLink
from tests.test_feedback_backends import pg_schema  # noqa: F401 (fixture)
from tests.test_leases import backend  # noqa: F401 (fixture: memory, SQLite, PostgreSQL, Redis)
from tests.test_redis_state import REDIS_URL, PrivateRedis, prefix, private_redis  # noqa: F401 (fixtures)

SHORT = 0.3  # seconds: a claim that expires within the test
LONG = 60.0

Replicas = Callable[[], Journal]


@pytest_asyncio.fixture
async def replicas(backend: tuple[str, str], tmp_path: Path) -> AsyncIterator[Replicas]:  # noqa: F811
    """A factory of journals on one shared backend: each call is another replica."""
    kind, where = backend
    memory = MemoryJournal()
    stores: list[FeedbackStore] = []
    links: list[RedisLink] = []

    def make() -> Journal:
        if kind == "memory":
            return memory
        if kind == "redis":
            links.append(RedisLink(REDIS_URL, prefix=where))
            stores.append(FeedbackStore(tmp_path / "fallback.sqlite3"))
            return RedisJournal(links[-1], SqlJournal(stores[-1]))
        stores.append(FeedbackStore(database_url=where) if kind == "postgres" else FeedbackStore(where))
        return SqlJournal(stores[-1])

    yield make
    for link in links:
        assert link.degraded() is None  # the Redis tests ran on Redis, not on the fallback
        await link.aclose()
    for store in stores:
        store.close()


async def test_a_question_is_claimed_once(replicas: Replicas) -> None:
    a, b = replicas(), replicas()
    claim = await a.claim("slack:T1:slack:message:C1:1.0", {"kind": "event", "n": 1}, LONG)
    assert claim is not None and not claim.resumed and claim.entry == {"kind": "event", "n": 1}
    assert await b.claim("slack:T1:slack:message:C1:1.0", {"kind": "event", "n": 2}, LONG) is None
    assert await a.record(claim, {"kind": "event", "n": 1, "placeholder": "9.9"}, LONG)
    await a.done(claim)
    # Done: a redelivery (Slack's retry, a second delivery) is recognised, and nobody picks it up.
    assert await b.claim("slack:T1:slack:message:C1:1.0", {}, LONG) is None
    assert "slack:T1:slack:message:C1:1.0" not in await b.orphans(10)


async def test_an_unfinished_claim_is_continued_once_with_what_was_recorded(replicas: Replicas) -> None:
    dead, a, b = replicas(), replicas(), replicas()
    key = "discord:1:discord:message:42"
    claim = await dead.claim(key, {"kind": "message", "message": 42}, SHORT)
    assert claim is not None
    assert await dead.record(claim, {"kind": "message", "message": 42, "thread": 77}, SHORT)
    assert key not in await a.orphans(10)  # still held
    await asyncio.sleep(SHORT + 0.2)  # the process died: nobody renews it
    assert key in await a.orphans(10)
    taken = [await a.claim(key, {}, LONG), await b.claim(key, {}, LONG)]
    assert [t is not None for t in taken] == [True, False]  # one replica continues it
    assert taken[0] is not None and taken[0].resumed
    assert taken[0].entry == {"kind": "message", "message": 42, "thread": 77}
    # The dead process's claim is lost to it: a late record or done of its own changes nothing.
    assert not await dead.record(claim, {"late": True}, LONG)
    await dead.done(claim)
    assert key not in await b.orphans(10) and await b.claim(key, {}, LONG) is None
    await a.done(taken[0])
    assert await b.claim(key, {}, LONG) is None


async def test_redis_down_claims_fall_back_to_the_answers_database(tmp_path: Path, prefix: str) -> None:  # noqa: F811
    store = FeedbackStore(tmp_path / "answers.sqlite3")
    down = RedisLink("redis://127.0.0.1:9/0", prefix=prefix, timeout_s=0.3)  # nothing listens there
    up = RedisLink(REDIS_URL, prefix=prefix)
    try:
        outage = RedisJournal(down, SqlJournal(store))
        claim = await outage.claim("slack:T1:slack:message:C1:5.0", {"kind": "event"}, LONG)
        assert claim is not None
        await outage.done(claim)
        # Redis is back; Slack retries the event at another replica: it was answered, and is recognised.
        back = RedisJournal(up, SqlJournal(store))
        assert await back.claim("slack:T1:slack:message:C1:5.0", {"kind": "event"}, LONG) is None
        assert await back.claim("slack:T1:slack:message:C1:6.0", {"kind": "event"}, LONG) is not None
    finally:
        await down.aclose()
        await up.aclose()
        store.close()


# -- the conversation's journal -------------------------------------------------------------------

SOURCE = Source(1, "aisafety.info:6568", "What is the orthogonality thesis?", "https://aisafety.info/q/6568")


METRICS = Metrics()


class Core:
    observer = Observer(METRICS)

    async def stream(self, question: Question, *, found: list[Answer]) -> AsyncIterator[str | Answer]:
        yield "Goals and intelligence "
        await asyncio.sleep(0.05)
        yield Answer("Goals and intelligence are independent [1].", (SOURCE,), "llm")


class Shown:
    def __init__(self, placeholder: str | None = None) -> None:
        self.placeholder = placeholder
        self.started = 0
        self.finals: list[int | None] = []
        self.apologies = 0

    def checkpoint(self) -> dict[str, Any]:
        return {"placeholder": self.placeholder} if self.placeholder else {}

    async def start(self) -> None:
        self.started += 1
        self.placeholder = self.placeholder or "P1"

    async def preview(self, text: str) -> None: ...

    async def final(self, answer: Answer, answer_id: int | None) -> None:
        self.finals.append(answer_id)

    async def say(self, text: str) -> None: ...

    async def apologise(self, answer: Answer | None) -> None:
        self.apologies += 1


def _conversation(journal: Journal) -> Conversation:
    return Conversation.in_process(
        "slack",
        core=Core(),  # type: ignore[arg-type]
        store=FeedbackStore(),
        options=PlatformOptions(rate_limit_per_minute=1),
        usage="",
        journal=journal,
    )


QUESTION = Question("what is the orthogonality thesis?", asker="slack:U1", community="slack:T1")


async def test_a_claimed_answer_records_its_placeholder_and_is_done_when_posted() -> None:
    journal = MemoryJournal()
    conversation = _conversation(journal)
    claim = await conversation.claim("slack:T1", "message:C1:1.0", {"kind": "event"})
    assert claim is not None and await conversation.claim("slack:T1", "message:C1:1.0", {}) is None
    shown = Shown()
    assert await conversation.answer(QUESTION, shown, claim=claim) is not None
    assert shown.finals and shown.started == 1
    assert await journal.orphans(10) == []
    assert await journal.claim(claim.key, {}, LONG) is None  # done: kept against redeliveries


async def test_a_stopped_processs_question_is_continued_once_by_one_replica() -> None:
    journal = MemoryJournal()  # shared by the replicas here (in-process: one object)
    dead = _conversation(journal)
    claim = await dead.claim("slack:T1", "message:C1:2.0", {"kind": "event", "text": QUESTION.text})
    assert claim is not None
    # The process posted its placeholder and died before answering.
    assert await journal.record(claim, {**claim.entry, "placeholder": "P9"}, SHORT)
    await asyncio.sleep(SHORT + 0.1)

    resumed: list[Claim] = []
    shown = Shown(placeholder="P9")

    def replica() -> tuple[Conversation, Callable[[Claim], Any]]:
        conversation = _conversation(journal)

        async def resume(c: Claim) -> None:
            resumed.append(c)
            # The question is continued in the same placeholder, not counted against the rate limit.
            await conversation.answer(QUESTION, shown, claim=c)

        return conversation, resume

    (a, resume_a), (b, resume_b) = replica(), replica()
    assert await a.limiter.allow("slack:T1:slack:U1")  # the member's one question a minute is spent
    tasks = [
        asyncio.create_task(a.recover(resume_a, every_s=0.05)),
        asyncio.create_task(b.recover(resume_b, every_s=0.05)),
    ]
    try:
        deadline = time.monotonic() + 5
        while not shown.finals:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # time for a second pick-up, if there were one
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    assert len(resumed) == 1 and resumed[0].resumed and resumed[0].entry["placeholder"] == "P9"
    assert 'aisafety_answers_recovered_total{platform="slack"} 1.0' in METRICS.render().decode()
    assert len(shown.finals) == 1 and shown.started == 1 and shown.apologies == 0
    assert await journal.orphans(10) == []


async def test_an_expired_interaction_is_closed_not_answered() -> None:
    journal = MemoryJournal()
    conversation = _conversation(journal)
    claim = await journal.claim(
        "slack:T1:slack:command:t1", {"kind": "command", "expires_at": time.time() - 1}, SHORT
    )
    assert claim is not None
    await asyncio.sleep(SHORT + 0.1)
    resumed: list[Claim] = []

    async def resume(c: Claim) -> None:
        resumed.append(c)

    task = asyncio.create_task(conversation.recover(resume, every_s=0.05))
    await asyncio.sleep(0.3)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert resumed == [] and await journal.orphans(10) == []
    assert await journal.claim(claim.key, {}, LONG) is None  # closed for good


async def test_events_claimed_while_redis_was_down_are_recognised_after_it_is_back(
    tmp_path: Path,
    private_redis: PrivateRedis,  # noqa: F811 (fixture)
    prefix: str,  # noqa: F811 (fixture)
) -> None:
    """Redis killed in the middle of a burst and started again, Slack retrying the events across the
    gap at the other replica: none is answered twice."""
    store = FeedbackStore(tmp_path / "answers.sqlite3")  # the replicas' shared answers database
    links = [RedisLink(private_redis.url, prefix=prefix, timeout_s=0.3) for _ in range(2)]
    a, b = (RedisJournal(link, SqlJournal(store)) for link in links)
    try:
        before = [await a.claim(f"slack:T1:slack:message:C1:{n}.0", {}, LONG) for n in range(3)]
        assert all(before)
        private_redis.stop()  # killed mid-burst
        during = [await a.claim(f"slack:T1:slack:message:C1:{n}.0", {}, LONG) for n in range(3, 6)]
        assert all(during)  # answered all the same: claimed in the answers database
        for claim in [*before, *during]:
            assert claim is not None
            await a.done(claim)
        private_redis.start()
        # Slack retries the events of the gap at the other replica, after Redis is back.
        assert [await b.claim(f"slack:T1:slack:message:C1:{n}.0", {}, LONG) for n in range(3, 6)] == [
            None
        ] * 3
        assert await b.claim("slack:T1:slack:message:C1:9.0", {}, LONG) is not None  # a new one is answered
        # And the same retries at the replica that answered them during the outage.
        assert [await a.claim(f"slack:T1:slack:message:C1:{n}.0", {}, LONG) for n in range(3, 6)] == [
            None
        ] * 3
    finally:
        for link in links:
            await link.aclose()
        store.close()


async def test_a_redis_restarted_without_its_data_forgets_nothing_answered(
    tmp_path: Path,
    prefix: str,  # noqa: F811 (fixture)
) -> None:
    """Redis restarted with no `appendonly` (its keys gone): an answered question is still recognised
    when Slack retries it, and a question being answered writes its claim back at its next renewal, so a
    retry is not answered a second time and the claim is not picked up as an orphan."""
    store = FeedbackStore(tmp_path / "answers.sqlite3")
    link = RedisLink(REDIS_URL, prefix=prefix)
    other = RedisLink(REDIS_URL, prefix=prefix)
    a, b = RedisJournal(link, SqlJournal(store)), RedisJournal(other, SqlJournal(store))

    async def wipe() -> None:
        keys = [k async for k in link.client.scan_iter(match=prefix + "*")]
        if keys:
            await link.client.delete(*keys)

    try:
        answered = await a.claim("slack:T1:slack:message:C1:1.0", {"event": 1}, LONG)
        flying = await a.claim("slack:T1:slack:message:C1:2.0", {"event": 2}, SHORT)
        assert answered is not None and flying is not None
        await a.done(answered)
        await wipe()  # the restart
        assert await b.claim("slack:T1:slack:message:C1:1.0", {}, LONG) is None
        assert await a.record(flying, {"event": 2, "placeholder": "9.9"}, LONG)
        assert await b.claim("slack:T1:slack:message:C1:2.0", {}, LONG) is None
        await asyncio.sleep(SHORT + 0.1)
        assert await b.orphans(10) == []  # renewed for LONG: nobody takes it over
        await a.done(flying)
        assert await b.claim("slack:T1:slack:message:C1:2.0", {}, LONG) is None
        # The done marker keeps no question text.
        with store._transaction() as db:
            rows = store._execute(db, "SELECT entry FROM journal", ()).fetchall()
        assert {r[0] for r in rows} == {"{}"}
    finally:
        await link.aclose()
        await other.aclose()
        store.close()


async def test_answers_beyond_the_writers_queue_are_dropped_and_counted() -> None:
    """The answers database far behind: the queue holds `capacity` answers, the rest are counted."""
    from bot.writer import AnswerWriter

    class Hung:
        async def save(self, *args: object, **kwargs: object) -> int:
            await asyncio.sleep(3600)
            return 0

    metrics = Metrics()
    observer = Observer(metrics)
    writer = AnswerWriter(Hung(), capacity=3, timeout_s=0.05, retry_s=0.05, on_drop=observer.dropped)  # type: ignore[arg-type]
    answer = Answer("text", (SOURCE,), "llm")
    accepted = [writer.submit("slack", QUESTION, answer, n) for n in range(5)]
    assert accepted == [True, True, True, False, False] and writer.waiting == 3
    assert "aisafety_answers_dropped_total 2.0" in metrics.render().decode()
    await asyncio.sleep(0.2)
    assert writer.degraded() is not None and "3 answers waiting" in str(writer.degraded())
    assert await writer.flush(0.1) == 3  # at a stop, what could not be written is said, not waited on


async def test_answers_left_when_the_database_is_closed_are_dropped_quietly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A closed answers database (the bot stopping) ends the writer's work with one warning, not an
    error retried and logged long after."""
    import logging

    from bot.writer import AnswerWriter

    store = FeedbackStore()
    store.close()
    writer = AnswerWriter(store, timeout_s=0.5, retry_s=0.05)
    with caplog.at_level(logging.WARNING):
        assert writer.submit("slack", QUESTION, Answer("text", (SOURCE,), "llm"), 1)
        assert await writer.flush(2) == 0
    assert writer.dropped == 1
    assert [r.levelname for r in caplog.records if r.name == "bot.writer"] == ["WARNING"]


async def test_the_hourly_purge_forgets_journal_entries_finished_over_a_day_ago(tmp_path: Path) -> None:
    """Claiming does no cleanup (it is on every question's path): the purge the bot runs at start-up and
    every hour deletes entries done more than a day ago, and keeps recent and unfinished ones."""
    store = FeedbackStore(tmp_path / "answers.sqlite3")
    journal = SqlJournal(store)
    old, recent, flying = [await journal.claim(f"slack:T1:k{n}", {}, LONG) for n in range(3)]
    assert old and recent and flying
    await journal.done(old)
    await journal.done(recent)
    with store._transaction() as db:
        store._execute(db, "UPDATE journal SET created = created - 2 * 86400 WHERE key = ?", (old.key,))
    store.purge(90)
    with store._transaction() as db:
        left = {r[0] for r in store._execute(db, "SELECT key FROM journal", ()).fetchall()}
    assert left == {recent.key, flying.key}
    assert await journal.claim(old.key, {}, LONG) is not None  # a redelivery a day late is a new question
    store.close()
