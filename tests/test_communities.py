"""The community key: every stored answer, vote and shared key carries the community a question came from;
rows from before it are resolved or stay unassigned (the operator's only); and one community's report
(page, JSON, every CSV table, Markdown) never shows another community's members' questions."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from bot.conversation import Conversation
from bot.models import DM, UNASSIGNED, Answer, Question, Source
from bot.observability import Observer
from bot.platform import SLOW_DOWN, THANKS, VOTE_LOST, PlatformOptions
from bot.ratelimit import RateLimiter, RecentKeys, RecentThreads
from retrieval.documents import ArticleChange
from service.admin import add_admin_routes
from service.feedback import MIGRATIONS, FeedbackStore
from service.report import TABLES, build_report, library_section, render, table_csv
from tests.test_admin import ARTICLES, TOKEN, _get, serve, toy_embed
from tests.test_feedback_backends import pg_schema  # noqa: F401  (a fixture)

SOURCE = Source(1, "aisafety.info:6568", "What is the orthogonality thesis?", "https://aisafety.info/q/6568")
# Each community's own question: a word in it tells where it came from.
ASKED = {
    "discord:111": "what is alphaword the orthogonality thesis?",
    "discord:222": "what is betaword the orthogonality thesis?",
    "slack:T333": "is gammaword corrigibility possible?",
    DM: "deltaword a private question about mesa optimizers",
    UNASSIGNED: "epsilonword an old question from before communities",
}
MARKS = {c: next(w for w in q.split() if w.endswith("word")) for c, q in ASKED.items()}


def _fill(store: FeedbackStore) -> None:
    """Each community's question twice (answered, then not covered and voted down)."""
    for community, question in ASKED.items():
        platform = "slack" if community.startswith("slack") else "discord"
        store.record_answer(
            platform=platform,
            community=community,
            place=f"{platform}:c",
            asker="u",
            question=question,
            answer=Answer("x [1]", (SOURCE,), "llm"),
        )
        bad = store.record_answer(
            platform=platform,
            community=community,
            place=f"{platform}:c",
            asker="u",
            question=question,
            answer=Answer("no", (), "abstain"),
        )
        assert store.record_vote(bad, voter="v", vote="down")


class Core:
    """Enough of the answer core for the conversation's own policy."""

    observer = Observer()

    async def stream(self, question: Question, *, found: list[Answer]) -> AsyncIterator[str | Answer]:
        yield Answer("An answer [1].", (SOURCE,), "llm")


class Quiet:
    async def start(self) -> None: ...

    async def preview(self, text: str) -> None: ...

    async def final(self, answer: Answer, answer_id: int | None) -> None: ...

    async def apologise(self, answer: Answer | None) -> None: ...

    async def say(self, text: str) -> None:
        self.said = text


def _conversation(store: FeedbackStore, **options: Any) -> Conversation:
    return Conversation.in_process(
        "discord",
        core=Core(),  # type: ignore[arg-type]
        store=store,
        options=PlatformOptions(**options),
        usage="ask me",
    )


async def test_the_community_is_stored_with_every_answer_and_vote(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "f.sqlite3")
    conversation = _conversation(store, rate_limit_per_minute=0)
    await conversation.answer(Question("what is it?", asker="discord:1", community="discord:111"), Quiet())
    await conversation.answer(Question("and in private?", asker="discord:1"), Quiet())  # no server: dm
    assert conversation.writer is not None and await conversation.writer.flush(5) == 0
    rows = store.rows(only_voted=False)
    assert sorted(r.community for r in rows) == ["discord:111", DM]
    in_server = next(r for r in rows if r.community == "discord:111")
    # A vote counts only from the community the answer was given in.
    assert (
        await conversation.vote("discord:222", in_server.answer_id, voter="discord:9", vote="up") == VOTE_LOST
    )
    assert (
        await conversation.vote("discord:111", in_server.answer_id, voter="discord:9", vote="up")
        == THANKS["up"]
    )
    with store._transaction() as db:
        votes = store._execute(db, "SELECT community FROM votes").fetchall()
    assert [v[0] for v in votes] == ["discord:111"]
    with pytest.raises(ValueError):
        store.record_answer(
            platform="discord", place="p", asker="a", question="q", answer=Answer("", (), "llm"), community=""
        )
    store.close()


