"""`aisafety-bot run` with REDIS_URL: replicas share event de-duplication through Redis, and a Redis
out of reach leaves the bot answering on its own state, saying so once in the log and on /readyz."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from aisafety_bot.runner import run_platforms
from aisafety_bot.wiring import open_app
from bot.config import load_settings
from tests.conftest import write_jsonl
from tests.fake_slack import BOT_USER, FakeSlack, event_callback, signed_headers
from tests.fixture_articles import rows as fixture_rows
from tests.loopback import until_ready
from tests.qdrant_server import free_port
from tests.test_redis_state import REDIS_URL, _reachable

SECRET = "test-signing-secret"
CHANNEL = "C0000001"


@contextlib.asynccontextmanager
async def replica(
    monkeypatch: pytest.MonkeyPatch, folder: Path, env: dict[str, str], fake: FakeSlack
) -> AsyncIterator[int]:
    """One bot process's worth of `run` (Slack in HTTP mode) in this event loop; yields its port."""
    port = free_port()
    await asyncio.to_thread(folder.mkdir)
    settings = {
        "QDRANT_PATH": str(folder / "store"),
        "SOURCES": str(write_jsonl(folder / "s.jsonl", fixture_rows("mesa-optimizers", "orthogonality"))),
        "SLACK_BOT_TOKEN": "xoxb-test",
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_URL": f"{fake.url}/api/",
        "SLACK_HTTP_PORT": str(port),
        "SLACK_HTTP_HOST": "127.0.0.1",
        "FEEDBACK_DB": str(folder / "f.sqlite3"),
        "RATE_LIMIT_PER_MINUTE": "0",
        **env,
    }
    for k in (
        "ANTHROPIC_API_KEY",
        "QDRANT_URL",
        "SLACK_APP_TOKEN",
        "DISCORD_TOKEN",
        "ADMIN_TOKEN",
        "DIGEST_CHANNEL",
        "HANDOFF_ROLE",
    ):
        monkeypatch.delenv(k, raising=False)
    for k, v in settings.items():
        monkeypatch.setenv(k, v)
    with open_app(load_settings()) as app:
        task = asyncio.create_task(run_platforms(app))
        try:
            await until_ready(port, within=60)
            yield port
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _event(fake: FakeSlack, event_id: str, text: str) -> bytes:
    return event_callback(fake.user_message(CHANNEL, f"<@{BOT_USER}> {text}"), event_id)


async def _post(port: int, body: bytes, *, retry: int = 0) -> int:
    headers = signed_headers(SECRET, body)
    if retry:
        headers = {**headers, "X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"}
    async with aiohttp.ClientSession() as http:
        async with http.post(f"http://127.0.0.1:{port}/slack/events", data=body, headers=headers) as r:
            return r.status


def _answers(fake: FakeSlack) -> list[dict[str, object]]:
    return [m for m in fake.messages.get(CHANNEL, []) if m.get("blocks")]


async def test_two_replicas_on_one_redis_answer_an_event_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, model_env: dict[str, str]
) -> None:
    if not _reachable(REDIS_URL):
        from tests.conftest import need

        need("Redis at 127.0.0.1:6379", "start it (redis-server --port 6379) or set TEST_REDIS_URL")
    for k, v in model_env.items():
        monkeypatch.setenv(k, v)
    fake = FakeSlack()
    await fake.start()
    prefix_db = REDIS_URL  # the events' keys are unique to this test (random event ids)
    env = {"REDIS_URL": prefix_db}
    async with (
        replica(monkeypatch, tmp_path / "a", env, fake) as port_a,
        replica(monkeypatch, tmp_path / "b", env, fake) as port_b,
    ):
        import uuid

        events = [
            (f"Ev{uuid.uuid4().hex[:10]}", q) for q in ("what is a mesa-optimizer?", "orthogonality thesis?")
        ]
        for event_id, question in events:
            body = _event(fake, event_id, question)
            # Slack re-delivers to whichever replica the load balancer picks.
            assert await _post(port_a, body) == 200
            assert await _post(port_b, body, retry=1) == 200
            assert await _post(port_b, body, retry=2) == 200
        await fake.wait_for(lambda: len(_answers(fake)) >= 2)
        await asyncio.sleep(1.0)  # time for a duplicate answer to show up, if there were one
        assert len(_answers(fake)) == 2
    await fake.stop()


async def test_an_unreachable_redis_leaves_the_bot_answering_and_readyz_says_so(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    model_env: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    for k, v in model_env.items():
        monkeypatch.setenv(k, v)
    fake = FakeSlack()
    await fake.start()
    closed = free_port()  # nothing listens there
    caplog.set_level(logging.INFO)
    async with replica(
        monkeypatch, tmp_path / "a", {"REDIS_URL": f"redis://:pw-sekrit@127.0.0.1:{closed}/0"}, fake
    ) as port:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/readyz") as r:
                body = await r.json()
        assert r.status == 200 and body["ready"] is True
        assert "unreachable" in body["degraded"]["redis"] and "pw-sekrit" not in json.dumps(body)

        event = _event(fake, "EvDOWN1", "what is a mesa-optimizer?")
        assert await _post(port, event) == 200
        assert await _post(port, event, retry=1) == 200  # the in-process de-duplication still holds
        await fake.wait_for(lambda: len(_answers(fake)) >= 1)
        await asyncio.sleep(0.5)
        assert len(_answers(fake)) == 1
    lines = [r.getMessage() for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(lines) == 1 and f"127.0.0.1:{closed}" in lines[0]
    assert not any("pw-sekrit" in r.getMessage() for r in caplog.records)
    await fake.stop()
