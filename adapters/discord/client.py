"""The Discord front end: events in, threads and streamed, cited answers out.

Handlers only translate: discord.py objects become plain values for `discord_render`, the answer
comes from `AnswerCore`, and every failure still ends in a reply.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, Protocol, runtime_checkable

import aiohttp
import discord
from discord import app_commands

from adapters.discord.commands import admin_commands
from adapters.discord.render import (
    Said,
    community_of,
    split_message,
    strip_mentions,
    thread_name,
    to_question,
)
from adapters.discord.reply import FeedbackButton, FollowupReply, HandoffButton, ThreadReply
from bot.conversation import Claim, Conversation
from bot.errors import StartupError
from bot.models import Question
from bot.platform import VOTE_FAILED
from bot.writer import answer_id_of

_log = logging.getLogger(__name__)

HISTORY_MESSAGES = 20
STARTER_CACHE = 1024
USAGE = (
    "Ask me about AI safety: mention me with your question (for example *@aisafety-bot what is "
    "inner alignment?*), or use `/ask`. In a thread I started you can keep asking without mentioning me."
)


# An interaction's token lets the bot follow it up for this long (Discord's rule).
INTERACTION_TOKEN_S = 15 * 60.0


class CheckedFeedbackButton(
    FeedbackButton, template=r"aisafety:fb:(?P<answer>[^:]{1,100}):(?P<vote>up|down)"
):
    """A 👍 / 👎 click as it arrives: the answer id in its custom id is checked before anything is
    looked up; a click whose id is no answer id (not digits, 0, past 2**63 - 1) is told VOTE_FAILED."""

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> CheckedFeedbackButton:
        button = cls(answer_id_of(match["answer"]) or 0, match["vote"])
        return button

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        if self.answer_id == 0:
            _log.debug("a feedback click with a malformed answer id")
            await interaction.response.send_message(VOTE_FAILED, ephemeral=True)
            return
        await super().callback(interaction)


@app_commands.command(name="ask", description="Ask a question about AI safety")
@app_commands.describe(question="Your question", private="Only you see the answer")
async def ask_command(interaction: discord.Interaction[Any], question: str, private: bool = False) -> None:
    client = interaction.client
    assert isinstance(client, AiSafetyDiscord)
    await client.slash_ask(interaction, question, private)


@app_commands.command(name="help", description="How to use the AI-safety bot")
async def help_command(interaction: discord.Interaction[Any]) -> None:
    await interaction.response.send_message(USAGE, ephemeral=True)


def _command_definitions() -> list[app_commands.Command[Any, ..., None] | app_commands.Group]:
    """Every slash command: /ask and /help for members, and the server admins' own (commands.py)."""
    return [ask_command, help_command, *admin_commands()]


