"""Slack responsiveness in HTTP mode: signed request -> HTTP response (the ack) and -> first visible
sign of work (the placeholder reply), against the fake LLM's first-token time, and event-loop lag
while 50 mentions arrive at once. Real slack-bolt, the real answer core, embeddings and embedded Qdrant.

    python benchmarks/bench_slack.py [--shared ../shared]
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import aiohttp  # noqa: E402

from adapters.slack.app import USAGE, SlackBot  # noqa: E402
from benchmarks.common import (  # noqa: E402
    LLM_FIRST_TOKEN_S,
    QUESTIONS,
    LagProbe,
    fake_llm,
    platform_args,
    real_core,
    summary_ms,
)
from bot.conversation import Conversation  # noqa: E402
from bot.platform import PlatformOptions  # noqa: E402
from service.feedback import FeedbackStore  # noqa: E402
from service.metrics import freeze_startup_heap  # noqa: E402
from tests.fake_slack import BOT_USER, FakeSlack, signed_headers  # noqa: E402
from tests.qdrant_server import free_port  # noqa: E402

SECRET = "bench-secret"


async def main() -> dict[str, object]:
    args = platform_args()
    shared = args.shared

    fake = FakeSlack()
    await fake.start()
    llm_server = await fake_llm()
    core, store = real_core(shared, llm_server.url)
    bot = SlackBot(
        conversation=Conversation.in_process(
            "slack",
            core=core,
            store=FeedbackStore(":memory:"),
            options=PlatformOptions(rate_limit_per_minute=0),
            usage=USAGE,
        ),
        token="xoxb-bench",
        signing_secret=SECRET,
        base_url=f"{fake.url}/api/",
    )
    await bot.identify()
    port = free_port()
    runner = await bot.serve_http("127.0.0.1", port)
    url = f"http://127.0.0.1:{port}/slack/events"
    loop = asyncio.get_running_loop()
    session = aiohttp.ClientSession()
    counter = 0

    async def one(text: str) -> tuple[float, float, float]:
        nonlocal counter
        counter += 1
        msg = fake.user_message("C0000001", f"<@{BOT_USER}> {text}")
        body = json.dumps(
            {
                "type": "event_callback",
                "team_id": "T0001",
                "api_app_id": "A0001",
                "event_id": f"Ev{counter}",
                "event_time": int(time.time()),
                "event": dict(msg, type="app_mention"),
            }
        ).encode()
        headers = signed_headers(SECRET, body)
        sent = loop.time()
        async with session.post(url, data=body, headers=headers) as resp:
            assert resp.status == 200
            acked = loop.time()
        reply_ts, sign_at = await fake.wait_for(lambda: fake.first_reply.get(msg["ts"]), within=60)
        first_at = await fake.wait_for(lambda: fake.first_update.get(reply_ts), within=60)
        return acked - sent, sign_at - sent, first_at - sent

    freeze_startup_heap()  # as `aisafety-bot run` does once it has started
    seq = [await one(QUESTIONS[i % len(QUESTIONS)]) for i in range(args.sequential)]
    with LagProbe() as probe:
        burst = await asyncio.gather(*(one(QUESTIONS[i % len(QUESTIONS)]) for i in range(args.burst)))
    await probe.done()

    result: dict[str, object] = {
        "fake_llm_first_token_ms": LLM_FIRST_TOKEN_S * 1000,
        "sequential_mentions": args.sequential,
        "ack_ms": summary_ms([a for a, _, _ in seq]),
        "first_sign_of_work_ms": summary_ms([s for _, s, _ in seq]),
        "first_streamed_text_ms": summary_ms([f for _, _, f in seq]),
        "burst_mentions": args.burst,
        "burst_ack_ms": summary_ms([a for a, _, _ in burst]),
        "burst_first_sign_of_work_ms": summary_ms([s for _, s, _ in burst]),
        "burst_first_streamed_text_ms": summary_ms([f for _, _, f in burst]),
        "burst_event_loop_lag_ms": probe.summary(),
    }
    await session.close()
    await bot.close()
    await runner.cleanup()
    await fake.stop()
    await llm_server.stop()
    store.close()
    return result


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main()), indent=2))
