"""The answers the bot gave and the 👍 / 👎 they got: in a local SQLite file the deployment keeps, or
in PostgreSQL (`DATABASE_URL`) when several replicas share them.

Shared by every platform: an adapter records each answer it posts and each vote on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import re
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

from bot.errors import ConfigError, StartupError, StateClosed, StateTimeout
from bot.models import DM, UNASSIGNED, Answer, Question
from retrieval.aisafety_info import SOURCE as AISAFETY_INFO
from retrieval.aisafety_info import question_url
from retrieval.documents import ArticleChange

# Stored question text is capped: the core refuses longer questions anyway, and the database should not
# grow by whatever a member pastes.
MAX_STORED_CHARS = 4000
# How long a command such as `report` waits for the running bot's write to finish.
BUSY_TIMEOUT_S = 10.0
# The longest any one database call may take before the caller goes on without it (DATABASE_TIMEOUT_S):
# a hung server (a full disk, a lock, a frozen machine) must never hold an answer.
DATABASE_TIMEOUT_S = 5.0
# Database calls run on threads of their own: a hung database fills these, never the threads searches use.
DATABASE_THREADS = 4


class DatabaseTimeout(StateTimeout):
    """The answers database did not answer within DATABASE_TIMEOUT_S (another call still holds it)."""


T = TypeVar("T")
_log = logging.getLogger(__name__)
# The longest `forget` waits for the copies kept outside the database (a scan of Redis's keys).
FORGET_COPIES_S = 60.0

MIGRATION_LOCK = 0x61697361  # PostgreSQL advisory lock key held while migrating

# What a library sync ended as (`record_library_sync`); the first two are successes.
SYNC_OUTCOMES = ("changed", "unchanged", "refused", "failed")
SYNCED = SYNC_OUTCOMES[:2]

# Runs one statement of a migration's transaction, with `?` placeholders on both databases.
Run = Callable[[str, tuple[Any, ...]], Any]
# A migration: SQL statements separated by `;`, or a Python step given the transaction's `Run`.
Migration = str | Callable[[Run], None]

# aisafety.info's addresses as the Alignment Research Dataset wrote them,
# `https://aisafety.info?state=<pageid>` (with or without `/` and `www.`, http too); the pageid is the
# `state` value, up to `&` or `#`.
_DATASET_URL = re.compile(r"^https?://(?:www\.)?aisafety\.info/?\?(?:[^#]*&)?state=([^&#]+)", re.IGNORECASE)


def feed_source(source: dict[str, Any]) -> dict[str, Any]:
    """A cited source in the site's own form when it was cited from the dataset's copy of aisafety.info:
    its id `aisafety.info:<pageid>` and its address `/questions/<pageid>/<slug>`, as the feed gives them.
    Any other source is returned as it is."""
    found = _DATASET_URL.match(str(source.get("url", "")))
    if found is None:
        return source
    pageid = unquote(found.group(1))
    return source | {
        "id": f"{AISAFETY_INFO}:{pageid}",
        "url": question_url(pageid, str(source.get("title", ""))),
    }


def _cite_the_feed(run: Run) -> None:
    """Answers stored before the library read aisafety.info's feed link the site's pages as the feed
    does, so the report counts an article's citations under one id and no link goes to the old site."""
    for answer_id, stored in run(
        "SELECT id, sources FROM answers WHERE sources LIKE ?", ("%state=%",)
    ).fetchall():
        sources = json.loads(stored)
        if not isinstance(sources, list):
            continue
        moved = [feed_source(s) if isinstance(s, dict) else s for s in sources]
        if moved != sources:
            run("UPDATE answers SET sources = ? WHERE id = ?", (json.dumps(moved), answer_id))


JOURNAL_KEEP_S = 86400.0  # done journal entries are kept a day (service/journal.py), then purged


