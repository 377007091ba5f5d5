"""The Slack adapter end to end: the real slack-bolt AsyncApp in HTTP mode (signed requests) and in
Socket Mode, posting to a fake Slack Web API on 127.0.0.1, with the real answer core, embeddings,
Qdrant and the fake Anthropic API."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from adapters.slack.app import USAGE, SlackBot
from bot.conversation import Conversation
from bot.core import AnswerCore
from bot.observability import Observer
from bot.platform import PlatformOptions
from retrieval.embeddings import FastEmbedder
from retrieval.index import VectorStore
from retrieval.search import HybridRetriever
from service.anthropic_llm import AnthropicLLM
from service.feedback import FeedbackStore
from service.health import serve
from service.metrics import Metrics
from tests.fake_anthropic import FakeAnthropic, Reply
from tests.fake_slack import BOT_USER, FakeSlack, signed_headers
from tests.qdrant_server import free_port

SECRET = "test-signing-secret"
CHANNEL = "C0000001"
OTHER = "C0000002"


class Harness:
    def __init__(self, fake: FakeSlack, bot: SlackBot, url: str, session: aiohttp.ClientSession):
        self.fake, self.bot, self.url, self.session = fake, bot, url, session
        self._events = 0

    async def post(
        self,
        body: bytes,
        content_type: str,
        *,
        headers: dict[str, str] | None = None,
        sign: bool = True,
        timestamp: int | None = None,
    ) -> tuple[int, str]:
        h = (
            signed_headers(SECRET, body, content_type=content_type, timestamp=timestamp)
            if sign
            else {"content-type": content_type}
        )
        h.update(headers or {})
        async with self.session.post(self.url, data=body, headers=h) as resp:
            return resp.status, await resp.text()

    def event_body(self, event: dict[str, Any], event_id: str | None = None) -> bytes:
        self._events += 1
        return json.dumps(
            {
                "token": "x",
                "team_id": "T0001",
                "api_app_id": "A0001",
                "type": "event_callback",
                "event_id": event_id or f"Ev{self._events:08d}",
                "event_time": int(time.time()),
                "event": event,
                "authorizations": [{"team_id": "T0001", "user_id": BOT_USER, "is_bot": True}],
            }
        ).encode()

    async def event(self, event: dict[str, Any], **kw: Any) -> tuple[int, str]:
        return await self.post(self.event_body(event), "application/json", **kw)

    async def mention(self, text: str, channel: str = CHANNEL, **kw: Any) -> dict[str, Any]:
        msg = self.fake.user_message(channel, f"<@{BOT_USER}> {text}", **kw)
        status, _ = await self.event(dict(msg, type="app_mention"))
        assert status == 200
        return msg

    async def command(self, text: str, channel: str = CHANNEL) -> tuple[int, str]:
        form = {
            "token": "x",
            "team_id": "T0001",
            "channel_id": channel,
            "channel_name": "ask",
            "user_id": "UALICE01",
            "user_name": "alice",
            "command": "/ask",
            "text": text,
            "response_url": f"{self.fake.url}/respond",
            "trigger_id": f"t{time.time_ns()}",  # Slack gives each invocation its own
            "api_app_id": "A0001",
        }
        return await self.post(urllib.parse.urlencode(form).encode(), "application/x-www-form-urlencoded")

    async def click(
        self, message: dict[str, Any], button: dict[str, Any], user: str = "UBOB0001"
    ) -> tuple[int, str]:
        """A member clicks a button of one of the bot's messages (interactivity: block_actions)."""
        payload = {
            "type": "block_actions",
            "user": {"id": user},
            "api_app_id": "A0001",
            "team": {"id": "T0001"},
            "channel": {"id": message["channel"]},
            "container": {"type": "message", "message_ts": message["ts"], "channel_id": message["channel"]},
            "message": {k: v for k, v in message.items() if k in ("ts", "thread_ts", "text", "user")},
            "trigger_id": "t",
            "response_url": f"{self.fake.url}/respond",
            "actions": [
                {
                    "action_id": button["action_id"],
                    "block_id": message["blocks"][-1]["block_id"],
                    "value": button["value"],
                    "type": "button",
                    "action_ts": str(time.time()),
                }
            ],
        }
        body = urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()
        return await self.post(body, "application/x-www-form-urlencoded")

    def answered(self, channel: str, thread_ts: str | None = None) -> list[dict[str, Any]]:
        return [
            m
            for m in self.fake.messages.get(channel, [])
            if m.get("user") == BOT_USER
            and m.get("blocks")
            and (thread_ts is None or m.get("thread_ts") == thread_ts)
        ]


StartSlack = Callable[..., Awaitable[Harness]]


# Questions longer than this get a reply asking for a shorter one (MAX_QUESTION_CHARS, lowered for tests).
MAX_CHARS = 400
LONG_QUESTION = "Please read this carefully and then explain corrigibility. " * 12


def feedback_of(platform_bot: Any) -> FeedbackStore:
    """The answers store behind a platform's conversation (the adapters reach it only through that)."""
    store = platform_bot.conversation.store
    assert isinstance(store, FeedbackStore)
    return store


