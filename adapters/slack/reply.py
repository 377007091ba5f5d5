"""Slack's reply ports: how one answer is shown in a channel or thread, or to the asker only.

The conversation service (`bot/conversation.py`) decides what to show and when; these only send.
"""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.render import neutralise, render_blocks, render_text, to_mrkdwn
from bot.models import Answer
from bot.platform import apology

_log = logging.getLogger(__name__)

WORKING = "_Looking through the articles…_"
ANSWERED_BELOW = "_The answer is below._"


class ThreadReply:
    """The Reply in a channel or thread: a placeholder at once, updated as the answer streams in, then
    the final Block Kit answer (a new message if the placeholder cannot be updated)."""

    def __init__(
        self,
        client: AsyncWebClient,
        channel: str,
        thread_ts: str | None,
        *,
        header: str = "",
        handoff: bool = False,
        ts: str | None = None,
    ):
        """`ts`: the placeholder a stopped process posted for this answer (it becomes the answer)."""
        self.client = client
        self.channel = channel
        self.thread_ts = thread_ts
        self.header = header
        self.handoff = handoff
        self.ts: str | None = ts

    def checkpoint(self) -> dict[str, str]:
        """What another process needs to continue this answer: its placeholder."""
        return {"placeholder": self.ts} if self.ts is not None else {}

    async def start(self) -> None:
        if self.ts is not None:
            return  # continued: the placeholder is already there
        posted = await self.client.chat_postMessage(
            channel=self.channel, thread_ts=self.thread_ts, text=self.header + WORKING
        )
        self.ts = str(posted["ts"])

    async def preview(self, text: str) -> None:
        if self.ts is not None:
            await self.client.chat_update(
                channel=self.channel, ts=self.ts, text=neutralise(to_mrkdwn(text)) + " …"
            )

    async def final(self, answer: Answer, answer_id: int | None) -> None:
        await self._replace(render_text(answer), render_blocks(answer, answer_id, handoff=self.handoff))

    async def apologise(self, answer: Answer | None) -> None:
        await self._replace(apology(answer, render_text), [])

    async def say(self, text: str) -> None:
        await self.client.chat_postMessage(channel=self.channel, thread_ts=self.thread_ts, text=text)

    async def _replace(self, text: str, blocks: list[dict[str, Any]]) -> None:
        stale = self.ts
        if stale is not None:
            try:
                await self.client.chat_update(channel=self.channel, ts=stale, text=text, blocks=blocks)
                return
            except (SlackApiError, aiohttp.ClientError, OSError, TimeoutError) as exc:
                _log.warning(
                    "could not update the placeholder (%s); posting the answer anew", type(exc).__name__
                )
        posted = await self.client.chat_postMessage(
            channel=self.channel, thread_ts=self.thread_ts, text=text, blocks=blocks
        )
        self.ts = str(posted["ts"])
        if stale is not None:
            await self._retire(stale)

    async def _retire(self, stale: str) -> None:
        """No partial preview is left beside the answer posted anew: deleted, or else pointed at it."""
        try:
            await self.client.chat_delete(channel=self.channel, ts=stale)
            return
        except (SlackApiError, aiohttp.ClientError, OSError, TimeoutError) as exc:
            _log.info("could not delete the old placeholder (%s)", type(exc).__name__)
        try:
            await self.client.chat_update(channel=self.channel, ts=stale, text=ANSWERED_BELOW, blocks=[])
        except (SlackApiError, aiohttp.ClientError, OSError, TimeoutError) as exc:
            _log.warning("an old placeholder could not be removed (%s)", type(exc).__name__)


class EphemeralReply:
    """The Reply for `/ask --private`: only the asker sees it (the command's ack was the first sign)."""

    def __init__(self, client: AsyncWebClient, channel: str, user: str):
        self.client = client
        self.channel = channel
        self.user = user

    async def start(self) -> None:
        pass

    async def preview(self, text: str) -> None:
        pass  # an ephemeral message cannot be edited

    async def final(self, answer: Answer, answer_id: int | None) -> None:
        await self.client.chat_postEphemeral(
            channel=self.channel,
            user=self.user,
            text=render_text(answer),
            blocks=render_blocks(answer, answer_id),
        )

    async def apologise(self, answer: Answer | None) -> None:
        await self.client.chat_postEphemeral(
            channel=self.channel, user=self.user, text=apology(answer, render_text)
        )

    async def say(self, text: str) -> None:
        await self.client.chat_postEphemeral(channel=self.channel, user=self.user, text=text)
