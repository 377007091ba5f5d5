"""The same store code against a real Qdrant server binary (API key, aliases, hybrid RRF query)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from retrieval.embeddings import FastEmbedder
from retrieval.index import StoreError
from retrieval.ingest import ingest
from retrieval.search import HybridRetriever
from retrieval.store import QdrantStore
from tests.conftest import write_jsonl
from tests.fixture_articles import rows as fixture_rows
from tests.qdrant_server import QdrantServer

pytestmark = pytest.mark.server


def test_ingest_search_and_rebuild_on_a_server(
    qdrant_server: QdrantServer, embedder: FastEmbedder, slice_file: Path, tmp_path: Path
) -> None:
    store = QdrantStore(alias="server_articles", url=qdrant_server.url, api_key=qdrant_server.api_key)
    try:
        first = ingest(store=store, embedder=embedder, sources=[str(slice_file)])
        assert store.live_collection() == first.collection
        retriever = HybridRetriever(store=store, embedder=embedder)
        hits = retriever.search_sync("whats a mesa optimizer? explain like im not an ML person", k=5)
        assert hits[0].article_id == "fixture:mesa-optimizers"
        assert len({h.article_id for h in hits}) == 5
        assert all(0 < h.dense_score <= 1 for h in hits)
        # The async path: the query is embedded on the retrieval thread, the server is queried off it.
        found = asyncio.run(retriever.search("whats a mesa optimizer? explain like im not an ML person", k=5))
        assert [h.article_id for h in found] == [h.article_id for h in hits]

        again = ingest(store=store, embedder=embedder, sources=[str(slice_file)])
        assert again.summary()["unchanged"] == first.summary()["added"] and again.chunks == 0

        small = write_jsonl(tmp_path / "small.jsonl", fixture_rows("orthogonality", "mesa-optimizers"))
        rebuilt = ingest(store=store, embedder=embedder, sources=[str(small)], rebuild=True, max_remove=1.0)
        assert store.live_collection() == rebuilt.collection != first.collection
        assert store.build_collections() == [rebuilt.collection]
        assert {h.article_id for h in retriever.search_sync("orthogonality", k=5)} == {
            "fixture:orthogonality",
            "fixture:mesa-optimizers",
        }
        # The embedded and server stores rank the same way (same vectors, same fusion).
        assert (
            next(h.article_id for h in retriever.search_sync("inner optimizer", k=2))
            == "fixture:mesa-optimizers"
        )
    finally:
        store.drop_collection(store.live_collection() or "")
        store.close()


def test_wrong_api_key_is_a_clear_error(qdrant_server: QdrantServer) -> None:
    store = QdrantStore(alias="x", url=qdrant_server.url, api_key="wrong-key-value")
    with pytest.raises(StoreError) as caught:
        store.live_collection()
    store.close()
    message = str(caught.value)
    assert f"Qdrant at {qdrant_server.url} (QDRANT_URL)" in message and "QDRANT_API_KEY" in message
    assert "wrong-key-value" not in message


def test_unreachable_server_is_a_clear_error() -> None:
    from tests.qdrant_server import free_port

    port = free_port()
    store = QdrantStore(
        alias="x", url=f"http://admin:hunter2@127.0.0.1:{port}", api_key="key-not-shown", timeout_s=2
    )
    with pytest.raises(StoreError) as caught:
        store.count()
    store.close()
    message = str(caught.value)
    assert message.startswith(f"Qdrant at http://127.0.0.1:{port} (QDRANT_URL): ")
    assert "hunter2" not in message and "key-not-shown" not in message


def test_a_server_reached_by_name_keeps_its_connection_and_answers_uncompressed(
    qdrant_server: QdrantServer, embedder: FastEmbedder, slice_file: Path
) -> None:
    """qdrant-client keeps connections open to any host but "localhost" and "127.0.0.1" (the compose
    file's `http://qdrant:6333`); Qdrant then sent each search's answer gzip-compressed in chunks, and
    the last chunk waited for the client's delayed acknowledgement: 90 ms a question instead of 5
    (BENCHMARKS.md). `127.1` is 127.0.0.1 under another name. Every answer must come uncompressed, over
    one kept connection."""
    port = qdrant_server.url.rsplit(":", 1)[1]
    store = QdrantStore(alias="by_name", url=f"http://127.1:{port}", api_key=qdrant_server.api_key)
    seen: list[tuple[str | None, object]] = []

    def record(response: httpx.Response) -> None:
        stream = response.extensions["network_stream"]
        seen.append((response.headers.get("content-encoding"), stream.get_extra_info("client_addr")))

    store._client.http.client._client.event_hooks["response"].append(record)
    try:
        ingest(store=store, embedder=embedder, sources=[str(slice_file)])
        retriever = HybridRetriever(store=store, embedder=embedder)
        seen.clear()
        for question in ("what is a mesa optimizer?", "why not just turn it off?", "what is orthogonality?"):
            assert len(retriever.search_sync(question, k=5)) == 5
        assert len(seen) == 6  # a search and a payload lookup per question
        assert {encoding for encoding, _ in seen} == {None}
        assert len({address for _, address in seen}) == 1
    finally:
        store.drop_collection(store.live_collection() or "")
        store.close()