@pytest_asyncio.fixture
async def start_slack(
    fake_slack: FakeSlack,
    slice_store: VectorStore,
    embedder: FastEmbedder,
    llm_server: FakeAnthropic,
    tmp_path: Path,
) -> AsyncIterator[StartSlack]:
    runners: list[Any] = []
    bots: list[SlackBot] = []
    feedback = FeedbackStore(tmp_path / "feedback.sqlite3")
    session = aiohttp.ClientSession()

    async def start(**options: Any) -> Harness:
        llm = AnthropicLLM(
            api_key="k", model="claude-test", base_url=llm_server.url, timeout_s=5, max_retries=1
        )
        core = AnswerCore(
            retriever=HybridRetriever(store=slice_store, embedder=embedder),
            llm=llm,
            max_question_chars=MAX_CHARS,
        )
        opts = PlatformOptions(**{"edit_interval_s": 0.2, "rate_limit_per_minute": 0, **options})
        bot = SlackBot(
            conversation=Conversation.in_process(
                "slack", core=core, store=feedback, options=opts, usage=USAGE
            ),
            token="xoxb-test",
            signing_secret=SECRET,
            base_url=f"{fake_slack.url}/api/",
        )
        await bot.identify()
        port = free_port()
        metrics = Metrics()  # one set for the port and the bot, as the running bot has
        core.observer = Observer(metrics)
        runners.append(await serve(bot.web_app(), "127.0.0.1", port, metrics=metrics))  # as the runner does
        bots.append(bot)
        return Harness(fake_slack, bot, f"http://127.0.0.1:{port}/slack/events", session)

    yield start
    for bot in bots:
        await bot.close()
    for runner in runners:
        await runner.cleanup()
    await session.close()
    feedback.close()


async def test_mention_gets_a_threaded_streamed_answer_with_block_kit_sources(
    start_slack: StartSlack, llm_server: FakeAnthropic
) -> None:
    h = await start_slack()
    llm_server.script.append(
        Reply(text="Intelligence and goals vary independently [1]. " * 4, chunk_delay_s=0.03)
    )
    started = time.monotonic()
    msg = await h.mention("what is the orthogonality thesis?")
    acked = time.monotonic() - started
    final = await h.fake.wait_for(lambda: h.answered(CHANNEL, msg["ts"]))
    assert acked < 3.0
    assert not h.fake.named("conversations.replies")  # a new thread has no history to fetch
    placeholder = h.fake.named("chat.postMessage")[0].args
    assert placeholder["thread_ts"] == msg["ts"] and "Looking" in placeholder["text"]
    updates = h.fake.named("chat.update")
    assert len(updates) >= 2  # streamed by updating the reply, then the final blocks
    blocks = final[0]["blocks"]
    assert all(len(b["text"]["text"]) <= 3000 for b in blocks if b["type"] == "section")
    sources = next(
        b["text"]["text"]
        for b in blocks
        if b["type"] == "section" and b["text"]["text"].startswith("*Sources*")
    )
    assert "[1] <https://example.org/articles/orthogonality|" in sources
    assert (
        "vary independently [1]" in final[0]["text"] and "*Sources*" in final[0]["text"]
    )  # the plain fallback too
    assert blocks[-1]["type"] == "actions" and blocks[-1]["elements"][0]["action_id"] == "feedback_up"


async def test_follow_up_in_thread_without_mention_uses_the_thread(
    start_slack: StartSlack, llm_server: FakeAnthropic
) -> None:
    h = await start_slack()
    llm_server.script.append(Reply(text="Goals and intelligence are independent [1]."))
    first = await h.mention("what is the orthogonality thesis?")
    await h.fake.wait_for(lambda: h.answered(CHANNEL, first["ts"]))
    llm_server.requests.clear()
    llm_server.script += [
        Reply(text="exceptions to the orthogonality thesis"),
        Reply(text="It mostly holds [1]."),
    ]
    follow = h.fake.user_message(
        CHANNEL, "are there any goals where it doesn't hold though?", thread_ts=first["ts"]
    )
    assert (await h.event(follow))[0] == 200
    await h.fake.wait_for(
        lambda: any("It mostly holds" in m["text"] for m in h.answered(CHANNEL, first["ts"]))
    )
    condense = llm_server.requests[0].body["messages"][0]["content"]
    assert "what is the orthogonality thesis?" in condense and "Goals and intelligence" in condense

    # A thread the bot has nothing to do with is left alone.
    other = h.fake.user_message(CHANNEL, "lunch?")
    reply = h.fake.user_message(CHANNEL, "sure", thread_ts=other["ts"])
    await h.event(reply)
    await asyncio.sleep(0.5)
    assert not h.answered(CHANNEL, other["ts"])


async def test_direct_message(start_slack: StartSlack, llm_server: FakeAnthropic) -> None:
    h = await start_slack()
    llm_server.script.append(Reply(text="A mesa-optimizer is a learned optimizer [1]."))
    dm = h.fake.user_message("D0000001", "what is a mesa-optimizer?", channel_type="im")
    await h.event(dm)
    await h.fake.wait_for(lambda: any("learned optimizer" in m["text"] for m in h.answered("D0000001")))
    assert h.fake.named("conversations.history")
    # A direct message belongs to no community's view.
    stored = await h.fake.wait_for(lambda: [r.community for r in feedback_of(h.bot).rows(only_voted=False)])
    assert stored == ["dm"]


