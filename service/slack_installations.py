"""Slack workspaces that installed the app by OAuth, and the OAuth flow's one-time states, in the answers
database (migration 12: `slack_installations`, `slack_oauth_states`; SQLite or PostgreSQL), shared by
every replica. `adapters/slack/oauth.py` turns these rows into slack-bolt's installation and state
stores (`adapters.slack.oauth.InstallationRows`)."""

from __future__ import annotations

import logging
import time

from service.feedback import FeedbackStore

_log = logging.getLogger(__name__)


class SqlInstallations:
    """`adapters.slack.oauth.InstallationRows` on the answers database. Every call runs on the store's
    own threads, within its timeout (`FeedbackStore.run`)."""

    def __init__(self, store: FeedbackStore):
        self.store = store

    # -- installations ----------------------------------------------------------------------------
    def _save(self, enterprise_id: str, team_id: str, installation: str) -> None:
        with self.store._transaction() as db:
            self.store._execute(
                db,
                "INSERT INTO slack_installations (team_id, enterprise_id, installation, installed) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (enterprise_id, team_id) DO UPDATE SET "
                "installation = excluded.installation, installed = excluded.installed",
                (team_id, enterprise_id, installation, time.time()),
            )

    def _find(self, enterprise_id: str, team_id: str) -> str | None:
        with self.store._transaction() as db:
            row = self.store._execute(
                db,
                "SELECT installation FROM slack_installations WHERE enterprise_id = ? AND team_id = ?",
                (enterprise_id, team_id),
            ).fetchone()
        return str(row[0]) if row is not None else None

    def _delete(self, enterprise_id: str, team_id: str) -> int:
        with self.store._transaction() as db:
            return int(
                self.store._execute(
                    db,
                    "DELETE FROM slack_installations WHERE enterprise_id = ? AND team_id = ?",
                    (enterprise_id, team_id),
                ).rowcount
            )

    async def save(self, enterprise_id: str, team_id: str, installation: str) -> None:
        await self.store.run(self._save, enterprise_id, team_id, installation)

    async def find(self, enterprise_id: str, team_id: str) -> str | None:
        return await self.store.run(self._find, enterprise_id, team_id)

    async def delete(self, enterprise_id: str, team_id: str) -> None:
        await self.store.run(self._delete, enterprise_id, team_id)

    # -- OAuth states -----------------------------------------------------------------------------
    def _add_state(self, state: str, expires: float) -> None:
        with self.store._transaction() as db:
            # Old states go as new ones come: an abandoned install leaves nothing behind for long.
            self.store._execute(db, "DELETE FROM slack_oauth_states WHERE expires < ?", (time.time(),))
            self.store._execute(
                db, "INSERT INTO slack_oauth_states (state, expires) VALUES (?, ?)", (state, expires)
            )

    def _take_state(self, state: str, now: float) -> bool:
        with self.store._transaction() as db:
            # One statement: of two replicas given the same state, one only takes it.
            taken = self.store._execute(
                db, "DELETE FROM slack_oauth_states WHERE state = ? AND expires >= ?", (state, now)
            ).rowcount
        return int(taken) == 1

    async def add_state(self, state: str, expires: float) -> None:
        await self.store.run(self._add_state, state, expires)

    async def take_state(self, state: str, now: float) -> bool:
        return await self.store.run(self._take_state, state, now)

    # -- leaving ----------------------------------------------------------------------------------
    async def forget(self, community: str) -> None:
        """Everything stored of a community that uninstalled the app (`FeedbackStore.forget`)."""
        counts = await self.store.forget(community)
        _log.info(
            "forgot %s: %s",
            community,
            ", ".join(f"{n} {table}" for table, n in sorted(counts.items()) if n) or "nothing stored",
        )
