"""Discord responsiveness, seen from the fake gateway: how soon a mention shows a sign of work and
its first streamed text, against the fake LLM's own first-token time, and event-loop lag while 50
mentions arrive at once. Real discord.py, the real answer core, embeddings and embedded Qdrant.

    python benchmarks/bench_discord.py [--shared ../shared]
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import discord  # noqa: E402

from adapters.discord.client import USAGE, AiSafetyDiscord  # noqa: E402
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
from tests.fake_discord import FakeDiscord  # noqa: E402


async def main() -> dict[str, object]:
    args = platform_args()
    shared = args.shared

    fake = FakeDiscord()
    await fake.start()
    discord.http.Route.BASE = fake.api_base
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = fake.gateway_url
    llm_server = await fake_llm()

    core, store = real_core(shared, llm_server.url)
    conversation = Conversation.in_process(
        "discord",
        core=core,
        store=FeedbackStore(":memory:"),
        options=PlatformOptions(rate_limit_per_minute=0),
        usage=USAGE,
    )
    client = AiSafetyDiscord(conversation=conversation, guild_ready_timeout=0.2)
    runner = asyncio.create_task(client.start("bench-token"))
    while not client.is_ready():
        await asyncio.sleep(0.02)
    loop = asyncio.get_running_loop()

    async def one(text: str) -> tuple[float, float]:
        sent = loop.time()
        msg = await fake.user_says(fake.channel_id, f"<@{fake.bot_id}> {text}")
        thread = msg["id"]
        sign = await fake.wait_for(
            lambda: fake.calls("POST", f"/channels/{fake.channel_id}/messages/{thread}/threads"), within=60
        )
        first = await fake.wait_for(
            lambda: [
                r for r in fake.calls("POST", f"/channels/{thread}/messages") if r.path.endswith("/messages")
            ],
            within=60,
        )
        return sign[0].at - sent, first[0].at - sent

    freeze_startup_heap()  # as `aisafety-bot run` does once it has started
    seq = [await one(QUESTIONS[i % len(QUESTIONS)]) for i in range(args.sequential)]

    # Burst: 50 mentions at once while a probe measures how late the event loop wakes it.
    with LagProbe() as probe:
        started = time.perf_counter()
        burst = await asyncio.gather(*(one(QUESTIONS[i % len(QUESTIONS)]) for i in range(args.burst)))
        burst_s = time.perf_counter() - started
    await probe.done()

    result: dict[str, object] = {
        "fake_llm_first_token_ms": LLM_FIRST_TOKEN_S * 1000,
        "sequential_mentions": args.sequential,
        "first_sign_of_work_ms": summary_ms([s for s, _ in seq]),
        "first_streamed_text_ms": summary_ms([t for _, t in seq]),
        "first_text_minus_llm_first_token_ms": round(
            statistics.median(t for _, t in seq) * 1000 - LLM_FIRST_TOKEN_S * 1000, 1
        ),
        "burst_mentions": args.burst,
        "burst_first_sign_of_work_ms": summary_ms([s for s, _ in burst]),
        "burst_event_loop_lag_ms": probe.summary(),
        "burst_wall_s": round(burst_s, 2),
    }
    await client.close()
    runner.cancel()
    await fake.stop()
    await llm_server.stop()
    store.close()
    return result


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main()), indent=2))