class AiSafetyDiscord(discord.Client):
    def __init__(self, *, conversation: Conversation, sync_commands: bool = False, **kwargs: Any):
        """`conversation`: this platform's answers and its only way to stored state (votes, the rate
        limit, hand-offs), made by `Conversation.for_platform("discord", ..., usage=USAGE)`."""
        # The bot never joins voice channels: discord.py's "voice will NOT be supported" notes are noise.
        discord.VoiceClient.warn_nacl = discord.VoiceClient.warn_dave = False
        intents = discord.Intents.default()
        intents.message_content = True
        super().__init__(intents=intents, allowed_mentions=discord.AllowedMentions.none(), **kwargs)
        self.conversation = conversation
        self.tree = app_commands.CommandTree(self)
        self._starters: OrderedDict[int, Said] = OrderedDict()  # thread id -> its opening message
        self._sync_commands = sync_commands
        for command in _command_definitions():
            self.tree.add_command(command)

    async def sign_in(self, token: str) -> None:
        """Log in (one REST call), turning the failures a new deployment meets into one line that says
        what to do. Done before anything slow, so a bad token is reported at once."""
        try:
            await self.login(token)
        except discord.LoginFailure:
            raise StartupError(
                "Discord refused DISCORD_TOKEN (401 Unauthorized): copy the bot token again from the "
                "developer portal (your application -> Bot -> Reset Token)"
            ) from None
        except (aiohttp.ClientError, OSError, TimeoutError, discord.HTTPException) as exc:
            raise StartupError(_unreachable(exc)) from None

    async def run_connected(self) -> None:
        """The gateway connection, until the client is closed (discord.py reconnects on its own)."""
        try:
            await self.connect(reconnect=True)
        except discord.PrivilegedIntentsRequired:
            raise StartupError(
                "Discord refused the Message Content intent: switch on Message Content Intent on the "
                "developer portal (your application -> Bot -> Privileged Gateway Intents)"
            ) from None
        except (aiohttp.ClientError, OSError, TimeoutError, discord.GatewayNotFound) as exc:
            raise StartupError(_unreachable(exc)) from None

    async def setup_hook(self) -> None:
        self.add_dynamic_items(CheckedFeedbackButton, HandoffButton)
        if self._sync_commands:  # on purpose only: Discord rate-limits command registration
            synced = await self.tree.sync()
            _log.info("synced %d slash commands", len(synced))

    # -- which messages are for us ---------------------------------------------------------------
    async def _allowed(self, channel: Any, guild: discord.Guild | None) -> bool:
        """The bot answers in this channel (its server's allow list)."""
        ids = {str(getattr(channel, "id", "")), str(getattr(channel, "parent_id", "") or "")}
        community = community_of(guild.id if guild is not None else None)
        return await self.conversation.allowed_in(
            community, ids, direct=isinstance(channel, discord.DMChannel)
        )

    def _addressed(self, message: discord.Message) -> str | None:
        """Why this message is for the bot: 'dm', 'mention', 'thread' or 'reply'; None if it isn't."""
        assert self.user is not None
        if message.author.bot or message.author.id == self.user.id:
            return None
        if isinstance(message.channel, discord.DMChannel):
            return "dm"
        if self.user in message.mentions:
            return "mention"
        ref = message.reference.resolved if message.reference else None
        if isinstance(ref, discord.Message) and ref.author.id == self.user.id:
            return "reply"
        if isinstance(message.channel, discord.Thread) and message.channel.owner_id == self.user.id:
            return "thread"
        return None

    async def on_message(self, message: discord.Message) -> None:
        why = self._addressed(message)
        if why is None or not await self._allowed(message.channel, message.guild):
            return
        # The gateway's event loop must not wait for an answer.
        self.conversation.spawn(self._claim_message(message, why))

    async def _claim_message(self, message: discord.Message, why: str) -> None:
        """Journal the question first (`Conversation.claim`): a process that dies with it unanswered
        leaves it to the next one, which continues it from what was recorded (`resume`)."""
        community = community_of(message.guild.id if message.guild is not None else None)
        entry = {"kind": "message", "channel": message.channel.id, "message": message.id, "why": why}
        claim = await self.conversation.claim(community, f"message:{message.id}", entry)
        if claim is not None:
            await self._answer_message(message, why, claim)

    async def resume(self, claim: Claim) -> None:
        """Continue a question a stopped process left unfinished (`Conversation.recover`)."""
        e = claim.entry
        if e.get("kind") == "slash":
            await self._resume_slash(claim)
            return
        channel: Any = self.get_channel(int(e["channel"])) or await self.fetch_channel(int(e["channel"]))
        message = await channel.fetch_message(int(e["message"]))
        await self._answer_message(message, str(e.get("why") or "mention"), claim)

    async def _answer_message(self, message: discord.Message, why: str, claim: Claim | None = None) -> None:
        assert self.user is not None
        started = time.monotonic()
        # "Ask a human" where the server has a hand-off role (never in DMs).
        handoff = message.guild is not None and await self._handoff_in(message.guild.id)
        recorded = claim.entry if claim is not None else {}
        reply = ThreadReply(
            message.channel, handoff=handoff, preview=self._preview_of(message.channel, recorded)
        )
        try:
            if recorded.get("thread"):
                # Continued: the thread (and any preview in it) the stopped process made.
                thread: Any = self.get_channel(int(recorded["thread"])) or await self.fetch_channel(
                    int(recorded["thread"])
                )
                preview = self._preview_of(thread, recorded) or await self._left_in(thread)
                reply = ThreadReply(thread, handoff=handoff, created=True, preview=preview)
            elif why == "mention" and isinstance(message.channel, discord.TextChannel):
                # The first visible sign of work: a thread named after the question.
                text = strip_mentions(message.content, self.user.id)
                reply = ThreadReply(
                    await message.create_thread(name=thread_name(text or "Question")),
                    handoff=handoff,
                    created=True,
                )
                if claim is not None:
                    claim = await self.conversation.record(claim, reply.checkpoint())
            history = await self._history(reply.channel, message)
            question = to_question(
                message.content,
                bot_id=self.user.id,
                history=history,
                asker=f"discord:{message.author.id}",
                place=f"discord:{getattr(reply.channel, 'id', '')}",
                community=community_of(message.guild.id if message.guild is not None else None),
            )
            question = replace(question, place_name=channel_name(message.channel))
        except Exception:
            _log.exception("could not read a Discord message (%s)", why)
            await self.conversation.apologise(reply)
            await self.conversation.finish(claim)
            return
        await self.conversation.answer(question, reply, started=started, claim=claim)

    async def _left_in(self, thread: Any) -> discord.Message | None:
        """A preview the stopped process posted in the thread it made but had no time to record: the
        latest of the bot's messages there becomes the answer, any other is deleted (none is left)."""
        assert self.user is not None
        mine = [m async for m in thread.history(limit=HISTORY_MESSAGES) if m.author.id == self.user.id]
        for extra in mine[1:]:  # newest first
            with contextlib.suppress(discord.HTTPException):
                await extra.delete()
        return mine[0] if mine else None

    @staticmethod
    def _preview_of(channel: Any, recorded: Mapping[str, Any]) -> discord.PartialMessage | None:
        """The preview a stopped process left (it becomes the answer), in the channel it was posted in."""
        preview = recorded.get("preview")
        if not preview or not hasattr(channel, "get_partial_message"):
            return None
        if recorded.get("thread") and int(recorded["thread"]) != channel.id:
            return None
        return channel.get_partial_message(int(preview))

    async def _history(self, target: Any, message: discord.Message) -> list[Said]:
        """The earlier messages of the thread or DM (bounded), oldest first; not the question itself.
        A reply in a channel has the message it replies to as its conversation."""
        said: list[Said] = []
        replied = message.reference.resolved if message.reference is not None else None
        if isinstance(replied, discord.Message) and not isinstance(
            target, discord.Thread | discord.DMChannel
        ):
            if replied.content:
                said.append(Said(replied.author.id, replied.content, replied.author.bot))
            return said
        if isinstance(target, discord.Thread | discord.DMChannel) and target.id != message.id:
            async for m in target.history(limit=HISTORY_MESSAGES, before=message):
                if m.content:
                    said.append(Said(m.author.id, m.content, m.author.bot))
            said.reverse()
            if isinstance(target, discord.Thread) and isinstance(target.parent, discord.TextChannel):
                # A thread started from a message: that message opened the conversation. It is fetched
                # once per thread, not on every follow-up.
                starter = self._starters.get(target.id)
                if starter is None:
                    try:
                        found = await target.parent.fetch_message(target.id)
                    except discord.HTTPException:
                        return said
                    starter = self._starters[target.id] = Said(
                        found.author.id, found.content, found.author.bot
                    )
                    if len(self._starters) > STARTER_CACHE:
                        self._starters.popitem(last=False)
                said.insert(0, starter)
        return said

    # -- slash commands --------------------------------------------------------------------------
    async def slash_ask(self, interaction: discord.Interaction[Any], question: str, private: bool) -> None:
        started = time.monotonic()
        await interaction.response.defer(ephemeral=private, thinking=True)  # within Discord's 3 s
        community = community_of(interaction.guild_id)
        # Journaled with what a follow-up needs while the interaction's token lasts (15 minutes); the
        # question's text only when questions may be stored (without it, an unfinished one is closed).
        entry: dict[str, Any] = {
            "kind": "slash",
            "token": interaction.token,
            "expires_at": interaction.created_at.timestamp() + INTERACTION_TOKEN_S,
            "private": private,
            "asker": interaction.user.id,
            "channel": interaction.channel_id,
            "guild": interaction.guild_id,
        }
        if await self.conversation.stores_questions(community):
            entry["question"] = question
        claim = await self.conversation.claim(community, f"interaction:{interaction.id}", entry)
        if claim is None:
            return
        q = Question(
            question,
            asker=f"discord:{interaction.user.id}",
            place=f"discord:{interaction.channel_id}",
            community=community,
            place_name=channel_name(interaction.channel),
        )
        reply = FollowupReply(
            interaction.followup,
            private,
            handoff=interaction.guild_id is not None and await self._handoff_in(interaction.guild_id),
        )
        await self.conversation.answer(q, reply, started=started, claim=claim)

    async def _resume_slash(self, claim: Claim) -> None:
        e = claim.entry
        assert self.application_id is not None
        followup = discord.Webhook.partial(self.application_id, str(e["token"]), client=self)
        reply = FollowupReply(
            followup,
            bool(e.get("private")),
            handoff=bool(e.get("guild")) and await self._handoff_in(e.get("guild")),
        )
        if not e.get("question"):  # not kept (STORE_QUESTIONS=false): the member gets the apology
            await self.conversation.apologise(reply)
            await self.conversation.finish(claim)
            return
        q = Question(
            str(e["question"]),
            asker=f"discord:{e.get('asker')}",
            place=f"discord:{e.get('channel')}",
            community=community_of(e.get("guild")),
        )
        await self.conversation.answer(q, reply, claim=claim)

    # -- leaving a server forgets it -------------------------------------------------------------
    async def on_guild_remove(self, guild: discord.Guild) -> None:
        """The bot was removed from a server (or the server was deleted): everything stored of that
        community goes. discord.py does not call this for a server that is only unavailable (an outage:
        GUILD_DELETE with `unavailable`)."""
        await self._forget([community_of(guild.id)], "a server removed the bot")

    async def on_ready(self) -> None:
        """Servers that removed the bot while it was not connected: READY lists every server of this
        process's shards (those in an outage too, as unavailable), and `ready` comes once every shard's
        has. Each READY (a new session after a long disconnection too) is compared again."""
        self.conversation.spawn(self._forget_departed())

    async def _forget_departed(self) -> None:
        store = _forgetting_store(self.conversation)
        if store is None or not self.is_ready():
            return
        present = {g.id for g in self.guilds}
        count = self.shard_count or 1
        shard_ids = getattr(self, "shard_ids", None)
        mine = set(shard_ids) if shard_ids is not None else None
        if mine is None and count > 1 and self.shard_id is not None:
            mine = {self.shard_id}
        try:
            stored = await store.run(store.communities)
        except Exception as exc:
            _log.warning("could not compare the stored servers with the bot's (%s)", type(exc).__name__)
            return
        gone = []
        for community in stored:
            platform, _, ident = community.partition(":")
            if platform != "discord" or not ident.isdigit() or int(ident) in present:
                continue
            if mine is not None and (int(ident) >> 22) % count not in mine:
                continue  # another process's shard has this server
            gone.append(community)
        if gone:
            await self._forget(gone, f"{len(gone)} server(s) removed the bot while it was away")

    async def _forget(self, communities: list[str], why: str) -> None:
        """Delete these communities' stored rows and their copies on Redis; one INFO line with the counts
        (no names)."""
        store = _forgetting_store(self.conversation)
        if store is None:
            return
        total: dict[str, int] = {}
        try:
            for community in communities:
                for table, n in (await store.forget(community)).items():
                    total[table] = total.get(table, 0) + n
        except Exception as exc:
            _log.warning("%s; its stored questions could not be deleted (%s)", why, type(exc).__name__)
            return
        deleted = ", ".join(f"{n} {table}" for table, n in total.items() if n) or "nothing was stored"
        _log.info("Discord: %s; deleted %s", why, deleted)

    async def _handoff_in(self, guild_id: Any) -> bool:
        """Answers in this server carry "Ask a human": it has a hand-off role (its own, or HANDOFF_ROLE
        when that role is this server's)."""
        return (await self.conversation.effective(community_of(guild_id))).handoff is not None

    async def post(self, channel_id: str, text: str) -> None:
        """A message of the bot's own (the digest) in a channel, split at Discord's limit; the client
        allows no mentions, so nothing in it pings anyone."""
        channel = self.get_channel(int(channel_id)) or await self.fetch_channel(int(channel_id))
        for piece in split_message(text):
            await channel.send(piece, allowed_mentions=discord.AllowedMentions.none())  # type: ignore[union-attr]

    async def close(self) -> None:
        await self.conversation.drain(0)  # answers still running when the client closes apologise
        await super().close()


