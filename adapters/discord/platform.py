"""Discord as the runner sees it (`bot.platform.Platform`): the client signed in, run, checked and closed."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import aiohttp
import discord

from adapters.discord.client import USAGE, AiSafetyDiscord, ShardedAiSafetyDiscord
from adapters.discord.render import DIGEST_STYLE, community_of
from bot.conversation import Conversation, Services
from bot.models import DM
from bot.platform import Style

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.conversation import Claim

_log = logging.getLogger(__name__)

NAME = "discord"


class DiscordPlatform:
    name = NAME
    digest_style: Style = DIGEST_STYLE

    def __init__(self, *, client: AiSafetyDiscord, token: str):
        self.client = client
        self._token = token

    @property
    def conversation(self) -> Conversation:
        return self.client.conversation

    async def start(self) -> None:
        await self.client.sign_in(self._token)

    async def run(self) -> None:
        await self.client.run_connected()

    async def ready(self) -> bool:
        return self.client.is_ready() and not self.client.is_closed()

    async def resume(self, claim: Claim) -> None:
        await self.client.resume(claim)

    async def post(self, channel: str, text: str, *, community: str | None = None) -> None:
        await self.client.post(channel, text)  # one token for every server

    async def communities_of(self, places: Sequence[str]) -> dict[str, str]:
        """Each `discord:<channel id>` looked up (the client's cache, else Discord): a channel or thread of
        a server is that server's; a direct message is `dm`; a role (HANDOFF_ROLE) is the server's that
        has it, among this process's servers. Channels gone or hidden from the bot are left out."""
        found: dict[str, str] = {}
        failed: Exception | None = None  # the last passing failure (a 5xx, the network)
        for place in places:
            platform, _, ident = place.partition(":")
            if platform != NAME or not ident.isdigit():
                continue
            cached: Any = self.client.get_channel(int(ident))
            role_of = None if cached is not None else _guild_with_role(self.client.guilds, int(ident))
            if role_of is not None:
                found[place] = community_of(role_of)
                continue
            try:
                channel: Any = cached or await self.client.fetch_channel(int(ident))
            except (discord.NotFound, discord.Forbidden, discord.InvalidData):
                continue
            except (discord.HTTPException, aiohttp.ClientError, TimeoutError) as exc:
                failed = exc  # this place is looked up again at the next start; the others go on
                continue
            if isinstance(channel, discord.abc.PrivateChannel):
                found[place] = DM
            elif getattr(channel, "guild", None) is not None:
                found[place] = community_of(channel.guild.id)
        if failed is not None and not found:
            raise failed  # nothing could be looked up: the caller tries again later
        return found

    def http_app(self) -> Any | None:
        return None  # Discord's events come through the gateway

    async def close(self) -> None:
        await self.client.close()


def _guild_with_role(guilds: Sequence[discord.Guild], role: int) -> int | None:
    """The server that has this role, if it is one of `guilds` (role ids are unique)."""
    return next((g.id for g in guilds if g.get_role(role) is not None), None)


def make_platform(settings: Settings, services: Services) -> DiscordPlatform:
    """The Discord client for DISCORD_TOKEN: sharded when DISCORD_SHARD_COUNT is set."""
    assert settings.discord_token is not None
    conversation = Conversation.for_platform(
        NAME, services, options=settings.platform_options(NAME), usage=USAGE
    )
    client: AiSafetyDiscord
    if settings.discord_shard_count is not None:
        _log.info("Discord: shards %s of %d", settings.shard_ids or "all", settings.discord_shard_count)
        client = ShardedAiSafetyDiscord(
            shard_count=settings.discord_shard_count,
            shard_ids=settings.shard_ids,
            conversation=conversation,
            sync_commands=settings.discord_sync_commands,
        )
    else:
        client = AiSafetyDiscord(conversation=conversation, sync_commands=settings.discord_sync_commands)
    return DiscordPlatform(client=client, token=settings.discord_token.get_secret_value())
