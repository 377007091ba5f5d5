"""Incremental ingest, deletion, duplicates and the atomic rebuild, on a real embedded Qdrant."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from retrieval.edge_store import EdgeStore
from retrieval.embeddings import Embedded, FastEmbedder
from retrieval.index import VectorStore
from retrieval.ingest import IngestError, LargeRemoval, ingest
from retrieval.search import HybridRetriever
from retrieval.store import QdrantStore
from tests.conftest import write_jsonl
from tests.fixture_articles import IDS as FIXTURE_IDS
from tests.fixture_articles import rows as fixture_rows

SLUGS = ["orthogonality", "oversight-textbook", "off-switch", "quantilizers"]
IDS = [FIXTURE_IDS[s] for s in SLUGS]
TEXTBOOK = FIXTURE_IDS["oversight-textbook"]


class CountingEmbedder:
    """The real embedder, counting the passages it is asked to embed."""

    def __init__(self, inner: FastEmbedder):
        self.inner = inner
        self.dim = inner.dim
        self.passages = 0

    def embed_passages(self, texts: Sequence[str]) -> list[Embedded]:
        self.passages += len(texts)
        return self.inner.embed_passages(texts)

    def embed_queries(self, texts: Sequence[str]) -> list[Embedded]:
        return self.inner.embed_queries(texts)


@pytest.fixture(params=["embedded", "server"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VectorStore]:
    """Every ingest behaviour holds on the embedded default and on a real Qdrant server."""
    s: VectorStore
    if request.param == "embedded":
        s = EdgeStore(alias="articles", path=str(tmp_path / "qdrant"))
    else:
        server = request.getfixturevalue("qdrant_server")
        s = QdrantStore(
            alias=f"articles_{tmp_path.name.replace('-', '_')}", url=server.url, api_key=server.api_key
        )
    yield s
    for name in s.build_collections():
        s.drop_collection(name)
    s.close()


@pytest.fixture
def counting(embedder: FastEmbedder) -> CountingEmbedder:
    return CountingEmbedder(embedder)


def test_incremental_ingest(tmp_path: Path, store: VectorStore, counting: CountingEmbedder) -> None:
    rows = fixture_rows(*SLUGS)
    src = write_jsonl(tmp_path / "a.jsonl", rows)
    first = ingest(store=store, embedder=counting, sources=[str(src)])
    assert first.summary()["added"] == 4 and first.rebuilt
    chunks = first.chunks
    assert store.count() == chunks

    # Unchanged: nothing is embedded again.
    counting.passages = 0
    again = ingest(store=store, embedder=counting, sources=[str(src)])
    assert again.summary() == {
        "added": 0,
        "updated": 0,
        "unchanged": 4,
        "deleted": 0,
        "skipped": 0,
        "chunks": 0,
    }
    assert counting.passages == 0
    assert again.collection == first.collection  # updated in place, not rebuilt

    # One article changes (and shrinks from three passages to one), one disappears, one is new.
    assert store.article_states(first.collection)[TEXTBOOK].chunks == 3
    changed = dict(rows[1], text="A mesa-optimizer is a learned optimizer inside a trained model.")
    new = fixture_rows("inner-outer")[0]
    src2 = write_jsonl(tmp_path / "b.jsonl", [rows[0], changed, rows[2], new])
    counting.passages = 0
    # One of three "fixture" articles gone is over the default guard (a quarter of a source's articles).
    with pytest.raises(LargeRemoval, match="remove 1 of the library's 3 fixture articles"):
        ingest(store=store, embedder=counting, sources=[str(src2)])
    assert counting.passages == 0 and store.article_states(first.collection)[TEXTBOOK].chunks == 3
    third = ingest(store=store, embedder=counting, sources=[str(src2)], max_remove=1.0)
    assert sorted((c.change, c.article_id) for c in third.changes) == sorted(
        [
            ("added", FIXTURE_IDS["inner-outer"]),
            ("changed", TEXTBOOK),
            ("removed", FIXTURE_IDS["quantilizers"]),
        ]
    )
    assert third.summary()["added"] == 1
    assert third.summary()["updated"] == 1
    assert third.summary()["unchanged"] == 2
    assert third.summary()["deleted"] == 1
    # Only the changed and new articles were embedded (their passages plus one title each).
    assert counting.passages == third.chunks + 2
    states = store.article_states(third.collection)
    assert set(states) == {IDS[0], TEXTBOOK, IDS[2], FIXTURE_IDS["inner-outer"]}
    assert states[TEXTBOOK].chunks == 1  # the old, longer version's passages are gone
    assert store.count() == sum(st.chunks for st in states.values())  # and no tombstone is left
    hits = HybridRetriever(store=store, embedder=counting).search_sync(
        "learned optimizer inside a model", k=4
    )
    mesa = next(h for h in hits if h.article_id == TEXTBOOK)
    assert mesa.text == changed["text"]
    assert FIXTURE_IDS["quantilizers"] not in {h.article_id for h in hits}


def test_duplicates_and_bad_lines_do_not_stop_the_run(
    tmp_path: Path, store: VectorStore, counting: CountingEmbedder
) -> None:
    import json

    rows = fixture_rows(*SLUGS[:2])
    src = tmp_path / "messy.jsonl"
    src.write_text(
        json.dumps(rows[0]) + "\nnot json\n" + json.dumps(rows[1]) + "\n" + json.dumps(rows[0]) + "\n"
    )
    report = ingest(store=store, embedder=counting, sources=[str(src)])
    assert report.summary()["added"] == 2 and report.summary()["skipped"] == 2
    assert [(r.line, r.reason.split(" ")[0]) for r in report.skipped_records] == [
        (2, "malformed"),
        (4, "duplicate"),
    ]


def test_rebuild_switches_alias_only_when_complete(
    tmp_path: Path, store: VectorStore, counting: CountingEmbedder
) -> None:
    src = write_jsonl(tmp_path / "a.jsonl", fixture_rows(*SLUGS))
    first = ingest(store=store, embedder=counting, sources=[str(src)])
    live = store.live_collection()
    assert live == first.collection
    retriever = HybridRetriever(store=store, embedder=counting)
    before = [h.article_id for h in retriever.search_sync("orthogonality thesis", k=3)]

    bigger = write_jsonl(tmp_path / "b.jsonl", fixture_rows(*SLUGS, "inner-outer", "corrigibility"))
    seen_during: list[list[str]] = []

    def interrupt(batch: int) -> None:
        # Questions asked mid-rebuild still see the complete old index.
        seen_during.append([h.article_id for h in retriever.search_sync("orthogonality thesis", k=3)])
        assert store.live_collection() == live
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ingest(store=store, embedder=counting, sources=[str(bigger)], rebuild=True, on_batch=interrupt)
    assert seen_during == [before]
    assert store.live_collection() == live
    assert store.build_collections() == [live]  # the half-built collection was dropped
    assert store.count() == first.chunks

    done = ingest(store=store, embedder=counting, sources=[str(bigger)], rebuild=True)
    assert done.rebuilt and done.collection != live
    assert store.live_collection() == done.collection
    assert store.build_collections() == [done.collection]
    assert len(store.article_states(done.collection)) == 6


def test_unreadable_or_empty_sources_leave_the_index_alone(
    tmp_path: Path, store: VectorStore, counting: CountingEmbedder
) -> None:
    src = write_jsonl(tmp_path / "a.jsonl", fixture_rows(*SLUGS[:1]))
    ingest(store=store, embedder=counting, sources=[str(src)])
    count = store.count()
    empty = tmp_path / "empty.jsonl"
    empty.write_text("garbage\n")
    with pytest.raises(IngestError, match="no usable articles"):
        ingest(store=store, embedder=counting, sources=[str(empty)])
    with pytest.raises(IngestError, match="does not exist"):
        ingest(store=store, embedder=counting, sources=[str(src), str(tmp_path / "missing.jsonl")])
    assert store.count() == count
