"""What every fake server of the tests shares: serving on a free 127.0.0.1 port, and waiting for a
condition on what it has recorded."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiohttp import web


async def serve_loopback(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


async def stop_loopback(runner: web.AppRunner | None, sockets: list[web.WebSocketResponse]) -> None:
    """Close the fake's open WebSockets, then the server."""
    for ws in list(sockets):
        await ws.close()
    if runner is not None:
        await runner.cleanup()


async def wait_until(
    check: Callable[[], Any], changed: asyncio.Event, *, within: float, recent: Callable[[], str]
) -> Any:
    """Re-check whenever the fake records something (or every 0.2 s) until `check()` is truthy."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        result = check()
        if result:
            return result
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise TimeoutError(f"condition not met; recent: {recent()}")
        changed.clear()
        try:
            await asyncio.wait_for(changed.wait(), min(remaining, 0.2))
        except TimeoutError:
            pass


async def until_ready(port: int, *, within: float = 120, alive: Callable[[], bool] = lambda: True) -> None:
    """Wait for a bot's `/readyz` on 127.0.0.1:`port` to answer 200; `alive` False: it died starting."""
    import aiohttp

    async with aiohttp.ClientSession() as http, asyncio.timeout(within):
        while True:
            try:
                async with http.get(f"http://127.0.0.1:{port}/readyz") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            assert alive(), "the bot died at start-up"
            await asyncio.sleep(0.1)
