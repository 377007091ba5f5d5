"""Hybrid search returning distinct articles: the best passage of each, best first."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol

from retrieval.documents import Passage
from retrieval.embeddings import Embedded, Embedder
from retrieval.index import SearchMode, VectorStore

# Passages fetched per query: several passages of one long article often rank together, so we fetch
# more than we return. A fixed number for the usual k, so rankings do not depend on k.
CANDIDATES = 50


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
    def __init__(self, *, store: VectorStore, embedder: Embedder, mode: SearchMode = "hybrid"):
        self.store = store
        self.embedder = embedder
        self.mode = mode

    def search_embedded(self, query: Embedded, *, k: int) -> list[Passage]:
        passages = self.store.search(query, limit=max(CANDIDATES, k * 5), mode=self.mode)
        return distinct_articles(passages, k)

    def search_sync(self, query: str, *, k: int = 5) -> list[Passage]:
        return self.search_embedded(self.embedder.embed_query(query), k=k)

    async def search(self, query: str, *, k: int = 5) -> list[Passage]:
        # Embedding and the embedded store are CPU-bound: one worker-thread hop for both.
        return await asyncio.to_thread(self.search_sync, query, k=k)

    async def articles(self, article_ids: Sequence[str]) -> dict[str, Passage]:
        return await asyncio.to_thread(self.store.articles, list(article_ids))
