"""A Qdrant cluster of three nodes of the pinned binary in distributed mode on 127.0.0.1: ingest, search
and the alias swap work; with one node killed searches keep answering (two or three copies of each shard) and an ingest
completes or fails with a clear message; the node rejoins after a restart."""

from __future__ import annotations

import json
import logging
import os
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from retrieval.embeddings import FastEmbedder
from retrieval.index import StoreError
from retrieval.ingest import ingest
from retrieval.search import HybridRetriever
from retrieval.store import QdrantStore
from tests.conftest import ROOT, need, write_jsonl
from tests.fixture_articles import rows as fixture_rows
from tests.qdrant_server import QdrantServer, free_port, start_cluster, wait_for_peers


@pytest.fixture(scope="module")
def cluster() -> Iterator[list[QdrantServer]]:
    binary = os.environ.get("QDRANT_BIN") or str(ROOT / ".cache" / "qdrant" / "qdrant")
    if not Path(binary).exists():
        need(f"the Qdrant server binary ({binary})", "run scripts/fetch-qdrant.sh, or set QDRANT_BIN")
    nodes = start_cluster(str(Path(binary).resolve()), 3)
    yield nodes
    for node in nodes:
        node.stop()


def _get(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=5) as r:
        return dict(json.load(r)["result"])


def _shard_states(url: str, collection: str) -> list[str]:
    info = _get(f"{url}/collections/{collection}/cluster")
    local = [str(s["state"]) for s in info["local_shards"]]  # type: ignore[union-attr]
    remote = [str(s["state"]) for s in info["remote_shards"]]  # type: ignore[union-attr]
    return local + remote


def _ingest_with_a_node_down(
    store: QdrantStore, retriever: HybridRetriever, tmp_path: Path, *, error_names: str
) -> None:
    """A rebuild with a node down completes (each shard keeps a live copy) and its new article is found,
    or it fails with one line naming `error_names`."""
    more = write_jsonl(tmp_path / "b.jsonl", fixture_rows("orthogonality", "quantilizers"))
    try:
        ingest(store=store, embedder=retriever.embedder, sources=[str(more)], rebuild=True, max_remove=1.0)
    except StoreError as exc:
        assert error_names in str(exc) and "Traceback" not in str(exc)
    else:
        assert "fixture:quantilizers" in {
            p.article_id for p in retriever.search_sync("what are quantilizers?", k=2)
        }


@pytest.mark.parametrize(("shards", "copies"), [(3, 2), (1, 3)])
def test_ingest_search_and_swap_survive_a_node_down_and_the_node_rejoins(
    cluster: list[QdrantServer], embedder: FastEmbedder, tmp_path: Path, shards: int, copies: int
) -> None:
    """Both layouts the README describes: three shards with two copies each, and one shard with a copy
    on every node."""
    first, _, third = cluster
    alias = f"clustered_{shards}x{copies}"
    source = write_jsonl(tmp_path / "a.jsonl", fixture_rows())
    store = QdrantStore(alias=alias, url=first.url, shards=shards, replication=copies, write_consistency=1)
    report = ingest(store=store, embedder=embedder, sources=[str(source)])
    assert report.added == len(fixture_rows())
    collection = store.live_collection()
    assert collection is not None
    config = _get(f"{first.url}/collections/{collection}")["config"]["params"]  # type: ignore[index]
    assert (config["shard_number"], config["replication_factor"], config["write_consistency_factor"]) == (
        shards,
        copies,
        1,
    )
    assert len(_shard_states(first.url, collection)) == shards * copies  # every copy, over the 3 nodes

    retriever = HybridRetriever(store=store, embedder=embedder)
    expected = [p.article_id for p in retriever.search_sync("what is a mesa-optimizer?", k=3)]
    assert expected[0] == "fixture:mesa-optimizers"
    # Another node answers the same through the alias.
    other = HybridRetriever(store=QdrantStore(alias=alias, url=cluster[1].url), embedder=embedder)
    assert [p.article_id for p in other.search_sync("what is a mesa-optimizer?", k=3)] == expected

    # A rebuild swaps the alias to a new collection across the cluster.
    rebuilt = ingest(store=store, embedder=embedder, sources=[str(source)], rebuild=True)
    assert rebuilt.added == len(fixture_rows()) and store.live_collection() != collection
    collection = store.live_collection()
    assert collection is not None

    third.kill_hard()
    for question in ("what is a mesa-optimizer?", "why can't we just turn it off?", "what is corrigibility?"):
        found = retriever.search_sync(question, k=3)
        assert found and all(p.text for p in found), question
    assert [p.article_id for p in retriever.search_sync("what is a mesa-optimizer?", k=3)] == expected

    _ingest_with_a_node_down(store, retriever, tmp_path, error_names=first.url)

    third.revive()
    wait_for_peers(first.url, 3)
    collection = store.live_collection()
    assert collection is not None
    deadline = time.monotonic() + 60
    states = _shard_states(first.url, collection)
    while time.monotonic() < deadline and set(states) != {"Active"}:
        time.sleep(0.5)
        states = _shard_states(first.url, collection)
    assert set(states) == {"Active"}, states  # the node's copies caught up
    third_store = QdrantStore(alias=alias, url=third.url)
    assert HybridRetriever(store=third_store, embedder=embedder).search_sync("what is a mesa-optimizer?", k=1)
    store.close()
    third_store.close()


def test_a_store_given_every_node_moves_on_when_the_one_it_uses_is_down(
    cluster: list[QdrantServer], embedder: FastEmbedder, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """`QDRANT_URL` naming every node: with the node in use killed (here the first, which the others
    joined), searches go on through the next, said once in the log; an ingest completes or fails saying
    why; the node rejoins."""
    first, second, _ = cluster
    source = write_jsonl(tmp_path / "a.jsonl", fixture_rows())
    store = QdrantStore(
        alias="every_node", url=",".join(n.url for n in cluster), shards=1, replication=3, write_consistency=1
    )
    ingest(store=store, embedder=embedder, sources=[str(source)])
    retriever = HybridRetriever(store=store, embedder=embedder)
    expected = [p.article_id for p in retriever.search_sync("what is a mesa-optimizer?", k=3)]
    assert store.url == first.url and expected[0] == "fixture:mesa-optimizers"
    first.kill_hard()
    try:
        with caplog.at_level(logging.WARNING, logger="retrieval.store"):
            assert [p.article_id for p in retriever.search_sync("what is a mesa-optimizer?", k=3)] == expected
            for question in ("why can't we just turn it off?", "what is corrigibility?"):
                found = retriever.search_sync(question, k=3)
                assert found and all(p.text for p in found), question
        moved = [r.getMessage() for r in caplog.records if "cannot be reached" in r.getMessage()]
        assert len(moved) == 1 and first.url in moved[0] and second.url in moved[0]
        assert store.url == second.url
        _ingest_with_a_node_down(store, retriever, tmp_path, error_names="QDRANT_URL")
    finally:
        first.revive()
        wait_for_peers(second.url, 3)
        for name in store.build_collections():
            store.drop_collection(name)
        store.close()


def test_when_no_node_answers_the_error_names_every_one() -> None:
    ports = [free_port(), free_port()]
    store = QdrantStore(alias="nowhere", url=",".join(f"http://127.0.0.1:{p}" for p in ports), timeout_s=2)
    with pytest.raises(StoreError) as raised:
        store.count()
    message = str(raised.value)
    assert all(f"127.0.0.1:{p}" in message for p in ports) and "QDRANT_URL" in message
    store.close()
