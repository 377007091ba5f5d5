"""Discord's reply ports: how one answer is shown in a thread, a channel, a DM or an `/ask` follow-up,
with the 👍 / 👎 buttons that outlive restarts.

The conversation service (`bot/conversation.py`) decides what to show and when; these only send.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import discord

from adapters.discord.render import MESSAGE_LIMIT, community_of, defuse, render, split_message
from bot.models import Answer
from bot.platform import HANDOFF_LABEL, apology, handoff_message

_log = logging.getLogger(__name__)


class FeedbackButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"aisafety:fb:(?P<answer>\d+):(?P<vote>up|down)"
):
    """👍 / 👎 on an answer. The custom id carries the answer id, so buttons work after a restart."""

    def __init__(self, answer_id: int, vote: str):
        super().__init__(
            discord.ui.Button(
                style=discord.ButtonStyle.secondary,
                emoji="👍" if vote == "up" else "👎",
                custom_id=f"aisafety:fb:{answer_id}:{vote}",
            )
        )
        self.answer_id = answer_id
        self.vote = vote

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> FeedbackButton:
        return cls(int(match["answer"]), match["vote"])

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        client: Any = interaction.client  # the bot's client: its conversation records the vote
        said = await client.conversation.vote(
            community_of(interaction.guild_id),
            self.answer_id,
            voter=f"discord:{interaction.user.id}",
            vote=self.vote,
        )
        await interaction.response.send_message(said, ephemeral=True)


class HandoffButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"aisafety:handoff"):
    """ "Ask a human" on an answer (with HANDOFF_ROLE): one message in the thread that mentions the
    moderators' role, and nothing else, at most once per thread (`Conversation.handoff`)."""

    def __init__(self) -> None:
        super().__init__(
            discord.ui.Button(
                style=discord.ButtonStyle.secondary, label=HANDOFF_LABEL, custom_id="aisafety:handoff"
            )
        )

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> HandoffButton:
        return cls()

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        client: Any = interaction.client
        await interaction.response.defer(ephemeral=True, thinking=True)  # within Discord's 3 s
        role = int(client.conversation.options.handoff or 0)

        async def call() -> None:
            await interaction.channel.send(  # type: ignore[union-attr]
                handoff_message(f"<@&{role}>"),
                allowed_mentions=discord.AllowedMentions(
                    everyone=False, users=False, replied_user=False, roles=[discord.Object(role)]
                ),
            )

        said = await client.conversation.handoff(
            community_of(interaction.guild_id),
            f"discord:{interaction.user.id}",
            str(interaction.channel_id),
            call,
        )
        await interaction.followup.send(said, ephemeral=True)


def feedback_view(answer_id: int) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(FeedbackButton(answer_id, "up"))
    view.add_item(FeedbackButton(answer_id, "down"))
    return view


def answer_view(answer: Answer, answer_id: int | None, *, handoff: bool) -> discord.ui.View | None:
    """The buttons under an answer: 👍 / 👎 when there is an answer to rate, "Ask a human" when on."""
    view = feedback_view(answer_id) if answer_id is not None and answer.mode != "abstain" else None
    if handoff:
        view = view or discord.ui.View(timeout=None)
        view.add_item(HandoffButton())
    return view


class ThreadReply:
    """The Reply for a message: typing, one reply that grows as the answer streams in, the final answer
    split at Discord's limit with the buttons on its last part."""

    def __init__(self, channel: discord.abc.Messageable, *, handoff: bool = False):
        self.channel = channel
        self.handoff = handoff
        self.message: discord.Message | None = None

    async def start(self) -> None:
        await self.channel.typing()  # shown for about 10 s, or until the first message

    async def preview(self, text: str) -> None:
        preview = defuse(text if len(text) <= MESSAGE_LIMIT - 2 else text[: MESSAGE_LIMIT - 2] + " …")
        if not preview.strip():
            return
        if self.message is None:
            self.message = await self.channel.send(preview, suppress_embeds=True)
        else:
            await self.message.edit(content=preview, suppress=True)

    async def final(self, answer: Answer, answer_id: int | None) -> None:
        await self._replace(
            split_message(render(answer)), answer_view(answer, answer_id, handoff=self.handoff)
        )

    async def apologise(self, answer: Answer | None) -> None:
        await self._replace(split_message(apology(answer, render)), None)

    async def say(self, text: str) -> None:
        await self.channel.send(text)

    async def _replace(self, parts: list[str], view: discord.ui.View | None) -> None:
        """The preview becomes the first part (a new message if it cannot be edited); the rest follow."""
        for i, part in enumerate(parts):
            kwargs: dict[str, Any] = {"view": view} if i == len(parts) - 1 and view is not None else {}
            if i == 0 and self.message is not None:
                try:
                    await self.message.edit(content=part, suppress=True, **kwargs)
                    continue
                except discord.HTTPException as exc:
                    _log.warning("could not edit the preview (HTTP %s); sending the answer anew", exc.status)
            await self.channel.send(part, suppress_embeds=True, **kwargs)


class FollowupReply:
    """The Reply for `/ask`: the interaction is deferred at once; the answer comes as follow-ups."""

    def __init__(self, interaction: discord.Interaction[Any], private: bool, *, handoff: bool = False):
        self.interaction = interaction
        self.private = private
        self.handoff = handoff and not private  # a private answer has no thread to call anyone into

    async def start(self) -> None:
        pass  # the deferral ("thinking...") is the first sign, sent before the question is read

    async def preview(self, text: str) -> None:
        pass  # a follow-up is sent whole

    async def final(self, answer: Answer, answer_id: int | None) -> None:
        parts = split_message(render(answer))
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            view = answer_view(answer, answer_id, handoff=self.handoff) if last else None
            await self.interaction.followup.send(
                part, ephemeral=self.private, suppress_embeds=True, view=view or discord.utils.MISSING
            )

    async def apologise(self, answer: Answer | None) -> None:
        for part in split_message(apology(answer, render)):
            await self.interaction.followup.send(part, ephemeral=self.private, suppress_embeds=True)

    async def say(self, text: str) -> None:
        await self.interaction.followup.send(text, ephemeral=True)