# Versioned migrations: each runs once, in order, in one transaction, and is recorded in
# schema_migrations; a database from before this table existed is upgraded in place (version 1 is the
# schema it already has, created only where missing). {id} and {real} are the dialect's column types.
MIGRATIONS: list[tuple[int, Migration]] = [
    (
        1,
        """
CREATE TABLE IF NOT EXISTS answers (
    id {id},
    created {real} NOT NULL,
    platform TEXT NOT NULL,
    place TEXT NOT NULL,
    asker TEXT NOT NULL,
    question TEXT NOT NULL,
    answer TEXT NOT NULL,
    mode TEXT NOT NULL,
    sources TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS votes (
    answer_id INTEGER NOT NULL REFERENCES answers(id),
    voter TEXT NOT NULL,
    vote TEXT NOT NULL CHECK (vote IN ('up', 'down')),
    created {real} NOT NULL,
    PRIMARY KEY (answer_id, voter)
);
""",
    ),
    # Retention and `report --since` select by age: an index instead of a scan of every answer.
    (2, "CREATE INDEX IF NOT EXISTS answers_created ON answers (created);"),
    # Things done once whichever replica or restart asks: a digest's period, a thread's hand-off.
    (3, "CREATE TABLE IF NOT EXISTS claims (name TEXT PRIMARY KEY, claimed {real} NOT NULL);"),
    # The community each answer and vote belongs to (`discord:<guild>`, `slack:<team>`, `dm`). Rows from
    # before it are `unassigned` (visible to the operator only) until the running bot resolves them;
    # a Slack direct message's channel id starts with D, so those are known at once.
    (
        4,
        """
ALTER TABLE answers ADD COLUMN community TEXT NOT NULL DEFAULT 'unassigned';
ALTER TABLE votes ADD COLUMN community TEXT NOT NULL DEFAULT 'unassigned';
UPDATE answers SET community = 'dm' WHERE platform = 'slack' AND substr(place, 1, 7) = 'slack:D';
UPDATE votes SET community = 'dm' WHERE answer_id IN (SELECT id FROM answers WHERE community = 'dm');
CREATE INDEX IF NOT EXISTS answers_community ON answers (community, created);
""",
    ),
    # One lease table for work done by one replica at a time or once ever (`service/lease.py`): a lease
    # with no expiry is done. The claims (digest periods, hand-offs) are copied into it as done; the
    # claims table stays for replicas of the previous release still running during a rolling upgrade.
    (
        5,
        """
CREATE TABLE IF NOT EXISTS leases (name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires {real});
INSERT INTO leases (name, holder, expires) SELECT name, 'claimed', NULL FROM claims;
""",
    ),
    # The library's change log, shared by every replica: each sync (its outcome, the articles after it,
    # why it was refused or failed) and each article it added, changed or removed. The report, the
    # digest and the periodic sync read them by time.
    (
        6,
        """
CREATE TABLE IF NOT EXISTS library_changes (
    id {id},
    time {real} NOT NULL,
    article_id TEXT NOT NULL,
    title TEXT NOT NULL,
    url TEXT NOT NULL,
    change TEXT NOT NULL CHECK (change IN ('added', 'changed', 'removed'))
);
CREATE INDEX IF NOT EXISTS library_changes_time ON library_changes (time);
CREATE TABLE IF NOT EXISTS library_syncs (
    id {id},
    time {real} NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('changed', 'unchanged', 'refused', 'failed')),
    articles INTEGER NOT NULL,
    reason TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS library_syncs_time ON library_syncs (time);
""",
    ),
    # aisafety.info's articles now come from the site's feed: answers that cited the dataset's copy
    # (`https://aisafety.info?state=<pageid>`) cite the same article as the feed names it.
    (7, _cite_the_feed),
    # Answer ids are given by the bot before it posts (the answer is posted first and stored after):
    # 63-bit numbers, which PostgreSQL's INTEGER votes.answer_id cannot hold (SQLite's INTEGER can).
    (8, "{votes_answer_bigint};"),
    # The journal of questions being answered (`service/journal.py`): claimed on arrival with a lease,
    # each side effect recorded, done when the answer is posted; an expired unfinished claim is
    # continued by the next process. Done claims are kept a day.
    (
        9,
        """
CREATE TABLE IF NOT EXISTS journal (
    key TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires {real},
    created {real} NOT NULL,
    finished {real},
    entry TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS journal_expires ON journal (expires);
""",
    ),
    # What the report tells moderators: how well the library covered each question (`covered`, `close`,
    # `not_covered`; NULL before this), whether it was off-topic (declined by the gate, or far from every
    # article), the channel's name where the client knew it, and the topics a moderator marked written.
    (
        10,
        """
ALTER TABLE answers ADD COLUMN coverage TEXT;
ALTER TABLE answers ADD COLUMN offtopic INTEGER NOT NULL DEFAULT 0;
ALTER TABLE answers ADD COLUMN place_name TEXT NOT NULL DEFAULT '';
CREATE TABLE IF NOT EXISTS written_topics (
    id {id},
    community TEXT NOT NULL,
    question TEXT NOT NULL,
    created {real} NOT NULL
);
""",
    ),
    # Each community's own settings (`bot/community.py`), set by its admins in the platform: one JSON
    # object a community; `updated` lets every replica's cache see a change within seconds.
    (
        11,
        """
CREATE TABLE IF NOT EXISTS community_settings (
    community TEXT PRIMARY KEY,
    settings TEXT NOT NULL,
    updated {real} NOT NULL
);
CREATE INDEX IF NOT EXISTS community_settings_updated ON community_settings (updated);
""",
    ),
    # Slack workspaces that installed the app by OAuth (`adapters/slack/oauth.py`): one row a workspace
    # (or org install), its bot token (rotating when the app uses token rotation), and the OAuth flow's
    # one-time states.
    (
        12,
        """
CREATE TABLE IF NOT EXISTS slack_installations (
    team_id TEXT NOT NULL,
    enterprise_id TEXT NOT NULL DEFAULT '',
    installation TEXT NOT NULL,
    installed {real} NOT NULL,
    PRIMARY KEY (enterprise_id, team_id)
);
CREATE TABLE IF NOT EXISTS slack_oauth_states (state TEXT PRIMARY KEY, expires {real} NOT NULL);
""",
    ),
]


