from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from retrieval.embeddings import BM25_DIR, EmbeddingError, FastEmbedder
from retrieval.index import VectorStore
from retrieval.search import HybridRetriever
from tests.conftest import MODEL_NAME


def test_dense_vector_matches_fastembeds_reference(embedder: FastEmbedder) -> None:
    vec = embedder.embed_query("hello world").dense
    assert len(vec) == embedder.dim == 384
    expected = [-0.034477, 0.031023, 0.006735, 0.026109, -0.039362]
    assert vec[:5] == pytest.approx(expected, abs=1e-5)


def test_bm25_uses_our_stopwords_and_tokenises_queries_like_passages(embedder: FastEmbedder) -> None:
    embedder.warm_up()
    ours = set((BM25_DIR / "english.txt").read_text().split())
    assert embedder._sparse.stopwords == ours  # never a downloaded file: same vectors online and offline
    text = "Why can't we just unplug the misaligned AI systems?"
    query = embedder.embed_query(text).sparse
    passage = embedder.embed_passages([text])[0].sparse
    assert sorted(query.indices) == sorted(passage.indices)
    assert set(query.values) == {1.0}  # queries carry term presence; IDF is applied by Qdrant
    assert (
        len(query.indices) == 4
    )  # why, can't/we/just/the are stopwords or dropped: unplug, misalign, ai, system


def test_a_second_embedder_builds_identical_vectors(embedder: FastEmbedder) -> None:
    other = FastEmbedder(model_name=MODEL_NAME, model_path=embedder.model_path)
    text = "Inner alignment is about the learned objective of a mesa-optimizer."
    a, b = embedder.embed_passages([text])[0], other.embed_passages([text])[0]
    assert a.sparse == b.sparse and a.dense == pytest.approx(b.dense, abs=1e-6)


def test_missing_model_folder_says_how_to_fix(tmp_path: Path) -> None:
    with pytest.raises(EmbeddingError, match="EMBEDDING_MODEL_PATH"):
        FastEmbedder(model_name=MODEL_NAME, model_path=str(tmp_path)).warm_up()


async def test_query_embedding_and_search_run_off_the_event_loop(
    embedder: FastEmbedder, slice_store: VectorStore
) -> None:
    retriever = HybridRetriever(store=slice_store, embedder=embedder)
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        for _ in range(5):
            ticks += 1
            await asyncio.sleep(0)

    vectors, _ = await asyncio.gather(
        asyncio.gather(*(retriever.search(f"question {i}", k=3) for i in range(8))), tick()
    )
    assert len(vectors) == 8 and ticks == 5
