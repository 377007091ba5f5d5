"""The data that flows through retrieval: articles, their chunks, and search hits."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class Document:
    """One article from a source, as read from disk or the network."""

    id: str
    title: str
    url: str
    text: str
    source: str = ""
    related: tuple[str, ...] = ()
    # The editors' other phrasings of the question the article answers: each is searched as another
    # title of the article (aisafety.info's `alternatePhrasings`).
    alt_titles: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()

    @property
    def content_hash(self) -> str:
        """A hash of everything that ends up in the index; unchanged articles are not re-embedded. (An
        article without phrasings or tags hashes as it did before they existed: no re-embedding at the
        upgrade.)"""
        h = hashlib.sha256()
        for part in (self.title, self.url, self.source, self.text, "\x1f".join(self.related)):
            h.update(part.encode("utf-8"))
            h.update(b"\x00")
        for extra in (self.alt_titles, self.tags):
            if extra:
                h.update("\x1f".join(extra).encode("utf-8"))
                h.update(b"\x01")
        return h.hexdigest()[:32]


@dataclass(frozen=True)
class Chunk:
    """A passage of an article, the unit that is embedded and stored."""

    article_id: str
    index: int
    text: str
    heading: str = ""

    def embed_text(self, title: str) -> str:
        """What the models see: the article title (and section heading) give a passage its context."""
        head = title if not self.heading or self.heading == title else f"{title} — {self.heading}"
        return f"{head}\n\n{self.text}"


@dataclass(frozen=True)
class Passage:
    """A search hit: the best passage of one article, with its scores."""

    article_id: str
    title: str
    url: str
    text: str
    score: float
    dense_score: float
    source: str = ""
    related: tuple[str, ...] = field(default=())
    # The article's raw scores in the other rankings (0 where it was not found): the evidence the
    # rescoring and the abstention decision read.
    chunk: int = 0  # the passage's number within its article
    title_score: float = 0.0
    lead_score: float = 0.0
    bm25_score: float = 0.0
    # The question's cosine to the nearest request the library is not for (retrieval/rescoring.py).
    offtopic_cosine: float = 0.0


ChangeKind = Literal["added", "changed", "removed"]


@dataclass(frozen=True)
class ArticleChange:
    """One article an ingest or sync added, changed or removed, as the change log records it."""

    article_id: str
    title: str
    url: str
    change: ChangeKind


@dataclass(frozen=True)
class SkippedRecord:
    """A record a reader could not use: where it was and why."""

    origin: str
    line: int
    reason: str
