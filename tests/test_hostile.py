"""Hostile traffic costs little, on every port the bot serves (`service.health.serve`: the health and
report page app here; Slack's HTTP mode in tests/test_slack.py): slow headers and bodies are cut off,
big bodies refused, broken requests answered, and each refusal counted and summed up in one log line a
window, never logged one by one and never at ERROR. A raw socket plays the stranger."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

import service.health as health
from service.admin import add_admin_routes
from service.health import add_health_routes, serve
from service.metrics import Metrics
from service.rejections import Rejections, summary
from tests.qdrant_server import free_port

TOKEN = "admin-token-for-tests-0123456789"
LIMIT_S = 0.5  # the header and body deadlines in these tests (10 s in the bot)


async def no_report(days: float, community: str | None = None) -> dict[str, Any]:
    return {}


async def broken(request: web.Request) -> web.Response:
    raise RuntimeError("a bug of the bot's own")


@pytest.fixture
async def site(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[int, Metrics]]:
    """The health endpoints and the report page on one port, as the running bot serves them."""
    monkeypatch.setattr(health, "HEADERS_TIMEOUT_S", LIMIT_S)
    monkeypatch.setattr(health, "BODY_TIMEOUT_S", LIMIT_S)
    metrics = Metrics()
    app = add_health_routes(web.Application(), checks={}, metrics=metrics)
    add_admin_routes(app, token=TOKEN, report=no_report, metrics=metrics)
    app.router.add_get("/broken", broken)
    port = free_port()
    runner = await serve(app, "127.0.0.1", port, metrics=metrics)
    yield port, metrics
    metrics.rejections.close()
    await runner.cleanup()


async def stranger(port: int, head: bytes, body: bytes = b"", *, every_s: float = 0.0) -> tuple[bytes, float]:
    """Send `head` at once, then `body` a byte every `every_s` seconds (all at once with 0); returns what
    the server answered and the seconds until it closed the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()

    async def send() -> None:
        try:
            writer.write(head)
            if every_s:
                for i in range(len(body)):
                    writer.write(body[i : i + 1])
                    await writer.drain()
                    await asyncio.sleep(every_s)
            else:
                writer.write(body)
                await writer.drain()
        except ConnectionError:
            pass

    sending = asyncio.create_task(send())
    try:
        got = await asyncio.wait_for(reader.read(), 10)  # until the server closes the connection
    except ConnectionError:  # closed with our bytes unread: a reset
        got = b""
    closed = time.monotonic() - started
    sending.cancel()
    writer.close()
    return got, closed


def rejected(metrics: Metrics, reason: str) -> float:
    value = metrics.registry.get_sample_value("aisafety_rejected_requests_total", {"reason": reason})
    return value or 0.0


