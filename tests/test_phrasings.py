"""The editors' other phrasings of a question are searched as titles of its article, and an index built
from the Alignment Research Dataset's aisafety.info file moves to the feed's ids as a change, not a loss."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from retrieval.edge_store import EdgeStore
from retrieval.embeddings import FastEmbedder
from retrieval.index import point_id
from retrieval.ingest import IngestReport, feed_id_of, ingest
from retrieval.rescoring import written_answer
from retrieval.search import HybridRetriever
from tests.conftest import write_jsonl
from tests.fake_aisafety import FakeAisafety, question
from tests.fixture_articles import ARTICLES

PHRASING = "Will an AI let us fix it after it is built?"


def _feed(phrasings: dict[str, str]) -> list[dict[str, object]]:
    """Every fixture article as a live answer of the feed, with the given phrasings by slug."""
    return [
        question(
            str(1000 + n),
            str(a["title"]),
            str(a["text"]),
            alternate_phrasings=phrasings.get(str(a["id"]).split(":", 1)[1], ""),
            tags=["Fixture"],
        )
        for n, a in enumerate(ARTICLES)
    ]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EdgeStore]:
    s = EdgeStore(alias="articles", path=str(tmp_path / "qdrant"))
    yield s
    s.close()


def test_an_article_is_found_first_by_one_of_its_phrasings(store: EdgeStore, embedder: FastEmbedder) -> None:
    corrigibility = "aisafety.info:" + str(1000 + [a["id"] for a in ARTICLES].index("fixture:corrigibility"))
    retriever = HybridRetriever(store=store, embedder=embedder)
    with FakeAisafety(_feed({})) as fake:

        def sync() -> IngestReport:
            return ingest(
                store=store, embedder=embedder, sources=["aisafety.info"], aisafety_info_url=fake.base
            )

        first = sync()
        without = retriever.search_sync(PHRASING, k=3)
        assert corrigibility not in [p.article_id for p in without]

        # The editors add a list of phrasings (a marker, a blank line, the title itself: all dropped).
        phrasings = f"- {PHRASING}\n\n- What is corrigibility?\n- Can a trained AI be corrected?"
        fake.questions = _feed({"corrigibility": phrasings})
        report = sync()
        assert (report.updated, report.unchanged) == (1, first.added - 1)  # only that article re-embedded
        found = retriever.search_sync(PHRASING, k=3)
        assert found[0].article_id == corrigibility and found[0].title == "What is corrigibility?"
        assert found[0].title_score > 0.99  # the phrasing's place in the title ranking...
        assert written_answer(found) == found[0]  # ...and in the written-answer decision
        # One title-only point per phrasing; the state says how many, so a later edit removes them.
        states = store.article_states(report.collection)
        assert states[corrigibility].phrasings == 2
        assert store.count() == sum(s.chunks + s.phrasings for s in states.values())

        # Phrasings removed again: their points go in the same write as the article's new version.
        fake.questions = _feed({})
        sync()
    assert corrigibility not in [p.article_id for p in retriever.search_sync(PHRASING, k=3)]
    states = store.article_states(str(store.live_collection()))
    assert states[corrigibility].phrasings == 0
    assert store.count() == sum(s.chunks for s in states.values())


def test_tags_are_kept_in_the_payload(store: EdgeStore, embedder: FastEmbedder) -> None:
    with FakeAisafety(_feed({})[:3]) as fake:
        ingest(store=store, embedder=embedder, sources=["aisafety.info"], aisafety_info_url=fake.base)
    # Searches fetch only what a hit needs; the tags are on the stored point.
    records = store._shard(str(store.live_collection())).retrieve(
        [point_id("aisafety.info:1000", 0)], with_payload=True, with_vector=False
    )
    assert records[0].payload["tags"] == ["Fixture"]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://aisafety.info?state=6568", "aisafety.info:6568"),
        ("https://aisafety.info/?state=87O6", "aisafety.info:87O6"),
        ("http://www.aisafety.info/?foo=1&state=8EL6#x", "aisafety.info:8EL6"),
        ("https://aisafety.info/questions/6568/What-is-AI-safety", None),
        ("https://example.org/?state=6568", None),
    ],
)
def test_the_datasets_links_name_the_feeds_articles(url: str, expected: str | None) -> None:
    assert feed_id_of(url) == expected


def test_an_index_built_from_the_dataset_file_moves_to_the_feed_as_changes(
    tmp_path: Path, store: EdgeStore, embedder: FastEmbedder
) -> None:
    """The dataset's aisafety.info.jsonl: md5 ids, `?state=<pageid>` urls, source aisafety.info."""
    articles = ARTICLES[:8]
    rows = [
        {
            "id": f"{n:032x}",
            "source": "aisafety.info",
            "title": a["title"],
            "text": a["text"],
            "url": f"https://aisafety.info?state={1000 + n}",
            "date_published": "2023-01-01T00:00:00Z",
        }
        for n, a in enumerate(articles)
    ]
    ingest(store=store, embedder=embedder, sources=[str(write_jsonl(tmp_path / "aisafety.info.jsonl", rows))])
    with FakeAisafety(_feed({})[:8]) as fake:
        # Every stored article is gone under its old id: without the rename that is a 100% removal,
        # which the guard would refuse.
        report = ingest(
            store=store, embedder=embedder, sources=["aisafety.info"], aisafety_info_url=fake.base
        )
    assert (report.added, report.updated, report.deleted) == (0, 8, 0)
    assert {c.change for c in report.changes} == {"changed"}
    states = store.article_states(report.collection)
    assert sorted(states) == sorted(f"aisafety.info:{1000 + n}" for n in range(8))
    assert store.count() == sum(s.chunks for s in states.values())  # no old point left behind
    assert all("/questions/" in s.url for s in states.values())
    json.dumps(report.to_json())  # the report still serialises