async def test_slash_ask_public_private_and_help(start_slack: StartSlack, llm_server: FakeAnthropic) -> None:
    h = await start_slack()
    status, body = await h.command("help")
    assert status == 200 and "/ask" in body
    assert not [c for c in h.fake.calls if c.method.startswith("chat.")]  # the usage comes back in the ack
    status, body = await h.command("")
    assert status == 200 and "/ask" in body

    llm_server.script.append(Reply(text="Takeoff is the move to superintelligence [1]."))
    started = time.monotonic()
    status, _ = await h.command("what is AI takeoff?")
    assert status == 200 and time.monotonic() - started < 3.0
    await h.fake.wait_for(lambda: any("Takeoff is the move" in m["text"] for m in h.answered(CHANNEL)))

    llm_server.script.append(Reply(text="Quantilizers cut the top [1]."))
    status, _ = await h.command("--private what are quantilizers?")
    assert status == 200
    eph = await h.fake.wait_for(
        lambda: [c for c in h.fake.named("chat.postEphemeral") if "Quantilizers" in c.args.get("text", "")]
    )
    assert eph[0].args["user"] == "UALICE01" and "feedback_up" in json.dumps(eph[0].args["blocks"])


async def test_feedback_click_is_recorded(start_slack: StartSlack, llm_server: FakeAnthropic) -> None:
    h = await start_slack()
    llm_server.script.append(Reply(text="Goals and intelligence are independent [1]."))
    msg = await h.mention("what is the orthogonality thesis?")
    final = (await h.fake.wait_for(lambda: h.answered(CHANNEL, msg["ts"])))[0]
    button = final["blocks"][-1]["elements"][1]
    status, _ = await h.click(final, button)
    assert status == 200
    await h.fake.wait_for(
        lambda: [c for c in h.fake.named("chat.postEphemeral") if "Thanks" in c.args.get("text", "")]
    )
    row = feedback_of(h.bot).rows()[0]
    assert row.community == "slack:T0001"  # the workspace it was asked in
    assert (row.up, row.down, row.platform) == (
        0,
        1,
        "slack",
    ) and row.question == "what is the orthogonality thesis?"


async def test_double_delivery_and_retries_give_one_answer(
    start_slack: StartSlack, llm_server: FakeAnthropic
) -> None:
    h = await start_slack()
    msg = h.fake.user_message(CHANNEL, f"<@{BOT_USER}> what are quantilizers?")
    body = h.event_body(dict(msg, type="app_mention"), event_id="EvSAME")
    assert (await h.post(body, "application/json"))[0] == 200
    assert (
        await h.post(
            body,
            "application/json",
            headers={"x-slack-retry-num": "1", "x-slack-retry-reason": "http_timeout"},
        )
    )[0] == 200
    assert (await h.event(dict(msg)))[0] == 200  # the same mention as a plain message event
    await h.fake.wait_for(lambda: h.answered(CHANNEL, msg["ts"]))
    await asyncio.sleep(0.5)
    assert len([c for c in h.fake.named("chat.postMessage") if c.args.get("thread_ts") == msg["ts"]]) == 1


async def test_metrics_after_real_traffic(start_slack: StartSlack, llm_server: FakeAnthropic) -> None:
    from bot.observability import Observer
    from service.metrics import Metrics

    h = await start_slack(rate_limit_per_minute=1)
    metrics = Metrics()
    h.bot.conversation.core.observer = Observer(metrics)
    llm_server.script.append(Reply(text="Goals and intelligence are independent [1]."))
    msg = await h.mention("what is the orthogonality thesis?")
    final = (await h.fake.wait_for(lambda: h.answered(CHANNEL, msg["ts"])))[0]
    await h.mention("and again?")
    await h.fake.wait_for(lambda: any("faster than" in t for t in h.fake.bot_texts(CHANNEL)))
    button = final["blocks"][-1]["elements"][0]
    await h.click(final, button)
    await h.fake.wait_for(
        lambda: [c for c in h.fake.named("chat.postEphemeral") if "Thanks" in c.args.get("text", "")]
    )
    text = metrics.render().decode()
    assert 'aisafety_questions_total{outcome="llm",platform="slack"} 1.0' in text
    assert 'aisafety_rate_limited_total{platform="slack"} 1.0' in text
    assert 'aisafety_feedback_total{platform="slack",vote="up"} 1.0' in text
    assert 'aisafety_answer_latency_seconds_count{stage="first_sign"} 1.0' in text
    assert 'aisafety_llm_tokens_total{direction="input"} 123.0' in text


async def test_other_bots_edits_and_plain_channel_messages_are_ignored(start_slack: StartSlack) -> None:
    h = await start_slack()
    other_bot = dict(
        h.fake.user_message(CHANNEL, f"<@{BOT_USER}> ping"), type="app_mention", bot_id="BOTHER01"
    )
    edited = dict(h.fake.user_message(CHANNEL, f"<@{BOT_USER}> edited"), subtype="message_changed")
    chatter = h.fake.user_message(CHANNEL, "just chatting")
    for event in (other_bot, edited, chatter):
        assert (await h.event(event))[0] == 200
    await asyncio.sleep(0.5)
    assert not [c for c in h.fake.calls if c.method.startswith(("chat.", "conversations."))]


