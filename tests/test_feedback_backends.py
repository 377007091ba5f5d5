"""The answers and votes store on both backends: SQLite (the default) and PostgreSQL (DATABASE_URL),
with versioned migrations that upgrade an existing database in place."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from bot.errors import StartupError
from bot.models import Answer, Source
from service.feedback import MIGRATIONS, FeedbackStore
from tests.conftest import cli, home_env, need

PG_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
LATEST = MIGRATIONS[-1][0]
ANSWER = Answer("An answer [1].", (Source(1, "a:1", "Title", "https://e.org/1"),), "llm")

# The schema as it was before migrations were versioned: a database created by an earlier release.
OLD_SCHEMA = """
CREATE TABLE answers (id {id}, created {real} NOT NULL, platform TEXT NOT NULL, place TEXT NOT NULL,
    asker TEXT NOT NULL, question TEXT NOT NULL, answer TEXT NOT NULL, mode TEXT NOT NULL, sources TEXT NOT NULL);
CREATE TABLE votes (answer_id INTEGER NOT NULL REFERENCES answers(id), voter TEXT NOT NULL,
    vote TEXT NOT NULL CHECK (vote IN ('up', 'down')), created {real} NOT NULL, PRIMARY KEY (answer_id, voter));
INSERT INTO answers (created, platform, place, asker, question, answer, mode, sources)
    VALUES ({now}, 'slack', 'C1', 'U1', 'an old question', 'an old answer', 'llm', '[]');
