"""What keeps a large library fast (issue: 100,000 passages): an ingest learns each article's state from
its first passage alone, a server gets passages in batches, and the embedded engine builds its search
index once a collection outgrows a plain scan."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from retrieval import index as index_module
from retrieval.documents import Chunk, Document
from retrieval.edge_store import EdgeStore
from retrieval.embeddings import Embedded, SparseVec
from retrieval.index import ArticleState, VectorStore, article_states, payload
from retrieval.store import UPSERT_BATCH, QdrantStore
from tests.qdrant_server import QdrantServer

DIM = 384


def _doc(n: int, chunks: int) -> tuple[Document, list[Chunk], list[Embedded]]:
    rng = random.Random(n)
    doc = Document(
        id=f"synthetic:{n}",
        title=f"Article {n}",
        url=f"https://example.org/{n}",
        source="synthetic",
        text=" ".join(f"passage {i}" for i in range(chunks)),
    )
    parts = [Chunk(article_id=doc.id, index=i, text=f"passage {i} of article {n}") for i in range(chunks)]
    vectors = [
        Embedded([rng.gauss(0, 1) for _ in range(DIM)], SparseVec([n % 97 + 1, i + 1000], [1.0, 0.5]))
        for i in range(chunks)
    ]
    return doc, parts, vectors


def _fill(store: VectorStore, articles: int, chunks: int, start: int = 0) -> str:
    collection = store.new_collection(DIM)
    for n in range(start, start + articles):
        doc, parts, vectors = _doc(n, chunks)
        store.upsert(collection, doc, parts, vectors, vectors[0])
    store.switch_alias(collection)
    return collection


@pytest.fixture(params=["embedded", "server"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VectorStore]:
    if request.param == "embedded":
        edge = EdgeStore(alias="large", path=str(tmp_path / "store"))
        yield edge
        edge.close()
        return
    server: QdrantServer = request.getfixturevalue("qdrant_server")
    remote = QdrantStore(alias=f"large_{tmp_path.name}", url=server.url, api_key=server.api_key)
    yield remote
    for name in remote.build_collections():
        remote.drop_collection(name)
    remote.close()


def test_article_states_read_only_first_passages_when_they_carry_the_count() -> None:
    asked: list[bool] = []
    first = [
        {"article_id": "a", "hash": "h1", "chunk": 0, "chunks": 3},
        {"article_id": "b", "hash": "h2", "chunk": 0, "chunks": 1},
    ]

    def scroll(first_only: bool) -> list[dict[str, Any]]:
        asked.append(first_only)
        return first if first_only else pytest.fail("read every passage")

    assert article_states(scroll) == {"a": ArticleState("h1", 3), "b": ArticleState("h2", 1)}
    assert asked == [True]


def test_a_collection_written_before_the_count_is_read_whole(
    store: VectorStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def old_payload(doc: Document, chunk: Chunk, chunks: int) -> dict[str, Any]:
        pl = payload(doc, chunk, chunks)
        del pl["chunks"]
        return pl

    monkeypatch.setattr(index_module, "payload", old_payload)
    collection = _fill(store, articles=4, chunks=3)
    states = store.article_states(collection)
    assert {aid: s.chunks for aid, s in states.items()} == {f"synthetic:{n}": 3 for n in range(4)}


def test_both_stores_give_each_articles_state_from_its_first_passage(store: VectorStore) -> None:
    collection = _fill(store, articles=6, chunks=4)
    states = store.article_states(collection)
    assert {aid: s.chunks for aid, s in states.items()} == {f"synthetic:{n}": 4 for n in range(6)}
    assert len({s.content_hash for s in states.values()}) == 6


def test_a_server_gets_passages_in_batches(qdrant_server: QdrantServer, tmp_path: Path) -> None:
    store = QdrantStore(
        alias=f"batches_{tmp_path.name}", url=qdrant_server.url, api_key=qdrant_server.api_key
    )
    calls: list[int] = []
    real = store._client.upsert

    def counting(**kwargs: Any) -> Any:
        calls.append(len(kwargs["points"]))
        return real(**kwargs)

    store._client.upsert = counting  # type: ignore[method-assign]
    try:
        _fill(store, articles=70, chunks=5)  # 350 passages: one full batch, then the rest at the switch
        assert calls == [UPSERT_BATCH + 4, 350 - UPSERT_BATCH - 4]
        assert store.count() == 350
    finally:
        for name in store.build_collections():
            store.drop_collection(name)
        store.close()


def test_the_embedded_engine_builds_its_search_index_for_a_large_collection(tmp_path: Path) -> None:
    store = EdgeStore(alias="large", path=str(tmp_path / "store"))
    try:
        collection = _fill(store, articles=2400, chunks=4)  # 9,600 passages: over the indexing threshold
        info = store._shard(collection).info()
        assert info.points_count == 9600
        assert info.indexed_vectors_count >= 9600  # the passages' HNSW graph at least
        query = _doc(7, 4)[2][2]
        best = store.rankings(query, limit=5, mode="dense")["dense"][0]
        assert (best.article_id, best.payload["chunk"], round(best.score, 4)) == ("synthetic:7", 2, 1.0)
    finally:
        store.close()


def test_a_new_server_collection_gets_the_search_index_settings(
    qdrant_server: QdrantServer, tmp_path: Path
) -> None:
    from retrieval.index import ARTICLE_VECTOR_FULL_SCAN_KB, HNSW_EF_CONSTRUCT

    store = QdrantStore(
        alias=f"settings_{tmp_path.name}", url=qdrant_server.url, api_key=qdrant_server.api_key
    )
    try:
        name = store.new_collection(DIM)
        config = store._client.get_collection(name).config
        assert config.hnsw_config.ef_construct == HNSW_EF_CONSTRUCT
        vectors = config.params.vectors
        assert isinstance(vectors, dict)
        assert vectors["title"].hnsw_config.full_scan_threshold == ARTICLE_VECTOR_FULL_SCAN_KB  # type: ignore[union-attr]
        assert vectors["dense"].hnsw_config is None  # the collection's own
        assert set(store._client.get_collection(name).payload_schema) == {"article_id", "chunk"}
    finally:
        for name in store.build_collections():
            store.drop_collection(name)
        store.close()
