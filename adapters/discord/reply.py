"""Discord's reply ports: how one answer is shown in a thread, a channel, a DM or an `/ask` follow-up,
with the 👍 / 👎 buttons that outlive restarts.

The conversation service (`bot/conversation.py`) decides what to show and when; these only send.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import discord

from adapters.discord.render import community_of, render, render_preview, split_message
from bot.models import Answer
from bot.platform import HANDOFF_LABEL, HANDOFF_NOT_OURS, apology, handoff_message

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
    moderators' role, and nothing else, at most once per answer (`Conversation.handoff`)."""

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
        answer = interaction.message
        if answer is None or client.user is None or answer.author.id != client.user.id:
            # Only under an answer the bot posted there: a crafted interaction names no other place.
            await interaction.followup.send(HANDOFF_NOT_OURS, ephemeral=True)
            return
        community = community_of(interaction.guild_id)

        async def call(role: str) -> None:  # this server's own role
            await interaction.channel.send(  # type: ignore[union-attr]
                handoff_message(f"<@&{int(role)}>"),
                allowed_mentions=discord.AllowedMentions(
                    everyone=False, users=False, replied_user=False, roles=[discord.Object(int(role))]
                ),
            )

        said = await client.conversation.handoff(
            community,
            f"discord:{interaction.user.id}",
            f"{interaction.channel_id}:{answer.id}",
            call,
            thread=str(interaction.channel_id),
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

    def __init__(
        self,
        channel: discord.abc.Messageable,
        *,
        handoff: bool = False,
        created: bool = False,
        preview: discord.Message | discord.PartialMessage | None = None,
    ):
        """`created`: the channel is a thread made for this answer; `preview`: a preview posted by a
        process that stopped before the answer was final (it becomes the answer)."""
        self.channel = channel
        self.handoff = handoff
        self.created = created
        self.message: discord.Message | discord.PartialMessage | None = preview

    def checkpoint(self) -> dict[str, int]:
        """What another process needs to continue this answer: the thread made for it, its preview."""
        steps: dict[str, int] = {}
        if self.created:
            steps["thread"] = int(getattr(self.channel, "id", 0))
        if self.message is not None:
            steps["preview"] = self.message.id
        return steps

    async def start(self) -> None:
        await self.channel.typing()  # shown for about 10 s, or until the first message

    async def preview(self, text: str) -> None:
        preview = render_preview(text)
        if not preview.strip():
            return
        if self.message is None:
            self.message = await self.channel.send(preview, suppress_embeds=True)
        else:
            await self._edit(preview)

    async def final(self, answer: Answer, answer_id: int | None) -> None:
        await self._replace(
            split_message(render(answer)), answer_view(answer, answer_id, handoff=self.handoff)
        )

    async def apologise(self, answer: Answer | None) -> None:
        await self._replace(split_message(apology(answer, render)), None)

    async def say(self, text: str) -> None:
        await self.channel.send(text)

    async def _edit(self, content: str, **kwargs: Any) -> None:
        """Edit the preview; one a stopped process left is known by its id only (a partial message)."""
        assert self.message is not None
        if isinstance(self.message, discord.Message):
            await self.message.edit(content=content, suppress=True, **kwargs)
        else:
            self.message = await self.message.edit(content=content, **kwargs)

    async def _replace(self, parts: list[str], view: discord.ui.View | None) -> None:
        """The preview becomes the first part (a new message if it cannot be edited, and then the preview
        is deleted: no partial answer is left beside the whole one); the rest follow."""
        stale: discord.Message | discord.PartialMessage | None = None
        for i, part in enumerate(parts):
            kwargs: dict[str, Any] = {"view": view} if i == len(parts) - 1 and view is not None else {}
            if i == 0 and self.message is not None:
                try:
                    await self._edit(part, **kwargs)
                    continue
                except discord.HTTPException as exc:
                    _log.warning("could not edit the preview (HTTP %s); sending the answer anew", exc.status)
                    stale = self.message
            await self.channel.send(part, suppress_embeds=True, **kwargs)
        if stale is not None:
            try:
                await stale.delete()
            except discord.HTTPException as exc:
                if exc.status != 404:  # 404: already gone (often why the edit failed)
                    _log.warning("could not delete a stale preview (HTTP %s)", exc.status)


class FollowupReply:
    """The Reply for `/ask`: the interaction is deferred at once; the answer comes as follow-ups (through
    the interaction's webhook, which another process can use too while its token lasts)."""

    def __init__(self, followup: discord.Webhook, private: bool, *, handoff: bool = False):
        self.followup = followup
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
            await self.followup.send(
                part, ephemeral=self.private, suppress_embeds=True, view=view or discord.utils.MISSING
            )

    async def apologise(self, answer: Answer | None) -> None:
        for part in split_message(apology(answer, render)):
            await self.followup.send(part, ephemeral=self.private, suppress_embeds=True)

    async def say(self, text: str) -> None:
        await self.followup.send(text, ephemeral=True)
