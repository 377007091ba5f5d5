"""One contract for both stores: the embedded engine and a Qdrant server run the same search plan, give
the same results and `articles()`, and fail with the same messages."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path

import pytest

from retrieval.edge_store import EdgeStore
from retrieval.embeddings import Embedded, FastEmbedder, SparseVec
from retrieval.errors import StoreError
from retrieval.index import NO_INDEX, WRONG_MODEL, VectorStore
from retrieval.ingest import ingest
from retrieval.store import QdrantStore
from tests.qdrant_server import QdrantServer

QUESTIONS = [
    "what is a mesa-optimizer?",
    "why can't we just unplug a dangerous AI?",
    "how does debate help scalable oversight?",
    "goodhart",
]


@pytest.fixture(scope="module")
def stores(
    tmp_path_factory: pytest.TempPathFactory,
    embedder: FastEmbedder,
    slice_file: Path,
    qdrant_server: QdrantServer,
) -> Iterator[dict[str, VectorStore]]:
    embedded = EdgeStore(alias="contract", path=str(tmp_path_factory.mktemp("contract")))
    server = QdrantStore(alias="contract", url=qdrant_server.url, api_key=qdrant_server.api_key)
    for store in (embedded, server):
        ingest(store=store, embedder=embedder, sources=[str(slice_file)])
    yield {"embedded": embedded, "server": server}
    server.drop_collection(server.live_collection() or "")
    server.close()
    embedded.close()


@pytest.mark.parametrize("mode", ["hybrid", "dense", "sparse"])
def test_both_stores_give_the_same_results(
    stores: dict[str, VectorStore], embedder: FastEmbedder, mode: str
) -> None:
    for question in QUESTIONS:
        query = embedder.embed_queries([question])[0]
        embedded, server = (
            stores[name].search(query, limit=20, mode=mode) for name in ("embedded", "server")
        )  # type: ignore[arg-type]
        assert embedded, question
        assert [p.article_id for p in embedded] == [p.article_id for p in server], (mode, question)
        for a, b in zip(embedded, server, strict=True):
            assert a.score == pytest.approx(b.score, abs=1e-4) and a.dense_score == pytest.approx(
                b.dense_score, abs=1e-4
            )
            assert (a.title, a.url, a.text, a.related) == (b.title, b.url, b.text, b.related)


def test_both_stores_give_the_same_articles(stores: dict[str, VectorStore]) -> None:
    ids = ["fixture:takeoff", "fixture:corrigibility", "fixture:no-such-article"]
    embedded, server = (stores[name].articles(ids) for name in ("embedded", "server"))
    assert set(embedded) == set(server) == {"fixture:takeoff", "fixture:corrigibility"}
    assert embedded == server
    assert embedded["fixture:takeoff"].related == ("fixture:fast-takeoff", "fixture:slow-takeoff")


def test_both_stores_list_the_same_articles(stores: dict[str, VectorStore]) -> None:
    embedded, server = (stores[name].catalogue() for name in ("embedded", "server"))
    assert embedded == server and len(embedded) >= 5
    assert embedded["fixture:takeoff"][1].startswith("https://")
    assert set(embedded) == set(stores["server"].article_states(stores["server"].live_collection() or ""))


def test_both_stores_read_the_same_vocabulary_and_the_embedded_one_keeps_it_beside_the_index(
    stores: dict[str, VectorStore], slice_file: Path
) -> None:
    """The report's vocabulary (`retrieval.vocabulary`) is the library's passages' as the ingest cut
    them; the embedded store writes it beside the index, so that `report` reads it while the running
    bot holds the store's lock."""
    from retrieval.chunking import chunk_document
    from retrieval.edge_store import read_vocabulary
    from retrieval.ingest import IngestReport, load_documents
    from retrieval.vocabulary import Vocabulary

    docs = load_documents([str(slice_file)], IngestReport())
    expected = Vocabulary.from_texts(c.text for d in docs for c in chunk_document(d))
    embedded, server = (stores[name].vocabulary() for name in ("embedded", "server"))
    assert embedded == server == expected and expected.passages > 5
    edge = stores["embedded"]
    assert isinstance(edge, EdgeStore)
    assert read_vocabulary(str(edge.root), edge.alias) == expected  # the store is open: its lock is held
    assert read_vocabulary(str(edge.root), "no-such-alias") is None


