"""The shared-state ports on a real Redis (service/redis_state.py): shared by replicas, atomic, and falling
back to the in-process versions while Redis is out of reach."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from bot.config import Settings
from service import redis_state
from service.redis_state import RedisBudget, RedisDedupe, RedisLink, RedisRateLimit, RedisThreads
from tests.conftest import need

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _reachable(url: str) -> bool:
    host, port = redis_state.where(url).rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            return True
    except OSError:
        return False


@pytest_asyncio.fixture
async def prefix() -> AsyncIterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards (CI reuses the server)."""
    if not _reachable(REDIS_URL):
        need(
            f"Redis at {redis_state.where(REDIS_URL)}",
            "start it (redis-server --port 6379) or set TEST_REDIS_URL",
        )
    value = f"aisafety-test-{uuid.uuid4().hex[:8]}:"
    yield value
    link = RedisLink(REDIS_URL, prefix=value)
    keys = [k async for k in link.client.scan_iter(match=value + "*")]
    if keys:
        await link.client.delete(*keys)
    await link.aclose()


async def _replicas(prefix: str, n: int = 3) -> list[RedisLink]:
    return [RedisLink(REDIS_URL, prefix=prefix) for _ in range(n)]


async def test_the_rate_limit_is_shared_and_atomic_across_replicas(prefix: str) -> None:
    links = await _replicas(prefix)
    limits = [RedisRateLimit(link, per_minute=5) for link in links]
    # 30 questions from one member at once, spread over three replicas: exactly 5 get through.
    results = await asyncio.gather(*(limits[i % 3].allow("discord:42") for i in range(30)))
    assert sum(results) == 5
    assert await limits[0].allow("discord:43")  # another member has their own allowance
    for link in links:
        await link.aclose()


async def test_the_rate_limit_window_slides(prefix: str) -> None:
    link = RedisLink(REDIS_URL, prefix=prefix)
    limit = RedisRateLimit(link, per_minute=2, window_s=0.5)
    assert [await limit.allow("m") for _ in range(3)] == [True, True, False]
    await asyncio.sleep(0.6)
    assert await limit.allow("m")
    await link.aclose()


async def test_an_event_is_first_on_exactly_one_replica(prefix: str) -> None:
    links = await _replicas(prefix)
    dedupes = [RedisDedupe(link) for link in links]
    firsts = await asyncio.gather(*(dedupes[i % 3].first("Ev1", "C1:1700.1") for i in range(12)))
    assert firsts.count(True) == 1
    # A retry naming the same message under another event id is a duplicate too.
    assert not await dedupes[1].first("Ev2", "C1:1700.1")
    assert await dedupes[2].first("Ev3", "C1:1700.2")
    ttl = await links[0].client.ttl(links[0].key("event", "Ev1"))
    assert redis_state.DEDUPE_TTL_S - 5 < ttl <= redis_state.DEDUPE_TTL_S
    for link in links:
        await link.aclose()


async def test_thread_memory_and_budget_are_shared(prefix: str) -> None:
    a, b = await _replicas(prefix, 2)
    assert await RedisThreads(a).get("C1", "1.1") is None
    await RedisThreads(a).remember("C1", "1.1", True)
    await RedisThreads(a).remember("C1", "2.2", False)
    assert await RedisThreads(b).get("C1", "1.1") is True
    assert await RedisThreads(b).get("C1", "2.2") is False

    budget_a, budget_b = RedisBudget(a, daily_tokens=1000), RedisBudget(b, daily_tokens=1000)
    await budget_a.spend(600)
    assert not await budget_b.exhausted()
    await budget_b.spend(400)
    assert await budget_a.exhausted() and await budget_b.exhausted()
    assert not await RedisBudget(a, daily_tokens=0).exhausted()  # 0: no budget
    await a.aclose()
    await b.aclose()


