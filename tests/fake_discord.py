"""A fake Discord gateway and REST API on 127.0.0.1 that the real discord.py client talks to.

It keeps channels and messages, answers the REST calls the bot makes, pushes gateway events, records
every request, and can inject a 429 or drop the gateway connection.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import yarl
from aiohttp import WSMsgType, web

from tests.loopback import serve_loopback, stop_loopback, wait_until

JSON = {"content-type": "application/json"}  # exactly this: discord.py treats anything else as text


@dataclass
class Req:
    method: str
    path: str
    body: Any
    at: float


def _now() -> str:
    return datetime.now(UTC).isoformat()


@dataclass
class FakeDiscord:
    app_id: int = 900000000000000001
    bot_id: int = 900000000000000001
    guild_id: int = 800000000000000001
    channel_id: int = 800000000000000002  # a text channel
    other_channel_id: int = 800000000000000003
    url: str = ""
    requests: list[Req] = field(default_factory=list)
    messages: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    channels: dict[int, dict[str, Any]] = field(default_factory=dict)
    rate_limit_once: set[str] = field(default_factory=set)  # "METHOD /path-prefix" to answer 429 once
    reject_token: bool = False  # answer 401 to the login request, as Discord does for a bad token
    fail_typing: bool = False  # answer 404 to the typing indicator
    fail_edits: bool = False  # answer 404 to every message edit, as for a message deleted meanwhile
    identifies: int = 0
    resumes: int = 0
    other_guilds: list[int] = field(default_factory=list)
    shards: dict[int, tuple[int, int]] = field(default_factory=dict)  # id(ws) -> (shard, of shards)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(810000000000000000))
    _seq: int = 0
    _ws: list[web.WebSocketResponse] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    # -- payloads ---------------------------------------------------------------------------------
    def user(self, uid: int, name: str, *, bot: bool = False) -> dict[str, Any]:
        return {
            "id": str(uid),
            "username": name,
            "discriminator": "0",
            "global_name": name,
            "avatar": None,
            "bot": bot,
        }

    @property
    def bot_user(self) -> dict[str, Any]:
        return self.user(self.bot_id, "aisafety-bot", bot=True)

    def new_id(self) -> int:
        return next(self._ids)

    def text_channel(self, cid: int, name: str, guild_id: int | None = None) -> dict[str, Any]:
        return {
            "id": str(cid),
            "type": 0,
            "guild_id": str(guild_id or self.guild_id),
            "name": name,
            "position": 0,
            "permission_overwrites": [],
            "nsfw": False,
            "parent_id": None,
            "topic": None,
            "last_message_id": None,
            "rate_limit_per_user": 0,
        }

    def add_guild(self, guild_id: int, channel_id: int) -> None:
        """Another server the bot is in, with one text channel."""
        self.other_guilds.append(guild_id)
        self.channels[channel_id] = self.text_channel(channel_id, f"ask-{len(self.other_guilds)}", guild_id)

    def guild(self, guild_id: int | None = None) -> dict[str, Any]:
        guild_id = guild_id or self.guild_id
        return {
            "id": str(guild_id),
            "name": "AI Safety Reading Group",
            "icon": None,
            "owner_id": "1",
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "nsfw_level": 0,
            "premium_tier": 0,
            "preferred_locale": "en-US",
            "features": [],
            "roles": [
                {
                    "id": str(self.guild_id),
                    "name": "@everyone",
                    "permissions": "1071698660928",
                    "position": 0,
                    "color": 0,
                    "hoist": False,
                    "managed": False,
                    "mentionable": False,
                    "flags": 0,
                }
            ],
            "emojis": [],
            "stickers": [],
            "channels": [
                c for c in self.channels.values() if c["type"] == 0 and c.get("guild_id") == str(guild_id)
            ],
            "threads": [],
            "members": [
                {
                    "user": self.bot_user,
                    "roles": [],
                    "joined_at": _now(),
                    "deaf": False,
                    "mute": False,
                    "flags": 0,
                }
            ],
            "member_count": 3,
            "large": False,
            "unavailable": False,
            "voice_states": [],
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
            "joined_at": _now(),
        }

    def message(
        self,
        channel_id: int,
        author: dict[str, Any],
        content: str,
        *,
        mentions: list[dict[str, Any]] | None = None,
        referenced: dict[str, Any] | None = None,
        guild: bool = True,
        mid: int | None = None,
    ) -> dict[str, Any]:
        msg: dict[str, Any] = {
            "id": str(mid or self.new_id()),
            "channel_id": str(channel_id),
            "author": author,
            "content": content,
            "timestamp": _now(),
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": mentions or [],
            "mention_roles": [],
            "attachments": [],
            "embeds": [],
            "pinned": False,
            "type": 19 if referenced else 0,
            "flags": 0,
            "components": [],
        }
        guild_id = str(self.channels.get(channel_id, {}).get("guild_id") or self.guild_id)
        if guild:
            msg["guild_id"] = guild_id
            msg["member"] = {"roles": [], "joined_at": _now(), "deaf": False, "mute": False, "flags": 0}
        if referenced:
            msg["message_reference"] = {
                "message_id": referenced["id"],
                "channel_id": referenced["channel_id"],
                "guild_id": guild_id,
            }
            msg["referenced_message"] = referenced
        return msg

    @property
    def api_base(self) -> str:
        """The value for `discord.http.Route.BASE`."""
        return f"{self.url}/api/v10"

    @property
    def gateway_url(self) -> yarl.URL:
        """The value for `discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY`."""
        return yarl.URL(self.url.replace("http", "ws") + "/gateway")

    # -- test controls ----------------------------------------------------------------------------
    @staticmethod
    def shard_of(guild_id: int, count: int) -> int:
        """Discord's rule: a server's events go to shard (guild_id >> 22) % shard count."""
        return (guild_id >> 22) % count

    def _gets(self, ws: web.WebSocketResponse, guild_id: str | None) -> bool:
        shard, count = self.shards.get(id(ws), (0, 1))
        return guild_id is None or self.shard_of(int(guild_id), count) == shard

    async def dispatch(
        self, event: str, data: dict[str, Any], *, to: web.WebSocketResponse | None = None
    ) -> None:
        """An event to every connection (a server's events only to the shard that has the server)."""
        self._seq += 1
        payload = json.dumps({"op": 0, "t": event, "s": self._seq, "d": data})
        for ws in [to] if to is not None else list(self._ws):
            if not ws.closed and self._gets(ws, data.get("guild_id")):
                await ws.send_str(payload)

    async def user_says(
        self, channel_id: int, content: str, *, author: dict[str, Any] | None = None, **kw: Any
    ) -> dict[str, Any]:
        """A member posts a message: stored (for history) and dispatched as MESSAGE_CREATE."""
        author = author or self.user(111, "alice")
        mentions = [self.bot_user] if f"<@{self.bot_id}>" in content else []
        msg = self.message(channel_id, author, content, mentions=mentions, **kw)
        self.messages.setdefault(channel_id, []).append(msg)
        await self.dispatch("MESSAGE_CREATE", msg)
        return msg

    async def drop_gateway(self) -> None:
        for ws in list(self._ws):
            await ws.close(code=4000, message=b"test drop")

    def calls(self, method: str, prefix: str) -> list[Req]:
        return [r for r in self.requests if r.method == method and r.path.startswith(prefix)]

    async def wait_for(self, check: Callable[[], Any], within: float = 20.0) -> Any:
        return await wait_until(
            check,
            self._changed,
            within=within,
            recent=lambda: ", ".join(f"{r.method} {r.path}" for r in self.requests[-15:]),
        )

    # -- REST -------------------------------------------------------------------------------------
    def _record(self, request: web.Request, body: Any) -> None:
        path = request.path.removeprefix("/api/v10")
        self.requests.append(Req(request.method, path, body, asyncio.get_running_loop().time()))
        self._changed.set()

    def _limited(self, request: web.Request) -> web.Response | None:
        path = request.path.removeprefix("/api/v10")
        for key in list(self.rate_limit_once):
            method, prefix = key.split(" ", 1)
            if request.method == method and path.startswith(prefix):
                self.rate_limit_once.discard(key)
                return web.Response(
                    status=429,
                    body=json.dumps(
                        {"message": "You are being rate limited.", "retry_after": 0.05, "global": False}
                    ).encode(),
                    headers={**JSON, "Via": "1.1 google", "X-RateLimit-Scope": "user", "Retry-After": "1"},
                )
        return None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body: Any = None
        if request.can_read_body:
            if request.content_type == "multipart/form-data":
                reader = await request.post()
                body = json.loads(str(reader.get("payload_json", "{}")))
            else:
                body = await request.json()
        self._record(request, body)
        limited = self._limited(request)
        if limited is not None:
            return limited
        path = request.path.removeprefix("/api/v10")
        parts = path.strip("/").split("/")
        m = request.method
        if m == "GET" and path == "/users/@me":
            if self.reject_token:
                return web.Response(
                    status=401,
                    body=json.dumps({"message": "401: Unauthorized", "code": 0}).encode(),
                    headers=JSON,
                )
            return self._json(self.bot_user)
        if m == "GET" and path == "/oauth2/applications/@me":
            return self._json(
                {
                    "id": str(self.app_id),
                    "name": "aisafety-bot",
                    "icon": None,
                    "description": "",
                    "rpc_origins": [],
                    "bot_public": True,
                    "bot_require_code_grant": False,
                    "owner": self.user(1, "owner"),
                    "summary": "",
                    "verify_key": "00",
                    "team": None,
                    "flags": 0,
                }
            )
        if m == "PUT" and len(parts) >= 3 and parts[0] == "applications" and parts[2] == "commands":
            return self._json(
                [dict(c, id=str(self.new_id()), application_id=str(self.app_id), version="1") for c in body]
            )
        if parts[0] == "channels":
            return await self._channels(m, parts[1:], body, request)
        if m == "POST" and path == "/users/@me/channels":
            cid = self.new_id()
            ch = {
                "id": str(cid),
                "type": 1,
                "recipients": [self.user(int(body["recipient_id"]), "alice")],
                "last_message_id": None,
            }
            self.channels[cid] = ch
            return self._json(ch)
        if parts[0] == "interactions" and parts[-1] == "callback":
            return self._json(
                {
                    "interaction": {
                        "id": parts[1],
                        "type": 2,
                        "response_message_loading": True,
                        "response_message_ephemeral": False,
                    },
                    "resource": None,
                }
            )
        if parts[0] == "webhooks":
            if m == "POST":
                msg = self.message(self.channel_id, self.bot_user, (body or {}).get("content", ""))
                msg["webhook_id"] = str(self.app_id)
                msg["flags"] = (body or {}).get("flags", 0)
                return self._json(msg)
            if m == "PATCH":
                return self._json(
                    self.message(self.channel_id, self.bot_user, (body or {}).get("content", ""))
                )
            return web.Response(status=204)
        return web.Response(
            status=404, body=json.dumps({"message": "Unknown route", "code": 0}).encode(), headers=JSON
        )

    async def _channels(
        self, m: str, parts: list[str], body: Any, request: web.Request
    ) -> web.StreamResponse:
        cid = int(parts[0])
        rest = parts[1:]
        if m == "GET" and not rest:
            return self._json(self.channels[cid])
        if m == "POST" and rest == ["typing"] and self.fail_typing:
            return web.Response(
                status=404,
                body=json.dumps({"message": "Unknown Channel", "code": 10003}).encode(),
                headers=JSON,
            )
        if m == "POST" and rest == ["typing"]:
            return web.Response(status=204)
        if rest[:1] == ["messages"]:
            stored = self.messages.setdefault(cid, [])
            if m == "POST" and len(rest) == 1:
                msg = self.message(
                    cid,
                    self.bot_user,
                    body.get("content", ""),
                    guild=self.channels.get(cid, {}).get("type") != 1,
                )
                msg["flags"] = body.get("flags", 0)
                msg["components"] = body.get("components", [])
                stored.append(msg)
                return self._json(msg)
            if m == "GET" and len(rest) == 1:
                limit = int(request.query.get("limit", "50"))
                before = int(request.query.get("before", "0") or 0)
                found = [x for x in stored if not before or int(x["id"]) < before]
                return self._json(list(reversed(found))[:limit])
            mid = int(rest[1])
            found_msg = next((x for x in stored if int(x["id"]) == mid), None)
            if found_msg is None:
                return web.Response(
                    status=404,
                    body=json.dumps({"message": "Unknown Message", "code": 10008}).encode(),
                    headers=JSON,
                )
            if m == "GET" and len(rest) == 2:
                return self._json(found_msg)
            if m == "DELETE" and len(rest) == 2:
                stored.remove(found_msg)
                return web.Response(status=204)
            if m == "PATCH" and self.fail_edits:
                return web.Response(
                    status=404,
                    body=json.dumps({"message": "Unknown Message", "code": 10008}).encode(),
                    headers=JSON,
                )
            if m == "PATCH":
                found_msg.update({k: v for k, v in body.items() if k in ("content", "components", "flags")})
                found_msg["edited_timestamp"] = _now()
                return self._json(found_msg)
            if m == "POST" and rest[2:] == ["threads"]:
                thread = {
                    "id": str(mid),
                    "type": 11,
                    "guild_id": str(self.channels.get(cid, {}).get("guild_id") or self.guild_id),
                    "parent_id": str(cid),
                    "owner_id": str(self.bot_id),
                    "name": body["name"],
                    "last_message_id": None,
                    "message_count": 0,
                    "member_count": 1,
                    "rate_limit_per_user": 0,
                    "flags": 0,
                    "thread_metadata": {
                        "archived": False,
                        "auto_archive_duration": body.get("auto_archive_duration", 1440),
                        "archive_timestamp": _now(),
                        "locked": False,
                    },
                    "newly_created": True,
                }
                self.channels[mid] = thread
                await self.dispatch("THREAD_CREATE", thread)
                return self._json(thread)
        return web.Response(
            status=404, body=json.dumps({"message": "Unknown route", "code": 0}).encode(), headers=JSON
        )

    @staticmethod
    def _json(data: Any) -> web.Response:
        return web.Response(body=json.dumps(data).encode(), headers=JSON)

    # -- gateway ----------------------------------------------------------------------------------
    async def gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._ws.append(ws)
        await ws.send_str(json.dumps({"op": 10, "d": {"heartbeat_interval": 41250}}))
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                data = json.loads(msg.data)
                op = data.get("op")
                if op == 1:
                    await ws.send_str(json.dumps({"op": 11}))
                elif op == 2:
                    self.identifies += 1
                    shard = data["d"].get("shard") or [0, 1]
                    self.shards[id(ws)] = (int(shard[0]), int(shard[1]))
                    guilds = [g for g in [self.guild_id, *self.other_guilds] if self._gets(ws, str(g))]
                    await self.dispatch(
                        "READY",
                        {
                            "v": 10,
                            "user": self.bot_user,
                            "guilds": [{"id": str(g), "unavailable": True} for g in guilds],
                            "shard": list(shard),
                            "session_id": f"session-{self.identifies}",
                            "resume_gateway_url": self.url.replace("http", "ws") + "/gateway",
                            "application": {"id": str(self.app_id), "flags": 0},
                            "private_channels": [],
                            "relationships": [],
                        },
                        to=ws,
                    )
                    for g in guilds:
                        await self.dispatch("GUILD_CREATE", self.guild(g), to=ws)
                elif op == 6:
                    self.resumes += 1
                    await self.dispatch("RESUMED", {})
                self._changed.set()
        finally:
            if ws in self._ws:
                self._ws.remove(ws)
        return ws

    async def start(self) -> str:
        self.channels[self.channel_id] = self.text_channel(self.channel_id, "ask-the-bot")
        self.channels[self.other_channel_id] = self.text_channel(self.other_channel_id, "off-topic")
        app = web.Application()
        app.router.add_get("/gateway", self.gateway)
        app.router.add_route("*", "/api/v10/{tail:.*}", self.handle)
        self._runner, self.url = await serve_loopback(app)
        return self.url

    async def stop(self) -> None:
        await stop_loopback(self._runner, self._ws)
