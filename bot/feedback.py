"""The answers the bot gave and the 👍 / 👎 they got, in a local SQLite file the deployment keeps.

Shared by every platform: an adapter records each answer it posts and each vote on it.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.errors import ConfigError
from bot.models import Answer, Question

# Stored question text is capped: the core refuses longer questions anyway, and the database should not
# grow by whatever a member pastes.
MAX_STORED_CHARS = 4000
# How long a command such as `report` waits for the running bot's write to finish.
BUSY_TIMEOUT_S = 10.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created REAL NOT NULL,
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
    created REAL NOT NULL,
    PRIMARY KEY (answer_id, voter)
);
"""


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

    def to_json(self) -> dict[str, object]:
        return dict(self.__dict__)


class FeedbackStore:
    """Small and synchronous; callers on an event loop run it in a worker thread."""

    def __init__(self, path: Path | str, *, store_questions: bool = True):
        self.path = Path(path)
        self.store_questions = store_questions
        self._lock = threading.Lock()
        self._db = self._open(str(path))

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
            db.executescript(_SCHEMA)
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

    def record_answer(self, *, platform: str, place: str, asker: str, question: str, answer: Answer) -> int:
        """Store an answer (its question and text only when questions may be stored); returns its id."""
        sources = [{"n": s.n, "id": s.id, "title": s.title, "url": s.url} for s in answer.sources]
        keep = self.store_questions
        with self._lock, self._db:
            cur = self._db.execute(
                "INSERT INTO answers (created, platform, place, asker, question, answer, mode, sources) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    time.time(),
                    platform,
                    place if keep else "",
                    asker if keep else "",
                    question[:MAX_STORED_CHARS] if keep else "",
                    answer.text if keep else "",
                    answer.mode,
                    json.dumps(sources),
                ),
            )
            return int(cur.lastrowid or 0)

    async def save(self, platform: str, question: Question, answer: Answer) -> int:
        """`record_answer` from an event loop: the write runs in a worker thread."""
        return await asyncio.to_thread(
            self.record_answer,
            platform=platform,
            place=question.place,
            asker=question.asker,
            question=question.text,
            answer=answer,
        )

    def record_vote(self, answer_id: int, *, voter: str, vote: str) -> bool:
        """A member's vote on an answer; voting again replaces their vote. False if no such answer."""
        if vote not in ("up", "down"):
            raise ValueError(f"unknown vote {vote!r}")
        with self._lock, self._db:
            if self._db.execute("SELECT 1 FROM answers WHERE id = ?", (answer_id,)).fetchone() is None:
                return False
            self._db.execute(
                "INSERT INTO votes (answer_id, voter, vote, created) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (answer_id, voter) DO UPDATE SET vote = excluded.vote, created = excluded.created",
                (answer_id, voter, vote, time.time()),
            )
            return True

    async def vote(self, answer_id: int, *, voter: str, vote: str) -> bool:
        """`record_vote` from an event loop: the write runs in a worker thread."""
        return await asyncio.to_thread(self.record_vote, answer_id, voter=voter, vote=vote)

    def purge(self, retention_days: float) -> int:
        """Delete answers (with their question text) and votes older than the retention period."""
        cutoff = time.time() - retention_days * 86400
        with self._lock, self._db:
            self._db.execute(
                "DELETE FROM votes WHERE answer_id IN (SELECT id FROM answers WHERE created < ?)", (cutoff,)
            )
            return int(self._db.execute("DELETE FROM answers WHERE created < ?", (cutoff,)).rowcount)

    def since(self, days: float) -> list[FeedbackRow]:
        """Every answer of the last `days` days, oldest first, with its votes."""
        return self._select("WHERE a.created >= ? GROUP BY a.id ORDER BY a.id", time.time() - days * 86400)

    def rows(self, *, limit: int = 50, only_voted: bool = True) -> list[FeedbackRow]:
        """The newest answers (by default only those that got a vote), with their votes."""
        having = "HAVING COUNT(v.vote) > 0 " if only_voted else ""
        return self._select(f"GROUP BY a.id {having}ORDER BY a.id DESC LIMIT ?", limit)

    def _select(self, tail: str, param: object) -> list[FeedbackRow]:
        query = (
            "SELECT a.id, a.platform, a.place, a.asker, a.question, a.answer, a.mode, a.sources, "
            "COALESCE(SUM(v.vote = 'up'), 0), COALESCE(SUM(v.vote = 'down'), 0) "
            "FROM answers a LEFT JOIN votes v ON v.answer_id = a.id " + tail
        )
        with self._lock:
            return [_row(r) for r in self._db.execute(query, (param,)).fetchall()]

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _row(r: tuple[Any, ...]) -> FeedbackRow:
    return FeedbackRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], json.loads(r[7]), int(r[8]), int(r[9]))