async def sync_commands(token: str, *, guild_id: int | None = None) -> list[str]:
    """Log in over REST only (no gateway) and register the slash commands; returns their names."""
    client = discord.Client(intents=discord.Intents.none())
    tree = app_commands.CommandTree(client)
    for command in _command_definitions():
        tree.add_command(command)
    async with client:
        await client.login(token)
        guild = discord.Object(guild_id) if guild_id else None
        if guild is not None:
            tree.copy_global_to(guild=guild)
        synced = await tree.sync(guild=guild)
    return [c.name for c in synced]


@runtime_checkable
class _Forgets(Protocol):
    """The answers store's part in forgetting a community (`service.feedback.FeedbackStore`)."""

    async def run(self, call: Callable[..., Any], *args: Any) -> Any: ...

    def communities(self) -> list[str]: ...

    async def forget(self, community: str) -> dict[str, int]: ...


def _forgetting_store(conversation: Conversation) -> _Forgets | None:
    """The conversation's store, when it keeps communities' rows (a test's fake may not)."""
    store = conversation.store
    return store if isinstance(store, _Forgets) else None


def _unreachable(exc: BaseException) -> str:
    text = str(exc).strip()
    detail = text.splitlines()[0][:200] if text else "no details"
    return (
        f"cannot reach Discord ({type(exc).__name__}: {detail}): check this machine's network connection, "
        "DNS, proxy or firewall"
    )


class ShardedAiSafetyDiscord(AiSafetyDiscord, discord.AutoShardedClient):
    """The same bot on some of the shards of a sharded bot (`DISCORD_SHARD_COUNT`, `DISCORD_SHARD_IDS`):
    Discord sends each server's events to one shard, so processes running different shards share the
    servers between them. Needed from 2,500 servers; also spreads a large bot over machines."""

    def __init__(self, *, shard_count: int, shard_ids: list[int] | None = None, **kwargs: Any):
        super().__init__(shard_count=shard_count, shard_ids=shard_ids, **kwargs)


def channel_name(channel: Any) -> str:
    """The name of the channel a question was asked in, for the report: a thread's parent channel (a
    thread's own name is the question), none in a direct message."""
    if channel is None or isinstance(channel, discord.DMChannel | discord.GroupChannel):
        return ""
    parent = getattr(channel, "parent", None)
    return str(getattr(parent if parent is not None else channel, "name", "") or "")
