"""`aisafety-bot run` wiring: Discord and Slack (HTTP mode) in one event loop, with /readyz reporting
Qdrant and both platforms on Slack's aiohttp app."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import aiohttp
import discord
import pytest

from aisafety_bot.runner import run_platforms
from aisafety_bot.wiring import open_app
from bot.config import load_settings
from tests.conftest import write_jsonl
from tests.fake_discord import FakeDiscord
from tests.fake_slack import BOT_USER, FakeSlack, signed_headers
from tests.fixture_articles import rows as fixture_rows
from tests.qdrant_server import free_port

SECRET = "test-signing-secret"


async def test_run_serves_both_platforms_and_readiness(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, model_env: dict[str, str]
) -> None:
    fake_d, fake_s = FakeDiscord(), FakeSlack()
    await fake_d.start()
    await fake_s.start()
    monkeypatch.setattr(discord.http.Route, "BASE", fake_d.api_base)
    monkeypatch.setattr(discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY", fake_d.gateway_url)
    port = free_port()
    source = write_jsonl(tmp_path / "s.jsonl", fixture_rows("orthogonality", "mesa-optimizers"))
    env = {
        "QDRANT_PATH": str(tmp_path / "store"),
        "SOURCES": str(source),
        "DISCORD_TOKEN": "fake-token",
        "SLACK_BOT_TOKEN": "xoxb-test",
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_URL": f"{fake_s.url}/api/",
        "SLACK_HTTP_PORT": str(port),
        "SLACK_HTTP_HOST": "127.0.0.1",
        "FEEDBACK_DB": str(tmp_path / "f.sqlite3"),
        "RATE_LIMIT_PER_MINUTE": "0",
        "STORE_QUESTIONS": "false",
    }
    for k in ("ANTHROPIC_API_KEY", "QDRANT_URL", "SLACK_APP_TOKEN"):
        monkeypatch.delenv(k, raising=False)
    for k, v in {**env, **model_env}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.chdir(tmp_path)
    with open_app(load_settings()) as app:  # the index exists before the bot starts, as after an ingest
        app.ensure_ingested()
    with open_app(load_settings()) as app:
        assert app.embedder._dense is None  # nothing has loaded the model in this app yet
        task = asyncio.create_task(run_platforms(app))
        try:
            async with aiohttp.ClientSession() as http:

                async def ready() -> dict[str, object] | None:
                    try:
                        async with http.get(f"http://127.0.0.1:{port}/readyz") as r:
                            body = await r.json()
                            return body if r.status == 200 else None
                    except aiohttp.ClientError:
                        return None

                body = None
                async with asyncio.timeout(30):
                    while body is None:
                        body = await ready()
                        await asyncio.sleep(0.1)
                assert body == {"ready": True, "checks": {"qdrant": True, "discord": True, "slack": True}}
                # Warm start: by the time it reports ready, the model is loaded and a search has run,
                # though no member has asked anything yet.
                assert app.embedder._dense is not None and not fake_s.named("chat.postMessage")
                msg = fake_s.user_message("C0000001", f"<@{BOT_USER}> what is a mesa-optimizer?")
                payload = json.dumps(
                    {
                        "type": "event_callback",
                        "event_id": "EvRUN1",
                        "team_id": "T0001",
                        "event": dict(msg, type="app_mention"),
                    }
                ).encode()
                headers = signed_headers(SECRET, payload)
                async with http.post(
                    f"http://127.0.0.1:{port}/slack/events", data=payload, headers=headers
                ) as r:
                    assert r.status == 200
                await fake_s.wait_for(lambda: [m for m in fake_s.messages["C0000001"] if m.get("blocks")])
                d_msg = await fake_d.user_says(
                    fake_d.channel_id, f"<@{fake_d.bot_id}> what is a mesa-optimizer?"
                )
                await fake_d.wait_for(
                    lambda: any(
                        "**Sources**" in m["content"] for m in fake_d.messages.get(int(d_msg["id"]), [])
                    )
                )
                async with http.get(f"http://127.0.0.1:{port}/metrics") as r:
                    metrics = await r.text()
                assert 'platform="slack"' in metrics and 'platform="discord"' in metrics
            from service.feedback import FeedbackStore

            # Answers are stored just after they are posted (the database never holds one back).
            stored = FeedbackStore(tmp_path / "f.sqlite3")
            deadline = time.monotonic() + 10
            rows = stored.rows(only_voted=False)
            while {r.platform for r in rows} != {"slack", "discord"}:
                assert time.monotonic() < deadline, rows
                await asyncio.sleep(0.1)
                rows = stored.rows(only_voted=False)
            stored.close()
            assert all(
                r.question == "" and r.answer == "" and r.sources for r in rows
            )  # STORE_QUESTIONS=false
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await fake_d.stop()
            await fake_s.stop()


async def test_run_on_discord_posts_the_digest_and_finds_the_communities_of_older_answers(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, model_env: dict[str, str]
) -> None:
    """DIGEST_CHANNEL's platform posts the digest, with PUBLIC_URL's report link, once it is connected;
    answers stored before communities were recorded get their server's."""
    import time

    from bot.models import UNASSIGNED, Answer
    from service.feedback import FeedbackStore

    fake = FakeDiscord()
    await fake.start()
    monkeypatch.setattr(discord.http.Route, "BASE", fake.api_base)
    monkeypatch.setattr(discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY", fake.gateway_url)
    db = tmp_path / "f.sqlite3"
    store = FeedbackStore(db)
    older = store.record_answer(
        platform="discord",
        community=UNASSIGNED,
        place=f"discord:{fake.other_channel_id}",
        asker="discord:5",
        question="what is a mesa-optimizer?",
        answer=Answer("x", (), "abstain"),
    )
    with store._transaction() as tx:  # yesterday's: the daily digest's period
        store._execute(tx, "UPDATE answers SET created = ? WHERE id = ?", (time.time() - 86400, older))
    store.close()
    port = free_port()
    source = write_jsonl(tmp_path / "s.jsonl", fixture_rows("orthogonality", "mesa-optimizers"))
    for k in (
        "ANTHROPIC_API_KEY",
        "QDRANT_URL",
        "SLACK_BOT_TOKEN",
        "SLACK_APP_TOKEN",
        "REDIS_URL",
        "ADMIN_URL",
    ):
        monkeypatch.delenv(k, raising=False)
    env = {
        "QDRANT_PATH": str(tmp_path / "store"),
        "SOURCES": str(source),
        "DISCORD_TOKEN": "fake-token",
        "HEALTH_PORT": str(port),
        "HEALTH_HOST": "127.0.0.1",
        "FEEDBACK_DB": str(db),
        "DIGEST_CHANNEL": f"discord:{fake.channel_id}",
        "DIGEST_EVERY": "daily",
        "PUBLIC_URL": "https://bot.example.org",
        **model_env,
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.chdir(tmp_path)
    with open_app(load_settings()) as app:
        task = asyncio.create_task(run_platforms(app))
        try:
            digests = await fake.wait_for(lambda: fake.messages.get(fake.channel_id), within=60)
            await fake.wait_for(lambda: communities(db) == [f"discord:{fake.guild_id}"])
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await fake.stop()
    text = digests[0]["content"]
    assert text.startswith("**AI-safety bot digest: ") and "1 questions" in text
    assert f"[The full report](<https://bot.example.org/admin/?community=discord:{fake.guild_id}>)" in text


def communities(db: Path) -> list[str]:
    from service.feedback import FeedbackStore

    store = FeedbackStore(db)
    try:
        return [r.community for r in store.rows(only_voted=False)]
    finally:
        store.close()