async def test_rate_limits_deduplication_and_threads_are_kept_per_community() -> None:
    conversation = _conversation(FeedbackStore(), rate_limit_per_minute=1)
    conversation.limiter = RateLimiter(1)
    conversation.dedupe, conversation.threads = RecentKeys(), RecentThreads()
    reply = Quiet()
    # The same member id in two communities: two members, each with their own minute.
    assert await conversation.answer(Question("one?", asker="u1", community="slack:A"), reply) is not None
    assert await conversation.answer(Question("two?", asker="u1", community="slack:B"), reply) is not None
    assert await conversation.answer(Question("three?", asker="u1", community="slack:A"), reply) is None
    assert reply.said == SLOW_DOWN
    # An event id or a thread seen in one community says nothing about another.
    assert await conversation.first_delivery("slack:A", "Ev1", "C1:1.0")
    assert not await conversation.first_delivery("slack:A", "Ev1")
    assert await conversation.first_delivery("slack:B", "Ev1", "C1:1.0")
    await conversation.remember_thread("slack:A", "C1", "1.0", True)
    assert await conversation.thread_is_ours("slack:A", "C1", "1.0") is True
    assert await conversation.thread_is_ours("slack:B", "C1", "1.0") is None


def _version_3_database(path: Path) -> None:
    """A database as the release before communities left it (migrations 1 to 3)."""
    db = sqlite3.connect(path)
    types = {"id": "INTEGER PRIMARY KEY AUTOINCREMENT", "real": "REAL"}
    db.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied REAL NOT NULL)")
    for version, script in MIGRATIONS[:3]:
        db.executescript(script.format(**types))
        db.execute("INSERT INTO schema_migrations VALUES (?, ?)", (version, time.time()))
    for platform, place in (
        ("slack", "slack:C0001"),
        ("slack", "slack:D0002"),  # a direct message
        ("discord", "discord:9001"),
        ("discord", "discord:9002"),
    ):
        cur = db.execute(
            "INSERT INTO answers (created, platform, place, asker, question, answer, mode, sources) "
            "VALUES (?, ?, ?, 'u', ?, 'a', 'llm', '[]')",
            (time.time(), platform, place, f"asked in {place}"),
        )
        db.execute("INSERT INTO votes VALUES (?, 'v', 'up', ?)", (cur.lastrowid, time.time()))
    db.commit()
    db.close()


