"""The shared state an answer touches, as small async ports.

Each has an in-process implementation (the one-process default); a deployment with several replicas
swaps in a shared one (Redis, PostgreSQL) with one line of wiring in the composition root. Every key
starts with the community the question came from (`Question.community`), so that no community's
members, threads or events can be confused with another's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from bot.models import Answer, Question


class RateLimit(Protocol):
    async def allow(self, key: str, limit: int | None = None) -> bool:
        """True if the member behind `key` may ask now (and count this question). `limit`: this call's
        limit instead of the limiter's own (a community's tighter one; 0: none)."""
        ...


class Deduplicator(Protocol):
    async def first(self, *keys: str) -> bool:
        """True if none of these keys was seen before; all of them are remembered from now on."""
        ...


class ThreadMemory(Protocol):
    async def get(self, channel: str, thread_ts: str) -> bool | None:
        """Whether the thread is the bot's; None if unknown."""
        ...

    async def remember(self, channel: str, thread_ts: str, ours: bool) -> None: ...


class Budget(Protocol):
    async def exhausted(self) -> bool: ...

    async def spend(self, tokens: int) -> None: ...


class Budgets(Protocol):
    """The LLM tokens each community spent today (UTC), counted by every replica together: a community's
    own daily budget (`bot.community`) is checked against it."""

    async def spent(self, community: str) -> int: ...

    async def spend(self, community: str, tokens: int) -> None: ...


class AnswerStore(Protocol):
    async def save(
        self, platform: str, question: Question, answer: Answer, answer_id: int | None = None
    ) -> int:
        """Store the answer under `question.community`, with the id the bot gave it when it posted it
        (storing one id twice is a no-op); returns its id."""
        ...

    async def vote(self, answer_id: int, *, voter: str, vote: str, community: str) -> bool:
        """A member's vote, counted only on an answer of the same community. False if there is none."""
        ...


@dataclass(frozen=True)
class Lease:
    """A named lease held until `expires` (seconds since the epoch) unless renewed."""

    name: str
    holder: str  # a random token: only the holder can renew, finish or release it
    expires: float


class Leases(Protocol):
    """Work that one replica does at a time, or once ever: a digest's period, a thread's hand-off, a
    library sync. Implemented on SQL (`service/lease.py`: SQLite or PostgreSQL) and on Redis."""

    async def acquire(self, name: str, ttl_s: float) -> Lease | None:
        """The lease if `name` is free (never taken, released, or expired without being done); else None."""
        ...

    async def renew(self, lease: Lease, ttl_s: float) -> Lease | None:
        """The lease for `ttl_s` more seconds; None if it was lost (expired and taken by another)."""
        ...

    async def done(self, lease: Lease) -> bool:
        """The work is done: `name` can never be acquired again. False if the lease was lost."""
        ...

    async def release(self, lease: Lease) -> None:
        """Give the lease back (the work could not be done: a later try may do it)."""
        ...


@dataclass(frozen=True)
class Claim:
    """A question being answered by one process: `entry` is what the adapter recorded of it (the event,
    then each side effect: the thread, the placeholder), enough for another process to continue it."""

    key: str
    holder: str
    entry: Mapping[str, Any] = field(default_factory=dict)
    resumed: bool = False  # taken over from a process that stopped without finishing it


class Journal(Protocol):
    """Each question, claimed when it arrives and marked done when its answer is posted (kept a day), so
    that a question whose process died is continued by another, once. Implemented on SQL (`service/
    journal.py`: SQLite or PostgreSQL), on Redis, and in memory."""

    async def claim(self, key: str, entry: Mapping[str, Any], ttl_s: float) -> Claim | None:
        """A new claim; or the claim of a process that stopped with it unfinished (its lease expired),
        taken over with its recorded entry (`resumed`); None if `key` is done or being answered."""
        ...

    async def record(self, claim: Claim, entry: Mapping[str, Any], ttl_s: float) -> bool:
        """Record a step (the whole entry so far) and hold the claim `ttl_s` longer; False if it was lost."""
        ...

    async def done(self, claim: Claim) -> None: ...

    async def orphans(self, limit: int) -> list[str]:
        """Keys whose claims expired unfinished, oldest first."""
        ...