async def test_bad_signatures_are_rejected_without_any_api_call(start_slack: StartSlack) -> None:
    h = await start_slack()
    calls = len(h.fake.calls)
    body = h.event_body(dict(h.fake.user_message(CHANNEL, f"<@{BOT_USER}> hi"), type="app_mention"))
    ts = str(int(time.time()))
    assert (
        await h.post(
            body,
            "application/json",
            sign=False,
            headers={"x-slack-request-timestamp": ts, "x-slack-signature": "v0=bad"},
        )
    )[0] == 401
    assert (await h.post(body, "application/json", timestamp=int(time.time()) - 600))[0] == 401
    assert (await h.post(body, "application/json", sign=False))[0] == 401
    await asyncio.sleep(0.3)
    assert len(h.fake.calls) == calls


async def test_url_verification_challenge(start_slack: StartSlack) -> None:
    h = await start_slack()
    status, body = await h.post(
        json.dumps({"token": "x", "challenge": "abc123", "type": "url_verification"}).encode(),
        "application/json",
    )
    assert status == 200 and "abc123" in body


async def test_every_slack_mention_form_is_neutralised(
    start_slack: StartSlack, llm_server: FakeAnthropic
) -> None:
    h = await start_slack()
    forms = "<!channel> <!here> <!everyone> <!subteam^S0001|@safety> <@U0000009> @channel @here @everyone"
    llm_server.script.append(Reply(text=f"Hi {forms} about the orthogonality thesis [1]."))
    msg = await h.mention(f"{forms} what is the orthogonality thesis?")
    await h.fake.wait_for(lambda: h.answered(CHANNEL, msg["ts"]))
    for c in h.fake.calls:
        if c.method in ("chat.postMessage", "chat.update", "chat.postEphemeral"):
            sent = json.dumps(c.args)
            for bad in (
                "<!channel>",
                "<!here>",
                "<!everyone>",
                "<!subteam",
                "<@U0000009",
                "@channel",
                "@here",
                "@everyone",
            ):
                assert bad not in sent, (bad, c.method)


