"""Questions asked at once share the one retrieval thread and are embedded in small batches."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence

import pytest

from bot.core import AnswerCore
from bot.errors import RetrievalError
from bot.models import Question
from retrieval.embeddings import Embedded, FastEmbedder
from retrieval.index import VectorStore
from retrieval.rescoring import offtopic_examples
from retrieval.search import QUERY_BATCH, HybridRetriever

QUESTIONS = [
    "what is a mesa-optimizer?",
    "why can't we just turn it off?",
    "what is the orthogonality thesis?",
    "what is instrumental convergence?",
    "is AI safety a real problem?",
]


async def until(condition: Callable[[], bool]) -> None:
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached in 10 s")


EXAMPLES = offtopic_examples()


class GatedEmbedder:
    """The real embedder, recording each batch and its thread; the first batch waits for `gate`."""

    def __init__(self, inner: FastEmbedder, *, broken: str | None = None):
        self.inner = inner
        self.dim = inner.dim
        self.broken = broken
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.batches: list[list[str]] = []
        self.threads: set[str] = set()

    def embed_passages(self, texts: Sequence[str]) -> list[Embedded]:
        return self.inner.embed_passages(texts)

    def embed_queries(self, texts: Sequence[str]) -> list[Embedded]:
        self.threads.add(threading.current_thread().name)
        if list(texts) == EXAMPLES:  # embedded once, on the first search: not a batch of questions
            return self.inner.embed_queries(texts)
        if not self.batches:
            self.entered.set()
            assert self.gate.wait(10), "the test never opened the gate"
        self.batches.append(list(texts))
        if self.broken is not None and any(self.broken in t for t in texts):
            raise ValueError("this question cannot be embedded")
        return self.inner.embed_queries(texts)


async def test_questions_at_once_are_batched_on_one_thread_with_unchanged_results(
    embedder: FastEmbedder, slice_store: VectorStore
) -> None:
    gated = GatedEmbedder(embedder)
    retriever = HybridRetriever(store=slice_store, embedder=gated)
    questions = [QUESTIONS[i % len(QUESTIONS)] for i in range(3 * QUERY_BATCH)]
    first = asyncio.ensure_future(retriever.search(questions[0], k=5))
    await until(gated.entered.is_set)  # the first question holds the thread
    rest = asyncio.gather(*(retriever.search(q, k=5) for q in questions[1:]))
    await until(lambda: len(retriever._waiting) == len(questions) - 1)
    gated.gate.set()
    found = [await first, *await rest]

    assert [len(b) for b in gated.batches] == [1, QUERY_BATCH, QUERY_BATCH, QUERY_BATCH - 1]
    assert len(gated.threads) == 1 and next(iter(gated.threads)).startswith("retrieval")
    alone = HybridRetriever(store=slice_store, embedder=embedder)
    for question, hits in zip(questions, found, strict=True):
        expected = alone.search_sync(question, k=5)
        assert [h.article_id for h in hits] == [h.article_id for h in expected]


async def test_batched_query_vectors_match_single_ones(embedder: FastEmbedder) -> None:
    batch = embedder.embed_queries(QUESTIONS)
    for text, vec in zip(QUESTIONS, batch, strict=True):
        single = embedder.embed_query(text)
        assert vec.sparse == single.sparse
        assert vec.dense == pytest.approx(single.dense, abs=1e-5)


async def test_a_broken_question_fails_alone_and_a_cancelled_asker_loses_no_one_else(
    embedder: FastEmbedder, slice_store: VectorStore
) -> None:
    gated = GatedEmbedder(embedder, broken="BOOM")
    retriever = HybridRetriever(store=slice_store, embedder=gated)
    first = asyncio.ensure_future(retriever.search(QUESTIONS[0], k=3))
    await until(gated.entered.is_set)
    broken = asyncio.ensure_future(retriever.search("BOOM what is alignment?", k=3))
    cancelled = asyncio.ensure_future(retriever.search(QUESTIONS[1], k=3))
    fine = asyncio.ensure_future(retriever.search(QUESTIONS[2], k=3))
    await until(lambda: len(retriever._waiting) == 3)
    cancelled.cancel()
    gated.gate.set()

    assert (await first)[0].article_id
    with pytest.raises(ValueError, match="cannot be embedded"):
        await broken
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert [h.article_id for h in await fine] == [
        h.article_id
        for h in HybridRetriever(store=slice_store, embedder=embedder).search_sync(QUESTIONS[2], k=3)
    ]
    # The batch of three failed as a whole, then each question was embedded on its own.
    assert [len(b) for b in gated.batches][:2] == [1, 3]
    # The thread is still serving.
    assert len(await retriever.search(QUESTIONS[3], k=3)) == 3


async def test_a_stuck_search_ends_in_a_retrieval_error_within_the_deadline(
    embedder: FastEmbedder, slice_store: VectorStore
) -> None:
    gated = GatedEmbedder(embedder)
    retriever = HybridRetriever(store=slice_store, embedder=gated)
    retriever.offtopic()  # what a warm-up does: the second question below is timed from a warm start
    core = AnswerCore(retriever=retriever, llm=None, deadline_s=0.3)
    try:
        with pytest.raises(RetrievalError, match=r"over 0\.3 s"):
            await core.answer(Question(QUESTIONS[0]))
    finally:
        gated.gate.set()  # the thread is released and serves again
    answer = await core.answer(Question(QUESTIONS[2]))
    assert answer.sources
