"""Hybrid search returning distinct articles: the best passage of each, best first."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

from retrieval.documents import Passage
from retrieval.embeddings import Embedded, Embedder
from retrieval.index import SearchMode, VectorStore

# Passages fetched per query: several passages of one long article often rank together, so we fetch
# more than we return. A fixed number for the usual k, so rankings do not depend on k.
CANDIDATES = 50

# Query embedding and embedded-store searches run on one thread for the whole process. They hold the
# interpreter lock for part of each call, and with several such threads the event loop waited its turn
# behind each of them: 50 questions at once stalled it for over 100 ms, against about 20 ms with one
# thread (BENCHMARKS.md). Questions that arrive while the thread is busy are embedded together, in one
# batch of up to QUERY_BATCH: 1.9 ms per question at 8 against 3.2 ms one at a time, while a larger
# batch saved little more and made every answer in a burst start at the same moment.
_CPU = ThreadPoolExecutor(max_workers=1, thread_name_prefix="retrieval")
QUERY_BATCH = 8


@dataclass
class _Job:
    query: str
    k: int
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[list[Passage] | Embedded]


def _settle(job: _Job, result: list[Passage] | Embedded | None, error: BaseException | None) -> None:
    """Hand a result from the retrieval thread to the asker's loop (which may have given up or closed)."""

    def deliver() -> None:
        if job.future.done():
            return  # the asker was cancelled (a deadline, a shutdown)
        if error is not None:
            job.future.set_exception(error)
        else:
            job.future.set_result(result)  # type: ignore[arg-type]

    try:
        job.loop.call_soon_threadsafe(deliver)
    except RuntimeError:
        pass  # that loop is closed: nobody is waiting


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
        self._waiting: list[_Job] = []
        self._lock = threading.Lock()
        self._drain_scheduled = False

    def search_embedded(self, query: Embedded, *, k: int) -> list[Passage]:
        passages = self.store.search(query, limit=max(CANDIDATES, k * 5), mode=self.mode)
        return distinct_articles(passages, k)

    def search_sync(self, query: str, *, k: int = 5) -> list[Passage]:
        return self.search_embedded(self.embedder.embed_queries([query])[0], k=k)

    async def search(self, query: str, *, k: int = 5) -> list[Passage]:
        loop = asyncio.get_running_loop()
        job = _Job(query, k, loop, loop.create_future())
        with self._lock:
            self._waiting.append(job)
            start = not self._drain_scheduled
            self._drain_scheduled = True
        if start:
            _CPU.submit(self._drain)
        found = await job.future
        if isinstance(found, Embedded):  # a server store: the search waits on the network, off that thread
            return await asyncio.to_thread(self.search_embedded, found, k=k)
        return found

    def _drain(self) -> None:
        """On the retrieval thread: embed every waiting question at once, then search an in-process store."""
        with self._lock:
            jobs, self._waiting = self._waiting[:QUERY_BATCH], self._waiting[QUERY_BATCH:]
            if self._waiting:
                _CPU.submit(self._drain)  # the rest next, so answers start in small groups
            else:
                self._drain_scheduled = False
        if not jobs:
            return
        try:
            embedded = self.embedder.embed_queries([job.query for job in jobs])
        except Exception as exc:
            if len(jobs) == 1:
                _settle(jobs[0], None, exc)
                return
            embedded = []  # one question may have broken the batch: embed them one by one below
        for i, job in enumerate(jobs):
            try:
                query = embedded[i] if embedded else self.embedder.embed_queries([job.query])[0]
                result = self.search_embedded(query, k=job.k) if self.store.in_process else query
            except Exception as exc:
                _settle(job, None, exc)
            else:
                _settle(job, result, None)

    async def articles(self, article_ids: Sequence[str]) -> dict[str, Passage]:
        if self.store.in_process:
            return await asyncio.get_running_loop().run_in_executor(
                _CPU, self.store.articles, list(article_ids)
            )
        return await asyncio.to_thread(self.store.articles, list(article_ids))