def loud(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [f"{r.levelname} {r.name}: {r.getMessage()}" for r in caplog.records if r.levelno >= logging.ERROR]


def login(length: int, *, extra: str = "") -> bytes:
    return (
        f"POST /admin/login HTTP/1.1\r\nHost: bot\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {length}\r\n{extra}\r\n"
    ).encode()


async def test_slow_headers_and_idle_connections_are_closed(site: tuple[int, Metrics]) -> None:
    port, _ = site
    got, closed = await stranger(port, b"")  # connects and says nothing
    assert got == b"" and closed < LIMIT_S + 1.0
    header = b"GET /healthz HTTP/1.1\r\nHost: bot\r\nX-Slow: " + b"a" * 100 + b"\r\n\r\n"
    got, closed = await stranger(port, b"", header, every_s=0.05)  # would take 5 s
    assert got == b"" and closed < LIMIT_S + 1.0
    # A kept-alive connection is answered, then closed once idle for as long.
    got, closed = await stranger(port, b"GET /healthz HTTP/1.1\r\nHost: bot\r\n\r\n")
    assert got.startswith(b"HTTP/1.1 200") and b'{"status": "ok"}' in got and closed < LIMIT_S + 1.0


async def test_twenty_slow_bodies_are_cut_off_counted_and_summed_up_in_one_line(
    site: tuple[int, Metrics], caplog: pytest.LogCaptureFixture
) -> None:
    port, metrics = site
    body = b"token=" + b"x" * 194
    with caplog.at_level(logging.DEBUG):
        started = time.monotonic()
        results = await asyncio.gather(
            *(stranger(port, login(len(body)), body, every_s=0.1) for _ in range(20))  # 20 s each
        )
        assert all(closed < LIMIT_S + 1.5 for _, closed in results), [c for _, c in results]
        assert time.monotonic() - started < LIMIT_S + 2.0
        assert rejected(metrics, "too_slow") == 20
        assert rejected(metrics, "wrong_login") == 0  # no handler saw a body
        said = [r for r in caplog.records if r.levelno >= logging.INFO and r.name.startswith("service")]
        assert said == []  # nothing yet: the window's line comes when it ends
        metrics.rejections.flush()
    lines = [r.getMessage() for r in caplog.records if r.name == "service.rejections"]
    assert lines == ["refused in the last minute: HTTP: 20 bodies sent too slowly"]
    assert loud(caplog) == [] and "Traceback" not in caplog.text
    got, _ = await stranger(port, b"GET /healthz HTTP/1.1\r\nHost: bot\r\nConnection: close\r\n\r\n")
    assert got.startswith(b"HTTP/1.1 200")  # the port still answers


async def test_cut_off_and_broken_requests_log_no_error(
    site: tuple[int, Metrics], caplog: pytest.LogCaptureFixture
) -> None:
    port, metrics = site
    with caplog.at_level(logging.DEBUG):
        # A body cut off midway: the stranger hangs up.
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(login(100) + b"token=abc")
        await writer.drain()
        await asyncio.sleep(0.1)
        writer.close()
        for raw in (
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40,  # TLS to the plain port
            b"GET /healthz HTTP/1.1\r\nHo st: bot\r\n\r\n",
            b"GET /healthz HTTP/1.1\r\nHost: " + b"a" * 20_000 + b"\r\n\r\n",
            b"POST /admin/login HTTP/1.1\r\nHost: bot\r\nContent-Length: abc\r\n\r\n",
            b"POST /admin/login HTTP/1.1\r\nHost: bot\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n",
            b"GET /healthz HTTP/9.9\r\n\r\n",
        ):
            got, closed = await stranger(port, raw)
            assert got.startswith((b"HTTP/1.0 400", b"HTTP/1.1 400", b"HTTP/1.1 505")) or got == b"", raw
            assert closed < LIMIT_S + 1.0
        await asyncio.sleep(0.2)
    assert loud(caplog) == [] and "Traceback" not in caplog.text
    assert rejected(metrics, "bad_http") >= 5


async def test_a_bug_of_the_bots_own_still_logs_an_error(
    site: tuple[int, Metrics], caplog: pytest.LogCaptureFixture
) -> None:
    port, _ = site
    got, _ = await stranger(port, b"GET /broken HTTP/1.1\r\nHost: bot\r\nConnection: close\r\n\r\n")
    assert got.startswith(b"HTTP/1.1 500")
    assert any(r.levelno == logging.ERROR and r.exc_info for r in caplog.records)


async def test_bodies_over_one_mib_are_refused_before_they_are_read(
    site: tuple[int, Metrics], caplog: pytest.LogCaptureFixture
) -> None:
    port, metrics = site
    mib = 1024**2
    got, closed = await stranger(port, login(mib + 1))  # says so up front: refused without a byte read
    assert got.startswith(b"HTTP/1.1 413") and closed < 1.0
    chunked = b"POST /admin/login HTTP/1.1\r\nHost: bot\r\nTransfer-Encoding: chunked\r\n\r\n"
    chunk = b"%x\r\n%s\r\n" % (mib + 1, b"t" * (mib + 1))
    got, closed = await stranger(port, chunked, chunk + b"0\r\n\r\n")  # says nothing: cut off at 1 MiB
    assert got.startswith(b"HTTP/1.1 413") or got == b""  # (a reset, when our bytes are still unread)
    assert rejected(metrics, "too_large") == 2
    body = b"token=" + b"x" * (mib - 6)  # exactly 1 MiB: read, and a wrong token
    got, _ = await stranger(port, login(len(body), extra="Connection: close\r\n"), body)
    assert got.startswith(b"HTTP/1.1 401") and b"That is not the token" in got
    assert rejected(metrics, "wrong_login") == 1
    assert loud(caplog) == []


def test_the_summary_says_each_place_and_reason_once() -> None:
    from collections import Counter

    counts = Counter({"wrong_login": 200, "bad_signature": 3, "wrong_team": 1, "too_slow": 2})
    assert summary(counts) == (
        "report page: 200 wrong logins; Slack: 3 bad signatures, 1 event for another workspace; "
        "HTTP: 2 bodies sent too slowly"
    )


async def test_one_line_a_window_however_many_refusals(caplog: pytest.LogCaptureFixture) -> None:
    metrics = Metrics()
    rejections = Rejections(metrics.rejected_requests, every_s=0.2)
    with caplog.at_level(logging.INFO, logger="service.rejections"):
        for _ in range(200):
            rejections.note("wrong_login")
        rejections.note("bad_signature")
        assert caplog.records == []
        await asyncio.sleep(0.35)
        assert [r.getMessage() for r in caplog.records] == [
            "refused in the last 0.2 s: report page: 200 wrong logins; Slack: 1 bad signature"
        ]
        assert caplog.records[0].levelno == logging.WARNING
        await asyncio.sleep(0.3)
        assert len(caplog.records) == 1  # a quiet window says nothing
        rejections.note("wrong_team")
        await asyncio.sleep(0.35)
        assert caplog.records[-1].getMessage().endswith("Slack: 1 event for another workspace")
    assert rejected(metrics, "wrong_login") == 200 and rejected(metrics, "wrong_team") == 1
    rejections.close()
