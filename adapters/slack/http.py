"""Slack's HTTP mode: only requests Slack signed reach bolt, only in the shape Slack sends, and only for
the bot's own workspace (with OAuth: a workspace that installed it) and app.

Refused requests are reported to `rejected(reason)` (the running bot counts them and sums them up in one
log line a minute), never logged one by one: a stranger's traffic costs the log nothing.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import parse_qs

from aiohttp import web
from slack_sdk.signature import SignatureVerifier

_log = logging.getLogger(__name__)

# Why a signed request is not for this bot ("wrong_team", "wrong_app"), or "" when it is; with OAuth
# the answer is awaited (the installations are looked up).
Owner = Callable[[Mapping[str, Any]], str | Awaitable[str]]
Rejected = Callable[[str], None]


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


def signed_requests_only(
    verifier: SignatureVerifier | None,
    *,
    owner: Owner | None = None,
    rejected: Rejected | None = None,
) -> Any:
    """An aiohttp middleware: a request to /slack/events without a valid signature gets 401 before its
    body is parsed; a signed body that is not the JSON object (or form) Slack sends gets 400 instead of
    reaching bolt; a signed request for another workspace or app (`owner` says why) gets 200 and is
    dropped, so Slack does not send it again. Each refusal goes to `rejected` with its reason
    (bad_signature, malformed, wrong_team, wrong_app); nothing of the body is logged."""
    report: Rejected = rejected or _debug_line

    @web.middleware
    async def check(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.method != "POST" or request.path != "/slack/events":
            return await handler(request)
        if verifier is None:  # no signing secret: nothing sent here can be trusted
            report("bad_signature")
            return web.Response(status=401)
        body = await request.read()
        timestamp = request.headers.get("X-Slack-Request-Timestamp", "")
        signature = request.headers.get("X-Slack-Signature", "")
        if not _signed(verifier, body, timestamp, signature):
            report("bad_signature")
            return web.Response(status=401)
        payload = slack_payload(body, request.content_type)
        if payload is None:
            report("malformed")
            return web.Response(status=400)
        found = owner(payload) if owner is not None else ""
        why = await found if inspect.isawaitable(found) else found
        if why:
            report(why)
            return web.Response(status=200)  # acknowledged, so Slack does not retry it; not acted on
        return await handler(request)

    return check


def _debug_line(reason: str) -> None:
    _log.debug("refused a request to /slack/events (%s)", reason)


def _signed(verifier: SignatureVerifier, body: bytes, timestamp: str, signature: str) -> bool:
    if not timestamp.isdigit() or not signature:
        return False
    try:
        return verifier.is_valid(body=body.decode("utf-8"), timestamp=timestamp, signature=signature)
    except (ValueError, UnicodeDecodeError):
        return False


def slack_payload(body: bytes, content_type: str) -> dict[str, Any] | None:
    """The payload of a body in Slack's shape, or None: events come as a JSON object; interactivity as a
    form whose `payload` field is a JSON object; slash commands as a form (each field's first value)."""
    try:
        if content_type == "application/json":
            data = json.loads(body)
            return data if isinstance(data, dict) else None
        form = parse_qs(body.decode("utf-8"), strict_parsing=False)
        if "payload" in form:
            data = json.loads(form["payload"][0])
            return data if isinstance(data, dict) else None
        return {k: v[0] for k, v in form.items()} or None
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None


def team_and_app(payload: Mapping[str, Any]) -> tuple[str, str, str]:
    """The workspace (team id), organisation (enterprise id) and app a signed payload names, each "" when
    it names none: events and slash commands say `team_id`, `enterprise_id` and `api_app_id`;
    interactivity says `team.id` (null on an organisation-wide install), `enterprise.id` and
    `api_app_id`."""
    team = payload.get("team_id") or _id_of(payload.get("team"))
    enterprise = payload.get("enterprise_id") or _id_of(payload.get("enterprise"))
    app = payload.get("api_app_id")
    return _text(team), _text(enterprise), _text(app)


def _id_of(value: object) -> object:
    return value.get("id") if isinstance(value, Mapping) else None


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""