"""


def _pg_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
def pg_schema() -> Iterator[str]:
    """A DATABASE_URL whose tables live in a schema of this test's own, dropped afterwards."""
    if not _pg_reachable():
        need(
            "PostgreSQL at 127.0.0.1:5432",
            "start it, or set TEST_DATABASE_URL to a database the tests may use",
        )
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_URL, autocommit=True) as db:
        db.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{PG_URL}?options={quote(f'-csearch_path={schema}')}"
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as db:
            db.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=["sqlite", "postgres"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[object]:
    """A factory of stores on one database of the parametrised backend (several = several replicas)."""
    opened: list[FeedbackStore] = []
    if request.param == "postgres":
        url = request.getfixturevalue("pg_schema")

        def make(**kw: bool) -> FeedbackStore:
            opened.append(FeedbackStore(database_url=url, **kw))
            return opened[-1]
    else:

        def make(**kw: bool) -> FeedbackStore:
            opened.append(FeedbackStore(tmp_path / "f.sqlite3", **kw))
            return opened[-1]

    yield make
    for store in opened:
        store.close()


def test_answers_votes_retention_and_privacy_on_both(open_store) -> None:  # type: ignore[no-untyped-def]
    store: FeedbackStore = open_store()
    assert store.schema_version() == LATEST
    first = store.record_answer(
        platform="slack", community="slack:1", place="C1", asker="U1", question="q1?", answer=ANSWER
    )
    second = store.record_answer(
        platform="discord", community="discord:1", place="9", asker="7", question="q2?", answer=ANSWER
    )
    assert second > first
    assert store.record_vote(first, voter="U2", vote="up")
    assert store.record_vote(first, voter="U2", vote="down")  # voting again replaces the vote
    assert store.record_vote(first, voter="U3", vote="down")
    assert not store.record_vote(999_999, voter="U2", vote="up")
    rows = store.rows()
    assert [(r.answer_id, r.up, r.down) for r in rows] == [(first, 0, 2)]
    assert rows[0].sources == [{"n": 1, "id": "a:1", "title": "Title", "url": "https://e.org/1"}]
    assert [r.question for r in store.since(1)] == ["q1?", "q2?"]
    assert store.purge(1) == 0 and store.purge(-1) == 2 and store.since(30) == []

    private: FeedbackStore = open_store(store_questions=False)
    answer_id = private.record_answer(
        platform="slack", community="slack:1", place="C1", asker="U1", question="secret?", answer=ANSWER
    )
    row = next(r for r in private.since(1) if r.answer_id == answer_id)
    assert (row.question, row.answer, row.asker, row.mode) == ("", "", "", "llm")


def _record(store: FeedbackStore, question: str, answer: Answer = ANSWER, **where: str) -> int:
    """An answer recorded in Slack workspace 1's channel C1 (or where `where` says)."""
    at = {"platform": "slack", "community": "slack:1", "place": "C1", "asker": "U1"} | where
    return store.record_answer(question=question, answer=answer, **at)


def test_coverage_offtopic_and_channel_name_read_back_on_both(open_store) -> None:  # type: ignore[no-untyped-def]
    """The report's newer columns (a close call, an off-topic request, the channel's name) round-trip on
    both databases, and a private store keeps no channel name."""
    store: FeedbackStore = open_store()
    close = Answer("Close [1].", ANSWER.sources, "retrieval-only", coverage="close")
    offtopic = Answer("Not covered.", (), "abstain", coverage="not_covered", offtopic=True)
    for n, answer in enumerate((close, offtopic, ANSWER)):
        _record(store, f"q{n}?", answer, place_name="ai-safety")
    rows = sorted(store.since(1), key=lambda r: r.question)
    assert [(r.coverage, r.offtopic, r.mode, r.place_name) for r in rows] == [
        ("close", False, "retrieval-only", "ai-safety"),
        ("not_covered", True, "abstain", "ai-safety"),
        ("covered", False, "llm", "ai-safety"),
    ]
    private: FeedbackStore = open_store(store_questions=False)
    _record(private, "q?", close, community="slack:2", place="C2", place_name="secret-channel")
    (row,) = private.since(1, community="slack:2")
    assert (row.coverage, row.place_name) == ("close", "")


def test_a_vote_clicked_on_any_replica_counts_once(open_store) -> None:  # type: ignore[no-untyped-def]
    a: FeedbackStore = open_store()
    b: FeedbackStore = open_store()
    answer_id = a.record_answer(
        platform="slack", community="slack:1", place="C1", asker="U1", question="q?", answer=ANSWER
    )
    assert b.record_vote(answer_id, voter="U9", vote="up")
    assert a.record_vote(answer_id, voter="U9", vote="up")
    assert [(r.up, r.down) for r in b.rows()] == [(1, 0)]


def test_an_sqlite_database_from_an_earlier_release_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript(
            OLD_SCHEMA.format(id="INTEGER PRIMARY KEY AUTOINCREMENT", real="REAL", now=time.time())
        )
    store = FeedbackStore(path)
    assert store.schema_version() == LATEST
    assert [r.question for r in store.since(1)] == ["an old question"]
    store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT name FROM sqlite_master WHERE name = 'answers_created'").fetchone()
        assert [v for (v,) in db.execute("SELECT version FROM schema_migrations")] == [
            v for v, _ in MIGRATIONS
        ]
    FeedbackStore(path).close()  # opening again applies nothing twice


def test_a_postgresql_database_from_an_earlier_release_is_upgraded_in_place(pg_schema: str) -> None:
    import psycopg

    with psycopg.connect(pg_schema, autocommit=True) as db:
        for statement in OLD_SCHEMA.format(
            id="BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY", real="DOUBLE PRECISION", now=time.time()
        ).split(";"):
            if statement.strip():
                db.execute(statement)
    store = FeedbackStore(database_url=pg_schema)
    assert store.schema_version() == LATEST
    assert [r.question for r in store.since(1)] == ["an old question"]
    store.close()
    with psycopg.connect(pg_schema) as db:
        assert db.execute("SELECT 1 FROM pg_indexes WHERE indexname = 'answers_created'").fetchone()


def test_an_unreachable_database_is_one_line_without_the_password() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(StartupError) as caught:  # a service out of reach: exit status 1, not 2
        FeedbackStore(database_url=f"postgresql://bot:hunter2-secret@127.0.0.1:{port}/aisafety")
    message = str(caught.value)
    assert message.startswith(f"DATABASE_URL: cannot connect to PostgreSQL at 127.0.0.1:{port}/aisafety")
    assert "hunter2" not in message and "\n" not in message


def test_report_feedback_and_moving_an_sqlite_history_into_postgresql(
    pg_schema: str, tmp_path: Path, model_env: dict[str, str]
) -> None:
    old = FeedbackStore(tmp_path / "history.sqlite3")
    for i in range(3):
        answer_id = _record(old, f"question {i}?")
        old.record_vote(answer_id, voter="U2", vote="down" if i == 1 else "up")
    old.close()
    env = home_env(tmp_path, DATABASE_URL=pg_schema, **model_env)
    moved = cli(env, "move-history", "--from", str(tmp_path / "history.sqlite3"))
    assert moved.returncode == 0, moved.stderr
    assert (
        moved.stdout.strip()
        == f"Copied 3 answers and 3 votes from {tmp_path / 'history.sqlite3'} into PostgreSQL."
    )

    feedback = cli(env, "feedback", "--json")
    assert feedback.returncode == 0, feedback.stderr
    rows = json.loads(feedback.stdout)
    assert sorted((r["question"], r["up"], r["down"]) for r in rows) == [
        ("question 0?", 1, 0),
        ("question 1?", 0, 1),
        ("question 2?", 1, 0),
    ]
    report = cli(env, "report", "--format", "json")
    assert report.returncode == 0, report.stderr
    assert "question 1?" in report.stdout

    no_url = cli(home_env(tmp_path), "move-history")
    assert no_url.returncode == 2 and "DATABASE_URL" in no_url.stderr and "Traceback" not in no_url.stderr
