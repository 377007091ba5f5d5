"""Slack's HTTP mode: only requests Slack signed reach bolt, and only in the shape Slack sends."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

from aiohttp import web
from slack_sdk.signature import SignatureVerifier

_log = logging.getLogger(__name__)


def refused_while_stopping(stopping: Callable[[], bool]) -> Any:
    """An aiohttp middleware: once the bot is stopping, a request to /slack/events gets 503 (and the
    connection is closed) instead of an acknowledgement nobody would act on; Slack, or the load balancer
    in front of several replicas, sends it again elsewhere. A kept-alive connection outlives the closed
    listening socket, so this cannot be left to the socket alone."""

    @web.middleware
    async def check(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path == "/slack/events" and stopping():
            return web.Response(
                status=503, text="stopping", headers={"Connection": "close", "Retry-After": "1"}
            )
        return await handler(request)

    return check


def signed_requests_only(verifier: SignatureVerifier | None) -> Any:
    """An aiohttp middleware: a request to /slack/events without a valid signature gets 401 before its
    body is parsed, with one short log line and never the body; a signed body that is not the JSON
    object (or form) Slack sends gets 400 instead of reaching bolt."""

    @web.middleware
    async def check(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.method != "POST" or request.path != "/slack/events":
            return await handler(request)
        if verifier is None:  # no signing secret: nothing sent here can be trusted
            _log.info("rejected a request to /slack/events: no SLACK_SIGNING_SECRET is set")
            return web.Response(status=401)
        body = await request.read()
        timestamp = request.headers.get("X-Slack-Request-Timestamp", "")
        signature = request.headers.get("X-Slack-Signature", "")
        if not _signed(verifier, body, timestamp, signature):
            _log.info(
                "rejected a request to /slack/events: missing, bad or stale signature (%d bytes)", len(body)
            )
            return web.Response(status=401)
        if not _slack_shaped(body, request.content_type):
            _log.info(
                "rejected a signed request to /slack/events whose body is not Slack's (%d bytes)", len(body)
            )
            return web.Response(status=400)
        return await handler(request)

    return check


def _signed(verifier: SignatureVerifier, body: bytes, timestamp: str, signature: str) -> bool:
    if not timestamp.isdigit() or not signature:
        return False
    try:
        return verifier.is_valid(body=body.decode("utf-8"), timestamp=timestamp, signature=signature)
    except (ValueError, UnicodeDecodeError):
        return False


def _slack_shaped(body: bytes, content_type: str) -> bool:
    """Events come as a JSON object; commands and interactivity as a form (interactivity's `payload`
    field a JSON object)."""
    try:
        if content_type == "application/json":
            return isinstance(json.loads(body), dict)
        form = parse_qs(body.decode("utf-8"), strict_parsing=False)
        if "payload" in form:
            return isinstance(json.loads(form["payload"][0]), dict)
        return bool(form)
    except (ValueError, UnicodeDecodeError):
        return False
