"""The language model as the answer core sees it: a small streaming protocol and its messages.

The Anthropic client that implements it lives in `service/anthropic_llm.py` (the core imports no I/O
library).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0


@dataclass(frozen=True)
class Message:
    role: str
    content: str


class LLM(Protocol):
    model: str

    def stream(
        self, *, system: str, messages: Sequence[Message], max_tokens: int, usage: Usage | None = None
    ) -> AsyncIterator[str]: ...

    async def complete(self, *, system: str, messages: Sequence[Message], max_tokens: int) -> str: ...

    async def aclose(self) -> None: ...
