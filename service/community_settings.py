"""Each community's own settings (`bot.community.SettingsStore`) in the answers database's
`community_settings` table (migration 11): SQLite, or PostgreSQL shared by the replicas.

Reads are served from this process's cache. When a read comes `refresh_s` seconds or more after the
last look, one cheap query (`COUNT(*)` and `MAX(updated)`, on an index) asks whether anything changed,
and only the rows changed since are read again (every row, when one was deleted): a change made by any
replica is seen by every other within `refresh_s`. `set` writes and updates the cache at once.

A database outage never holds an answer: the read waits for the look at most `wait_s`, and not at all
while the database is failing (then it is tried again every `retry_s`); meanwhile the cache, or with
nothing cached the deployment's own values, apply.

Each write's `updated` is above every stored one (taken under one lock on PostgreSQL, in one statement
on SQLite), so a replica whose clock runs behind cannot write a change the others never look for.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from bot.community import CommunitySettings

if TYPE_CHECKING:
    from service.feedback import FeedbackStore

_log = logging.getLogger(__name__)

REFRESH_S = 2.0  # how often a read looks for changes made by other replicas
WAIT_S = 0.5  # the longest a read waits for that look (the database is answering)
RETRY_S = 15.0  # after a failed look, the next is this much later
SETTINGS_LOCK = 0x61697362  # PostgreSQL advisory lock held while a setting is written
_STEP = 1e-3  # each write's `updated` is at least this much above the previous one's


class SqlSettings:
    """`bot.community.SettingsStore` on the answers database, behind a cache that follows the others'
    changes within `refresh_s`."""

    def __init__(
        self,
        store: FeedbackStore,
        *,
        refresh_s: float = REFRESH_S,
        wait_s: float = WAIT_S,
        retry_s: float = RETRY_S,
    ):
        self.store = store
        self.refresh_s = refresh_s
        self.wait_s = wait_s
        self.retry_s = retry_s
        self._cache: dict[str, CommunitySettings] = {}
        self._seen: tuple[int, float] | None = None  # (rows, newest `updated`) at the last look
        self._next = 0.0  # monotonic time of the next look
        self._failing = False
        self._looking: asyncio.Task[None] | None = None

    # -- the port ------------------------------------------------------------------------------------
    async def get(self, community: str) -> CommunitySettings:
        await self._fresh()
        return self._cache.get(community, CommunitySettings())

    async def all(self) -> Mapping[str, CommunitySettings]:
        await self._fresh()
        return dict(self._cache)

    async def set(self, community: str, settings: CommunitySettings) -> None:
        """Stored (or, when nothing is chosen any more, deleted), and applied here at once; a database
        error is raised to the caller (the admin is told it was not saved)."""
        if settings == CommunitySettings():
            await self.forget(community)
            return
        await self.store.run(self._write, community, json.dumps(settings.to_json(), sort_keys=True))
        self._cache[community] = settings

    async def forget(self, community: str) -> None:
        await self.store.run(self._delete, community)
        self._cache.pop(community, None)

    async def load(self) -> None:
        """Read every community's settings now (at start-up, before the first question), within the
        database's time-out; a failure is logged and the cache follows once the database answers."""
        self._next = 0.0
        await self._look()

    # -- following the other replicas -------------------------------------------------------------------
    async def _fresh(self) -> None:
        """Look for changes when `refresh_s` has passed; wait for the look only while the database is
        answering, and then at most `wait_s`."""
        if time.monotonic() < self._next or (self._looking is not None and not self._looking.done()):
            return  # looked lately, or a look is under way: the cache answers
        self._looking = looking = asyncio.create_task(self._look())
        if not self._failing:
            await asyncio.wait({looking}, timeout=self.wait_s)

    async def _look(self) -> None:
        try:
            changed = await self.store.run(self._changed_since, self._seen, frozenset(self._cache))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not self._failing:
                _log.warning(
                    "community settings: could not read the answers database (%s); the settings already "
                    "read apply until it answers again",
                    type(exc).__name__,
                )
            self._failing = True
            self._next = time.monotonic() + self.retry_s
            return
        if self._failing:
            _log.warning("community settings: the answers database answers again")
        self._failing = False
        self._next = time.monotonic() + self.refresh_s
        if changed is None:
            return
        seen, rows, whole = changed
        if whole:
            self._cache = {}
        for community, text in rows:
            try:
                self._cache[community] = CommunitySettings.from_json(json.loads(text))
            except (ValueError, TypeError, AttributeError) as exc:
                _log.warning("community settings of %s are unreadable (%s); ignored", community, exc)
                self._cache[community] = CommunitySettings()
        self._seen = seen

    def _changed_since(
        self, seen: tuple[int, float] | None, cached: frozenset[str]
    ) -> tuple[tuple[int, float], list[tuple[str, str]], bool] | None:
        """None when nothing changed since `seen`; else what is now seen, the rows to read again, and
        whether they are every row (the first look, or a row was deleted: then the communities `cached`
        and those changed are more than the rows)."""
        with self.store._transaction() as db:
            run = self.store._execute
            count, newest = run(
                db, "SELECT COUNT(*), COALESCE(MAX(updated), 0) FROM community_settings"
            ).fetchone()
            now = (int(count), float(newest))
            if seen == now:
                return None
            if seen is not None and now[1] > seen[1]:
                rows = run(
                    db,
                    "SELECT community, settings FROM community_settings WHERE updated > ?",
                    (seen[1],),
                ).fetchall()
                known = cached | {str(r[0]) for r in rows}
                if len(known) == now[0]:  # nothing was deleted: the changed rows are enough
                    return now, [(str(c), str(t)) for c, t in rows], False
            rows = run(db, "SELECT community, settings FROM community_settings").fetchall()
            return now, [(str(c), str(t)) for c, t in rows], True

    def _write(self, community: str, text: str) -> None:
        with self.store._transaction() as db:
            run = self.store._execute
            if self.store.postgres:  # writers one at a time, so `updated` grows in commit order
                run(db, "SELECT pg_advisory_xact_lock(?)", (SETTINGS_LOCK,))
            # One statement (SQLite takes its write lock for it): above every stored `updated`.
            greatest = "GREATEST" if self.store.postgres else "MAX"
            run(
                db,
                "INSERT INTO community_settings (community, settings, updated) VALUES (?, ?, "
                f"{greatest}(?, (SELECT COALESCE(MAX(updated), 0) FROM community_settings) + ?)) "
                "ON CONFLICT (community) DO UPDATE SET settings = excluded.settings, updated = excluded.updated",
                (community, text, time.time(), _STEP),
            )

    def _delete(self, community: str) -> None:
        with self.store._transaction() as db:
            self.store._execute(db, "DELETE FROM community_settings WHERE community = ?", (community,))

    async def aclose(self) -> None:
        """Stop a look still running (the store is about to close)."""
        if self._looking is not None and not self._looking.done():
            self._looking.cancel()
            await asyncio.gather(self._looking, return_exceptions=True)