async def test_llm_failure_and_retrieval_failure_still_reply(
    start_slack: StartSlack, llm_server: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = await start_slack()
    llm_server.default = Reply(status=500)
    try:
        msg = await h.mention("what is a mesa-optimizer?")
        final = await h.fake.wait_for(lambda: h.answered(CHANNEL, msg["ts"]))
        assert "From the library's articles" in final[0]["text"] and "*Sources*" in final[0]["text"]
    finally:
        llm_server.default = Reply()

    from retrieval.index import StoreError

    async def broken(query: str, *, k: int = 5) -> Any:
        raise StoreError("Qdrant request failed")

    monkeypatch.setattr(h.bot.conversation.core.retriever, "search", broken)
    msg = await h.mention("what is a mesa-optimizer?")
    await h.fake.wait_for(
        lambda: any(t.startswith("Sorry, something went wrong") for t in h.fake.bot_texts(CHANNEL))
    )


async def test_web_api_429_is_retried(start_slack: StartSlack, llm_server: FakeAnthropic) -> None:
    h = await start_slack()
    h.fake.rate_limit_once.add("chat.postMessage")
    llm_server.script.append(Reply(text="Quantilizers are safer [1]."))
    msg = await h.mention("what are quantilizers?")
    await h.fake.wait_for(lambda: h.answered(CHANNEL, msg["ts"]), within=30)
    assert len(h.fake.named("chat.postMessage")) == 2  # the 429 and its retry after Retry-After


async def test_rate_limit_and_allow_list(start_slack: StartSlack, llm_server: FakeAnthropic) -> None:
    h = await start_slack(rate_limit_per_minute=1, allowed_channels=frozenset({CHANNEL}))
    await h.mention("what is a mesa-optimizer?", channel=OTHER)
    first = await h.mention("what is a mesa-optimizer?")
    await h.fake.wait_for(lambda: h.answered(CHANNEL, first["ts"]))
    second = await h.mention("and what are quantilizers?")
    await h.fake.wait_for(lambda: any("faster than" in t for t in h.fake.bot_texts(CHANNEL)))
    assert not [c for c in h.fake.calls if c.args.get("channel") == OTHER]
    assert not h.answered(CHANNEL, second["ts"])


async def test_socket_mode(
    fake_slack: FakeSlack,
    slice_store: VectorStore,
    embedder: FastEmbedder,
    llm_server: FakeAnthropic,
    tmp_path: Path,
) -> None:
    llm = AnthropicLLM(api_key="k", model="claude-test", base_url=llm_server.url, timeout_s=5, max_retries=1)
    core = AnswerCore(retriever=HybridRetriever(store=slice_store, embedder=embedder), llm=llm)
    bot = SlackBot(
        conversation=Conversation.in_process(
            "slack",
            core=core,
            store=FeedbackStore(tmp_path / "f.sqlite3"),
            options=PlatformOptions(edit_interval_s=0.2),
            usage=USAGE,
        ),
        token="xoxb-test",
        base_url=f"{fake_slack.url}/api/",
    )
    await bot.identify()
    task = asyncio.create_task(bot.run_socket_mode("xapp-test"))
    try:
        llm_server.script.append(Reply(text="A mesa-optimizer is a learned optimizer [1]."))
        msg = fake_slack.user_message(CHANNEL, f"<@{BOT_USER}> what is a mesa-optimizer?")
        payload = {
            "team_id": "T0001",
            "api_app_id": "A0001",
            "type": "event_callback",
            "event_id": "EvSOCKET1",
            "event_time": int(time.time()),
            "event": dict(msg, type="app_mention"),
        }
        eid = await fake_slack.envelope("events_api", payload)
        await fake_slack.wait_for(lambda: any(a.get("envelope_id") == eid for a in fake_slack.acks))
        assert await bot.connected()  # what /readyz reports for Slack
        await fake_slack.wait_for(
            lambda: [
                m for m in fake_slack.messages[CHANNEL] if m.get("blocks") and m.get("thread_ts") == msg["ts"]
            ]
        )
        assert fake_slack.named("apps.connections.open")
    finally:
        task.cancel()
        await bot.close()


async def test_a_too_long_question_is_declined_on_mentions_and_slash_ask(
    start_slack: StartSlack, llm_server: FakeAnthropic
) -> None:
    h = await start_slack()
    assert len(LONG_QUESTION) > MAX_CHARS
    msg = await h.mention(LONG_QUESTION)
    final = await h.fake.wait_for(lambda: h.answered(CHANNEL, msg["ts"]))
    assert "too long" in final[0]["text"] and f"the limit is {MAX_CHARS}" in final[0]["text"]
    status, _ = await h.command(LONG_QUESTION)
    assert status == 200
    await h.fake.wait_for(lambda: len([m for m in h.answered(CHANNEL) if "too long" in m["text"]]) == 2)
    assert llm_server.requests == []  # nothing that long reached the model


async def test_a_failed_preview_is_skipped_and_a_failed_final_update_is_posted_anew(
    start_slack: StartSlack, llm_server: FakeAnthropic
) -> None:
    h = await start_slack()
    # A 500 once, on the first preview: retried or skipped, and the answer is good.
    h.fake.server_errors["chat.update"] = 1
    llm_server.script.append(
        Reply(text="Intelligence and goals vary independently [1]. " * 3, chunk_delay_s=0.05)
    )
    msg = await h.mention("what is the orthogonality thesis?")
    final = await h.fake.wait_for(lambda: h.answered(CHANNEL, msg["ts"]))
    assert "vary independently [1]" in final[0]["text"] and "Looking" not in final[0]["text"]

    # Every update fails (past slack_sdk's retries): the placeholder stays, and the answer is posted anew.
    h.fake.server_errors["chat.update"] = 1000
    llm_server.script.append(Reply(text="Quantilizers pick among the top actions [1]."))
    msg = await h.mention("what are quantilizers?")
    final = await h.fake.wait_for(lambda: h.answered(CHANNEL, msg["ts"]), within=30)
    assert "Quantilizers pick" in final[0]["text"] and "feedback_up" in json.dumps(final[0]["blocks"])
    # The placeholder it could not update is deleted: no stale preview beside the answer.
    await h.fake.wait_for(lambda: h.fake.named("chat.delete"))
    assert [m["text"] for m in h.answered(CHANNEL, msg["ts"])] == [final[0]["text"]]
    h.fake.server_errors.clear()


async def test_unsigned_or_malformed_requests_are_refused_quietly(
    start_slack: StartSlack, caplog: pytest.LogCaptureFixture
) -> None:
    h = await start_slack()
    secret_question = "what is corrigibility? MY-PRIVATE-QUESTION\nFORGED 2026-01-01 ERROR line"
    body = h.event_body(
        dict(h.fake.user_message(CHANNEL, f"<@{BOT_USER}> {secret_question}"), type="app_mention")
    )
    metrics = _metrics_of(h)
    with caplog.at_level(logging.DEBUG):
        for raw in (b"not json at all", b"null", b"[1]", body + b" " * 900_000):
            status, _ = await h.post(raw, "application/json", sign=False)
            assert status == 401  # refused before the body is parsed
        for raw in (b"not json at all", b"null", b"[1]"):
            status, _ = await h.post(raw, "application/json")  # signed, but not what Slack sends
            assert status == 400
        # Counted, and not a line each: the minute's one line sums them up.
        assert not [r for r in caplog.records if r.levelno >= logging.INFO and "refused" in r.getMessage()]
        metrics.rejections.flush()
    summary = [r.getMessage() for r in caplog.records if r.name == "service.rejections"]
    assert summary == [
        "refused in the last minute: Slack: 4 bad signatures, 3 signed bodies not in Slack's shape"
    ]
    assert "MY-PRIVATE-QUESTION" not in caplog.text and "not json at all" not in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not h.fake.calls[-1:] or h.fake.calls[-1].method == "auth.test"


async def test_no_library_logger_writes_user_text_at_info(start_slack: StartSlack) -> None:
    h = await start_slack()
    await h.post(b"null", "application/json", sign=False)  # let bolt create whatever loggers it creates
    root = logging.getLogger()
    saved = root.level
    root.setLevel(logging.INFO)  # as `run` has it
    try:
        from bot.logs import QUIET_LIBRARIES, quiet_libraries

        quiet_libraries(logging.INFO)
        SlackBot(
            conversation=h.bot.conversation,
            token="xoxb-test",
            signing_secret=SECRET,
        )  # a bot built while the root logger is at INFO: bolt copies that level into its loggers
        names = [n for n in logging.Logger.manager.loggerDict if n.startswith(QUIET_LIBRARIES)]
        assert any(n.startswith("slack_bolt.") for n in names)
        loud = [n for n in names if logging.getLogger(n).getEffectiveLevel() < logging.WARNING]
        assert loud == [], loud
    finally:
        root.setLevel(saved)


async def test_feedback_with_a_malformed_value_is_acknowledged_and_ignored(start_slack: StartSlack) -> None:
    h = await start_slack()
    payload = {
        "type": "block_actions",
        "user": {"id": "UALICE01"},
        "channel": {"id": CHANNEL},
        "actions": [{"action_id": "feedback_up", "value": "not-a-number", "type": "button", "block_id": "b"}],
        "team": {"id": "T0001"},
        "api_app_id": "A1",
        "token": "t",
        "trigger_id": "1.2.3",
    }
    from urllib.parse import urlencode

    started = time.monotonic()
    status, _ = await h.post(
        urlencode({"payload": json.dumps(payload)}).encode(), "application/x-www-form-urlencoded"
    )
    assert status == 200 and time.monotonic() - started < 2.0  # acknowledged, not a 404 after 3 s
    await asyncio.sleep(0.2)
    assert not h.fake.named("chat.postEphemeral")


async def test_a_link_to_another_site_is_shown_unmasked(
    start_slack: StartSlack, llm_server: FakeAnthropic
) -> None:
    h = await start_slack()
    llm_server.script.append(Reply(text="Read [the official page](https://evil.example.com/phish) [1]."))
    msg = await h.mention("what is the orthogonality thesis?")
    final = await h.fake.wait_for(lambda: h.answered(CHANNEL, msg["ts"]))
    sent = json.dumps([c.args for c in h.fake.named("chat.update")])
    assert "the official page (evil.example.com)" in final[0]["text"]
    assert "evil.example.com/phish" not in sent


async def test_replies_in_other_threads_cost_no_web_api_call(start_slack: StartSlack) -> None:
    h = await start_slack()
    other = h.fake.user_message(CHANNEL, "lunch?")
    for i, text in enumerate(["sure", "where?", "the usual place", "ok"]):
        await h.event(h.fake.user_message(CHANNEL, text, thread_ts=other["ts"]))
        await asyncio.sleep(0.2)
        # The thread is looked up once (nothing in memory says whose it is), never again.
        assert len(h.fake.named("conversations.replies")) == 1, i
    assert not h.answered(CHANNEL, other["ts"])

    # After a restart nothing is remembered: the API is asked once per thread, then not again.
    restarted = await start_slack()
    for text in ("still here?", "yes"):
        await restarted.event(restarted.fake.user_message(CHANNEL, text, thread_ts=other["ts"]))
        await asyncio.sleep(0.2)
    assert len(h.fake.named("conversations.replies")) == 2


async def test_every_path_records_the_same_stages(start_slack: StartSlack, llm_server: FakeAnthropic) -> None:
    from bot.observability import Observer
    from service.metrics import Metrics

    h = await start_slack()
    metrics = Metrics()
    h.bot.conversation.core.observer = Observer(metrics)
    llm_server.script += [
        Reply(text="Takeoff is the move to superintelligence [1]."),
        Reply(text="Quantilizers [1]."),
    ]
    await h.command("what is AI takeoff?")
    await h.command("--private what are quantilizers?")
    await h.fake.wait_for(lambda: any("Takeoff is the move" in m["text"] for m in h.answered(CHANNEL)))
    await h.fake.wait_for(
        lambda: any("Quantilizers" in c.args.get("text", "") for c in h.fake.named("chat.postEphemeral"))
    )
    # The metrics are recorded just after the reply is sent: wait for them rather than race them.
    counted = 'aisafety_questions_total{outcome="llm",platform="slack"} 2.0'
    await h.fake.wait_for(lambda: counted in metrics.render().decode())
    text = metrics.render().decode()
    for stage in ("first_sign", "first_token", "done"):
        assert f'aisafety_answer_latency_seconds_count{{stage="{stage}"}} 2.0' in text, stage


async def test_ask_a_human_mentions_the_user_group_once_per_answer(
    start_slack: StartSlack, llm_server: FakeAnthropic
) -> None:
    from bot.platform import HANDOFF_ALREADY, HANDOFF_ASKED, handoff_message

    h = await start_slack(handoff="S0MODS01")
    llm_server.script.append(Reply(text="Goals and intelligence are independent [1]."))
    msg = await h.mention("what is the orthogonality thesis?")
    final = (await h.fake.wait_for(lambda: h.answered(CHANNEL, msg["ts"])))[0]
    buttons = final["blocks"][-1]["elements"]
    assert [b["action_id"] for b in buttons] == ["feedback_up", "feedback_down", "handoff"]
    assert buttons[2]["text"]["text"] == "Ask a human"
    before = len(h.fake.messages[CHANNEL])
    assert (await h.click(final, buttons[2]))[0] == 200
    said = await h.fake.wait_for(lambda: [c for c in h.fake.named("chat.postEphemeral")])
    assert said[-1].args["text"] == HANDOFF_ASKED and said[-1].args["user"] == "UBOB0001"
    posted = h.fake.messages[CHANNEL][before:]
    assert [(m["text"], m.get("thread_ts")) for m in posted] == [
        (handoff_message("<!subteam^S0MODS01>"), msg["ts"])
    ]
    # Again, by another member: the moderators are not called twice for one answer.
    assert (await h.click(final, buttons[2], user="UCAROL01"))[0] == 200
    await h.fake.wait_for(lambda: len(h.fake.named("chat.postEphemeral")) >= 2)
    assert h.fake.named("chat.postEphemeral")[-1].args["text"] == HANDOFF_ALREADY
    assert len(h.fake.messages[CHANNEL]) == before + 1
    # A signed click that names a message the bot never posted (a member's own) calls no one.
    from bot.platform import HANDOFF_NOT_OURS

    forged = {**final, "user": "UBOB0001", "ts": "1700000000.999999", "thread_ts": "1700000000.999999"}
    assert (await h.click(forged, buttons[2], user="UDAVE001"))[0] == 200
    await h.fake.wait_for(lambda: len(h.fake.named("chat.postEphemeral")) >= 3)
    assert h.fake.named("chat.postEphemeral")[-1].args["text"] == HANDOFF_NOT_OURS
    assert len(h.fake.messages[CHANNEL]) == before + 1
    # No other message of the bot mentions anyone.
    others = [m["text"] for m in h.fake.messages[CHANNEL] if m.get("user") == BOT_USER][:-1]
    assert not any("<!subteam" in t or "<!channel>" in t or "<!here>" in t for t in others)


async def test_without_handoff_role_there_is_no_ask_a_human_button(
    start_slack: StartSlack, llm_server: FakeAnthropic
) -> None:
    h = await start_slack()
    llm_server.script.append(Reply(text="Goals and intelligence are independent [1]."))
    msg = await h.mention("what is the orthogonality thesis?")
    final = (await h.fake.wait_for(lambda: h.answered(CHANNEL, msg["ts"])))[0]
    assert "handoff" not in json.dumps(final["blocks"])


async def test_each_event_command_and_click_gets_its_workspace_or_dm(start_slack: StartSlack) -> None:
    h = await start_slack()
    bot = h.bot
    assert bot._community(
        {"team_id": "T0002"}, {"channel": "C1", "channel_type": "channel", "team": "TX"}
    ) == (
        "slack:T0002"  # the workspace the event was delivered for, not the author's own (a shared channel)
    )
    assert bot._community({"team_id": "T0002"}, {"channel": "G1", "channel_type": "mpim"}) == "dm"
    assert bot._community({}, {"channel": "C1", "channel_type": "channel"}) == "slack:T0001"  # auth.test's
    # A click on an organisation-wide install carries no team: the bot's own workspace, never the
    # clicker's organisation id.
    click = {
        "team": None,
        "user": {"id": "U1", "team_id": "E0001"},
        "channel": {"id": "C1", "name": "general"},
    }
    assert bot._action_community(click, "C1") == "slack:T0001"
    group = {"team": {"id": "T0002"}, "channel": {"id": "C9", "name": "mpdm-ann--bob-1"}}
    assert bot._action_community(group, "C9") == "dm"


def _metrics_of(h: Harness) -> Any:
    """The running bot's metrics (its port's and its conversation's), where refused requests are counted."""
    return h.bot.conversation.core.observer.metrics


def _refused(metrics: Any, reason: str) -> float:
    value = metrics.registry.get_sample_value("aisafety_rejected_requests_total", {"reason": reason})
    return float(value or 0.0)


def _click_payload(value: str, *, team: str = "T0001", user: str = "UALICE01") -> bytes:
    payload = {
        "type": "block_actions",
        "user": {"id": user},
        "channel": {"id": CHANNEL},
        "actions": [{"action_id": "feedback_up", "value": value, "type": "button", "block_id": "b"}],
        "team": {"id": team},
        "api_app_id": "A0001",
        "token": "t",
        "trigger_id": "1.2.3",
    }
    return urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()


async def test_signed_requests_for_another_workspace_or_app_are_acknowledged_and_dropped(
    start_slack: StartSlack, caplog: pytest.LogCaptureFixture
) -> None:
    h = await start_slack()
    metrics = _metrics_of(h)
    h.bot.app_id = "A0001"  # SLACK_APP_ID
    calls = len(h.fake.calls)
    mention = dict(h.fake.user_message(CHANNEL, f"<@{BOT_USER}> what is corrigibility?"), type="app_mention")
    other_team = json.loads(h.event_body(mention))
    other_team["team_id"] = "T0002"
    other_team["authorizations"][0]["team_id"] = "T0002"
    other_app = dict(json.loads(h.event_body(mention)), api_app_id="A0002")
    command = {
        "team_id": "T0002",
        "api_app_id": "A0001",
        "channel_id": CHANNEL,
        "user_id": "UALICE01",
        "command": "/ask",
        "text": "what is corrigibility?",
    }
    form = "application/x-www-form-urlencoded"
    with caplog.at_level(logging.INFO):
        for body, kind in (
            (json.dumps(other_team).encode(), "application/json"),
            (json.dumps(other_app).encode(), "application/json"),
            (urllib.parse.urlencode(command).encode(), form),
            (_click_payload("1", team="T0002"), form),
        ):
            assert await h.post(body, kind) == (200, "")  # acknowledged, so Slack does not send it again
        await asyncio.sleep(0.5)
    assert len(h.fake.calls) == calls  # nothing answered, posted or looked up
    assert (_refused(metrics, "wrong_team"), _refused(metrics, "wrong_app")) == (3.0, 1.0)
    assert not [r for r in caplog.records if r.levelno >= logging.INFO and "T0002" in r.getMessage()]
    # Slack's URL verification names neither: still answered with SLACK_APP_ID set.
    challenge = json.dumps({"token": "x", "challenge": "abc123", "type": "url_verification"}).encode()
    status, answered = await h.post(challenge, "application/json")
    assert status == 200 and json.loads(answered) == {"challenge": "abc123"}
    # On an organisation-wide install, every workspace of the organisation is the bot's own.
    h.bot.org_id = "E0001"
    chatter = json.loads(h.event_body(h.fake.user_message(CHANNEL, "just chatting")))
    in_the_organisation = chatter | {"team_id": "T0003", "enterprise_id": "E0001"}
    assert (await h.post(json.dumps(in_the_organisation).encode(), "application/json"))[0] == 200
    assert _refused(metrics, "wrong_team") == 3.0
    assert h.bot.not_ours({"team": None, "enterprise": {"id": "E0001"}, "api_app_id": "A0001"}) == ""
    assert h.bot.not_ours({"team": {"id": "T0009"}, "enterprise": {"id": "E0009"}}) == "wrong_team"
    assert h.bot.not_ours({"team_id": "T0001", "api_app_id": "A0001"}) == ""


async def test_a_feedback_click_whose_answer_id_is_out_of_range_is_ignored(
    start_slack: StartSlack, caplog: pytest.LogCaptureFixture
) -> None:
    from bot.platform import VOTE_LOST

    h = await start_slack()
    form = "application/x-www-form-urlencoded"
    with caplog.at_level(logging.DEBUG):
        for value in (str(10**23), "0", "-1", str(2**63), "１２", " 12", "1e3", "0x10", "", "12" * 60):
            assert (await h.post(_click_payload(value), form))[0] == 200, value
        await asyncio.sleep(0.3)
    assert not h.fake.named("chat.postEphemeral")  # no store was asked, nobody was told anything
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert "OverflowError" not in caplog.text and "Traceback" not in caplog.text
    # The largest id the answers store holds is looked up, and not found.
    assert (await h.post(_click_payload(str(2**63 - 1)), form))[0] == 200
    said = await h.fake.wait_for(lambda: h.fake.named("chat.postEphemeral"))
    assert said[0].args["text"] == VOTE_LOST


async def test_slacks_escaped_text_is_unescaped_once_where_a_question_enters(
    start_slack: StartSlack, llm_server: FakeAnthropic
) -> None:
    h = await start_slack()
    llm_server.script += [Reply(text="Goals and intelligence are independent [1]."), Reply(text="Tags [1].")]
    # As Slack sends it: `&`, `<` and `>` as entities, so `&lt;` typed arrives as `&amp;lt;`.
    msg = await h.mention("is x &lt; y &amp;&amp; y &gt; z in the orthogonality thesis? (&amp;lt; typed)")
    await h.fake.wait_for(lambda: h.answered(CHANNEL, msg["ts"]))
    typed = "is x < y && y > z in the orthogonality thesis? (&lt; typed)"
    sent = json.dumps(llm_server.requests[-1].body)
    assert "x < y && y > z" in sent and "(&lt; typed)" in sent and "&amp;" not in sent
    await h.command("what does &lt;b&gt; mean &amp; why?")
    stored = await h.fake.wait_for(
        lambda: (rows := feedback_of(h.bot).rows(only_voted=False)) and len(rows) == 2 and rows
    )
    assert sorted(r.question for r in stored) == sorted([typed, "what does <b> mean & why?"])


async def test_the_slack_port_cuts_off_slow_and_oversized_bodies(
    start_slack: StartSlack, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import service.health as health
    from tests.test_hostile import stranger

    monkeypatch.setattr(health, "HEADERS_TIMEOUT_S", 0.5)
    monkeypatch.setattr(health, "BODY_TIMEOUT_S", 0.5)
    h = await start_slack()
    metrics = _metrics_of(h)
    port = int(urllib.parse.urlsplit(h.url).port or 0)
    calls = len(h.fake.calls)
    head = "POST /slack/events HTTP/1.1\r\nHost: bot\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n"
    with caplog.at_level(logging.DEBUG):
        slow = await asyncio.gather(
            *(stranger(port, head.format(300).encode(), b"{" * 300, every_s=0.1) for _ in range(20))
        )
        assert all(closed < 2.0 for _, closed in slow)
        got, _ = await stranger(port, head.format(2 * 1024**2).encode())
        assert got.startswith(b"HTTP/1.1 413")
        got, _ = await stranger(port, b"", b"POST /slack/events HTTP/1.1\r\nHost: bot\r\n", every_s=0.05)
        assert got == b""  # headers that never end
    assert (_refused(metrics, "too_slow"), _refused(metrics, "too_large")) == (20.0, 1.0)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR] and "Traceback" not in caplog.text
    assert len(h.fake.calls) == calls
