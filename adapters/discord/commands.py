"""`/aisafety-settings` and `/aisafety-report` on Discord: for a server's admins, privately.

Both are guild-only and shown only to members with Manage Server (`default_member_permissions`); since
a server's owner can change who sees a command, the member's permissions that come with each interaction
are checked again when it runs. Replies are ephemeral and mention no one (`AllowedMentions.none()`).
What the commands mean is in `adapters.community_commands`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

import discord
from discord import app_commands

from adapters import community_commands as cc
from adapters.discord.render import community_of

if TYPE_CHECKING:
    from bot.community import CommunitySettings
    from bot.conversation import Conversation

_log = logging.getLogger(__name__)

MANAGE_SERVER = discord.Permissions(manage_guild=True)
# The channels the bot answers in, or posts its digest to: text, announcement and forum channels.
ANSWER_CHANNELS = (discord.ChannelType.text, discord.ChannelType.news, discord.ChannelType.forum)
MARKS = cc.Marks(channel=lambda c: f"<#{c}>", handoff=lambda r: f"<@&{r}>", place="server")
Setting = Literal[
    "channels", "handoff", "digest-channel", "digest-period", "rate-limit", "store-questions",
    "retention", "token-budget",
]  # fmt: skip
FIELDS: dict[str, str] = {
    "channels": "allowed_channels",
    "handoff": "handoff",
    "digest-channel": "digest_channel",
    "digest-period": "digest_every",
    "rate-limit": "rate_limit_per_minute",
    "store-questions": "store_questions",
    "retention": "retention_days",
    "token-budget": "daily_token_budget",
}


def conversation_of(interaction: discord.Interaction[Any]) -> Conversation:
    conversation: Conversation = getattr(interaction.client, "conversation")  # noqa: B009
    return conversation


async def say(interaction: discord.Interaction[Any], text: str) -> None:
    """A private reply that pings no one; a follow-up when the interaction was already answered."""
    none = discord.AllowedMentions.none()
    if interaction.response.is_done():
        await interaction.followup.send(text, ephemeral=True, allowed_mentions=none)
    else:
        await interaction.response.send_message(text, ephemeral=True, allowed_mentions=none)


async def admitted(interaction: discord.Interaction[Any]) -> str | None:
    """The community of an interaction run by a member with Manage Server in a server; otherwise None,
    the member told why."""
    if interaction.guild_id is None:
        await say(interaction, cc.NOT_IN_DM)
        return None
    perms = interaction.permissions
    if not (perms.manage_guild or perms.administrator):
        _log.info("refused /aisafety-* to a member without Manage Server")
        await say(interaction, cc.NOT_ADMIN_DISCORD)
        return None
    return community_of(interaction.guild_id)


class AnswerChannel(app_commands.Transformer):
    """A channel option offering only `ANSWER_CHANNELS` (checked again when run: `_channel`)."""

    @property
    def type(self) -> discord.AppCommandOptionType:
        return discord.AppCommandOptionType.channel

    @property
    def channel_types(self) -> list[discord.ChannelType]:
        return list(ANSWER_CHANNELS)

    async def transform(self, interaction: discord.Interaction[Any], value: Any, /) -> Any:
        return value


Channel = app_commands.Transform[app_commands.AppCommandChannel, AnswerChannel]


def _channel(channel: app_commands.AppCommandChannel) -> str:
    if getattr(channel, "type", None) not in ANSWER_CHANNELS:
        raise cc.Refused("Pick a text, announcement or forum channel.")
    return str(channel.id)


class SettingsCommands(
    app_commands.Group,
    name="aisafety-settings",
    description="This server's settings for the AI-safety bot",
    guild_only=True,
    default_permissions=MANAGE_SERVER,
):
    """`/aisafety-settings show | channels | handoff | digest | rate-limit | store-questions | retention
    | token-budget | reset`."""

    async def _change(
        self, interaction: discord.Interaction[Any], changes: Callable[[CommunitySettings], dict[str, Any]]
    ) -> None:
        """Admins only: the change `changes(own)` gives from the server's own settings (a `Refused` is the
        reply), saved and shown."""
        community = await admitted(interaction)
        if community is None:
            return
        conversation = conversation_of(interaction)
        text = await cc.change(conversation.settings, conversation.deployment, community, changes, MARKS)
        await say(interaction, text)

    @app_commands.command(
        name="show", description="The settings that apply here, and which are this server's own"
    )
    async def show(self, interaction: discord.Interaction[Any]) -> None:
        community = await admitted(interaction)
        if community is None:
            return
        conversation = conversation_of(interaction)
        await say(
            interaction, await cc.show(conversation.settings, conversation.deployment, community, MARKS)
        )

    @app_commands.command(
        name="channels", description="The channels the bot answers in (none listed: every one)"
    )
    @app_commands.describe(
        add="A channel to answer in", remove="A channel to stop answering in", every="Answer in every channel"
    )
    async def channels(
        self,
        interaction: discord.Interaction[Any],
        add: Channel | None = None,
        remove: Channel | None = None,
        every: bool = False,
    ) -> None:
        def listed(own: CommunitySettings) -> dict[str, Any]:
            if not (add or remove or every):
                raise cc.Refused(
                    "Give a channel to add or remove, or every: True to answer in every channel."
                )
            current = set() if every else set(own.allowed_channels)
            if add is not None:
                current.add(_channel(add))
            if remove is not None:
                current.discard(str(remove.id))
            return {"allowed_channels": frozenset(current)}

        await self._change(interaction, listed)

    @app_commands.command(name="handoff", description="The role the Ask a human button calls")
    @app_commands.describe(role="The moderators' role")
    async def handoff(self, interaction: discord.Interaction[Any], role: discord.Role) -> None:
        def chosen(own: CommunitySettings) -> dict[str, Any]:
            if role.id == interaction.guild_id:
                raise cc.Refused("Pick a moderators' role, not @everyone.")
            return {"handoff": str(role.id)}

        await self._change(interaction, chosen)

    @app_commands.command(name="digest", description="Where and how often the digest of questions is posted")
    @app_commands.describe(channel="The moderators' channel for the digest", every="How often")
    async def digest(
        self,
        interaction: discord.Interaction[Any],
        channel: Channel | None = None,
        every: Literal["daily", "weekly", "monthly"] | None = None,
    ) -> None:
        def chosen(own: CommunitySettings) -> dict[str, Any]:
            changes: dict[str, Any] = {}
            if channel is not None:
                changes["digest_channel"] = _channel(channel)
            if every is not None:
                changes["digest_every"] = every
            if not changes:
                raise cc.Refused("Give a channel, a period (every), or both.")
            return changes

        await self._change(interaction, chosen)

    @app_commands.command(name="rate-limit", description="Questions a member may ask a minute")
    @app_commands.describe(per_minute="Questions per member a minute (0: the deployment's limit)")
    async def rate_limit(
        self, interaction: discord.Interaction[Any], per_minute: app_commands.Range[int, 0, cc.MAX_RATE]
    ) -> None:
        await self._change(interaction, lambda own: {"rate_limit_per_minute": per_minute})

    @app_commands.command(name="store-questions", description="Whether members' questions are stored")
    @app_commands.describe(on="Store questions (for the report page and the digest)")
    async def store_questions(self, interaction: discord.Interaction[Any], on: bool) -> None:
        await self._change(interaction, lambda own: {"store_questions": on})

    @app_commands.command(name="retention", description="How long stored questions are kept")
    @app_commands.describe(days="Days to keep questions")
    async def retention(
        self, interaction: discord.Interaction[Any], days: app_commands.Range[int, 1, cc.MAX_RETENTION_DAYS]
    ) -> None:
        await self._change(interaction, lambda own: {"retention_days": days})

    @app_commands.command(name="token-budget", description="The most tokens the bot spends here a day")
    @app_commands.describe(tokens="Tokens a day (0: the deployment's budget)")
    async def token_budget(
        self,
        interaction: discord.Interaction[Any],
        tokens: app_commands.Range[int, 0, cc.MAX_TOKEN_BUDGET],
    ) -> None:
        await self._change(interaction, lambda own: {"daily_token_budget": tokens})

    @app_commands.command(name="reset", description="Put a setting back to the deployment's default")
    @app_commands.describe(setting="The setting to reset")
    async def reset(self, interaction: discord.Interaction[Any], setting: Setting) -> None:
        await self._change(interaction, lambda own: {FIELDS[setting]: None})

    async def on_error(
        self, interaction: discord.Interaction[Any], error: app_commands.AppCommandError
    ) -> None:
        """An option Discord sent that the command cannot use: one line, no traceback for the member."""
        if isinstance(error, app_commands.TransformerError):
            _log.info("an /aisafety-settings option could not be read (%s)", error.type.name)
            text = "I could not use that value: pick it from the list Discord offers."
        else:
            _log.error("/aisafety-settings failed", exc_info=error)
            text = cc.UNSAVED
        try:
            await say(interaction, text)
        except discord.HTTPException:
            pass


@app_commands.command(name="aisafety-report", description="A private link to this server's questions report")
@app_commands.guild_only()
@app_commands.default_permissions(manage_guild=True)
async def report_command(interaction: discord.Interaction[Any]) -> None:
    community = await admitted(interaction)
    if community is None:
        return
    link = conversation_of(interaction).options.report_link
    await say(interaction, cc.report_reply(link(community) if link else None, place="server"))


def admin_commands() -> list[app_commands.Group | app_commands.Command[Any, ..., None]]:
    """The commands for a server's admins, for the client's command tree."""
    return [SettingsCommands(), report_command]
