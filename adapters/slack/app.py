"""The Slack front end: Socket Mode or HTTP, one set of handlers, streamed and cited answers in threads.

Handlers only translate: raw payloads become plain values for `slack_render`, the answer comes from
`AnswerCore`, and every failure still ends in a reply.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, NamedTuple

import aiohttp
from aiohttp import web
from slack_bolt.async_app import AsyncApp, AsyncBoltContext
from slack_bolt.authorization.async_authorize import AsyncInstallationStoreAuthorize
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.commands import AdminCommands
from adapters.slack.http import refused_while_stopping, signed_requests_only, team_and_app
from adapters.slack.oauth import OAuth
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
from bot.conversation import Claim, Conversation
from bot.models import Question, Turn
from bot.platform import HANDOFF_NOT_OURS, handoff_message
from bot.writer import answer_id_of

_log = logging.getLogger(__name__)

HISTORY_MESSAGES = 20
USAGE = (
    "Ask me about AI safety: mention me with your question, use `/ask your question` "
    "(`/ask --private your question` for an answer only you see), or DM me. In a thread where I "
    "answered, you can keep asking without mentioning me."
)
PRIVATE_FLAG = "--private"
# A slash command's response_url lasts this long (Slack's rule): an unfinished /ask is closed after it.
RESPONSE_URL_S = 30 * 60.0
DIRECT_CHANNEL_TYPES = ("im", "mpim")  # a direct message, and a group direct message
# The only entities Slack writes in message and command text: `&`, `<` and `>` as typed.
_SLACK_ENTITY = re.compile(r"&(amp|lt|gt);")
_UNESCAPED = {"amp": "&", "lt": "<", "gt": ">"}


class Workspace(NamedTuple):
    """A workspace installed by OAuth, as one request or answer sees it: a Web API client holding that
    workspace's own bot token, and the bot's user id there."""

    client: AsyncWebClient
    bot_user_id: str
    team_id: str
    enterprise_id: str = ""


# The workspace the current request (and the answer tasks it starts, which copy it) is for; unset with
# SLACK_BOT_TOKEN, where the bot's one client and identity serve.
_HERE: contextvars.ContextVar[Workspace | None] = contextvars.ContextVar("slack_workspace", default=None)


class SlackBot:
    def __init__(
        self,
        *,
        conversation: Conversation,
        token: str | None = None,
        signing_secret: str = "",
        base_url: str | None = None,
        app_id: str | None = None,
        oauth: OAuth | None = None,
    ):
        """`conversation`: this platform's answers and its only way to stored state (votes, the rate
        limit, event de-duplication, thread memory, hand-offs), made by
        `Conversation.for_platform("slack", ..., usage=USAGE)`. `app_id` (SLACK_APP_ID): signed requests
        for any other app are dropped. `token` (SLACK_BOT_TOKEN): one workspace; or `oauth`: any
        workspace that installs the app, each answered with its own token (HTTP mode only)."""
        self.conversation = conversation
        self.oauth = oauth
        kwargs: dict[str, Any] = {"base_url": base_url} if base_url else {}
        self._client = AsyncWebClient(token=None if oauth else token, timeout=15, **kwargs)
        # slack_sdk retries connection errors by default; Slack's 429s and 5xx are retried too.
        self._client.retry_handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=3))
        self._client.retry_handlers.append(AsyncServerErrorRetryHandler(max_retry_count=2))
        installs: dict[str, Any] = {}
        self._authorize: AsyncInstallationStoreAuthorize | None = None
        if oauth is not None:
            # Each request's workspace is looked up in the installations (refreshing a rotating token
            # when it is about to expire), and the bot's identity there is kept per token.
            self._authorize = AsyncInstallationStoreAuthorize(
                logger=bolt_logger(),
                installation_store=oauth.installations,
                client_id=oauth.client_id,
                client_secret=oauth.client_secret,
                token_rotation_expiration_minutes=oauth.rotate_before_min,
                bot_only=True,  # no user tokens are asked for: one lookup a request, not two
                cache_enabled=True,
                client=self._client,
            )
            installs = {
                "oauth_settings": oauth.settings(),
                "installation_store": oauth.installations,
                "authorize": self._authorize,
            }
        self.app = AsyncApp(
            client=self._client,
            signing_secret=signing_secret,
            process_before_response=False,
            # HTTP mode checks every signature before a body is parsed (adapters/slack/http.py), so bolt
            # need not check it again; Socket Mode has no signatures.
            request_verification_enabled=False,
            logger=bolt_logger(),
            **installs,
        )
        self._bot_user_id = ""
        self.team_id = ""  # the workspace of SLACK_BOT_TOKEN: events name their own, this is the fallback
        self.org_id = ""  # the organisation, when the app is installed organisation-wide
        self.app_id = app_id or ""
        self._verifier = SignatureVerifier(signing_secret) if signing_secret else None
        self._socket: Any = None
        self.app.use(self._bind_workspace)
        self.app.event("app_uninstalled")(self._on_uninstalled)
        self.app.event("tokens_revoked")(self._on_tokens_revoked)
        self.app.event("app_mention")(self._on_mention)
        self.app.event("message")(self._on_message)
        self.app.command("/ask")(self._on_ask)
        # /aisafety-settings and /aisafety-report, for workspace admins (adapters/slack/commands.py).
        AdminCommands(conversation, default_team=lambda: self.team_id).register(self.app)
        self.app.action(re.compile(r"^feedback_(up|down)$"))(self._on_feedback)
        self.app.action(HANDOFF_ACTION)(self._on_handoff)

    @property
    def client(self) -> AsyncWebClient:
        """The Web API client of the workspace being answered: with OAuth, the one holding that
        workspace's own token (bolt's, per request); with SLACK_BOT_TOKEN, the bot's one client."""
        here = _HERE.get()
        return here.client if here is not None else self._client

    @property
    def bot_user_id(self) -> str:
        """The bot's user id in the workspace being answered (each workspace gives the bot its own)."""
        here = _HERE.get()
        return here.bot_user_id if here is not None else self._bot_user_id

    @bot_user_id.setter
    def bot_user_id(self, value: str) -> None:
        self._bot_user_id = value

    async def identify(self) -> None:
        """Who the bot is on this workspace (to spot its own mention and its own messages).
        Also gives the Web API client one HTTP session for the process instead of one per call (the
        clients bolt makes for each request share it). With OAuth there is no workspace to ask yet:
        each request names its own, and the bot waits for installs."""
        if self._client.session is None:
            self._client.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15))
        if self.oauth is None:
            self.bot_user_id, self.team_id, self.org_id = await check_bot_token(self._client)

    # -- workspaces installed by OAuth -------------------------------------------------------------
    async def _bind_workspace(self, context: AsyncBoltContext, next_: Callable[[], Awaitable[None]]) -> None:
        """bolt's middleware: with OAuth, the request's workspace (its client and the bot's user id
        there, found by bolt's authorize) is the one this request and the answers it starts use."""
        if self.oauth is not None and context.bot_token:
            _HERE.set(
                Workspace(
                    context.client,
                    str(context.bot_user_id or ""),
                    str(context.team_id or ""),
                    str(context.enterprise_id or ""),
                )
            )
        await next_()

    async def workspace(self, team_id: str, enterprise_id: str = "") -> Workspace | None:
        """An installed workspace outside a request (an answer resumed after a restart, the digest):
        its current token (refreshed if it is about to expire), or None when it is not installed."""
        if self.oauth is None or self._authorize is None:
            return None
        context = AsyncBoltContext({"client": self._client})
        found = await self._authorize(
            context=context, enterprise_id=enterprise_id or None, team_id=team_id or None, user_id=None
        )
        if found is None or not found.bot_token:
            return None
        client = AsyncWebClient(
            token=found.bot_token,
            base_url=self._client.base_url,
            timeout=self._client.timeout,
            session=self._client.session,
            retry_handlers=list(self._client.retry_handlers),
        )
        return Workspace(client, str(found.bot_user_id or ""), team_id, enterprise_id)

    def _where(self) -> dict[str, str]:
        """The workspace a journal entry must be resumed in (OAuth only: the token is per workspace)."""
        here = _HERE.get()
        return {"team": here.team_id, "enterprise": here.enterprise_id} if here is not None else {}

    async def owner(self, payload: Mapping[str, Any]) -> str:
        """`not_ours`, and with OAuth: "wrong_team" for a signed request from a workspace (or
        organisation) that has not installed the app, or has uninstalled it."""
        why = self.not_ours(payload)
        if why or self.oauth is None:
            return why
        team, org, _ = team_and_app(payload)
        if not team and not org:
            return ""  # names no workspace (Slack's URL verification)
        found = await self.oauth.installations.async_find_installation(
            enterprise_id=org or None, team_id=team or None, is_enterprise_install=not team
        )
        return "" if found is not None else "wrong_team"

    async def _on_uninstalled(self, body: dict[str, Any]) -> None:
        """A workspace removed the app: its installation and everything stored of it are deleted."""
        await self._forget(body)

    async def _on_tokens_revoked(self, body: dict[str, Any], event: dict[str, Any]) -> None:
        """The bot's token was revoked (the app removed by an admin, or its scopes taken away): the
        installation is gone, and with it what is stored of the workspace. Members' own tokens (the
        app asks for none) are dropped only."""
        tokens = event.get("tokens") or {}
        if tokens.get("bot"):
            await self._forget(body)
        elif self.oauth is not None:
            for user in tokens.get("oauth") or []:
                await self.oauth.installations.async_delete_installation(
                    enterprise_id=body.get("enterprise_id"), team_id=body.get("team_id"), user_id=str(user)
                )

    async def _forget(self, body: Mapping[str, Any]) -> None:
        team, enterprise = str(body.get("team_id") or ""), str(body.get("enterprise_id") or "")
        if self.oauth is None:
            _log.info("Slack workspace %s removed the app", team or enterprise)
            return
        if team:  # the workspace's installation goes with everything else stored of it
            await self.oauth.rows.forget(community_of(team, ""))
        else:  # an organisation-wide installation: no community of its own
            await self.oauth.installations.async_delete_all(enterprise_id=enterprise or None, team_id=None)
        _log.info("Slack workspace %s removed the app: its installation is deleted", team or enterprise)

    def not_ours(self, payload: Mapping[str, Any]) -> str:
        """Why a signed request is not for this bot: "wrong_app" when SLACK_APP_ID is set and it names
        another app, "wrong_team" when it names a workspace other than SLACK_BOT_TOKEN's (auth.test's;
        any workspace of the organisation on an organisation-wide install); "" when it is ours, or
        names neither (Slack's URL verification)."""
        team, org, app = team_and_app(payload)
        if self.app_id and app and app != self.app_id:
            return "wrong_app"
        if not team or not self.team_id or team == self.team_id:
            return ""
        if self.org_id and org == self.org_id:
            return ""
        return "wrong_team"

    def _rejected(self, reason: str) -> None:
        """A refused request, counted and summed up in the minute's log line by the metrics behind the
        conversation's observer (`service.metrics.Metrics.rejected` in the running bot; read at each use,
        as the observer is); without them, a debug line."""
        rejected = getattr(self.conversation.core.observer.metrics, "rejected", None)
        if callable(rejected):
            rejected(reason)
        else:
            _log.debug("refused a request to /slack/events (%s)", reason)

    # -- events ----------------------------------------------------------------------------------
    def _not_a_member(self, event: Mapping[str, Any]) -> bool:
        """Other bots, the bot itself, edits and other system messages."""
        return bool(event.get("bot_id") or event.get("subtype") or not event.get("user")) or (
            event.get("user") == self.bot_user_id
        )

    async def _not_allowed(self, event: Mapping[str, Any], community: str) -> bool:
        """The community's settings keep the bot out of this channel."""
        return not await self.conversation.allowed_in(
            community, {str(event.get("channel"))}, direct=event.get("channel_type") == "im"
        )

    def _community(self, body: Mapping[str, Any], event: Mapping[str, Any]) -> str:
        """The workspace the event was delivered for (the envelope's `team_id`, not the author's own
        team, which differs in a shared channel), or `dm` for a direct or group direct message."""
        team = str(body.get("team_id") or self.team_id)
        direct = event.get("channel_type") in DIRECT_CHANNEL_TYPES
        return community_of(team, str(event.get("channel") or ""), direct=direct)

    async def _claim(
        self, community: str, event: Mapping[str, Any], thread: str | None, *, follow_up: bool = False
    ) -> Claim | None:
        """Journal the message before answering it (`Conversation.claim`; its app_mention and message
        deliveries and Slack's retries share the key). A claim left unfinished by a stopped process comes
        back resumed: this delivery continues it."""
        kept = ("channel", "ts", "thread_ts", "user", "channel_type", "team")
        recorded = {k: event[k] for k in kept if event.get(k)}
        if await self.conversation.stores_questions(community):
            recorded["text"] = event.get("text") or ""
        entry = {
            "kind": "event",
            "event": recorded,
            "thread": thread,
            "follow_up": follow_up,
            "community": community,
            **self._where(),
        }
        return await self.conversation.claim(
            community, f"message:{event.get('channel')}:{event.get('ts')}", entry
        )

    async def resume(self, claim: Claim) -> None:
        """Continue a question a stopped process left unfinished (`Conversation.recover`); with OAuth,
        with its workspace's token (an uninstalled workspace's is closed unanswered)."""
        if self.oauth is None:
            await self._resume(claim)
            return
        here = await self.workspace(
            str(claim.entry.get("team") or ""), str(claim.entry.get("enterprise") or "")
        )
        if here is None:
            _log.info("an unfinished question's workspace has no installation: not resumed")
            await self.conversation.finish(claim)
            return
        bound = _HERE.set(here)
        try:
            await self._resume(claim)
        finally:
            _HERE.reset(bound)

    async def _resume(self, claim: Claim) -> None:
        e = claim.entry
        if e.get("kind") == "command":
            await self._answer_command(
                str(e["community"]),
                str(e["channel"]),
                str(e["user"]),
                str(e.get("text") or ""),
                bool(e.get("private")),
                claim=claim,
            )
            return
        event = dict(e.get("event") or {})
        if "text" not in event:  # not kept (STORE_QUESTIONS=false): read again from Slack
            event["text"] = await self._message_text(str(event["channel"]), str(event["ts"]), e.get("thread"))
        thread = e.get("thread")
        await self._answer_event(
            event,
            str(thread) if thread else None,
            str(e["community"]),
            follow_up=bool(e.get("follow_up")),
            known=True,
            claim=claim,
        )

    async def _left_in(self, channel: str, thread_ts: str, after: str) -> str | None:
        """A placeholder the stopped process posted in the thread after the question but had no time to
        record: the latest becomes the answer, any other is deleted (none is left beside it)."""
        try:
            resp = await self.client.conversations_replies(channel=channel, ts=thread_ts, oldest=after)
        except Exception as exc:
            _log.info("could not look for a stopped answer's placeholder (%s)", type(exc).__name__)
            return None
        found: list[dict[str, Any]] = list(resp.get("messages", []))
        mine = sorted(
            (
                m
                for m in found
                if m.get("user") == self.bot_user_id and float(m.get("ts", 0)) > float(after or 0)
            ),
            key=lambda m: float(m.get("ts", 0)),
        )
        placeholders = [
            m for m in mine if str(m.get("text", "")).endswith((WORKING, " …")) and not m.get("blocks")
        ]
        for extra in placeholders[:-1]:
            with contextlib.suppress(Exception):
                await self.client.chat_delete(channel=channel, ts=str(extra["ts"]))
        return str(placeholders[-1]["ts"]) if placeholders else None

    async def _message_text(self, channel: str, ts: str, thread: object) -> str:
        if thread:
            resp = await self.client.conversations_replies(
                channel=channel, ts=str(thread), latest=ts, inclusive=True
            )
        else:
            resp = await self.client.conversations_history(
                channel=channel, latest=ts, inclusive=True, limit=1
            )
        messages: list[dict[str, Any]] = list(resp.get("messages", []))
        found = [m for m in messages if m.get("ts") == ts]
        return str(found[0].get("text") or "") if found else ""

    async def _on_mention(self, event: dict[str, Any], body: dict[str, Any]) -> None:
        community = self._community(body, event)
        if self._not_a_member(event) or await self._not_allowed(event, community):
            return
        thread_ts = str(event.get("thread_ts") or event["ts"])
        claim = await self._claim(community, event, thread_ts)
        if claim is None:
            return
        await self.conversation.remember_thread(community, str(event.get("channel")), thread_ts, True)
        self.conversation.spawn(self._answer_event(event, thread_ts, community, claim=claim))

    async def _on_message(self, event: dict[str, Any], body: dict[str, Any]) -> None:
        if self._not_a_member(event):
            return
        is_dm = event.get("channel_type") == "im"
        if not is_dm and mentions_bot(str(event.get("text") or ""), self.bot_user_id):
            return  # the app_mention delivery of the same message answers it
        thread_ts = event.get("thread_ts")
        if not is_dm and (not thread_ts or thread_ts == event.get("ts")):
            return  # a channel message not addressed to the bot: its settings are not even read
        community = self._community(body, event)
        if await self._not_allowed(event, community):
            return
        channel = str(event.get("channel"))
        known = None if is_dm else await self.conversation.thread_is_ours(community, channel, str(thread_ts))
        if known is False:
            return  # a thread known not to be the bot's: no Web API call
        thread = str(thread_ts) if thread_ts else None
        claim = await self._claim(community, event, thread, follow_up=not is_dm)
        if claim is None:
            return
        self.conversation.spawn(
            self._answer_event(event, thread, community, follow_up=not is_dm, known=known, claim=claim)
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
        claim: Claim | None = None,
    ) -> None:
        """`follow_up`: a reply in a thread, answered only if the thread is the bot's (`known`, when the
        thread memory already knows, else read from the thread's history)."""
        started = time.monotonic()
        channel = str(event["channel"])
        placeholder = claim.entry.get("placeholder") if claim is not None else None
        if claim is not None and claim.resumed and not placeholder and thread_ts:
            placeholder = await self._left_in(channel, thread_ts, str(event.get("ts") or ""))
        reply = ThreadReply(
            self.client,
            channel,
            thread_ts,
            handoff=await self._handoff_in(community, channel),
            ts=str(placeholder) if placeholder else None,
        )
        try:
            history = await self._history(event, thread_ts)
            if follow_up and thread_ts:
                ours = known or self._thread_is_ours(history)
                if known is None:
                    await self.conversation.remember_thread(community, reply.channel, thread_ts, ours)
                if not ours:
                    await self.conversation.finish(claim)
                    return
            question = unescaped(
                to_question(event, bot_user_id=self.bot_user_id, history=history, community=community)
            )
        except Exception:
            _log.exception("could not read a Slack message")
            await self.conversation.apologise(reply)
            await self.conversation.finish(claim)
            return
        await self.conversation.answer(question, reply, started=started, claim=claim)

    # -- /ask and buttons ------------------------------------------------------------------------
    async def _on_ask(self, ack: Any, command: dict[str, Any]) -> None:
        text = unescape(str(command.get("text") or "")).strip()
        private = text.startswith(PRIVATE_FLAG)
        if private:
            text = text[len(PRIVATE_FLAG) :].strip()
        if not text or text.lower() in {"help", "-h", "--help"}:
            await ack(text=USAGE)
            return
        channel, user = str(command["channel_id"]), str(command["user_id"])
        community = community_of(
            str(command.get("team_id") or self.team_id),
            channel,
            direct=_direct_name(command.get("channel_name")),
        )
        if not await self.conversation.allowed_in(community, {channel}, direct=channel.startswith("D")):
            await ack(
                text="I don't answer in this channel; ask me in one of the channels I'm set up for, or in a DM."
            )
            return
        await ack()
        entry: dict[str, Any] = {
            "kind": "command",
            "community": community,
            "channel": channel,
            "user": user,
            "private": private,
            # As long as the command's response_url lasts: after that, an unfinished one is closed.
            "expires_at": time.time() + RESPONSE_URL_S,
            **self._where(),
        }
        if await self.conversation.stores_questions(community):
            entry["text"] = text
        key = f"command:{command.get('trigger_id') or command.get('command_ts') or time.time_ns()}"
        claim = await self.conversation.claim(community, key, entry)
        if claim is not None:
            self.conversation.spawn(
                self._answer_command(
                    community, channel, user, text, private, claim=claim, place_name=_channel_name(command)
                )
            )

    async def _answer_command(
        self,
        community: str,
        channel: str,
        user: str,
        text: str,
        private: bool,
        *,
        claim: Claim | None = None,
        place_name: str = "",
    ) -> None:
        question = Question(
            text, asker=f"slack:{user}", place=f"slack:{channel}", community=community, place_name=place_name
        )
        reply: ThreadReply | EphemeralReply
        if private:
            reply = EphemeralReply(self.client, channel, user)
        else:
            header = f"*Question:* {neutralise(to_mrkdwn(text))}\n"
            placeholder = claim.entry.get("placeholder") if claim is not None else None
            reply = ThreadReply(
                self.client,
                channel,
                None,
                header=header,
                handoff=await self._handoff_in(community, channel),
                ts=str(placeholder) if placeholder else None,
            )
        if not text:  # resumed, its text not kept (STORE_QUESTIONS=false): closed with the apology
            await self.conversation.apologise(reply)
            await self.conversation.finish(claim)
            return
        await self.conversation.answer(question, reply, claim=claim)
        if isinstance(reply, ThreadReply) and reply.ts is not None:
            # Replies under the answer are follow-ups.
            await self.conversation.remember_thread(community, channel, reply.ts, True)

    async def _on_feedback(self, ack: Any, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()  # acknowledged at once, whatever the payload holds
        vote = "up" if action.get("action_id") == "feedback_up" else "down"
        user = str((body.get("user") or {}).get("id") or "")
        answer_id = answer_id_of(action.get("value"))
        if answer_id is None:
            _log.debug("ignored a feedback click with a malformed answer id")
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
        (the only mention the bot ever makes), at most once per answer (`Conversation.handoff`), and
        only under an answer the bot posted there."""
        await ack()
        user = str((body.get("user") or {}).get("id") or "")
        channel = _action_channel(body)
        message, container = body.get("message") or {}, body.get("container") or {}
        answer_ts = str(message.get("ts") or container.get("message_ts") or "")
        thread_ts = str(message.get("thread_ts") or answer_ts)
        if not (user and channel and answer_ts):
            _log.info("ignored an 'Ask a human' click without a user, channel or message")
            return
        if message.get("user") != self.bot_user_id or not self.bot_user_id:
            await self.client.chat_postEphemeral(channel=channel, user=user, text=HANDOFF_NOT_OURS)
            return

        community = self._action_community(body, channel)

        async def call(group: str) -> None:  # this workspace's own user group
            await self.client.chat_postMessage(
                channel=channel,
                thread_ts=thread_ts,
                text=handoff_message(f"<!subteam^{group}>"),
            )

        said = await self.conversation.handoff(
            community,
            f"slack:{user}",
            f"{channel}:{answer_ts}",
            call,
            thread=f"{channel}:{thread_ts}",
        )
        await self.client.chat_postEphemeral(channel=channel, user=user, thread_ts=thread_ts, text=said)

    def _action_community(self, body: Mapping[str, Any], channel: str) -> str:
        """The community of a button click: its workspace (`team`; none on an organisation-wide install,
        then the bot's own), or `dm` in a direct or group direct message."""
        team = (body.get("team") or {}).get("id") or self.team_id
        return community_of(str(team), channel, direct=_direct_name((body.get("channel") or {}).get("name")))

    async def _handoff_in(self, community: str, channel: str) -> bool:
        """Answers in this channel carry "Ask a human": the workspace has a hand-off user group (its own,
        or HANDOFF_ROLE when that group is this workspace's), and not in direct messages."""
        if channel.startswith("D"):
            return False
        return (await self.conversation.effective(community)).handoff is not None

    # -- running ---------------------------------------------------------------------------------
    def web_app(self) -> web.Application:
        """HTTP mode: Slack's Events API, slash commands and interactivity all POST to /slack/events.
        Each request's signature is checked before its body is parsed or logged."""
        app = self.app.web_app(path="/slack/events")
        app.middlewares.append(refused_while_stopping(lambda: self.conversation.closing))
        app.middlewares.append(
            signed_requests_only(self._verifier, owner=self.owner, rejected=self._rejected)
        )
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
            return self.oauth is not None or bool(self.bot_user_id)
        return bool(await self._socket.client.is_connected())

    async def post(self, channel: str, text: str, *, community: str | None = None) -> None:
        """A message of the bot's own (the digest) in a channel, as mrkdwn without link previews. With
        OAuth, `community` (`slack:<team>`) names the workspace whose token posts it."""
        client = self.client
        if self.oauth is not None:
            team = (community or "").removeprefix("slack:")
            here = await self.workspace(team) if community and team != community else None
            if here is None:
                _log.warning("not posted in %s: its workspace is not installed", channel)
                return
            client = here.client
        await client.chat_postMessage(channel=channel, text=text, unfurl_links=False, unfurl_media=False)

    async def close(self) -> None:
        await self.conversation.drain(0)  # answers still running when the bot closes apologise
        if self._socket is not None:
            await self._socket.close_async()
            self._socket = None
        if self._client.session is not None and not self._client.session.closed:
            await self._client.session.close()


def unescape(text: str) -> str:
    """Slack's text as typed: `&amp;`, `&lt;` and `&gt;` back to `&`, `<` and `>`, once (`&amp;lt;` is
    `&lt;` typed). Slack's own markup (`<@U...>`, `<https://...|...>`) is left as it is."""
    return _SLACK_ENTITY.sub(lambda m: _UNESCAPED[m.group(1)], text)


def unescaped(question: Question) -> Question:
    """A question from Slack as its members typed it (the text and the thread's turns), for search, the
    model and the stored history; what the bot shows is escaped again when it is written."""
    return dataclasses.replace(
        question,
        text=unescape(question.text),
        history=tuple(Turn(t.role, unescape(t.text)) for t in question.history),
    )


def _channel_name(command: Mapping[str, Any]) -> str:
    """The channel's name a slash command carries (the report shows it); none for a direct message.
    Events carry no name, so questions asked by a mention have none."""
    name = str(command.get("channel_name") or "")
    return "" if _direct_name(name) or name == "privategroup" else name


def _direct_name(channel_name: object) -> bool:
    """A slash command's or button's channel is a direct message ("directmessage") or a group one
    ("mpdm-...")."""
    name = str(channel_name or "")
    return name == "directmessage" or name.startswith("mpdm-")


def _action_channel(body: Mapping[str, Any]) -> str:
    """The channel a button was clicked in (interactivity payloads name it in one of two places)."""
    return str((body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id") or "")
