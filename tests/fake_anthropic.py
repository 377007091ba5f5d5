"""A fake Anthropic Messages API on 127.0.0.1, spoken to by the real `anthropic` SDK.

Each request takes the next scripted `Reply` (or the default one) and is recorded, so tests can
check what the bot sent (prompt, model, auth header) and how often it retried.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.loopback import serve_loopback

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


@dataclass
class Reply:
    status: int = 200
    text: str | Callable[[dict[str, Any]], str] = "Default answer [1]."
    delay_s: float = 0.0  # before the response starts
    chunk_delay_s: float = 0.0  # between streamed deltas
    error_after: int | None = None  # send an SSE error event after this many deltas
    # Break the stream after this many deltas, outside the API's own errors: "bad-json" (an event whose
    # data is not JSON), "cut" (the connection closes before message_stop), "bad-bytes" (not UTF-8).
    break_after: int | None = None
    breakage: str = "cut"


@dataclass
class Recorded:
    body: dict[str, Any]
    headers: dict[str, str]


@dataclass
class FakeAnthropic:
    script: list[Reply] = field(default_factory=list)
    default: Reply = field(default_factory=Reply)
    requests: list[Recorded] = field(default_factory=list)
    url: str = ""
    _runner: web.AppRunner | None = None

    def next_reply(self) -> Reply:
        return self.script.pop(0) if self.script else self.default

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(Recorded(body, dict(request.headers)))
        reply = self.next_reply()
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        if reply.status != 200:
            return web.json_response(
                {
                    "type": "error",
                    "error": {"type": ERROR_TYPES.get(reply.status, "api_error"), "message": "fake"},
                },
                status=reply.status,
                headers={"retry-after-ms": "1", "request-id": "req_fake"},
            )
        text = reply.text(body) if callable(reply.text) else reply.text
        if not body.get("stream"):
            return web.json_response(
                {
                    "id": "msg_fake",
                    "type": "message",
                    "role": "assistant",
                    "model": body.get("model"),
                    "content": [{"type": "text", "text": text}],
                    "stop_reason": "end_turn",
                    "stop_sequence": None,
                    "usage": {"input_tokens": 11, "output_tokens": len(text.split())},
                }
            )
        try:
            return await self._stream(request, body, text, reply)
        except ConnectionResetError:  # the client went away mid-stream (a timeout, or shutdown)
            return web.Response(status=499)

    async def _stream(
        self, request: web.Request, body: dict[str, Any], text: str, reply: Reply
    ) -> web.StreamResponse:
        resp = web.StreamResponse(status=200, headers={"content-type": "text/event-stream"})
        await resp.prepare(request)

        async def send(event: str, data: dict[str, Any]) -> None:
            await resp.write(f"event: {event}\ndata: {json.dumps(data)}\n\n".encode())

        await send(
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": "msg_fake",
                    "type": "message",
                    "role": "assistant",
                    "model": body.get("model"),
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {"input_tokens": 123, "output_tokens": 1},
                },
            },
        )
        await send(
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        )
        await send("ping", {"type": "ping"})
        pieces = [w + " " for w in text.split(" ")]
        pieces[-1] = pieces[-1][:-1]
        for i, piece in enumerate(pieces):
            if reply.break_after is not None and i == reply.break_after:
                if reply.breakage == "bad-json":
                    await resp.write(
                        b'event: content_block_delta\ndata: {"type": "content_block_delta", "ind\n\n'
                    )
                elif reply.breakage == "bad-bytes":
                    await resp.write(b"event: content_block_delta\ndata: \xff\xfe\xfa{\x80}\n\n")
                await resp.write_eof()  # "cut": the stream simply ends, without message_stop
                return resp
            if reply.error_after is not None and i == reply.error_after:
                await send(
                    "error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
                )
                await resp.write_eof()
                return resp
            await send(
                "content_block_delta",
                {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}},
            )
            if reply.chunk_delay_s:
                await asyncio.sleep(reply.chunk_delay_s)
        await send("content_block_stop", {"type": "content_block_stop", "index": 0})
        await send(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": len(pieces)},
            },
        )
        await send("message_stop", {"type": "message_stop"})
        await resp.write_eof()
        return resp

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/v1/messages", self.handle)
        self._runner, self.url = await serve_loopback(app)
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
