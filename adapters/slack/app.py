"""The Slack front end: Socket Mode or HTTP, one set of handlers, streamed and cited answers in threads.

Handlers only translate: raw payloads become plain values for `slack_render`, the answer comes from
`AnswerCore`, and every failure still ends in a reply.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping
from typing import Any

import aiohttp
from aiohttp import web
from slack_bolt.async_app import AsyncApp
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.http import refused_while_stopping, signed_requests_only
from adapters.slack.render import (
    HANDOFF_ACTION,
    community_of,
    mentions_bot,
    neutralise,
    to_mrkdwn,
    to_question,
)
from adapters.slack.reply import WORKING, EphemeralReply, ThreadReply
from adapters.slack.setup import bolt_logger, check_app_token, check_bot_token
from bot.conversation import Conversation
from bot.models import Question
from bot.platform import handoff_message

_log = logging.getLogger(__name__)

HISTORY_MESSAGES = 20
USAGE = (
    "Ask me about AI safety: mention me with your question, use `/ask your question` "
    "(`/ask --private your question` for an answer only you see), or DM me. In a thread where I "
    "answered, you can keep asking without mentioning me."
)
PRIVATE_FLAG = "--private"
DIRECT_CHANNEL_TYPES = ("im", "mpim")  # a direct message, and a group direct message


class SlackBot:
    def __init__(
        self,
        *,
        conversation: Conversation,
        token: str,
        signing_secret: str = "",
        base_url: str | None = None,
    ):
        """`conversation`: this platform's answers and its only way to stored state (votes, the rate
        limit, event de-duplication, thread memory, hand-offs), made by
        `Conversation.for_platform("slack", ..., usage=USAGE)`."""
        self.conversation = conversation
        kwargs: dict[str, Any] = {"base_url": base_url} if base_url else {}
        self.client = AsyncWebClient(token=token, timeout=15, **kwargs)
        # slack_sdk retries connection errors by default; Slack's 429s and 5xx are retried too.
        self.client.retry_handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=3))
        self.client.retry_handlers.append(AsyncServerErrorRetryHandler(max_retry_count=2))
        self.app = AsyncApp(
            client=self.client,
            signing_secret=signing_secret,
            process_before_response=False,
            # HTTP mode checks every signature before a body is parsed (adapters/slack/http.py), so bolt
            # need not check it again; Socket Mode has no signatures.
            request_verification_enabled=False,
            logger=bolt_logger(),
        )
        self.bot_user_id = ""
        self.team_id = ""  # the workspace of SLACK_BOT_TOKEN: events name their own, this is the fallback
        self._verifier = SignatureVerifier(signing_secret) if signing_secret else None
        self._socket: Any = None
        self.app.event("app_mention")(self._on_mention)
        self.app.event("message")(self._on_message)
        self.app.command("/ask")(self._on_ask)
        self.app.action(re.compile(r"^feedback_(up|down)$"))(self._on_feedback)
        self.app.action(HANDOFF_ACTION)(self._on_handoff)

    async def identify(self) -> None:
        """Who the bot is on this workspace (to spot its own mention and its own messages).
        Also gives the Web API client one HTTP session for the process instead of one per call."""
        if self.client.session is None:
            self.client.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15))
        self.bot_user_id, self.team_id = await check_bot_token(self.client)

    # -- events ----------------------------------------------------------------------------------
    def _ignored(self, event: Mapping[str, Any]) -> bool:
        if event.get("bot_id") or event.get("subtype") or not event.get("user"):
            return True  # other bots, the bot itself, edits and other system messages
        if event.get("user") == self.bot_user_id:
            return True
        return not self.conversation.allowed_in(
            {str(event.get("channel"))}, direct=event.get("channel_type") == "im"
        )

    def _community(self, body: Mapping[str, Any], event: Mapping[str, Any]) -> str:
        """The workspace the event was delivered for (the envelope's `team_id`, not the author's own
        team, which differs in a shared channel), or `dm` for a direct or group direct message."""
        team = str(body.get("team_id") or self.team_id)
        direct = event.get("channel_type") in DIRECT_CHANNEL_TYPES
        return community_of(team, str(event.get("channel") or ""), direct=direct)

    async def _first_delivery(
        self, community: str, body: Mapping[str, Any], event: Mapping[str, Any]
    ) -> bool:
        return await self.conversation.first_delivery(
            community, str(body.get("event_id") or ""), f"{event.get('channel')}:{event.get('ts')}"
        )

    async def _on_mention(self, event: dict[str, Any], body: dict[str, Any]) -> None:
        community = self._community(body, event)
        if self._ignored(event) or not await self._first_delivery(community, body, event):
            return
        thread_ts = str(event.get("thread_ts") or event["ts"])
        await self.conversation.remember_thread(community, str(event.get("channel")), thread_ts, True)
        self.conversation.spawn(self._answer_event(event, thread_ts, community))

    async def _on_message(self, event: dict[str, Any], body: dict[str, Any]) -> None:
        if self._ignored(event):
            return
        is_dm = event.get("channel_type") == "im"
        if not is_dm and mentions_bot(str(event.get("text") or ""), self.bot_user_id):
            return  # the app_mention delivery of the same message answers it
        thread_ts = event.get("thread_ts")
        if not is_dm and (not thread_ts or thread_ts == event.get("ts")):
            return  # a channel message not addressed to the bot
        community = self._community(body, event)
        channel = str(event.get("channel"))
        known = None if is_dm else await self.conversation.thread_is_ours(community, channel, str(thread_ts))
        if known is False:
            return  # a thread known not to be the bot's: no Web API call
        if not await self._first_delivery(community, body, event):
            return
        thread = str(thread_ts) if thread_ts else None
        self.conversation.spawn(
            self._answer_event(event, thread, community, follow_up=not is_dm, known=known)
        )

    async def _history(self, event: Mapping[str, Any], thread_ts: str | None) -> list[dict[str, Any]]:
        channel = str(event["channel"])
        if thread_ts == event.get("ts"):
            return []  # a mention that starts a thread: nothing was said before it
        if thread_ts:
            resp = await self.client.conversations_replies(
                channel=channel, ts=thread_ts, limit=HISTORY_MESSAGES + 1
            )
        else:
            resp = await self.client.conversations_history(
                channel=channel, latest=str(event["ts"]), limit=HISTORY_MESSAGES
            )
        found: list[dict[str, Any]] = list(resp.get("messages", []))
        messages = [m for m in found if m.get("ts") != event.get("ts") and m.get("text") != WORKING]
        messages.sort(key=lambda m: float(m.get("ts", 0)))
        return messages[-HISTORY_MESSAGES:]

    def _thread_is_ours(self, history: list[dict[str, Any]]) -> bool:
        if not history:
            return False
        first = history[0]
        return mentions_bot(str(first.get("text") or ""), self.bot_user_id) or any(
            m.get("user") == self.bot_user_id for m in history
        )

    async def _answer_event(
        self,
        event: Mapping[str, Any],
        thread_ts: str | None,
        community: str,
        *,
        follow_up: bool = False,
        known: bool | None = None,
    ) -> None:
        """`follow_up`: a reply in a thread, answered only if the thread is the bot's (`known`, when the
        thread memory already knows, else read from the thread's history)."""
        started = time.monotonic()
        channel = str(event["channel"])
        reply = ThreadReply(self.client, channel, thread_ts, handoff=self._handoff_in(channel))
        try:
            history = await self._history(event, thread_ts)
            if follow_up and thread_ts:
                ours = known or self._thread_is_ours(history)
                if known is None:
                    await self.conversation.remember_thread(community, reply.channel, thread_ts, ours)
                if not ours:
                    return
            question = to_question(event, bot_user_id=self.bot_user_id, history=history, community=community)
        except Exception:
            _log.exception("could not read a Slack message")
            await self.conversation.apologise(reply)
            return
        await self.conversation.answer(question, reply, started=started)

    # -- /ask and buttons ------------------------------------------------------------------------
    async def _on_ask(self, ack: Any, command: dict[str, Any]) -> None:
        text = str(command.get("text") or "").strip()
        private = text.startswith(PRIVATE_FLAG)
        if private:
            text = text[len(PRIVATE_FLAG) :].strip()
        if not text or text.lower() in {"help", "-h", "--help"}:
            await ack(text=USAGE)
            return
        channel, user = str(command["channel_id"]), str(command["user_id"])
        if not self.conversation.allowed_in({channel}, direct=channel.startswith("D")):
            await ack(
                text="I don't answer in this channel; ask me in one of the channels I'm set up for, or in a DM."
            )
            return
        await ack()
        community = community_of(
            str(command.get("team_id") or self.team_id),
            channel,
            direct=_direct_name(command.get("channel_name")),
        )
        self.conversation.spawn(self._answer_command(community, channel, user, text, private))

    async def _answer_command(
        self, community: str, channel: str, user: str, text: str, private: bool
    ) -> None:
        question = Question(text, asker=f"slack:{user}", place=f"slack:{channel}", community=community)
        reply: ThreadReply | EphemeralReply
        if private:
            reply = EphemeralReply(self.client, channel, user)
        else:
            header = f"*Question:* {neutralise(to_mrkdwn(text))}\n"
            reply = ThreadReply(self.client, channel, None, header=header, handoff=self._handoff_in(channel))
        await self.conversation.answer(question, reply)
        if isinstance(reply, ThreadReply) and reply.ts is not None:
            # Replies under the answer are follow-ups.
            await self.conversation.remember_thread(community, channel, reply.ts, True)

    async def _on_feedback(self, ack: Any, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()  # acknowledged at once, whatever the payload holds
        vote = "up" if action.get("action_id") == "feedback_up" else "down"
        user = str((body.get("user") or {}).get("id") or "")
        try:
            answer_id = int(str(action.get("value")))
        except ValueError:
            _log.info("ignored a feedback click with a malformed value")
            return
        if not user:
            _log.info("ignored a feedback click without a user")
            return
        channel = _action_channel(body)
        said = await self.conversation.vote(
            self._action_community(body, channel), answer_id, voter=f"slack:{user}", vote=vote
        )
        if channel:
            await self.client.chat_postEphemeral(channel=channel, user=user, text=said)

    async def _on_handoff(self, ack: Any, body: dict[str, Any]) -> None:
        """ "Ask a human": one message in the answer's thread mentioning the moderators' user group
        (the only mention the bot ever makes), at most once per thread (`Conversation.handoff`)."""
        await ack()
        user = str((body.get("user") or {}).get("id") or "")
        channel = _action_channel(body)
        message, container = body.get("message") or {}, body.get("container") or {}
        thread_ts = str(
            message.get("thread_ts")
            or message.get("ts")
            or container.get("thread_ts")
            or container.get("message_ts")
            or ""
        )
        if not (user and channel and thread_ts):
            _log.info("ignored an 'Ask a human' click without a user, channel or message")
            return

        async def call() -> None:
            await self.client.chat_postMessage(
                channel=channel,
                thread_ts=thread_ts,
                text=handoff_message(f"<!subteam^{self.conversation.options.handoff}>"),
            )

        said = await self.conversation.handoff(
            self._action_community(body, channel), f"slack:{user}", f"{channel}:{thread_ts}", call
        )
        await self.client.chat_postEphemeral(channel=channel, user=user, thread_ts=thread_ts, text=said)

    def _action_community(self, body: Mapping[str, Any], channel: str) -> str:
        """The community of a button click: its workspace (`team`; none on an organisation-wide install,
        then the bot's own), or `dm` in a direct or group direct message."""
        team = (body.get("team") or {}).get("id") or self.team_id
        return community_of(str(team), channel, direct=_direct_name((body.get("channel") or {}).get("name")))

    def _handoff_in(self, channel: str) -> bool:
        """Answers in this channel carry "Ask a human": with HANDOFF_ROLE, and not in direct messages."""
        return self.conversation.options.handoff is not None and not channel.startswith("D")

    # -- running ---------------------------------------------------------------------------------
    def web_app(self) -> web.Application:
        """HTTP mode: Slack's Events API, slash commands and interactivity all POST to /slack/events.
        Each request's signature is checked before its body is parsed or logged."""
        app = self.app.web_app(path="/slack/events")
        app.middlewares.append(refused_while_stopping(lambda: self.conversation.closing))
        app.middlewares.append(signed_requests_only(self._verifier))
        return app

    async def serve_http(self, host: str, port: int) -> web.AppRunner:
        runner = web.AppRunner(self.web_app())
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        return runner

    async def run_socket_mode(self, app_token: str) -> None:
        from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler

        self._socket = AsyncSocketModeHandler(self.app, app_token)
        await self._socket.start_async()

    async def check_app_token(self, app_token: str) -> None:
        """Socket Mode's token, checked at start-up: slack_sdk retries a refused one for ever."""
        await check_app_token(self.client, app_token)

    async def connected(self) -> bool:
        """Ready to receive: the Socket Mode connection is up (HTTP mode is ready once served)."""
        if self._socket is None:
            return bool(self.bot_user_id)
        return bool(await self._socket.client.is_connected())

    async def post(self, channel: str, text: str) -> None:
        """A message of the bot's own (the digest) in a channel, as mrkdwn without link previews."""
        await self.client.chat_postMessage(channel=channel, text=text, unfurl_links=False, unfurl_media=False)

    async def close(self) -> None:
        await self.conversation.drain(0)  # answers still running when the bot closes apologise
        if self._socket is not None:
            await self._socket.close_async()
            self._socket = None
        if self.client.session is not None and not self.client.session.closed:
            await self.client.session.close()


def _direct_name(channel_name: object) -> bool:
    """A slash command's or button's channel is a direct message ("directmessage") or a group one
    ("mpdm-...")."""
    name = str(channel_name or "")
    return name == "directmessage" or name.startswith("mpdm-")


def _action_channel(body: Mapping[str, Any]) -> str:
    """The channel a button was clicked in (interactivity payloads name it in one of two places)."""
    return str((body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id") or "")