async def test_ask_a_human_limits_are_counted_across_replicas(prefix: str, tmp_path: Path) -> None:
    """Three hand-offs an hour per member and ten per community hold for the whole deployment, not
    per replica: presses spread over two replicas sharing Redis and the answers database."""
    from aisafety_bot.wiring import SharedState
    from bot.conversation import Conversation
    from bot.platform import HANDOFF_ASKED, SLOW_DOWN, PlatformOptions
    from service.feedback import FeedbackStore
    from tests.test_conversation_store import BrokenCore, Calls

    settings = Settings(redis_url=REDIS_URL, redis_key_prefix=prefix, _env_file=None)  # type: ignore[call-arg]
    options = PlatformOptions(rate_limit_per_minute=0, handoff="S0MODS")
    store = FeedbackStore(tmp_path / "f.sqlite3")
    states = [SharedState.from_settings(settings) for _ in range(2)]
    replicas = [
        Conversation.for_platform(
            "slack",
            state.services(BrokenCore(), store),
            options=options,
            usage="",  # type: ignore[arg-type]
        )
        for state in states
    ]
    call = Calls()
    member = [await replicas[n % 2].handoff("slack:T1", "slack:U1", f"C{n}:1.0", call) for n in range(4)]
    assert member == [HANDOFF_ASKED] * 3 + [SLOW_DOWN]
    others = [await replicas[n % 2].handoff("slack:T1", f"slack:V{n}", f"D{n}:1.0", call) for n in range(9)]
    assert others.count(HANDOFF_ASKED) == 7 and others[7:] == [SLOW_DOWN, SLOW_DOWN]
    assert call.made == 10
    # Another community has its own ten.
    assert await replicas[1].handoff("slack:T2", "slack:U1", "E1:1.0", call) == HANDOFF_ASKED
    for state in states:
        await state.aclose()
    store.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivateRedis:
    """A Redis of a test's own on a free port, to stop and start again (never the machine's)."""

    def __init__(self, binary: str, folder: str):
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.command = [
            binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        self.folder = folder
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.command, cwd=self.folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        _wait(self.port, up=True)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None
        _wait(self.port, up=False)


@pytest.fixture
def private_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateRedis]:
    binary = shutil.which("redis-server")
    if binary is None:
        need("redis-server", "install Redis (apt-get install redis-server)")
    server = PrivateRedis(binary, str(tmp_path_factory.mktemp("redis")))
    server.start()
    yield server
    server.stop()


def _wait(port: int, *, up: bool) -> None:
    for _ in range(200):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                if up:
                    return
        except OSError:
            if not up:
                return
        time.sleep(0.05)
    raise AssertionError(f"redis on {port} did not {'start' if up else 'stop'}")


async def test_an_outage_falls_back_to_in_process_state_logs_once_and_recovers(
    private_redis: PrivateRedis, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    link = RedisLink(private_redis.url)
    limit, dedupe = RedisRateLimit(link, per_minute=2), RedisDedupe(link)
    assert await limit.allow("m") and await dedupe.first("E1")
    assert link.degraded() is None and await link.ping()

    await asyncio.to_thread(private_redis.stop)
    caplog.set_level(logging.WARNING, logger="service.redis_state")
    started = time.monotonic()
    answers = [await limit.allow("m") for _ in range(4)]
    assert time.monotonic() - started < 3  # a down Redis costs one short timeout, not one per question
    assert answers == [True, True, False, False]  # the in-process limit took over
    assert not await dedupe.first("E1")  # remembered here while Redis was up
    assert await dedupe.first("E2") and not await dedupe.first("E2")
    down = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(down) == 1 and "127.0.0.1" in down[0].getMessage()
    assert "unreachable" in (link.degraded() or "")
    assert not await link.ping()

    # Redis comes back: after the retry interval the shared state is used again.
    await asyncio.to_thread(private_redis.start)
    monkeypatch.setattr(redis_state, "RETRY_S", 0.0)
    assert await link.ping() and link.degraded() is None
    assert any("answers again" in r.getMessage() for r in caplog.records)
    await link.aclose()


def test_messages_never_show_the_password() -> None:
    assert redis_state.where("redis://:hunter2@cache.internal:6380/1") == "cache.internal:6380"
    assert redis_state.where("rediss://user:pw@host/0") == "host:6379"
