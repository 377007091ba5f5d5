"""SIGTERM (what Docker and systemd send) with answers streaming: none is lost, the process exits 0."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import clean_env, write_jsonl
from tests.fake_anthropic import FakeAnthropic, Reply
from tests.fake_slack import BOT_USER, FakeSlack, event_callback, signed_headers
from tests.fixture_articles import rows as fixture_rows
from tests.loopback import until_ready
from tests.qdrant_server import free_port

SECRET = "test-signing-secret"
CHANNEL = "C0000001"
QUESTIONS = ["what is corrigibility?", "what is a mesa-optimizer?", "what are quantilizers?"]


async def _bot_with_answers_in_flight(
    tmp_path: Path, model_env: dict[str, str], llm: FakeAnthropic, slack: FakeSlack, grace_s: float
) -> asyncio.subprocess.Process:
    """A real `aisafety-bot run` (Slack, HTTP mode) with three answers streaming when this returns."""
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
        SLACK_BOT_TOKEN="xoxb-test",
        SLACK_SIGNING_SECRET=SECRET,
        SLACK_API_URL=f"{slack.url}/api/",
        SLACK_HTTP_PORT=str(port),
        SLACK_HTTP_HOST="127.0.0.1",
        RATE_LIMIT_PER_MINUTE="0",
        STREAM_EDIT_INTERVAL_S="0.5",
        SHUTDOWN_GRACE_S=str(grace_s),
        **model_env,
    )
    bot = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "aisafety_bot", "run", env=env, cwd=tmp_path, stderr=asyncio.subprocess.PIPE
    )
    await until_ready(port, alive=lambda: bot.returncode is None)
    async with aiohttp.ClientSession() as http:
        for i, question in enumerate(QUESTIONS):
            msg = slack.user_message(CHANNEL, f"<@{BOT_USER}> {question}")
            body = event_callback(msg, f"EvStop{i}")
            async with http.post(
                f"http://127.0.0.1:{port}/slack/events", data=body, headers=signed_headers(SECRET, body)
            ) as r:
                assert r.status == 200
    # Every answer has started streaming (the placeholder was updated with the first words).
    await slack.wait_for(lambda: len(slack.first_update) >= len(QUESTIONS), within=30)
    return bot


def _threads(slack: FakeSlack) -> list[str]:
    """What each question's thread shows now (the bot's one reply in each)."""
    replies = [m for m in slack.messages.get(CHANNEL, []) if m.get("user") == BOT_USER and m.get("thread_ts")]
    return [str(m["text"]) for m in replies]


@pytest.mark.parametrize(("grace_s", "outcome"), [(30.0, "finished"), (0.5, "apologised")])
async def test_sigterm_lets_answers_finish_or_apologise_then_exits_0(
    tmp_path: Path, model_env: dict[str, str], llm_server: FakeAnthropic, grace_s: float, outcome: str
) -> None:
    slack = FakeSlack()
    await slack.start()
    # Each answer streams for about 3 s.
    llm_server.default = Reply(text="Corrigible systems accept correction [1]. " * 6, chunk_delay_s=0.12)
    try:
        bot = await _bot_with_answers_in_flight(tmp_path, model_env, llm_server, slack, grace_s)
        bot.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(bot.communicate(), timeout=60)
    finally:
        llm_server.default = Reply()
        await slack.stop()
    stderr = err.decode()
    assert bot.returncode == 0, stderr[-3000:]
    assert "Traceback" not in stderr
    shown = _threads(slack)
    assert len(shown) == len(QUESTIONS)
    if outcome == "finished":
        assert all("accept correction [1]" in t and "Sources" in t for t in shown), shown
        assert all(not t.endswith(" …") for t in shown)  # no preview left half-written
    else:
        assert all(t.startswith("Sorry, something went wrong") for t in shown), shown
        # ...with the articles that were found for each question, linked.
        assert all("Here is what I found" in t and "<https://example.org/articles/" in t for t in shown), (
            shown
        )
        assert "cut short" in stderr
