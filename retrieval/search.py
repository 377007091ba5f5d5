"""Hybrid search returning distinct articles: the best passage of each, best first."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol

from retrieval.documents import Passage
from retrieval.embeddings import Embedded, Embedder
from retrieval.store import QdrantStore, SearchMode

# Passages fetched per requested article: several passages of one long article often rank together.
OVERFETCH = 8


class Retriever(Protocol):
    async def search(self, query: str, *, k: int = 5) -> list[Passage]: ...

    async def articles(self, article_ids: Sequence[str]) -> dict[str, Passage]: ...


def distinct_articles(passages: Sequence[Passage], k: int) -> list[Passage]:
    """Keep the best passage of each article, in rank order."""
    seen: set[str] = set()
    out: list[Passage] = []
    for p in passages:
        if p.article_id in seen:
            continue
        seen.add(p.article_id)
        out.append(p)
        if len(out) == k:
            break
    return out


class HybridRetriever:
    def __init__(self, *, store: QdrantStore, embedder: Embedder, mode: SearchMode = "hybrid"):
        self.store = store
        self.embedder = embedder
        self.mode = mode

    def search_embedded(self, query: Embedded, *, k: int) -> list[Passage]:
        passages = self.store.search(query, limit=max(k * OVERFETCH, 40), mode=self.mode)
        return distinct_articles(passages, k)

    def search_sync(self, query: str, *, k: int = 5) -> list[Passage]:
        return self.search_embedded(self.embedder.embed_query(query), k=k)

    async def search(self, query: str, *, k: int = 5) -> list[Passage]:
        # Embedding and the embedded store are CPU-bound: one worker-thread hop for both.
        return await asyncio.to_thread(self.search_sync, query, k=k)

    async def articles(self, article_ids: Sequence[str]) -> dict[str, Passage]:
        return await asyncio.to_thread(self.store.articles, list(article_ids))
