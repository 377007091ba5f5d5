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
from tests.test_redis_state import (  # noqa: F401 (fixture)
    PrivateRedis,
    prefix,
    private_redis,
)

SECRET = "test-signing-secret"
CHANNEL = "C0000001"
QUESTIONS = ["what is corrigibility?", "what is a mesa-optimizer?", "what are quantilizers?"]


async def _start_bot(
    tmp_path: Path,
    model_env: dict[str, str],
    llm: FakeAnthropic,
    slack: FakeSlack,
    grace_s: float,
    *,
    store: str = "store",
    **extra: str,
) -> tuple[asyncio.subprocess.Process, int]:
    """A real `aisafety-bot run` (Slack, HTTP mode) on the test's store and answers database, ready;
    and its port. `store`: the folder of its embedded article store (one per replica)."""
    port = free_port()
    source = write_jsonl(
        tmp_path / "articles.jsonl", fixture_rows("corrigibility", "mesa-optimizers", "quantilizers")
    )
    env = clean_env(
        HOME=str(tmp_path),
        QDRANT_PATH=str(tmp_path / store),
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
        **extra,
    )
    bot = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "aisafety_bot", "run", env=env, cwd=tmp_path, stderr=asyncio.subprocess.PIPE
    )
    await until_ready(port, alive=lambda: bot.returncode is None)
    return bot, port


async def _bot_with_answers_in_flight(
    tmp_path: Path,
    model_env: dict[str, str],
    llm: FakeAnthropic,
    slack: FakeSlack,
    grace_s: float,
    **extra: str,
) -> asyncio.subprocess.Process:
    """A real `aisafety-bot run` (Slack, HTTP mode) with three answers streaming when this returns."""
    bot, port = await _start_bot(tmp_path, model_env, llm, slack, grace_s, **extra)
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


@pytest.mark.faults
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


@pytest.mark.faults
@pytest.mark.parametrize("redis", [False, True], ids=["answers-database", "redis"])
async def test_sigkill_with_answers_in_flight_loses_none_and_repeats_none(
    tmp_path: Path,
    model_env: dict[str, str],
    llm_server: FakeAnthropic,
    redis: bool,
    prefix: str,  # noqa: F811 (the fixture)
) -> None:
    """A process killed outright (SIGKILL: no drain, no apology) with three answers streaming: the next
    process finds their claims expired in the journal and finishes each in its own placeholder, once.
    Lost, duplicated and stale-preview answers: zero each."""
    slack = FakeSlack()
    await slack.start()
    extra = {}
    if redis:
        from tests.test_redis_state import REDIS_URL

        extra = {"REDIS_URL": REDIS_URL, "REDIS_KEY_PREFIX": prefix}
    llm_server.default = Reply(text="Corrigible systems accept correction [1]. " * 6, chunk_delay_s=0.12)
    second: asyncio.subprocess.Process | None = None
    try:
        bot = await _bot_with_answers_in_flight(tmp_path, model_env, llm_server, slack, 30.0, **extra)
        bot.kill()
        await bot.wait()
        partial = _threads(slack)
        assert len(partial) == len(QUESTIONS) and all(t.endswith(" …") for t in partial), partial
        # The next process (a restart, or another replica) continues them once their claims expire.
        second, _ = await _start_bot(tmp_path, model_env, llm_server, slack, 30.0, **extra)
        try:
            await slack.wait_for(
                lambda: all("Sources" in t and not t.endswith(" …") for t in _threads(slack)), within=150
            )
        except TimeoutError:
            second.kill()
            _, err = await second.communicate()
            raise AssertionError(f"{_threads(slack)}\n{err.decode()[-4000:]}") from None
        await asyncio.sleep(1.0)  # a duplicate, if there were one, would have shown by now
    finally:
        llm_server.default = Reply()
        if second is not None:
            second.send_signal(signal.SIGTERM)
            await asyncio.wait_for(second.communicate(), timeout=60)
        await slack.stop()
    shown = _threads(slack)
    assert len(shown) == len(QUESTIONS), shown  # no answer posted twice, no placeholder left beside one
    assert all("accept correction [1]" in t and "Sources" in t for t in shown), shown
    assert second is not None and second.returncode == 0


