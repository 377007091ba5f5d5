"""What the conversation policy stores: failures count too, so moderators see them in the report."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from bot.conversation import Conversation
from bot.models import Answer, Question, Source
from bot.observability import Observer
from bot.platform import PlatformOptions
from service.feedback import FeedbackStore
from service.lease import SqlLeases

SOURCE = Source(1, "aisafety.info:6568", "What is the orthogonality thesis?", "https://aisafety.info/q/6568")


class BrokenCore:
    """Finds an article, then fails (a bug, a store outage) before the answer is complete."""

    observer = Observer()

    async def stream(self, question: Question, *, found: list[Answer]) -> AsyncIterator[str | Answer]:
        found.append(Answer("", (SOURCE,), "retrieval-only"))
        yield "The orthogonality"
        raise RuntimeError("boom")


class Recorder:
    def __init__(self) -> None:
        self.apologies: list[Answer | None] = []

    async def start(self) -> None: ...

    async def preview(self, text: str) -> None: ...

    async def final(self, answer: Answer, answer_id: int | None) -> None: ...

    async def say(self, text: str) -> None: ...

    async def apologise(self, answer: Answer | None) -> None:
        self.apologies.append(answer)


async def test_a_failed_answer_is_stored_as_an_error_with_the_sources_found() -> None:
    store = FeedbackStore()
    conversation = Conversation.in_process(
        "slack",
        core=BrokenCore(),
        store=store,
        options=PlatformOptions(),
        usage="ask me",  # type: ignore[arg-type]
    )
    reply = Recorder()
    assert await conversation.answer(Question("what is the orthogonality thesis?", asker="u1"), reply) is None
    assert reply.apologies and reply.apologies[0] is not None
    assert conversation.writer is not None and await conversation.writer.flush(5) == 0  # stored after
    rows = store.since(1)
    assert [(r.mode, r.question, [s["id"] for s in r.sources]) for r in rows] == [
        ("error", "what is the orthogonality thesis?", [SOURCE.id])
    ]
    store.close()


class Calls:
    """The adapter's side of a hand-off: posting the message that mentions the moderators."""

    def __init__(self, *, fail: int = 0) -> None:
        self.made = 0
        self.fail = fail

    async def __call__(self, role: str) -> None:
        assert role  # the role or group the conversation read, to mention
        self.made += 1
        if self.made <= self.fail:
            raise ConnectionError("the platform is down")


async def test_ask_a_human_is_once_per_answer_and_has_its_own_limits(tmp_path: Path) -> None:
    from bot.platform import HANDOFF_ALREADY, HANDOFF_ASKED, HANDOFF_FAILED, HANDOFF_OFF, SLOW_DOWN

    store = FeedbackStore(tmp_path / "f.sqlite3")
    # No question rate limit at all: the hand-off's own limits hold whatever it is.
    options = PlatformOptions(rate_limit_per_minute=0, handoff="S0MODS")
    conversation = Conversation.in_process(
        "slack", core=BrokenCore(), store=store, options=options, usage="", leases=SqlLeases(store)
    )  # type: ignore[arg-type]
    call = Calls()
    assert await conversation.handoff("slack:T1", "slack:U1", "C1:1.0", call) == HANDOFF_ASKED
    # Another member under the same answer: already asked. Another answer in the same channel: asked.
    assert await conversation.handoff("slack:T1", "slack:U2", "C1:1.0", call) == HANDOFF_ALREADY
    assert await conversation.handoff("slack:T1", "slack:U2", "C1:2.0", call) == HANDOFF_ASKED
    assert call.made == 2
    # One member: three an hour, across answers and threads.
    assert await conversation.handoff("slack:T1", "slack:U1", "C5:1.0", call) == HANDOFF_ASKED
    assert await conversation.handoff("slack:T1", "slack:U1", "C6:1.0", call) == HANDOFF_ASKED
    assert await conversation.handoff("slack:T1", "slack:U1", "C7:1.0", call) == SLOW_DOWN
    # One community: ten an hour, whoever presses.
    results = [await conversation.handoff("slack:T1", f"slack:V{n}", f"D{n}:1.0", call) for n in range(8)]
    assert results.count(HANDOFF_ASKED) == 6 and results[6:] == [SLOW_DOWN, SLOW_DOWN]
    assert await conversation.handoff("slack:T2", "slack:V1", "E1:1.0", call) == HANDOFF_ASKED  # another
    # The message could not be posted: the member is told, and a later press may try again.
    failing = Calls(fail=1)
    assert await conversation.handoff("slack:T3", "slack:U3", "C2:1.0", failing) == HANDOFF_FAILED
    assert (
        await conversation.handoff("slack:T3", "slack:U4", "C2:1.0", failing) == HANDOFF_ASKED
        and failing.made == 2
    )
    # A restart (a new process on the same database) remembers the answer.
    reopened = FeedbackStore(tmp_path / "f.sqlite3")
    again = Conversation.in_process(
        "slack", core=BrokenCore(), store=reopened, options=options, usage="", leases=SqlLeases(reopened)
    )  # type: ignore[arg-type]
    made = call.made
    assert await again.handoff("slack:T1", "slack:U5", "C1:1.0", call) == HANDOFF_ALREADY
    off = Conversation.in_process(
        "slack", core=BrokenCore(), store=store, options=PlatformOptions(), usage=""
    )  # type: ignore[arg-type]
    assert await off.handoff("slack:T1", "slack:U6", "C9:1.0", call) == HANDOFF_OFF and call.made == made
    store.close()
    reopened.close()


async def test_ask_a_human_with_the_answers_database_down_says_so(tmp_path: Path) -> None:
    from bot.platform import HANDOFF_FAILED

    store = FeedbackStore(tmp_path / "f.sqlite3")
    options = PlatformOptions(rate_limit_per_minute=0, handoff="S0MODS")
    conversation = Conversation.in_process(
        "slack", core=BrokenCore(), store=store, options=options, usage="", leases=SqlLeases(store)
    )  # type: ignore[arg-type]
    store.close()  # the database is gone
    call = Calls()
    assert await conversation.handoff("slack:T1", "slack:U1", "C1:1.0", call) == HANDOFF_FAILED
    assert call.made == 0  # the moderators are not called without the record that keeps it to once