@dataclass(frozen=True)
class FeedbackRow:
    answer_id: int
    platform: str
    place: str
    asker: str
    question: str
    answer: str
    mode: str
    sources: list[dict[str, object]]
    up: int
    down: int
    created: float = 0.0  # seconds since the epoch
    community: str = UNASSIGNED
    coverage: str | None = None  # covered, close, not_covered; None for answers stored before it was
    offtopic: bool = False  # declined by the gate, or far from every article
    place_name: str = ""  # the channel's name, when the client knew it and questions are stored

    def to_json(self) -> dict[str, object]:
        return dict(self.__dict__)


class FeedbackStore:
    """Small and synchronous; callers on an event loop run it in a worker thread. SQLite at `path` (the
    default), or PostgreSQL when `database_url` is given (`DATABASE_URL`, for several replicas)."""

    def __init__(
        self,
        path: Path | str = ":memory:",
        *,
        store_questions: bool = True,
        database_url: str | None = None,
        timeout_s: float = DATABASE_TIMEOUT_S,
    ):
        self.path = Path(path)
        self.store_questions = store_questions
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(DATABASE_THREADS, thread_name_prefix="answers-db")
        self._url = database_url
        self._forget_hooks: list[Callable[[str], Awaitable[object]]] = []
        self._db: Any = self._connect_postgres(database_url) if database_url else self._open(str(path))
        self._migrate()

    @property
    def postgres(self) -> bool:
        return self._url is not None

    def _open(self, path: str) -> sqlite3.Connection:
        """Open (and create) the database, or say in one line what is wrong with `FEEDBACK_DB`."""

        def bad(reason: str) -> ConfigError:
            return ConfigError(
                f"FEEDBACK_DB={path} {reason}; set FEEDBACK_DB to a file path in a folder the bot can write to"
            )

        if path != ":memory:":
            if self.path.is_dir():
                raise bad("is a folder, not a file")
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise bad(f"cannot be created ({exc.strerror or exc})") from None
        db: sqlite3.Connection | None = None
        try:
            db = sqlite3.connect(path, check_same_thread=False, timeout=BUSY_TIMEOUT_S)
            db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            if path != ":memory:":
                # Readers (`report`, `feedback`) and the running bot's writes do not block each other.
                db.execute("PRAGMA journal_mode=WAL")
        except sqlite3.DatabaseError as exc:
            if db is not None:
                db.close()
            message = str(exc)
            if "not a database" in message:
                raise bad("is not an SQLite database (another kind of file is there)") from None
            if "readonly" in message or "unable to open" in message:
                raise bad(f"cannot be written ({message})") from None
            raise bad(f"cannot be used ({message})") from None
        return db

    def _connect_postgres(self, url: str) -> Any:
        import psycopg  # only with DATABASE_URL

        try:
            # Keepalives find a dead server or a cut network; the server ends a statement that runs too
            # long or waits on a lock. (A frozen server answers neither: callers time out themselves.)
            db = psycopg.connect(
                url,
                autocommit=True,
                connect_timeout=max(1, round(self.timeout_s)),
                keepalives=1,
                keepalives_idle=10,
                keepalives_interval=5,
                keepalives_count=3,
            )
            # Set on the session, not through `options`, which would replace the URL's own.
            ms = round(self.timeout_s * 1000)
            db.execute(f"SET statement_timeout = {ms}")
            db.execute(f"SET lock_timeout = {ms}")
            return db
        except psycopg.Error as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            # A service that cannot be reached (or refuses the credentials), as for Qdrant, Discord and
            # Slack: exit status 1, not a bad setting's 2.
            raise StartupError(
                f"DATABASE_URL: cannot connect to PostgreSQL at {database_where(url)} ({redact(reason, url)}); "
                "check the host, port, database name and credentials"
            ) from None

    # -- the SQL both databases run ---------------------------------------------------------------
    def _sql(self, query: str) -> str:
        return query.replace("?", "%s") if self.postgres else query

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """The connection, waited for at most `timeout_s`: a call stuck on a hung server holds it, and
        the calls behind it fail in time instead of queueing for ever."""
        if not self._lock.acquire(timeout=self.timeout_s):
            raise DatabaseTimeout(f"the answers database did not answer within {self.timeout_s:g} s")
        try:
            yield
        finally:
            self._lock.release()

    async def run(self, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`call` on the database's own threads, waited for at most `timeout_s` (`DatabaseTimeout`)."""
        loop = asyncio.get_running_loop()
        try:
            work = loop.run_in_executor(self._pool, functools.partial(call, *args, **kwargs))
        except RuntimeError as exc:  # the pool was shut down: the store is closed
            raise StateClosed("the answers database is closed") from exc
        try:
            async with asyncio.timeout(self.timeout_s):
                return await work
        except TimeoutError:
            raise DatabaseTimeout(
                f"the answers database did not answer within {self.timeout_s:g} s"
            ) from None

    def probe(self) -> None:
        """One round trip (the health check's)."""
        with self._transaction() as db:
            self._execute(db, "SELECT 1").fetchone()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Any]:
        """One transaction; with PostgreSQL a lost connection is opened again once before it fails."""
        with self._locked():
            if not self.postgres:
                with self._db:
                    yield self._db
                return
            import psycopg

            if self._db.closed or self._db.broken:
                assert self._url is not None
                self._db = self._connect_postgres(self._url)
            try:
                with self._db.transaction():
                    yield self._db
            except psycopg.OperationalError:
                self._db.close()
                raise

    def _execute(self, db: Any, query: str, params: tuple[Any, ...] = ()) -> Any:
        return db.execute(self._sql(query), params)

    @contextlib.contextmanager
    def _migration_transaction(self) -> Iterator[Any]:
        """The migrations' one transaction. SQLite's module commits DDL (ALTER TABLE) at once unless a
        transaction was begun by hand: BEGIN IMMEDIATE makes the whole upgrade one step (a kill half-way
        leaves the old schema) and lets two processes opening an old file upgrade it one after another."""
        if self.postgres:
            with self._transaction() as db:
                yield db
            return
        with self._lock:
            db = self._db
            level = db.isolation_level
            db.isolation_level = None  # no implicit transactions: this one is begun and ended here
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    yield db
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
            finally:
                db.isolation_level = level

    def _migrate(self) -> None:
        types = (
            {
                "id": "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
                "real": "DOUBLE PRECISION",
                "votes_answer_bigint": "ALTER TABLE votes ALTER COLUMN answer_id TYPE BIGINT",
            }
            if self.postgres
            else {"id": "INTEGER PRIMARY KEY AUTOINCREMENT", "real": "REAL", "votes_answer_bigint": ""}
        )
        with self._migration_transaction() as db:
            if self.postgres:
                # Replicas starting together migrate one after another (and CREATE TABLE IF NOT EXISTS
                # is not safe against itself in PostgreSQL): one lock for the whole transaction.
                self._execute(db, "SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK,))
            self._execute(
                db,
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied REAL NOT NULL)",
            )
            row = self._execute(db, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()
            current = int(row[0])
            for version, step in MIGRATIONS:
                if version <= current:
                    continue
                if callable(step):
                    step(functools.partial(self._execute, db))
                else:
                    for statement in step.format(**types).split(";"):
                        if statement.strip():
                            self._execute(db, statement)
                self._execute(
                    db,
                    "INSERT INTO schema_migrations (version, applied) VALUES (?, ?)",
                    (version, time.time()),
                )

    def schema_version(self) -> int:
        with self._transaction() as db:
            return int(
                self._execute(db, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()[0]
            )

    def record_answer(
        self,
        *,
        platform: str,
        place: str,
        asker: str,
        question: str,
        answer: Answer,
        community: str,
        answer_id: int | None = None,
        place_name: str = "",
    ) -> int:
        """Store an answer under its community (its question and text only when questions may be stored);
        returns its id: `answer_id` when the bot gave it one before posting (storing it again is a no-op,
        so a write retried after a time-out that did land is harmless), else a new one."""
        if not community:
            raise ValueError("an answer is stored under its community (discord:<guild>, slack:<team> or dm)")
        sources = [{"n": s.n, "id": s.id, "title": s.title, "url": s.url} for s in answer.sources]
        keep = self.store_questions
        return self._insert_answer(
            answer_id,
            time.time(),
            community,
            platform,
            place if keep else "",
            asker if keep else "",
            question[:MAX_STORED_CHARS] if keep else "",
            answer.text if keep else "",
            answer.mode,
            json.dumps(sources),
            answer.coverage,
            int(answer.offtopic),
            place_name[:200] if keep else "",
        )

    def _insert_answer(self, answer_id: int | None, *values: Any) -> int:
        columns = (
            "created, community, platform, place, asker, question, answer, mode, sources, coverage, "
            "offtopic, place_name"
        )
        marks = ", ".join("?" * len(values))
        with self._transaction() as db:
            if answer_id is None:
                cur = self._execute(
                    db, f"INSERT INTO answers ({columns}) VALUES ({marks}) RETURNING id", values
                )
                return int(cur.fetchone()[0])
            self._execute(
                db,
                f"INSERT INTO answers (id, {columns}) VALUES (?, {marks}) ON CONFLICT (id) DO NOTHING",
                (answer_id, *values),
            )
            return answer_id

    async def save(
        self, platform: str, question: Question, answer: Answer, answer_id: int | None = None
    ) -> int:
        """`record_answer` from an event loop, on the database's own threads, within `timeout_s`."""
        return await self.run(
            self.record_answer,
            platform=platform,
            place=question.place,
            asker=question.asker,
            question=question.text,
            answer=answer,
            community=question.community,
            answer_id=answer_id,
            place_name=question.place_name,
        )

    def record_vote(
        self, answer_id: int, *, voter: str, vote: str, community: str | None = None, at: float | None = None
    ) -> bool:
        """A member's vote on an answer of their community (None: any, for copying a history); voting
        again replaces their vote. False if there is no such answer in that community."""
        if vote not in ("up", "down"):
            raise ValueError(f"unknown vote {vote!r}")
        with self._transaction() as db:
            row = self._execute(db, "SELECT community FROM answers WHERE id = ?", (answer_id,)).fetchone()
            # An answer from before communities were recorded takes votes until it is assigned one.
            if row is None or (community is not None and row[0] not in (community, UNASSIGNED)):
                return False
            self._execute(
                db,
                "INSERT INTO votes (answer_id, voter, vote, created, community) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (answer_id, voter) DO UPDATE SET vote = excluded.vote, created = excluded.created",
                (answer_id, voter, vote, time.time() if at is None else at, row[0]),
            )
            return True

    async def vote(self, answer_id: int, *, voter: str, vote: str, community: str) -> bool:
        """`record_vote` from an event loop, on the database's own threads, within `timeout_s`."""
        return await self.run(self.record_vote, answer_id, voter=voter, vote=vote, community=community)

    def purge(self, retention_days: float, shorter: Mapping[str, float] | None = None) -> int:
        """Delete answers (with their question text) and votes older than the retention period, and
        those of each community in `shorter` older than its own (shorter) retention. Returns how many
        answers went."""
        now = time.time()
        cutoff = now - retention_days * 86400
        with self._transaction() as db:
            self._execute(
                db,
                "DELETE FROM votes WHERE answer_id IN (SELECT id FROM answers WHERE created < ?)",
                (cutoff,),
            )
            # A topic marked written only hides questions asked before the mark: older ones are gone.
            self._execute(db, "DELETE FROM written_topics WHERE created < ?", (cutoff,))
            gone = int(self._execute(db, "DELETE FROM answers WHERE created < ?", (cutoff,)).rowcount)
            # Journal entries finished (or abandoned) more than a day ago: redeliveries are over by then.
            self._execute(
                db,
                "DELETE FROM journal WHERE created < ? AND (expires IS NULL OR expires < ?)",
                (now - JOURNAL_KEEP_S, now),
            )
            for community, days in (shorter or {}).items():
                own = now - min(days, retention_days) * 86400
                self._execute(
                    db,
                    "DELETE FROM votes WHERE answer_id IN "
                    "(SELECT id FROM answers WHERE community = ? AND created < ?)",
                    (community, own),
                )
                self._execute(
                    db, "DELETE FROM written_topics WHERE community = ? AND created < ?", (community, own)
                )
                gone += int(
                    self._execute(
                        db, "DELETE FROM answers WHERE community = ? AND created < ?", (community, own)
                    ).rowcount
                )
            return gone

    def mark_written(self, community: str, question: str, *, at: float | None = None) -> int:
        """A moderator's note that an article now answers `question` in `community`: the report's
        "questions to write" leaves out that topic's questions asked before now. Returns the mark's id."""
        question = " ".join(question.split())[:MAX_STORED_CHARS]
        if not community or not question:
            raise ValueError("a topic is marked written with its community and its question")
        with self._transaction() as db:
            cur = self._execute(
                db,
                "INSERT INTO written_topics (community, question, created) VALUES (?, ?, ?) RETURNING id",
                (community, question, time.time() if at is None else at),
            )
            return int(cur.fetchone()[0])

    def written_topics(self, *, community: str | None = None) -> list[dict[str, Any]]:
        """The topics marked written, oldest first: of one community, or (None) of every one."""
        where, params = ("", ()) if community is None else (" WHERE community = ?", (community,))
        with self._transaction() as db:
            rows = self._execute(
                db, f"SELECT id, community, question, created FROM written_topics{where} ORDER BY id", params
            ).fetchall()
        return [
            {"id": int(i), "community": str(c), "question": str(q), "created": float(t)}
            for i, c, q, t in rows
        ]

    def since(self, days: float, *, community: str | None = None) -> list[FeedbackRow]:
        """Every answer of the last `days` days, oldest first, with its votes: of one community, or
        (None, the operator's view) of all of them."""
        where, params = _of(community)
        return self._select(
            f"WHERE a.created >= ?{where} GROUP BY a.id ORDER BY a.id", time.time() - days * 86400, *params
        )

    def rows(
        self, *, limit: int = 50, only_voted: bool = True, community: str | None = None
    ) -> list[FeedbackRow]:
        """The newest answers (by default only those that got a vote), with their votes."""
        where, params = _of(community)
        having = "HAVING COUNT(v.vote) > 0 " if only_voted else ""
        return self._select(
            f"WHERE 1 = 1{where} GROUP BY a.id {having}ORDER BY a.id DESC LIMIT ?", *params, limit
        )

    def _select(self, tail: str, *params: object) -> list[FeedbackRow]:
        query = (
            "SELECT a.id, a.platform, a.place, a.asker, a.question, a.answer, a.mode, a.sources, "
            "COALESCE(SUM(CASE WHEN v.vote = 'up' THEN 1 ELSE 0 END), 0), "
            "COALESCE(SUM(CASE WHEN v.vote = 'down' THEN 1 ELSE 0 END), 0), a.created, a.community, "
            "a.coverage, a.offtopic, a.place_name "
            "FROM answers a LEFT JOIN votes v ON v.answer_id = a.id " + tail
        )
        with self._transaction() as db:
            return [_row(r) for r in self._execute(db, query, params).fetchall()]

    def between(self, start: float, end: float, *, community: str | None = None) -> list[FeedbackRow]:
        """Every answer from `start` (included) to `end` (excluded), seconds since the epoch, oldest first."""
        where, params = _of(community)
        return self._select(
            f"WHERE a.created >= ? AND a.created < ?{where} GROUP BY a.id ORDER BY a.id", start, end, *params
        )

    def communities(self) -> list[str]:
        """Every community with anything stored: answers, votes, settings, topics marked written or a
        Slack installation (the operator's list, and what start-up compares with the servers the bot is
        still in)."""
        with self._transaction() as db:
            rows = self._execute(
                db,
                "SELECT community FROM answers UNION SELECT community FROM votes "
                "UNION SELECT community FROM community_settings UNION SELECT community FROM written_topics "
                "UNION SELECT 'slack:' || team_id FROM slack_installations",
            ).fetchall()
        return sorted({str(r[0]) for r in rows})

    def forget_community(self, community: str) -> dict[str, int]:
        """Delete everything stored of `community` (`discord:<guild>`, `slack:<team>`), in one
        transaction: its answers with their questions, votes, journal entries, leases and claims (hand-offs,
        its digests), settings, topics marked written and Slack installation. Returns the rows deleted per
        table. Another community's rows are never touched: `discord:1` is not `discord:12`. The copies
        kept outside the database go too when it is forgotten through `forget`."""
        platform, _, ident = community.partition(":")
        if not platform or not ident or community in (DM, UNASSIGNED):
            raise ValueError(f"a community to forget is <platform>:<id>, not {community!r}")
        counts: dict[str, int] = {}
        with self._transaction() as db:
            run = functools.partial(self._execute, db)
            counts["votes"] = int(
                run(
                    "DELETE FROM votes WHERE community = ? OR answer_id IN "
                    "(SELECT id FROM answers WHERE community = ?)",
                    (community, community),
                ).rowcount
            )
            counts["answers"] = int(run("DELETE FROM answers WHERE community = ?", (community,)).rowcount)
            for table, column in (("journal", "key"), ("leases", "name"), ("claims", "name")):
                names = [
                    str(r[0])
                    for r in run(
                        f"SELECT {column} FROM {table} WHERE {column} LIKE ? ESCAPE '\\'",
                        ("%" + _like(community) + "%",),
                    ).fetchall()
                    if names_community(str(r[0]), community)
                ]
                counts[table] = 0
                for name in names:
                    counts[table] += int(run(f"DELETE FROM {table} WHERE {column} = ?", (name,)).rowcount)
            for table in ("community_settings", "written_topics"):
                counts[table] = int(run(f"DELETE FROM {table} WHERE community = ?", (community,)).rowcount)
            counts["slack_installations"] = (
                int(run("DELETE FROM slack_installations WHERE team_id = ?", (ident,)).rowcount)
                if platform == "slack"
                else 0
            )
        return counts

    async def forget(self, community: str) -> dict[str, int]:
        """Forget `community` (`forget_community`, off the event loop), then its copies kept outside the
        database (the hooks of `after_forget`: Redis's rate limits, threads, journal), each awaited, best
        effort: an unreachable Redis is logged and its keys expire by themselves."""
        counts: dict[str, int] = await self.run(self.forget_community, community)
        for hook in self._forget_hooks:
            await _best_effort(hook, community)
        return counts

    def after_forget(self, hook: Callable[[str], Awaitable[object]]) -> None:
        """Have `forget` await `hook(community)` after the database's rows are deleted."""
        self._forget_hooks.append(hook)

    def unassigned_places(self, platform: str) -> list[str]:
        """The places (`discord:<channel>`, `slack:<channel>`) of answers stored before communities were
        recorded and not resolved yet."""
        with self._transaction() as db:
            rows = self._execute(
                db,
                "SELECT DISTINCT place FROM answers WHERE community = ? AND platform = ? ORDER BY place",
                (UNASSIGNED, platform),
            ).fetchall()
        return [str(r[0]) for r in rows]

    def assign(self, platform: str, communities: dict[str, str]) -> int:
        """Give unassigned answers (and their votes) of `platform` the community found for their place.
        Returns how many answers were assigned."""
        assigned = 0
        with self._transaction() as db:
            for place, community in communities.items():
                if not community or community == UNASSIGNED:
                    continue
                cur = self._execute(
                    db,
                    "UPDATE answers SET community = ? WHERE community = ? AND platform = ? AND place = ?",
                    (community, UNASSIGNED, platform, place),
                )
                assigned += int(cur.rowcount)
            self._execute(
                db,
                "UPDATE votes SET community = (SELECT a.community FROM answers a WHERE a.id = votes.answer_id) "
                "WHERE community = ?",
                (UNASSIGNED,),
            )
        return assigned

    def record_library_sync(
        self,
        outcome: str,
        changes: Sequence[ArticleChange] = (),
        *,
        articles: int,
        reason: str = "",
        when: float | None = None,
    ) -> None:
        """One ingest or sync of the library: its outcome (`SYNC_OUTCOMES`), the articles the library
        has after it, why it was refused or failed, and the articles it changed, in one transaction."""
        if outcome not in SYNC_OUTCOMES:
            raise ValueError(f"a library sync is {', '.join(SYNC_OUTCOMES)}, not {outcome!r}")
        at = time.time() if when is None else when
        with self._transaction() as db:
            self._execute(
                db,
                "INSERT INTO library_syncs (time, outcome, articles, reason) VALUES (?, ?, ?, ?)",
                (at, outcome, articles, reason),
            )
            for c in changes:
                self._execute(
                    db,
                    "INSERT INTO library_changes (time, article_id, title, url, change) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (at, c.article_id, c.title, c.url, c.change),
                )

    def last_library_sync(self) -> float | None:
        """When the library was last synced successfully, by any process sharing this database: the
        periodic sync waits from then, and the report says how fresh the library is."""
        with self._transaction() as db:
            row = self._execute(
                db, "SELECT MAX(time) FROM library_syncs WHERE outcome IN (?, ?)", SYNCED
            ).fetchone()
        return None if row[0] is None else float(row[0])

    def library_articles(self) -> int | None:
        """The articles the library had after its latest successful sync (None: never synced)."""
        with self._transaction() as db:
            row = self._execute(
                db,
                "SELECT articles FROM library_syncs WHERE outcome IN (?, ?) "
                "ORDER BY time DESC, id DESC LIMIT 1",
                SYNCED,
            ).fetchone()
        return None if row is None else int(row[0])

    def library_changes(self, start: float, end: float) -> list[dict[str, Any]]:
        """Every article added, changed or removed from `start` (included) to `end` (excluded), oldest
        first: public facts about the library, the same in every community's view."""
        with self._transaction() as db:
            rows = self._execute(
                db,
                "SELECT time, article_id, title, url, change FROM library_changes "
                "WHERE time >= ? AND time < ? ORDER BY time, id",
                (start, end),
            ).fetchall()
        return [
            {"time": float(at), "id": str(aid), "title": str(title), "url": str(url), "change": str(change)}
            for at, aid, title, url, change in rows
        ]

    def copy_from(self, other: FeedbackStore) -> tuple[int, int]:
        """Every answer and vote of `other` (an SQLite history moving to PostgreSQL), added here with
        new ids; their times are kept. Returns (answers, votes) copied."""
        with other._transaction() as db:
            answers = db.execute(
                "SELECT id, created, community, platform, place, asker, question, answer, mode, sources, "
                "coverage, offtopic, place_name FROM answers ORDER BY id"
            ).fetchall()
            votes = db.execute("SELECT answer_id, voter, vote, created FROM votes").fetchall()
        ids = {old: self._insert_answer(None, *rest) for old, *rest in answers}
        copied = 0
        for answer_id, voter, vote, created in votes:
            if answer_id in ids:
                copied += self.record_vote(ids[answer_id], voter=voter, vote=vote, community=None, at=created)
        return len(ids), copied

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        # A call stuck on a hung server keeps the connection: closing waits for it no longer than a call.
        if self._lock.acquire(timeout=self.timeout_s):
            try:
                self._db.close()
            finally:
                self._lock.release()


def database_where(url: str) -> str:
    """host:port/database of a PostgreSQL URL, for messages: never its password."""
    parts = urlsplit(url)
    return f"{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path or ''}"


def redact(text: str, url: str) -> str:
    password = urlsplit(url).password
    return text.replace(password, "***") if password else text


def _like(text: str) -> str:
    """`text` matched literally by LIKE ... ESCAPE '\\'."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def names_community(name: str, community: str) -> bool:
    """Whether a key of the journal or a lease's name belongs to `community`: the key starts with it
    (`<community>:<platform>:...`, the journal's), or with one word and then it (`handoff:<community>:...`,
    `digest:<community>:...`). Whole parts only: `discord:12:...` is not `discord:1`'s."""
    parts = name.split(":")
    size = community.count(":") + 1
    return any(":".join(parts[start : start + size]) == community for start in (0, 1))


async def _best_effort(hook: Callable[[str], Awaitable[object]], community: str) -> None:
    try:
        async with asyncio.timeout(FORGET_COPIES_S):  # a slow Redis gives up like an unreachable one
            await hook(community)
    except Exception as exc:
        _log.warning("could not forget a community's copies outside the database (%s)", type(exc).__name__)


def _of(community: str | None) -> tuple[str, tuple[str, ...]]:
    """The condition that keeps one community's rows (none: the operator's view of every community)."""
    return ("", ()) if community is None else (" AND a.community = ?", (community,))


def _row(r: tuple[Any, ...]) -> FeedbackRow:
    return FeedbackRow(
        r[0],
        r[1],
        r[2],
        r[3],
        r[4],
        r[5],
        r[6],
        json.loads(r[7]),
        int(r[8]),
        int(r[9]),
        float(r[10]),
        str(r[11]),
        None if r[12] is None else str(r[12]),
        bool(r[13]),
        str(r[14] or ""),
    )


class DatabaseWatch:
    """/readyz's `degraded.database`: a round trip every `every_s` (on the database's own threads, within
    its time-out). The bot stays ready while the database hangs or is down: answers are posted anyway and
    stored when it is back (`bot/writer.py`); the note says so within `every_s` + DATABASE_TIMEOUT_S."""

    def __init__(
        self, store: FeedbackStore, *, every_s: float = 2.0, clock: Callable[[], float] = time.monotonic
    ):
        self.store = store
        self.every_s = every_s
        self.clock = clock
        self.failing_since: float | None = None
        self.reason = ""

    async def run(self) -> None:
        while True:
            await self.check()
            await asyncio.sleep(self.every_s)

    async def check(self) -> bool:
        try:
            await self.store.run(self.store.probe)
        except Exception as exc:
            if self.failing_since is None:
                self.failing_since = self.clock()
                self.reason = "no answer in time" if isinstance(exc, TimeoutError) else type(exc).__name__
                _log.warning("the answers database is failing (%s)", self.reason)
            return False
        self.failing_since = None
        return True

    def note(self) -> str | None:
        if self.failing_since is None:
            return None
        return (
            f"the answers database is failing ({self.reason}) for {self.clock() - self.failing_since:.0f} s"
        )
