"""Slack as the runner sees it (`bot.platform.Platform`): Socket Mode, or HTTP mode where Slack's events
arrive on the aiohttp app the runner serves."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from adapters.slack.app import USAGE, SlackBot
from adapters.slack.oauth import INSTALL_PATH, REDIRECT_PATH, InstallationRows, OAuth
from adapters.slack.render import DIGEST_STYLE, community_of
from bot.conversation import Conversation, Services
from bot.platform import Style

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.conversation import Claim

_log = logging.getLogger(__name__)

NAME = "slack"


class SlackPlatform:
    name = NAME
    digest_style: Style = DIGEST_STYLE

    def __init__(self, *, bot: SlackBot, app_token: str | None = None):
        """`app_token`: Socket Mode's (SLACK_APP_TOKEN); None for HTTP mode."""
        self.bot = bot
        self._app_token = app_token
        self._closed = asyncio.Event()

    @property
    def conversation(self) -> Conversation:
        return self.bot.conversation

    async def start(self) -> None:
        await self.bot.identify()
        if self._app_token is not None:
            await self.bot.check_app_token(self._app_token)

    async def run(self) -> None:
        if self._app_token is not None:
            await self.bot.run_socket_mode(self._app_token)
        await self._closed.wait()  # HTTP mode: the events come through `http_app`

    async def ready(self) -> bool:
        return await self.bot.connected()

    async def resume(self, claim: Claim) -> None:
        await self.bot.resume(claim)

    async def post(self, channel: str, text: str, *, community: str | None = None) -> None:
        """With OAuth, `community` names the workspace whose token posts."""
        await self.bot.post(channel, text, community=community)

    async def communities_of(self, places: Sequence[str]) -> dict[str, str]:
        """`slack:D...` is a direct message (`dm`); any other channel is of the bot token's workspace
        (with OAuth, of none known here: answers carry their workspace from the start)."""
        found: dict[str, str] = {}
        for place in places:
            platform, _, channel = place.partition(":")
            if platform != NAME or not channel:
                continue
            if channel.startswith("D") or self.bot.team_id:
                found[place] = community_of(self.bot.team_id, channel)
        return found

    def http_app(self) -> Any | None:
        return self.bot.web_app() if self._app_token is None else None

    async def close(self) -> None:
        self._closed.set()
        await self.bot.close()


def make_platform(
    settings: Settings, services: Services, *, installations: InstallationRows | None = None
) -> SlackPlatform:
    """The Slack app for SLACK_BOT_TOKEN: Socket Mode with SLACK_APP_TOKEN, else HTTP mode. Or, with
    SLACK_CLIENT_ID and SLACK_CLIENT_SECRET, installed by OAuth in any workspace (HTTP mode), the
    installations kept in `installations` (the answers database)."""
    conversation = Conversation.for_platform(
        NAME, services, options=settings.platform_options(NAME), usage=USAGE
    )
    oauth = None
    if settings.slack_oauth:
        assert settings.slack_client_id and settings.slack_client_secret and settings.public_url
        if installations is None:
            raise ValueError("installing by OAuth needs somewhere to keep the installations")
        oauth = OAuth(
            client_id=settings.slack_client_id,
            client_secret=settings.slack_client_secret.get_secret_value(),
            redirect_uri=f"{settings.public_url}{REDIRECT_PATH}",
            rows=installations,
        )
    else:
        assert settings.slack_bot_token is not None
    bot = SlackBot(
        conversation=conversation,
        token=settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None,
        oauth=oauth,
        signing_secret=settings.slack_signing_secret.get_secret_value()
        if settings.slack_signing_secret
        else "",
        base_url=settings.slack_api_url,
        app_id=settings.slack_app_id,
    )
    app_token = settings.slack_app_token.get_secret_value() if settings.slack_app_token else None
    if oauth is not None:
        _log.info(
            "Slack: installs by OAuth at %s%s, HTTP mode on port %d (/slack/events)",
            settings.public_url,
            INSTALL_PATH,
            settings.slack_http_port,
        )
    elif app_token is None:
        _log.info("Slack: HTTP mode on port %d (/slack/events)", settings.slack_http_port)
    return SlackPlatform(bot=bot, app_token=app_token)
