"""The answer core's own data: frozen dataclasses, platform-agnostic."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Literal

from retrieval.rescoring import Coverage

# "error": the apology after a failure (stored so that moderators see failures in the report).
Mode = Literal["llm", "retrieval-only", "abstain", "error"]
Role = Literal["user", "assistant"]

DM = "dm"  # the community of direct messages: no community's moderators see them
UNASSIGNED = "unassigned"  # stored before communities were recorded, and not resolvable: the operator's only


@dataclass(frozen=True)
class Turn:
    role: Role
    text: str


@dataclass(frozen=True)
class Question:
    text: str
    history: tuple[Turn, ...] = ()
    asker: str = ""
    place: str = ""
    # Whose question it is: `discord:<guild id>`, `slack:<team id>`, or `dm` (direct messages, the terminal:
    # never shown to any community's moderators). Every stored row and shared key carries it.
    community: str = "dm"
    place_name: str = ""  # the channel's name where the client knows it (the report shows it)
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])  # a correlation id for logs


@dataclass(frozen=True)
class Source:
    n: int
    id: str
    title: str
    url: str
    excerpt: str = ""


@dataclass(frozen=True)
class Answer:
    text: str
    sources: tuple[Source, ...]
    mode: Mode
    read_next: tuple[Source, ...] = ()
    notice: str = ""
    search_query: str = ""
    usage: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)  # seconds: retrieval, first_token, done
    written_answer: str = ""  # the id of the aisafety.info article the reply leads with, if any
    # covered: the articles answer it; close: a close call, answered with the closest articles and a plain
    # word on what they do not cover (mode llm or retrieval-only); not_covered: every abstain reply.
    coverage: Coverage = "covered"
    # Declined by the gate (instructions to the bot), an empty message, or not covered and far from every
    # article: an off-topic request, not a topic the library lacks (kept out of "to write").
    offtopic: bool = False

    def library(self) -> list[str]:
        """The addresses the answer may link behind a label: its own sources and read-next articles."""
        return [s.url for s in (*self.sources, *self.read_next)]

    def to_json(self) -> dict[str, object]:
        return {
            "answer": self.text,
            "mode": self.mode,
            "coverage": self.coverage,
            "sources": [{"n": s.n, "id": s.id, "title": s.title, "url": s.url} for s in self.sources],
            "read_next": [{"id": s.id, "title": s.title, "url": s.url} for s in self.read_next],
            "written_answer": self.written_answer or None,
        }