@pytest.mark.faults
async def test_sigkill_with_slack_ask_in_flight_is_answered_once_in_its_placeholder(
    tmp_path: Path, model_env: dict[str, str], llm_server: FakeAnthropic
) -> None:
    """`/ask` (a channel answer under a question header, no thread) killed mid-stream: the next process
    finishes it in the placeholder the dead one posted, once."""
    import urllib.parse

    slack = FakeSlack()
    await slack.start()
    llm_server.default = Reply(text="Corrigible systems accept correction [1]. " * 6, chunk_delay_s=0.12)
    second: asyncio.subprocess.Process | None = None
    try:
        bot, port = await _start_bot(tmp_path, model_env, llm_server, slack, 30.0)
        form = {
            "team_id": "T0001",
            "channel_id": CHANNEL,
            "channel_name": "ask",
            "user_id": "UALICE01",
            "command": "/ask",
            "text": "what is corrigibility?",
            "response_url": f"{slack.url}/respond",
            "trigger_id": "trigger-ask-1",
            "api_app_id": "A0001",
        }
        body = urllib.parse.urlencode(form).encode()
        headers = signed_headers(SECRET, body, content_type="application/x-www-form-urlencoded")
        async with aiohttp.ClientSession() as http:
            async with http.post(f"http://127.0.0.1:{port}/slack/events", data=body, headers=headers) as r:
                assert r.status == 200
        await slack.wait_for(lambda: slack.first_update, within=30)
        bot.kill()
        await bot.wait()
        second, _ = await _start_bot(tmp_path, model_env, llm_server, slack, 30.0)

        def answers() -> list[str]:
            return [str(m["text"]) for m in slack.messages.get(CHANNEL, []) if m.get("user") == BOT_USER]

        await slack.wait_for(lambda: any("Sources" in t for t in answers()), within=150)
        await asyncio.sleep(1.0)  # a duplicate, if there were one, would have shown by now
    finally:
        llm_server.default = Reply()
        if second is not None:
            second.send_signal(signal.SIGTERM)
            await asyncio.wait_for(second.communicate(), timeout=60)
        await slack.stop()
    shown = answers()
    assert len(shown) == 1, shown  # the placeholder became the answer: none lost, none twice, none stale
    assert "accept correction [1]" in shown[0] and "Sources" in shown[0]


@pytest.mark.faults
async def test_redis_killed_mid_burst_with_retries_across_the_gap_on_two_replicas(
    tmp_path: Path,
    model_env: dict[str, str],
    llm_server: FakeAnthropic,
    private_redis: PrivateRedis,  # noqa: F811 (fixture)
) -> None:
    """Two replicas share a Redis and the answers database. Redis is killed in the middle of a burst
    (the replica goes on, claiming in the answers database) and started again; Slack then retries every
    event of the burst at the other replica. Each question is answered once: none lost, none twice."""
    slack = FakeSlack()
    await slack.start()
    llm_server.default = Reply(text="Corrigible systems accept correction [1]. ", chunk_delay_s=0.02)
    extra = {"REDIS_URL": private_redis.url}
    replicas: list[asyncio.subprocess.Process] = []
    questions = [f"{q} ({n})" for n in range(2) for q in QUESTIONS]  # six distinct questions

    async def deliver(http: aiohttp.ClientSession, port: int, n: int, *, retry: int = 0) -> None:
        msg = slack.user_message(CHANNEL, f"<@{BOT_USER}> {questions[n]}", ts=f"1700000{n:03d}.000100")
        body = event_callback(msg, f"EvBurst{n}")
        headers = signed_headers(SECRET, body)
        if retry:
            headers |= {"x-slack-retry-num": str(retry), "x-slack-retry-reason": "http_timeout"}
        async with http.post(f"http://127.0.0.1:{port}/slack/events", data=body, headers=headers) as r:
            assert r.status == 200

    try:
        for name in ("store-a", "store-b"):
            bot, port = await _start_bot(tmp_path, model_env, llm_server, slack, 30.0, store=name, **extra)
            replicas.append(bot)
            if name == "store-a":
                port_a = port
            else:
                port_b = port
        async with aiohttp.ClientSession() as http:
            for n in range(3):
                await deliver(http, port_a, n)
            private_redis.stop()  # killed mid-burst
            for n in range(3, 6):
                await deliver(http, port_a, n)
            await slack.wait_for(lambda: sum("Sources" in t for t in _threads(slack)) >= 6, within=90)
            private_redis.start()
            await asyncio.sleep(1.0)  # the replicas' next Redis call reconnects
            # Slack did not get its acknowledgements in time (it thinks): every event again, at replica B.
            for n in range(6):
                await deliver(http, port_b, n, retry=1)
            await asyncio.sleep(3.0)  # a duplicate, if there were one, would have shown by now
    finally:
        llm_server.default = Reply()
        errors = []
        for bot in replicas:
            bot.send_signal(signal.SIGTERM)
            _, err = await asyncio.wait_for(bot.communicate(), timeout=60)
            errors.append(err.decode())
        await slack.stop()
    shown = _threads(slack)
    answered = sorted(
        str(m["thread_ts"])
        for m in slack.messages.get(CHANNEL, [])
        if m.get("user") == BOT_USER and m.get("thread_ts")
    )
    assert len(shown) == 6, answered  # each question once: none lost, none answered again after the gap
    assert all("accept correction [1]" in t and "Sources" in t and not t.endswith(" …") for t in shown), shown
    assert all(bot.returncode == 0 for bot in replicas), [e[-2000:] for e in errors]
    assert not any("Traceback" in e for e in errors), [e[-3000:] for e in errors]