def test_an_older_history_is_migrated_then_resolved_and_the_rest_stays_unassigned(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    _version_3_database(path)
    store = FeedbackStore(path)
    assert store.schema_version() == MIGRATIONS[-1][0]
    by_place = {r.place: r.community for r in store.rows(only_voted=False)}
    assert by_place == {
        "slack:C0001": UNASSIGNED,
        "slack:D0002": DM,  # known at once: a D... channel is a direct message
        "discord:9001": UNASSIGNED,
        "discord:9002": UNASSIGNED,
    }
    assert store.unassigned_places("discord") == ["discord:9001", "discord:9002"]
    # What the running bot's platforms found: Slack's workspace, one Discord channel (the other is gone).
    assert store.assign("slack", {"slack:C0001": "slack:T0001"}) == 1
    assert store.assign("discord", {"discord:9001": "discord:42"}) == 1
    assert store.unassigned_places("discord") == ["discord:9002"]
    by_place = {r.place: r.community for r in store.rows(only_voted=False)}
    assert by_place["slack:C0001"] == "slack:T0001" and by_place["discord:9001"] == "discord:42"
    assert by_place["discord:9002"] == UNASSIGNED
    with store._transaction() as db:
        votes = dict(
            store._execute(
                db, "SELECT a.place, v.community FROM votes v JOIN answers a ON a.id = v.answer_id"
            ).fetchall()
        )
    assert votes == {
        "slack:C0001": "slack:T0001",
        "slack:D0002": DM,
        "discord:9001": "discord:42",
        "discord:9002": UNASSIGNED,
    }
    # The unassigned rows are the operator's only.
    assert [r.place for r in store.since(1, community=UNASSIGNED)] == ["discord:9002"]
    assert {r.community for r in store.since(1)} == {"slack:T0001", DM, "discord:42", UNASSIGNED}
    store.close()


def test_the_postgresql_migration_adds_the_community_too(pg_schema: str) -> None:  # noqa: F811
    import psycopg

    store = FeedbackStore(database_url=pg_schema)
    store.close()
    with psycopg.connect(pg_schema, autocommit=True) as db:
        db.execute("DELETE FROM schema_migrations WHERE version >= 4")
        db.execute("ALTER TABLE answers DROP COLUMN community")
        db.execute("ALTER TABLE votes DROP COLUMN community")
        db.execute("ALTER TABLE answers DROP COLUMN coverage, DROP COLUMN offtopic, DROP COLUMN place_name")
        db.execute("DROP TABLE written_topics")
        db.execute(
            "CREATE TABLE IF NOT EXISTS claims (name TEXT PRIMARY KEY, claimed DOUBLE PRECISION NOT NULL)"
        )
        db.execute("DROP TABLE leases")
        for place in ("slack:C1", "slack:D2"):
            db.execute(
                "INSERT INTO answers (created, platform, place, asker, question, answer, mode, sources) "
                "VALUES (%s, 'slack', %s, 'u', 'q', 'a', 'llm', '[]')",
                (time.time(), place),
            )
    store = FeedbackStore(database_url=pg_schema)
    assert {r.place: r.community for r in store.rows(only_voted=False)} == {
        "slack:C1": UNASSIGNED,
        "slack:D2": DM,
    }
    assert store.assign("slack", {"slack:C1": "slack:T1"}) == 1
    assert store.communities() == [DM, "slack:T1"]
    store.close()


def _texts(report: dict[str, Any]) -> list[str]:
    """Every way the report leaves the bot: JSON, Markdown, the whole CSV and each table's CSV."""
    return [
        json.dumps(report),
        render(report, "md"),
        render(report, "csv"),
        *(table_csv(report, t) for t in TABLES),
    ]


@pytest.mark.parametrize("community", ["discord:111", "discord:222", "slack:T333"])
def test_a_community_report_shows_only_that_community_in_every_format(tmp_path: Path, community: str) -> None:
    store = FeedbackStore(tmp_path / "f.sqlite3")
    _fill(store)
    # The library's log is public and the same in every view: it is shown, and names no community.
    store.record_library_sync(
        "changed",
        [
            ArticleChange(
                "aisafety.info:9001", "zetaword new article", "https://aisafety.info/q/9001", "added"
            )
        ],
        articles=3,
    )
    report = build_report(
        store.since(1, community=community),
        embed=toy_embed,
        articles=ARTICLES,
        since_days=1,
        community=community,
        library=library_section(store, 1, len(ARTICLES)),
    )
    assert report["answers"] == 2 and report["community"] == community
    assert MARKS[community] in json.dumps(report) and MARKS[community] in render(report, "md")
    views = (json.dumps(report), render(report, "md"), render(report, "csv"), table_csv(report, "library"))
    assert all("zetaword" in view for view in views)
    for text in _texts(report):
        for other, mark in MARKS.items():
            if other != community:
                assert mark not in text, (other, text[:200])
    # Mixing another community's rows into a community report is refused, not shown.
    with pytest.raises(ValueError):
        build_report(store.since(1), embed=toy_embed, articles={}, since_days=1, community=community)
    store.close()


def test_the_operators_view_shows_every_community_with_its_name(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "f.sqlite3")
    _fill(store)
    report = build_report(store.since(1), embed=toy_embed, articles=ARTICLES, since_days=1)
    assert report["community"] is None and report["answers"] == 2 * len(ASKED)
    # The same question in two servers is two groups, each naming its server.
    asked = {(g["community"], g["count"]) for g in report["most_asked"]}
    assert asked == {(c, 2) for c in ASKED}
    rows = list(csv.reader(io.StringIO(table_csv(report, "abstained"))))
    assert rows[0][0] == "community" and {r[0] for r in rows[1:]} == set(ASKED)
    assert all(f"[{c}]" in render(report, "md") for c in ASKED)
    store.close()


async def test_the_report_page_with_a_community_shows_only_it_in_every_view(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "f.sqlite3")
    _fill(store)

    async def report(days: float, community: str | None) -> dict[str, Any]:
        return build_report(
            store.since(days, community=community),
            embed=toy_embed,
            articles=ARTICLES,
            since_days=days,
            community=community,
        )

    app = web.Application()
    add_admin_routes(app, token=TOKEN, report=report)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async for url in serve(app):
        for community in ("discord:111", "slack:T333"):
            query = f"days=1&community={community}"
            views = [f"/admin/?{query}", f"/admin/report.json?{query}"]
            views += [f"/admin/csv/{t}.csv?{query}" for t in TABLES]
            for view in views:
                status, body, _ = await _get(url + view, headers=auth)
                assert status == 200, (view, body)
                for other, mark in MARKS.items():
                    if other != community:
                        assert mark not in body, (view, other)
            status, page, _ = await _get(f"{url}/admin/?{query}", headers=auth)
            assert MARKS[community] in page and f"What {community} asked" in page
            assert f"community={community}" in page  # the period form and CSV links keep the choice
        status, everything, _ = await _get(f"{url}/admin/?days=1", headers=auth)
        assert status == 200 and all(mark in everything for mark in MARKS.values())
        # Each community in the operator's view links to its own report, which links back.
        assert '<a href="/admin/?days=1&amp;community=discord:111">discord:111</a>' in everything
        assert '<a href="/admin/?days=1">Every community</a>' in page
        status, body, _ = await _get(f"{url}/admin/?community=%3Cscript%3E", headers=auth)
        assert status == 400 and "<script>" not in body
        status, body, _ = await _get(f"{url}/admin/report.json?community=discord:111")
        assert status == 401 and "alphaword" not in body
    store.close()


def test_the_sqlite_upgrade_is_one_step_and_two_processes_may_start_it_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    import service.feedback as feedback_module

    # A start that dies half-way (here: a statement that fails after the ALTER TABLE) leaves the old schema.
    path = tmp_path / "old.sqlite3"
    _version_3_database(path)
    broken = [*MIGRATIONS[:3], (4, MIGRATIONS[3][1] + "\nTHIS IS NOT SQL;")]
    monkeypatch.setattr(feedback_module, "MIGRATIONS", broken)
    with pytest.raises(sqlite3.OperationalError):
        FeedbackStore(path)
    monkeypatch.setattr(feedback_module, "MIGRATIONS", MIGRATIONS)
    db = sqlite3.connect(path)
    assert "community" not in [c[1] for c in db.execute("PRAGMA table_info(answers)")]
    assert db.execute("SELECT MAX(version) FROM schema_migrations").fetchone() == (3,)
    db.close()
    # Two processes (here: two connections on two threads) open the old file together.
    errors: list[BaseException] = []

    def open_it() -> None:
        try:
            FeedbackStore(path).close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    store = FeedbackStore(path)
    assert store.schema_version() == MIGRATIONS[-1][0] and len(store.rows(only_voted=False)) == 4
    store.close()


async def test_votes_on_older_answers_count_and_hand_offs_before_communities_stay_done(
    tmp_path: Path,
) -> None:
    from bot.platform import HANDOFF_ALREADY, HANDOFF_ASKED
    from service.lease import SqlLeases

    path = tmp_path / "old.sqlite3"
    _version_3_database(path)
    db = sqlite3.connect(path)
    db.execute("INSERT INTO claims (name, claimed) VALUES ('handoff:discord:9001', 1.0)")
    db.commit()
    db.close()
    store = FeedbackStore(path)
    conversation = Conversation.in_process(
        "discord",
        core=Core(),  # type: ignore[arg-type]
        store=store,
        options=PlatformOptions(rate_limit_per_minute=0, handoff="777"),
        usage="",
        leases=SqlLeases(store),
    )
    old = next(r for r in store.rows(only_voted=False) if r.place == "discord:9001")
    assert old.community == UNASSIGNED
    # An answer from before communities takes a member's vote (it is the only way to reach it).
    assert (
        await conversation.vote("discord:42", old.answer_id, voter="discord:7", vote="down") == THANKS["down"]
    )

    calls: list[str] = []

    async def call(role: str) -> None:
        calls.append("pinged")

    # The thread was handed off by the previous release (whole threads then): the moderators are not
    # called again there. Elsewhere, once per answer.
    assert (
        await conversation.handoff("discord:42", "discord:7", "9001:55", call, thread="9001")
        == HANDOFF_ALREADY
    )
    assert (
        await conversation.handoff("discord:42", "discord:7", "9002:56", call, thread="9002") == HANDOFF_ASKED
    )
    assert (
        await conversation.handoff("discord:42", "discord:8", "9002:56", call, thread="9002")
        == HANDOFF_ALREADY
    )
    assert calls == ["pinged"]
    store.close()


async def test_a_stop_while_the_moderators_are_called_leaves_the_thread_handed_off() -> None:
    import asyncio

    from bot.platform import HANDOFF_ALREADY

    conversation = _conversation(FeedbackStore(), rate_limit_per_minute=0, handoff="777")
    started = asyncio.Event()

    async def slow_call(role: str) -> None:
        started.set()
        await asyncio.sleep(30)

    task = asyncio.create_task(conversation.handoff("discord:42", "discord:7", "9001", slow_call))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    async def call(role: str) -> None:
        raise AssertionError("the moderators were called twice")

    assert await conversation.handoff("discord:42", "discord:8", "9001", call) == HANDOFF_ALREADY
