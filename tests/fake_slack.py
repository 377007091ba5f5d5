"""A fake Slack Web API (and Socket Mode WebSocket) on 127.0.0.1 for the real slack-bolt / slack_sdk.

It keeps channels' messages, answers the methods the bot calls, records every call, can answer a
method with 429 once, and pushes Socket Mode envelopes, checking their acknowledgements.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web
from slack_sdk.signature import SignatureVerifier

from tests.loopback import serve_loopback, stop_loopback, wait_until


def signed_headers(
    secret: str, body: bytes, *, content_type: str = "application/json", timestamp: int | None = None
) -> dict[str, str]:
    """The headers Slack sends with a request it signed with the app's signing secret."""
    ts = str(timestamp if timestamp is not None else int(time.time()))
    signature = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body.decode())
    return {"content-type": content_type, "x-slack-request-timestamp": ts, "x-slack-signature": signature}


def event_callback(message: dict[str, Any], event_id: str, *, kind: str = "app_mention") -> bytes:
    """The body Slack's Events API POSTs for a member's message (`user_message`)."""
    return json.dumps(
        {
            "type": "event_callback",
            "event_id": event_id,
            "team_id": "T0001",
            "event": dict(message, type=kind),
        }
    ).encode()


class _Refused(Exception):
    """A method's `ok: false` answer, with its error."""


BOT_USER = "UBOT0001"
BOT_ID = "BBOT0001"


@dataclass
class Call:
    method: str
    args: dict[str, Any]
    at: float
    token: str = ""  # the bearer token the call was made with ("" for none)
    client: str = ""  # the client id of HTTP Basic auth (oauth.v2.access)


@dataclass
class Grant:
    """A workspace that installs the app by OAuth: what oauth.v2.access answers for its code, and
    auth.test for its bot token."""

    team_id: str
    team_name: str
    bot_user_id: str
    installer: str = "UINSTALL1"
    rotating: bool = False  # token rotation: the bot token expires (`expires_in`) and has a refresh token
    expires_in: int = 43200


CLIENT_ID = "111.222"
CLIENT_SECRET = "fake-client-secret"


