"""Slack installs by OAuth: slack-bolt's installation and OAuth-state stores on the answers database.

With SLACK_CLIENT_ID and SLACK_CLIENT_SECRET the bot serves slack-bolt's OAuth flow (/slack/install,
/slack/oauth_redirect); each workspace that installs it is one row (its Installation as JSON, refreshed
tokens included when the app rotates them), shared by every replica through `InstallationRows`, which
the composition root implements on the answers database (`service/slack_installations.py`).
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from datetime import datetime
from logging import Logger
from typing import Any, Protocol

from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_sdk.oauth.installation_store import Bot, Installation
from slack_sdk.oauth.installation_store.async_installation_store import AsyncInstallationStore
from slack_sdk.oauth.state_store.async_state_store import AsyncOAuthStateStore

_log = logging.getLogger(__name__)

INSTALL_PATH = "/slack/install"
REDIRECT_PATH = "/slack/oauth_redirect"
# What the bot asks a workspace for (slack-app-manifest.yml lists the same): reading mentions, the
# threads and direct messages it answers in, posting, its slash commands, and `users:read` to tell a
# workspace's admins (`users.info`) from its members.
BOT_SCOPES = (
    "app_mentions:read",
    "channels:history",
    "groups:history",
    "im:history",
    "chat:write",
    "commands",
    "users:read",
)
# How long an "Add to Slack" link stays usable (slack-bolt's default).
STATE_EXPIRATION_S = 600
# A rotating token is refreshed when it expires within this many minutes (slack-bolt's default).
ROTATE_BEFORE_MIN = 120
_TIMES = ("bot_token_expires_at", "user_token_expires_at", "installed_at")


class InstallationRows(Protocol):
    """Where installations and OAuth states are kept: one row per workspace (or organisation-wide
    install: `team_id` ""), keyed by (enterprise id or "", team id)."""

    async def save(self, enterprise_id: str, team_id: str, installation: str) -> None: ...

    async def find(self, enterprise_id: str, team_id: str) -> str | None: ...

    async def delete(self, enterprise_id: str, team_id: str) -> None: ...

    async def add_state(self, state: str, expires: float) -> None: ...

    async def take_state(self, state: str, now: float) -> bool:
        """True once for a state that was issued and has not expired (and never again)."""
        ...

    async def forget(self, community: str) -> None:
        """Everything stored of a community that uninstalled the app (its questions, answers, votes,
        journal entries, settings and installation)."""
        ...


def _key(enterprise_id: str | None, team_id: str | None, org_wide: bool | None) -> tuple[str, str]:
    return enterprise_id or "", "" if org_wide and enterprise_id else team_id or ""


def to_json(installation: Installation) -> str:
    """An Installation as the row keeps it: JSON, times as seconds since the epoch."""
    data: dict[str, Any] = installation.to_dict_for_copying()
    for name in _TIMES:
        value = data.get(name)
        if isinstance(
            value, datetime
        ):  # installed_at a float, the expiries whole seconds (as slack_sdk reads them)
            data[name] = value.timestamp() if name == "installed_at" else int(value.timestamp())
    return json.dumps(data)


def from_json(text: str) -> Installation:
    return Installation(**json.loads(text))


class SqlInstallationStore(AsyncInstallationStore):
    """slack-bolt's installation store on `InstallationRows`: the latest installation of each workspace,
    bot token (and its refresh token) included."""

    def __init__(self, rows: InstallationRows):
        self.rows = rows

    @property
    def logger(self) -> Logger:
        return _log

    async def async_save(self, installation: Installation) -> None:
        enterprise, team = _key(
            installation.enterprise_id, installation.team_id, installation.is_enterprise_install
        )
        await self.rows.save(enterprise, team, to_json(installation))

    async def async_save_bot(self, bot: Bot) -> None:
        """A bot's refreshed token (token rotation through `find_bot`), kept in its installation."""
        found = await self._find(bot.enterprise_id, bot.team_id, bot.is_enterprise_install)
        data = json.loads(to_json(found)) if found is not None else {"user_id": ""}
        for name in ("app_id", "enterprise_id", "team_id", "bot_id", "bot_user_id", "bot_token"):
            data[name] = getattr(bot, name)
        data["bot_scopes"] = ",".join(bot.bot_scopes) if bot.bot_scopes else ""
        data["bot_refresh_token"] = bot.bot_refresh_token
        data["bot_token_expires_at"] = bot.bot_token_expires_at
        data["is_enterprise_install"] = bot.is_enterprise_install
        await self.async_save(Installation(**data))

    async def _find(
        self, enterprise_id: str | None, team_id: str | None, org_wide: bool | None
    ) -> Installation | None:
        enterprise, team = _key(enterprise_id, team_id, org_wide)
        text = await self.rows.find(enterprise, team)
        if text is None and enterprise and team:
            text = await self.rows.find(enterprise, "")  # a workspace of an organisation-wide install
        return from_json(text) if text is not None else None

    async def async_find_installation(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        user_id: str | None = None,
        is_enterprise_install: bool | None = False,
    ) -> Installation | None:
        found = await self._find(enterprise_id, team_id, is_enterprise_install)
        if found is None or (user_id is not None and found.user_id != user_id):
            return None  # the bot asks for no user tokens: only the installer has an installation
        return found

    async def async_find_bot(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        is_enterprise_install: bool | None = False,
    ) -> Bot | None:
        found = await self._find(enterprise_id, team_id, is_enterprise_install)
        return found.to_bot() if found is not None and found.bot_token else None

    async def async_delete_bot(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        await self.async_delete_all(enterprise_id=enterprise_id, team_id=team_id)

    async def async_delete_installation(
        self, *, enterprise_id: str | None, team_id: str | None, user_id: str | None = None
    ) -> None:
        if user_id is None:
            await self.async_delete_all(enterprise_id=enterprise_id, team_id=team_id)
            return
        found = await self._find(enterprise_id, team_id, team_id is None)
        if found is not None and found.user_id == user_id and found.user_token:
            found.user_token = found.user_refresh_token = None
            found.user_token_expires_at = None
            await self.async_save(found)  # that member's own token only: the bot stays installed

    async def async_delete_all(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        await self.rows.delete(*_key(enterprise_id, team_id, team_id is None))


class SqlOAuthStateStore(AsyncOAuthStateStore):
    """The states of "Add to Slack" links, each usable once, within `expiration_s`, on any replica."""

    def __init__(self, rows: InstallationRows, *, expiration_s: int = STATE_EXPIRATION_S):
        self.rows = rows
        self.expiration_s = expiration_s

    @property
    def logger(self) -> Logger:
        return _log

    async def async_issue(self, *args: Any, **kwargs: Any) -> str:
        state = secrets.token_urlsafe(24)
        await self.rows.add_state(state, time.time() + self.expiration_s)
        return state

    async def async_consume(self, state: str) -> bool:
        return bool(state) and await self.rows.take_state(state, time.time())


class OAuth:
    """What the OAuth flow needs: the app's credentials (SLACK_CLIENT_ID, SLACK_CLIENT_SECRET), its
    redirect URL (`<PUBLIC_URL>/slack/oauth_redirect`) and where installations are kept."""

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        redirect_uri: str,
        rows: InstallationRows,
        authorization_url: str | None = None,
        rotate_before_min: int = ROTATE_BEFORE_MIN,
    ):
        """`authorization_url`: Slack's authorize page (tests point it elsewhere); `rotate_before_min`:
        a rotating token is refreshed this many minutes before it expires."""
        self.client_id = client_id
        self.client_secret = client_secret
        self.redirect_uri = redirect_uri
        self.rows = rows
        self.installations = SqlInstallationStore(rows)
        self.states = SqlOAuthStateStore(rows)
        self.authorization_url = authorization_url
        self.rotate_before_min = rotate_before_min

    def settings(self) -> AsyncOAuthSettings:
        return AsyncOAuthSettings(
            client_id=self.client_id,
            client_secret=self.client_secret,
            scopes=list(BOT_SCOPES),
            user_scopes=[],
            redirect_uri=self.redirect_uri,
            install_path=INSTALL_PATH,
            redirect_uri_path=REDIRECT_PATH,
            installation_store=self.installations,
            state_store=self.states,
            state_expiration_seconds=STATE_EXPIRATION_S,
            token_rotation_expiration_minutes=self.rotate_before_min,
            authorization_url=self.authorization_url,
            logger=logging.getLogger("slack_bolt.aisafety"),
        )