def test_a_sparse_search_without_terms_finds_nothing_on_both(stores: dict[str, VectorStore]) -> None:
    no_terms = Embedded([0.01] * 384, SparseVec([], []))
    assert stores["embedded"].search(no_terms, limit=5, mode="sparse") == []
    assert stores["server"].search(no_terms, limit=5, mode="sparse") == []


def test_both_stores_say_the_index_was_built_with_another_model(stores: dict[str, VectorStore]) -> None:
    other_model = Embedded([0.1] * 10, SparseVec([1], [1.0]))  # 10 dimensions: not the index's 384
    for store in stores.values():
        with pytest.raises(StoreError) as caught:
            store.search(other_model, limit=5)
        assert str(caught.value) == WRONG_MODEL and "ingest --rebuild" in str(caught.value)


def test_both_stores_say_there_is_no_index_yet(
    tmp_path: Path, embedder: FastEmbedder, qdrant_server: QdrantServer
) -> None:
    query = embedder.embed_queries(["what is corrigibility?"])[0]
    empty = [
        EdgeStore(alias="nothing", path=str(tmp_path / "empty")),
        QdrantStore(alias="nothing_here", url=qdrant_server.url, api_key=qdrant_server.api_key),
    ]
    try:
        for store in empty:
            with pytest.raises(StoreError) as caught:
                store.search(query, limit=5)
            assert str(caught.value) == NO_INDEX
    finally:
        for store in empty:
            store.close()


def test_an_alias_beginning_with_another_keeps_its_collections(
    tmp_path: Path, embedder: FastEmbedder, slice_file: Path, qdrant_server: QdrantServer
) -> None:
    """A build of "lib" drops the collections it replaces, never those of "lib_v2" (whose names also
    begin with "lib_"). One embedded store is open at a time in a folder: each is closed after use."""
    opened: dict[str, Callable[[str], VectorStore]] = {
        "embedded": lambda alias: EdgeStore(alias=alias, path=str(tmp_path)),
        "server": lambda alias: QdrantStore(
            alias=alias, url=qdrant_server.url, api_key=qdrant_server.api_key
        ),
    }
    for kind, store_for in opened.items():
        with closing(store_for("lib_v2")) as lib_v2:
            ingest(store=lib_v2, embedder=embedder, sources=[str(slice_file)])
            kept = lib_v2.live_collection()
        with closing(store_for("lib")) as lib:
            for _ in range(2):
                ingest(store=lib, embedder=embedder, sources=[str(slice_file)], rebuild=True)
            assert lib.build_collections() == [lib.live_collection()], kind
        with closing(store_for("lib_v2")) as lib_v2:
            assert lib_v2.build_collections() == [kept] and lib_v2.count() > 0, kind
    with closing(opened["server"]("lib")) as lib, closing(opened["server"]("lib_v2")) as lib_v2:
        for name in lib.build_collections() + lib_v2.build_collections():
            lib.drop_collection(name)


def test_the_embedded_store_reads_its_vocabulary_back_when_opened_again(
    tmp_path: Path, embedder: FastEmbedder, slice_file: Path
) -> None:
    """Written once after the ingest; a process opening the store later reads it from the file."""
    first = EdgeStore(alias="again", path=str(tmp_path / "store"))
    with closing(first):
        ingest(store=first, embedder=embedder, sources=[str(slice_file)])
        written = first.vocabulary()
    assert written.passages > 5
    again = EdgeStore(alias="again", path=str(tmp_path / "store"))
    with closing(again):
        assert again.vocabulary() == written
