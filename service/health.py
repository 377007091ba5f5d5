"""/healthz, /readyz and /metrics on one small aiohttp app (or on Slack's, when it serves HTTP), and
`serve`, the one way the bot listens on a port: a stranger's request costs at most a few seconds and
1 MiB, and is counted, never logged at ERROR."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from service.metrics import Metrics
from service.rejections import Rejections

_log = logging.getLogger(__name__)

Check = Callable[[], Awaitable[bool]]
CHECK_TIMEOUT_S = 3.0
# A request's headers must arrive within this many seconds of the connection opening (or of the
# previous response on a kept-alive connection, which is closed after this long idle), and its body
# within this many seconds of its headers.
HEADERS_TIMEOUT_S = 10.0
BODY_TIMEOUT_S = 10.0
# The largest body any route takes (aiohttp's own default for an application, said here once).
MAX_BODY_BYTES = 1024**2


def add_health_routes(
    app: web.Application,
    *,
    checks: Mapping[str, Check],
    metrics: Metrics,
    notes: Mapping[str, Callable[[], str | None]] | None = None,
) -> web.Application:
    """`checks` decide readiness; `notes` report a degraded but working part (Redis down: the bot
    answers on in-process state), shown under "degraded" without taking the replica out of service."""

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(request: web.Request) -> web.Response:
        results: dict[str, bool] = {}
        for name, check in checks.items():
            try:
                async with asyncio.timeout(CHECK_TIMEOUT_S):
                    results[name] = bool(await check())
            except Exception as exc:  # a failing check means "not ready", never a 500
                _log.info("readiness check %s failed: %s", name, type(exc).__name__)
                results[name] = False
        ready = all(results.values())
        body: dict[str, object] = {"ready": ready, "checks": results}
        degraded = {name: note for name, note in ((n, f()) for n, f in (notes or {}).items()) if note}
        if degraded:
            body["degraded"] = degraded
        return web.json_response(body, status=200 if ready else 503)

    async def metrics_view(request: web.Request) -> web.Response:
        return web.Response(
            body=metrics.render(), headers={"content-type": "text/plain; version=0.0.4; charset=utf-8"}
        )

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_view)
    return app


async def serve(
    app: web.Application, host: str, port: int, *, metrics: Metrics | None = None
) -> web.AppRunner:
    """Listen on host:port with `app`: headers within HEADERS_TIMEOUT_S, a body within BODY_TIMEOUT_S of
    them and at most MAX_BODY_BYTES, else the connection is closed. Refusals and malformed requests are
    counted (`metrics.rejected`; without metrics, only the minute's log line)."""
    rejections = metrics.rejections if metrics is not None else Rejections()
    rejected: Callable[[str], None] = metrics.rejected if metrics is not None else rejections.note
    app.middlewares.insert(0, bounded_requests(rejected))  # before any middleware that reads a body
    app.on_cleanup.append(lambda _: _flushed(rejections))  # the last window's line is not lost
    runner = web.AppRunner(
        app,
        keepalive_timeout=HEADERS_TIMEOUT_S,
        lingering_time=0,  # a refused body is not read on after the answer: the connection closes
        logger=_ServerLog(rejected),
    )
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


async def _flushed(rejections: Rejections) -> None:
    rejections.flush()


def bounded_requests(rejected: Callable[[str], None]) -> Any:
    """An aiohttp middleware: every request's body is read (and kept for the handler) within
    BODY_TIMEOUT_S and MAX_BODY_BYTES before any handler sees it; a body too big, too slow, cut off or
    broken is answered 413, 408 or 400 on a connection that then closes, and counted."""

    @web.middleware
    async def bound(request: web.Request, handler: Any) -> web.StreamResponse:
        if not request.body_exists:
            return await handler(request)
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            return _refused(rejected, "too_large", 413)
        try:
            async with asyncio.timeout(BODY_TIMEOUT_S):
                body = await request.read()
        except TimeoutError:
            return _refused(rejected, "too_slow", 408)
        except web.HTTPRequestEntityTooLarge:
            return _refused(rejected, "too_large", 413)
        except (ConnectionError, HttpProcessingError):  # the client hung up, or sent a broken body
            return _refused(rejected, "bad_http", 400)
        if len(body) > MAX_BODY_BYTES:  # an application that allows more than the limit
            return _refused(rejected, "too_large", 413)
        return await handler(request)

    return bound


def _refused(rejected: Callable[[str], None], reason: str, status: int) -> web.Response:
    rejected(reason)
    response = web.Response(status=status)
    response.force_close()
    return response


class _ServerLog(logging.LoggerAdapter):
    """aiohttp's server logger, except that a request it could not parse (a stranger's garbage, an
    oversized header, a connection cut mid-request) is counted, with a debug line and no traceback,
    instead of an ERROR with one. An exception from the bot's own code still logs as an ERROR."""

    def __init__(self, rejected: Callable[[str], None]):
        super().__init__(logging.getLogger("aiohttp.server"), {})
        self._rejected = rejected

    def exception(self, msg: object, *args: object, exc_info: Any = True, **kwargs: Any) -> None:
        if not self._strangers(exc_info):
            super().exception(msg, *args, exc_info=exc_info, **kwargs)

    def debug(self, msg: object, *args: object, exc_info: Any = None, **kwargs: Any) -> None:
        # aiohttp says "not HTTP at all" (TLS to the plain port, say) at debug level, with a traceback.
        if not self._strangers(exc_info):
            super().debug(msg, *args, exc_info=exc_info, **kwargs)

    def _strangers(self, exc: object) -> bool:
        """Counted (with a debug line, no traceback) when `exc` is a request that could not be read."""
        if not isinstance(exc, HttpProcessingError | ConnectionError):
            return False
        self._rejected("bad_http")
        self.logger.debug("refused a malformed request (%s)", type(exc).__name__)
        return True
