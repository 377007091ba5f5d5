"""/healthz, /readyz and /metrics on one small aiohttp app (or on Slack's, when it serves HTTP)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web

from service.metrics import Metrics

_log = logging.getLogger(__name__)

Check = Callable[[], Awaitable[bool]]
CHECK_TIMEOUT_S = 3.0


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


async def serve(app: web.Application, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
