"""A Discord bot killed outright (SIGKILL) with two mentions and an `/ask` in flight: the next process
continues each from its journal entry, in the thread and preview the dead one made, once. Lost,
duplicated and stale-preview answers: zero each."""

from __future__ import annotations

import asyncio
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import clean_env, write_jsonl
from tests.fake_anthropic import FakeAnthropic, Reply
from tests.fake_discord import FakeDiscord
from tests.fixture_articles import rows as fixture_rows
from tests.loopback import until_ready
from tests.qdrant_server import free_port
from tests.test_discord import final_texts, mention, slash_ask
from tests.test_redis_state import REDIS_URL, prefix  # noqa: F401 (fixture)

pytestmark = pytest.mark.faults

# `aisafety-bot run` with discord.py pointed at the fake (as the in-process tests do by monkeypatching).
RUN = textwrap.dedent(
    """
    import os, sys
    import discord, yarl
    discord.http.Route.BASE = os.environ["TEST_DISCORD_API"]
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(os.environ["TEST_DISCORD_GATEWAY"])
    from aisafety_bot.cli import main
    sys.exit(main(["run"]))
    """
)
DISCORD_EPOCH_MS = 1420070400000


def snowflake() -> int:
    """A Discord id made now (an interaction's age, and so its token's, is read from its id)."""
    return (int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22


async def _start(
    tmp_path: Path, model_env: dict[str, str], llm: FakeAnthropic, fake: FakeDiscord, **extra: str
) -> asyncio.subprocess.Process:
    port = free_port()
    source = write_jsonl(
        tmp_path / "articles.jsonl", fixture_rows("corrigibility", "mesa-optimizers", "quantilizers")
    )
    env = clean_env(
        HOME=str(tmp_path),
        QDRANT_PATH=str(tmp_path / "store"),
        FEEDBACK_DB=str(tmp_path / "feedback.sqlite3"),
        SOURCES=str(source),
        ANTHROPIC_API_KEY="sk-ant-test-secret-123",
        ANTHROPIC_BASE_URL=llm.url,
        DISCORD_TOKEN="MTIzNDU2Nzg5MDEyMzQ1Njc4.Gx1234.fake-token",  # a bot token's shape, checked by `run`
        HEALTH_PORT=str(port),
        HEALTH_HOST="127.0.0.1",
        RATE_LIMIT_PER_MINUTE="0",
        STREAM_EDIT_INTERVAL_S="0.5",
        SYNC_EVERY_S="0",
        TEST_DISCORD_API=fake.api_base,
        TEST_DISCORD_GATEWAY=str(fake.gateway_url),
        **model_env,
        **extra,
    )
    bot = await asyncio.create_subprocess_exec(
        sys.executable, "-c", RUN, env=env, cwd=tmp_path, stderr=asyncio.subprocess.PIPE
    )
    await until_ready(port, alive=lambda: bot.returncode is None)
    return bot


def _threads(fake: FakeDiscord) -> list[int]:
    return [int(c["id"]) for c in fake.channels.values() if c.get("type") == 11]


def _followups(fake: FakeDiscord, iid: int) -> list[dict[str, Any]]:
    return [r.body for r in fake.calls("POST", f"/webhooks/{fake.app_id}/token-{iid}")]


@pytest.mark.parametrize("redis", [False, True], ids=["answers-database", "redis"])
async def test_sigkill_with_discord_mentions_and_ask_in_flight(
    tmp_path: Path,
    model_env: dict[str, str],
    llm_server: FakeAnthropic,
    redis: bool,
    prefix: str,  # noqa: F811 (the fixture)
) -> None:
    extra = {"REDIS_URL": REDIS_URL, "REDIS_KEY_PREFIX": prefix} if redis else {}
    fake = FakeDiscord()
    await fake.start()
    llm_server.default = Reply(text="Corrigible systems accept correction [1]. " * 6, chunk_delay_s=0.25)
    second: asyncio.subprocess.Process | None = None
    try:
        first = await _start(tmp_path, model_env, llm_server, fake, **extra)
        for question in ("what is corrigibility?", "what is a mesa-optimizer?"):
            await fake.user_says(fake.channel_id, mention(fake, question))
        iid = snowflake()
        await fake.dispatch("INTERACTION_CREATE", slash_ask(fake, iid, "what are quantilizers?", False))
        # Both mentions have their thread and a preview in it; the /ask is deferred ("thinking...").
        await fake.wait_for(
            lambda: (
                len(_threads(fake)) == 2
                and all(
                    final_texts(fake, th) and not any("**Sources**" in t for t in final_texts(fake, th))
                    for th in _threads(fake)
                )
                and fake.calls("POST", f"/interactions/{iid}/token-{iid}/callback")
            ),
            within=60,
        )
        first.kill()
        await first.wait()
        assert _followups(fake, iid) == []  # the /ask was not answered yet

        second = await _start(tmp_path, model_env, llm_server, fake, **extra)

        def finished() -> bool:
            return all(
                any("**Sources**" in t for t in final_texts(fake, th)) for th in _threads(fake)
            ) and any("**Sources**" in f.get("content", "") for f in _followups(fake, iid))

        await fake.wait_for(finished, within=150)
        await asyncio.sleep(1.0)  # a duplicate, if there were one, would have shown by now
    finally:
        llm_server.default = Reply()
        if second is not None:
            second.terminate()
            await asyncio.wait_for(second.communicate(), timeout=60)
        await fake.stop()
    threads = _threads(fake)
    assert len(threads) == 2  # continued in the threads the dead process made, no new one
    for thread in threads:
        shown = final_texts(fake, thread)
        # One message: the dead process's preview, edited into the answer (none lost, none stale).
        assert len(shown) == 1 and "accept correction [1]" in shown[0] and "**Sources**" in shown[0], shown
    answers = [f for f in _followups(fake, iid) if "**Sources**" in f.get("content", "")]
    assert len(answers) == 1  # the /ask answered once, through its interaction's webhook
