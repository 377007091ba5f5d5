"""Hybrid search returning distinct articles: the best passage of each, best first."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

from retrieval import rescoring
from retrieval.documents import Passage
from retrieval.embeddings import Embedded, Embedder
from retrieval.index import SearchMode, VectorStore
from retrieval.query import embed_questions
from retrieval.rescoring import OfftopicExamples

# Passages fetched per query: several passages of one long article often rank together, so we fetch
# more than we return. A fixed number for the usual k, so rankings do not depend on k.
CANDIDATES = 50

# Questions waiting for the retrieval thread are embedded together, up to this many at a time: 1.9 ms
# per question at 8 against 3.2 ms one at a time; larger batches saved little more and made every
# answer of a burst start at the same moment (BENCHMARKS.md).
QUERY_BATCH = 8


@dataclass
class _Job:
    query: str
    k: int
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[list[Passage] | Embedded]

    def settle(self, result: list[Passage] | Embedded | None = None, error: Exception | None = None) -> None:
        """From the retrieval thread: hand over the result, unless the asker gave up or its loop closed."""

        def deliver() -> None:
            if self.future.done():
                return  # the asker was cancelled (a deadline, a shutdown)
            if error is not None:
                self.future.set_exception(error)
            else:
                self.future.set_result(result)  # type: ignore[arg-type]

        try:
            self.loop.call_soon_threadsafe(deliver)
        except RuntimeError:
            pass  # that loop is closed: nobody is waiting


class Retriever(Protocol):
    async def search(self, query: str, *, k: int = 5) -> list[Passage]: ...

    async def articles(self, article_ids: Sequence[str]) -> dict[str, Passage]: ...


class HybridRetriever:
    """Query embedding and embedded-store searches run on one thread of the retriever's own (the app
    has one retriever). Each call holds the interpreter lock for part of its time, and with several
    such threads the event loop waited its turn behind each of them: 50 questions at once stalled it
    for over 100 ms, against about 20 ms with one thread. The ONNX runtime already uses every core
    within one call, so one thread loses no throughput."""

    def __init__(self, *, store: VectorStore, embedder: Embedder, mode: SearchMode = "hybrid"):
        self.store = store
        self.embedder = embedder
        self.mode = mode
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="retrieval")
        self._waiting: list[_Job] = []
        self._lock = threading.Lock()
        self._examples: OfftopicExamples | None = None
        self._examples_lock = threading.Lock()

    def offtopic(self) -> OfftopicExamples:
        """The requests the library is not for, embedded on first use (a warm-up does it)."""
        with self._examples_lock:
            if self._examples is None:
                texts = rescoring.offtopic_examples()
                self._examples = OfftopicExamples([e.dense for e in self.embedder.embed_queries(texts)])
            return self._examples

    def search_embedded(self, query: Embedded, *, k: int) -> list[Passage]:
        passages = self.store.search(query, limit=max(CANDIDATES, k * 5), mode=self.mode, top=k)
        return self.offtopic().mark(passages, query.dense)

    def search_sync(self, query: str, *, k: int = 5) -> list[Passage]:
        return self.search_embedded(embed_questions(self.embedder, [query])[0], k=k)

    async def search(self, query: str, *, k: int = 5) -> list[Passage]:
        loop = asyncio.get_running_loop()
        job = _Job(query, k, loop, loop.create_future())
        with self._lock:
            self._waiting.append(job)
        self._thread.submit(self._take_batch)
        found = await job.future
        if isinstance(found, Embedded):  # a server store: the search waits on the network, off that thread
            return await asyncio.to_thread(self.search_embedded, found, k=k)
        return found

    def _take_batch(self) -> None:
        """On the retrieval thread: whatever is waiting, up to a batch (a later call takes the rest)."""
        with self._lock:
            jobs, self._waiting = self._waiting[:QUERY_BATCH], self._waiting[QUERY_BATCH:]
        if jobs:
            self._serve(jobs)

    def _serve(self, jobs: list[_Job]) -> None:
        try:
            vectors = embed_questions(self.embedder, [job.query for job in jobs])
        except Exception as exc:
            if len(jobs) == 1:
                jobs[0].settle(error=exc)
            else:  # one question may have broken the batch: each on its own
                for job in jobs:
                    self._serve([job])
            return
        for job, vector in zip(jobs, vectors, strict=True):
            try:
                job.settle(self.search_embedded(vector, k=job.k) if self.store.in_process else vector)
            except Exception as exc:
                job.settle(error=exc)

    async def articles(self, article_ids: Sequence[str]) -> dict[str, Passage]:
        thread = self._thread if self.store.in_process else None  # None: the shared pool
        return await asyncio.get_running_loop().run_in_executor(
            thread, self.store.articles, list(article_ids)
        )
