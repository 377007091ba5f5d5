"""Answers are posted first and stored after: a member never waits on the answers database.

Each answer gets its id from the bot (`new_answer_id`) before it is posted, so its feedback buttons work
at once; the conversation hands it to an `AnswerWriter`, a bounded queue that one task writes out in
order. A write that fails or times out is tried again (a write that did land but timed out is a no-op the
second time: ids are unique); while the database hangs, answers wait in the queue, up to `capacity`;
beyond that the newest are dropped, counted and logged once a minute. `degraded()` tells /readyz.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from bot.errors import StateClosed
from bot.models import Answer, Question
from bot.ports import AnswerStore

_log = logging.getLogger(__name__)

CAPACITY = 1000
# A write not done within this long is given up on, and tried again after RETRY_S.
WRITE_TIMEOUT_S = 5.0
RETRY_S = 1.0
# A write that fails for another reason than a time-out (a constraint, a bug) is tried this many times.
ATTEMPTS = 3
DROP_LOG_EVERY_S = 60.0

_sequence = itertools.count(random.randrange(1 << 20))


MAX_ANSWER_ID = 2**63 - 1  # the largest id the answers store holds (a signed 64-bit integer)


def answer_id_of(value: object) -> int | None:
    """An answer id as a platform hands it back (a button's value): a whole number from 1 to
    MAX_ANSWER_ID written in plain digits, else None."""
    text = value if isinstance(value, str) else ""
    if not (text.isascii() and text.isdigit() and len(text) <= len(str(MAX_ANSWER_ID))):
        return None
    answer_id = int(text)
    return answer_id if 1 <= answer_id <= MAX_ANSWER_ID else None


def new_answer_id(now: float | None = None) -> int:
    """A unique positive 63-bit id: the time in milliseconds, then 20 bits of a per-process counter that
    starts at random (replicas answering in the same millisecond do not collide but by a 1-in-a-million
    chance)."""
    ms = int((time.time() if now is None else now) * 1000)
    return (ms << 20) | (next(_sequence) & 0xFFFFF)


@dataclass(frozen=True)
class _Pending:
    platform: str
    question: Question
    answer: Answer
    answer_id: int


class AnswerWriter:
    def __init__(
        self,
        store: AnswerStore,
        *,
        capacity: int = CAPACITY,
        timeout_s: float = WRITE_TIMEOUT_S,
        retry_s: float = RETRY_S,
        on_drop: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.store = store
        self.capacity = capacity
        self.timeout_s = timeout_s
        self.retry_s = retry_s
        self.on_drop = on_drop
        self.clock = clock
        self._queue: deque[_Pending] = deque()
        self._failing_since: float | None = None
        self._dropped = 0  # since the last log line
        self._last_drop_log = -DROP_LOG_EVERY_S
        self.dropped = 0
        self._task: asyncio.Task[None] | None = None

    def submit(self, platform: str, question: Question, answer: Answer, answer_id: int) -> bool:
        """Queue the answer for storing; False (counted) when the queue is full."""
        if len(self._queue) >= self.capacity:
            self.dropped += 1
            self._dropped += 1
            if self.on_drop is not None:
                self.on_drop()
            now = self.clock()
            if now - self._last_drop_log >= DROP_LOG_EVERY_S:
                _log.warning(
                    "the answers database is behind: %d answers not stored (the queue holds %d)",
                    self._dropped,
                    self.capacity,
                )
                self._dropped, self._last_drop_log = 0, now
            return False
        self._queue.append(_Pending(platform, question, answer, answer_id))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._write_out())
        return True

    @property
    def waiting(self) -> int:
        return len(self._queue)

    async def _write_out(self) -> None:
        """Write the queue out, oldest first; the task ends when it is empty (the next answer starts
        another), so none is left pending when the event loop closes."""
        while self._queue:
            await self._write_head()

    async def _write_head(self) -> bool:
        head = self._queue[0]
        tries = 0
        while True:
            try:
                async with asyncio.timeout(self.timeout_s):
                    await self.store.save(head.platform, head.question, head.answer, head.answer_id)
            except asyncio.CancelledError:
                raise
            except StateClosed:
                # The bot is stopping and its database is closed: what is left cannot be stored.
                _log.warning("the answers database is closed: %d answers not stored", len(self._queue))
                self.dropped += len(self._queue)
                self._queue.clear()
                return False
            except Exception as exc:
                timed_out = isinstance(exc, TimeoutError)  # a hang (`StateTimeout` too): wait it out
                if self._failing_since is None:
                    self._failing_since = self.clock()
                    _log.warning("could not store an answer (%s); trying again", type(exc).__name__)
                if not timed_out:
                    tries += 1
                    if tries >= ATTEMPTS:
                        _log.error("an answer could not be stored (%s); it was shown without a record", exc)
                        self._queue.popleft()
                        self.dropped += 1
                        if self.on_drop is not None:
                            self.on_drop()
                        return False
                await asyncio.sleep(self.retry_s)
                continue
            self._queue.popleft()
            if self._failing_since is not None:
                _log.info("the answers database answers again; %d answers waiting", len(self._queue))
                self._failing_since = None
            return True

    async def flush(self, timeout_s: float) -> int:
        """At a stop: write what is queued within `timeout_s`; returns how many were left unwritten."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        try:
            async with asyncio.timeout(timeout_s):
                while self._queue:
                    await self._write_head()
        except TimeoutError:
            pass
        if self._queue:
            _log.warning("stopping: %d answers could not be stored in time", len(self._queue))
        return len(self._queue)

    def degraded(self) -> str | None:
        """/readyz's note while writes fail: the bot still answers, without storing."""
        if self._failing_since is None:
            return None
        return (
            f"the answers database has not stored an answer for {self.clock() - self._failing_since:.0f} s; "
            f"{len(self._queue)} answers waiting"
        )
