"""The library's change log in the answers database, on SQLite and PostgreSQL: each sync (its outcome,
the articles after it, why it was refused or failed) and each article it changed, shared by every
process on the database; and the upgrade that moves stored answers' aisafety.info citations from the
dataset's addresses to the site's own."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import service.feedback as feedback_module
from retrieval.aisafety_info import question_url
from retrieval.documents import ArticleChange
from service.feedback import MIGRATIONS, FeedbackStore, feed_source
from tests.test_feedback_backends import open_store, pg_schema  # noqa: F401 (fixtures)

ORTHO = ArticleChange(
    "aisafety.info:6568",
    "What is the orthogonality thesis?",
    question_url("6568", "What is the orthogonality thesis?"),
    "added",
)
MESA = ArticleChange(
    "aisafety.info:8160", "What are mesa-optimizers?", "https://aisafety.info/q/8160", "changed"
)
GONE = ArticleChange("atlas:3", "An old chapter", "https://ai-safety-atlas.com/3", "removed")


def test_syncs_and_changes_are_kept_and_read_by_every_process(
    open_store: Callable[..., FeedbackStore],  # noqa: F811
) -> None:
    store = open_store()
    assert store.last_library_sync() is None and store.library_articles() is None
    assert store.library_changes(0, time.time() + 1) == []
    store.record_library_sync("refused", articles=0, reason="the feed lost half its articles", when=500.0)
    assert store.last_library_sync() is None  # a refused sync is no sync
    store.record_library_sync("changed", [ORTHO, MESA], articles=10, when=1000.0)
    store.record_library_sync("unchanged", articles=11, when=2000.0)
    store.record_library_sync("changed", [GONE], articles=9, when=3000.0)
    store.record_library_sync("failed", articles=9, reason="the feed timed out", when=4000.0)

    other = open_store()  # another replica, or `report` while the bot runs
    assert other.last_library_sync() == 3000.0 and other.library_articles() == 9
    assert other.library_changes(1000.0, 3000.0) == [
        {"time": 1000.0, "id": ORTHO.article_id, "title": ORTHO.title, "url": ORTHO.url, "change": "added"},
        {"time": 1000.0, "id": MESA.article_id, "title": MESA.title, "url": MESA.url, "change": "changed"},
    ]  # oldest first, `end` excluded
    assert [c["id"] for c in other.library_changes(0, 5000)] == [ORTHO.article_id, MESA.article_id, "atlas:3"]
    assert other.library_changes(3000.0, 3000.5)[0]["change"] == "removed"  # `start` included


def test_a_sync_is_recorded_whole_or_not_at_all(
    open_store: Callable[..., FeedbackStore],  # noqa: F811
) -> None:
    store = open_store()
    store.record_library_sync("unchanged", articles=5, when=100.0)
    with pytest.raises(ValueError, match="changed, unchanged, refused, failed"):
        store.record_library_sync("partly", articles=5)
    broken = ArticleChange("a:1", "A", "https://e.org/a", "renamed")  # type: ignore[arg-type]
    with pytest.raises(Exception, match=r"(?i)check"):
        store.record_library_sync("changed", [ORTHO, broken], articles=6, when=200.0)
    assert store.last_library_sync() == 100.0 and store.library_articles() == 5
    assert store.library_changes(0, 1000) == []


@pytest.mark.parametrize(
    ("url", "pageid"),
    [
        ("https://aisafety.info?state=6568", "6568"),
        ("https://aisafety.info/?state=6568", "6568"),
        ("http://www.aisafety.info/?state=NM3I&question=x#top", "NM3I"),
        ("https://AISafety.info?lang=en&state=8160#x", "8160"),
        ("https://aisafety.info/?state=65%2068", "65 68"),
    ],
)
def test_a_dataset_address_becomes_the_sites_own(url: str, pageid: str) -> None:
    title = "What is the orthogonality thesis?"
    moved = feed_source({"n": 2, "id": "dataset-hash-1", "title": title, "url": url})
    assert moved == {
        "n": 2,
        "id": f"aisafety.info:{pageid}",
        "title": title,
        "url": question_url(pageid, title),
    }


@pytest.mark.parametrize(
    "url",
    [
        "https://aisafety.info/questions/6568/What-is-the-orthogonality-thesis",
        "https://aisafety.info/questions?state=6568",  # not the site's front page
        "https://evil.aisafety.info/?state=6568",
        "https://aisafety.info.evil.example/?state=6568",
        "https://arxiv.org/abs/1?state=6568",
        "https://aisafety.info?state=",
        "https://aisafety.info?notstate=6568",
        "",
    ],
)
def test_any_other_address_is_left_as_it_is(url: str) -> None:
    source = {"n": 1, "id": "x:1", "title": "T", "url": url}
    assert feed_source(source) is source


# Answers as the release before the feed stored them: two cite the dataset's aisafety.info addresses.
OLD_SOURCES = [
    [
        {
            "n": 1,
            "id": "abc",
            "title": "What is the orthogonality thesis?",
            "url": "https://aisafety.info?state=6568",
        },
        {"n": 2, "id": "arxiv:1", "title": "A paper", "url": "https://arxiv.org/abs/1?state=2"},
    ],
    [
        {
            "n": 1,
            "id": "def",
            "title": "What are mesa-optimizers?",
            "url": "http://www.aisafety.info/?state=8160",
        }
    ],
    [{"n": 1, "id": "arxiv:1", "title": "A paper", "url": "https://arxiv.org/abs/1?state=2"}],
    [],
]
NEW_SOURCES = [
    [
        {
            "n": 1,
            "id": "aisafety.info:6568",
            "title": "What is the orthogonality thesis?",
            "url": "https://aisafety.info/questions/6568/What-is-the-orthogonality-thesis",
        },
        OLD_SOURCES[0][1],
    ],
    [
        {
            "n": 1,
            "id": "aisafety.info:8160",
            "title": "What are mesa-optimizers?",
            "url": "https://aisafety.info/questions/8160/What-are-mesa-optimizers",
        }
    ],
    *OLD_SOURCES[2:],
]
BEFORE_FEED = 5  # the last migration of the release before the library log and the feed's addresses


@pytest.fixture(params=["sqlite", "postgres"])
def old_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A database as the release before the feed left it (migrations 1 to 5), with its answers; opened
    again as `FeedbackStore(**it)`."""
    if request.param == "postgres":
        import psycopg

        url = request.getfixturevalue("pg_schema")
        db: Any = psycopg.connect(url, autocommit=True)
        types = {"id": "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY", "real": "DOUBLE PRECISION"}
        mark, where = "%s", {"database_url": url}
    else:
        db = sqlite3.connect(tmp_path / "old.sqlite3", isolation_level=None)
        types = {"id": "INTEGER PRIMARY KEY AUTOINCREMENT", "real": "REAL"}
        mark, where = "?", {"path": tmp_path / "old.sqlite3"}
    db.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied REAL NOT NULL)")
    for version, script in MIGRATIONS[:BEFORE_FEED]:
        assert isinstance(script, str)
        for statement in script.format(**types).split(";"):
            if statement.strip():
                db.execute(statement)
        db.execute(f"INSERT INTO schema_migrations VALUES ({mark}, {mark})", (version, time.time()))
    for sources in OLD_SOURCES:
        db.execute(
            "INSERT INTO answers (created, community, platform, place, asker, question, answer, mode, sources) "
            f"VALUES ({mark}, 'slack:T1', 'slack', 'c', 'u', 'q', 'a', 'llm', {mark})",
            (time.time(), json.dumps(sources)),
        )
    db.close()
    yield where