@dataclass
class FakeSlack:
    url: str = ""
    calls: list[Call] = field(default_factory=list)
    messages: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    rate_limit_once: set[str] = field(default_factory=set)
    errors: dict[str, str] = field(default_factory=dict)  # method -> the error it answers with (ok: false)
    server_errors: dict[str, int] = field(default_factory=dict)  # method -> how many more calls get HTTP 500
    acks: list[dict[str, Any]] = field(default_factory=list)
    by_method: dict[str, list[Call]] = field(default_factory=dict)
    first_reply: dict[str, tuple[str, float]] = field(default_factory=dict)  # thread_ts -> (reply ts, time)
    first_update: dict[str, float] = field(default_factory=dict)  # message ts -> time of its first update
    admins: set[str] = field(default_factory=set)  # users.info: these members are workspace admins
    owners: set[str] = field(default_factory=set)  # users.info: these members are workspace owners
    responses: list[dict[str, Any]] = field(default_factory=list)  # what was POSTed to a response_url
    # OAuth installs: a code the authorize page gave -> its workspace; the tokens granted -> workspace
    codes: dict[str, Grant] = field(default_factory=dict)
    tokens: dict[str, Grant] = field(default_factory=dict)
    refresh_tokens: dict[str, Grant] = field(default_factory=dict)
    _ts: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _ws: list[web.WebSocketResponse] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def new_ts(self) -> str:
        return f"{int(time.time())}.{next(self._ts):06d}"

    def named(self, method: str) -> list[Call]:
        return self.by_method.get(method, [])

    def user_message(
        self,
        channel: str,
        text: str,
        *,
        user: str = "UALICE01",
        thread_ts: str | None = None,
        channel_type: str = "channel",
        ts: str | None = None,
    ) -> dict[str, Any]:
        """A member's message, stored for history; returns the event to deliver."""
        msg: dict[str, Any] = {
            "type": "message",
            "user": user,
            "text": text,
            "ts": ts or self.new_ts(),
            "channel": channel,
            "channel_type": channel_type,
            "team": "T0001",
        }
        if thread_ts:
            msg["thread_ts"] = thread_ts
        self.messages.setdefault(channel, []).append(msg)
        return msg

    def bot_texts(self, channel: str) -> list[str]:
        return [m.get("text", "") for m in self.messages.get(channel, []) if m.get("user") == BOT_USER]

    async def wait_for(self, check: Callable[[], Any], within: float = 20.0) -> Any:
        return await wait_until(
            check, self._changed, within=within, recent=lambda: ", ".join(c.method for c in self.calls[-15:])
        )

    # -- Web API ----------------------------------------------------------------------------------
    async def api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args: dict[str, Any] = dict(request.query)
        if request.can_read_body:
            if request.content_type == "application/json":
                args.update(await request.json())
            else:
                args.update(dict(await request.post()))
        auth = request.headers.get("Authorization", "")
        kind, _, credentials = auth.partition(" ")
        bearer = credentials if kind == "Bearer" else str(args.get("token") or "")
        client = ""
        if kind == "Basic":
            client = base64.b64decode(credentials).decode().partition(":")[0]
            args["_secret_ok"] = base64.b64decode(credentials).decode() == f"{CLIENT_ID}:{CLIENT_SECRET}"
        call = Call(method, args, asyncio.get_running_loop().time(), token=bearer, client=client)
        self.calls.append(call)
        self.by_method.setdefault(method, []).append(call)
        self._changed.set()
        if method in self.rate_limit_once:
            self.rate_limit_once.discard(method)
            return web.json_response(
                {"ok": False, "error": "ratelimited"}, status=429, headers={"Retry-After": "1"}
            )
        if self.server_errors.get(method, 0) > 0:
            self.server_errors[method] -= 1
            return web.json_response({"ok": False, "error": "fatal_error"}, status=500)
        if method in self.errors:
            return web.json_response({"ok": False, "error": self.errors[method]})
        handler = getattr(self, "m_" + method.replace(".", "_"), None)
        if handler is None:
            return web.json_response({"ok": False, "error": "unknown_method"})
        try:
            return web.json_response({"ok": True, **handler(args)})
        except _Refused as refused:
            return web.json_response({"ok": False, "error": str(refused)})

    def grant(self, grant: Grant) -> str:
        """The code Slack's authorize page would give a browser that installs the app in `grant`'s
        workspace (the test plays the browser and Slack's page)."""
        code = f"code-{grant.team_id}-{next(self._ts)}"
        self.codes[code] = grant
        return code

    def tokens_used(self, method: str) -> list[str]:
        return [c.token for c in self.named(method)]

    def _issue(self, grant: Grant) -> dict[str, Any]:
        n = next(self._ts)
        token = f"xoxb-{grant.team_id}-{n}"
        self.tokens[token] = grant
        issued: dict[str, Any] = {"access_token": token, "token_type": "bot"}
        if grant.rotating:
            refresh = f"xoxe-1-{grant.team_id}-{n}"
            self.refresh_tokens[refresh] = grant
            issued.update(refresh_token=refresh, expires_in=grant.expires_in)
        return issued

    def m_oauth_v2_access(self, args: dict[str, Any]) -> dict[str, Any]:
        """A code exchanged for a bot token (client id and secret as HTTP Basic auth), or a rotating
        token refreshed (grant_type=refresh_token)."""
        if not args.pop("_secret_ok", False):
            raise _Refused("invalid_client_id")
        if args.get("grant_type") == "refresh_token":
            grant = self.refresh_tokens.pop(str(args.get("refresh_token")), None)
            if grant is None:
                raise _Refused("invalid_refresh_token")
            return self._issue(grant)
        found = self.codes.pop(str(args.get("code")), None)
        if found is None:
            raise _Refused("invalid_code")
        return {
            **self._issue(found),
            "scope": "app_mentions:read,chat:write,commands,users:read",
            "bot_user_id": found.bot_user_id,
            "app_id": "A0001",
            "team": {"id": found.team_id, "name": found.team_name},
            "enterprise": None,
            "is_enterprise_install": False,
            "authed_user": {"id": found.installer},
        }

    def m_auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        grant = self.tokens.get(self.calls[-1].token)
        if grant is not None:  # a token granted by an OAuth install: that workspace's bot
            return {
                "url": f"https://{grant.team_id.lower()}.slack.com/",
                "team": grant.team_name,
                "user": "aisafety-bot",
                "team_id": grant.team_id,
                "user_id": grant.bot_user_id,
                "bot_id": f"B{grant.team_id}",
                "is_enterprise_install": False,
            }
        return {
            "url": "https://example.slack.com/",
            "team": "AI Safety",
            "user": "aisafety-bot",
            "team_id": "T0001",
            "user_id": BOT_USER,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def _blocks(self, args: dict[str, Any]) -> Any:
        blocks = args.get("blocks")
        return json.loads(blocks) if isinstance(blocks, str) else blocks

    def m_chat_postMessage(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = str(args["channel"])
        msg = {
            "type": "message",
            "user": BOT_USER,
            "bot_id": BOT_ID,
            "text": args.get("text", ""),
            "blocks": self._blocks(args),
            "ts": self.new_ts(),
            "channel": channel,
        }
        if args.get("thread_ts"):
            msg["thread_ts"] = args["thread_ts"]
            self.first_reply.setdefault(
                str(args["thread_ts"]), (msg["ts"], asyncio.get_running_loop().time())
            )
        self.messages.setdefault(channel, []).append(msg)
        return {"channel": channel, "ts": msg["ts"], "message": msg}

    def m_chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = str(args["channel"])
        self.first_update.setdefault(str(args["ts"]), asyncio.get_running_loop().time())
        for m in self.messages.get(channel, []):
            if m["ts"] == args["ts"]:
                m["text"] = args.get("text", m["text"])
                if "blocks" in args:
                    m["blocks"] = self._blocks(args)
        return {"channel": channel, "ts": args["ts"], "text": args.get("text", "")}

    def m_chat_delete(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = str(args["channel"])
        self.messages[channel] = [m for m in self.messages.get(channel, []) if m["ts"] != args["ts"]]
        return {"channel": channel, "ts": args["ts"]}

    def m_chat_postEphemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"message_ts": self.new_ts()}

    def m_conversations_replies(self, args: dict[str, Any]) -> dict[str, Any]:
        ts = str(args["ts"])
        found = [
            m
            for m in self.messages.get(str(args["channel"]), [])
            if m["ts"] == ts or m.get("thread_ts") == ts
        ]
        return {"messages": sorted(found, key=lambda m: float(m["ts"])), "has_more": False}

    def m_conversations_history(self, args: dict[str, Any]) -> dict[str, Any]:
        msgs = [m for m in self.messages.get(str(args["channel"]), []) if "thread_ts" not in m]
        latest = float(args.get("latest") or "inf")
        msgs = [m for m in msgs if float(m["ts"]) <= latest]
        return {"messages": list(reversed(msgs))[: int(args.get("limit", 100))], "has_more": False}

    def m_users_info(self, args: dict[str, Any]) -> dict[str, Any]:
        """Slack's `users.info` (`users:read`): a member; an admin or owner when listed as one."""
        user = str(args["user"])
        return {
            "user": {
                "id": user,
                "team_id": "T0001",
                "name": user.lower(),
                "deleted": False,
                "is_bot": False,
                "is_admin": user in self.admins or user in self.owners,
                "is_owner": user in self.owners,
                "is_primary_owner": False,
                "is_restricted": False,
            }
        }

    async def respond(self, request: web.Request) -> web.Response:
        """A slash command's `response_url` (`/respond`): what was sent there is kept in `responses`."""
        self.responses.append(await request.json())
        self._changed.set()
        return web.Response(text="ok")

    def m_apps_connections_open(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"url": self.url.replace("http", "ws") + "/socket"}

    # -- Socket Mode ------------------------------------------------------------------------------
    async def socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._ws.append(ws)
        await ws.send_str(
            json.dumps(
                {
                    "type": "hello",
                    "num_connections": 1,
                    "connection_info": {"app_id": "A0001"},
                    "debug_info": {"host": "fake", "approximate_connection_time": 18060},
                }
            )
        )
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    self.acks.append(json.loads(msg.data))
                    self._changed.set()
        finally:
            self._ws.remove(ws)
        return ws

    async def envelope(self, kind: str, payload: dict[str, Any]) -> str:
        eid = str(uuid.uuid4())
        data = {
            "envelope_id": eid,
            "type": kind,
            "payload": payload,
            "accepts_response_payload": kind != "events_api",
            "retry_attempt": 0,
            "retry_reason": "",
        }
        await self.wait_for(lambda: self._ws)
        for ws in self._ws:
            await ws.send_str(json.dumps(data))
        return eid

    async def start(self) -> str:
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self.api)
        app.router.add_get("/socket", self.socket)
        app.router.add_post("/respond", self.respond)
        self._runner, self.url = await serve_loopback(app)
        return self.url

    async def stop(self) -> None:
        await stop_loopback(self._runner, self._ws)
