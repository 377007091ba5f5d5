"""The shared state an answer touches, as small async ports.

Each has an in-process implementation (the one-process default); a deployment with several replicas
swaps in a shared one (Redis, PostgreSQL) with one line of wiring in the composition root.
"""

from __future__ import annotations

from typing import Protocol

from bot.models import Answer, Question


class RateLimit(Protocol):
    async def allow(self, key: str) -> bool:
        """True if the member behind `key` may ask now (and count this question)."""
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


class AnswerStore(Protocol):
    async def save(self, platform: str, question: Question, answer: Answer) -> int: ...

    async def vote(self, answer_id: int, *, voter: str, vote: str) -> bool: ...

    async def claim_once(self, name: str) -> bool:
        """True for the first caller with `name` only, across replicas and restarts."""
        ...

    async def unclaim(self, name: str) -> None:
        """Undo `claim_once` (what it claimed could not be done)."""
        ...