def _read(where: dict[str, Any], query: str) -> list[tuple[Any, ...]]:
    """`query` on the database itself, not through a store (which would upgrade it)."""
    if "database_url" in where:
        import psycopg

        with psycopg.connect(where["database_url"]) as db:
            return db.execute(query).fetchall()
    with contextlib.closing(sqlite3.connect(where["path"])) as db:
        return db.execute(query).fetchall()


def _stored(where: dict[str, Any]) -> list[str]:
    return [r[0] for r in _read(where, "SELECT sources FROM answers ORDER BY id")]


def test_the_upgrade_cites_the_sites_own_addresses(old_database: dict[str, Any]) -> None:
    store = FeedbackStore(**old_database)
    assert store.schema_version() == MIGRATIONS[-1][0]
    assert [r.sources for r in store.rows(only_voted=False)][::-1] == NEW_SOURCES
    assert store.last_library_sync() is None and store.library_changes(0, time.time() + 1) == []
    store.close()
    assert _stored(old_database)[2] == json.dumps(OLD_SOURCES[2])  # no old address: not rewritten
    FeedbackStore(**old_database).close()  # opening again applies nothing twice


def test_the_python_step_is_part_of_the_one_upgrade_transaction(
    old_database: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A start that dies after the rewrite (here: a later step that fails) leaves the answers as they were."""
    monkeypatch.setattr(
        feedback_module, "MIGRATIONS", [*MIGRATIONS, (MIGRATIONS[-1][0] + 1, "THIS IS NOT SQL;")]
    )
    with pytest.raises(Exception, match=r"(?i)syntax"):
        FeedbackStore(**old_database)
    assert _read(old_database, "SELECT MAX(version) FROM schema_migrations") == [(BEFORE_FEED,)]
    assert _stored(old_database) == [json.dumps(s) for s in OLD_SOURCES]
    monkeypatch.setattr(feedback_module, "MIGRATIONS", MIGRATIONS)
    store = FeedbackStore(**old_database)
    assert [r.sources for r in store.rows(only_voted=False)][::-1] == NEW_SOURCES
    store.close()
