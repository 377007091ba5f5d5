"""Questions per second and answer time with 1 and 3 bot replicas (Slack HTTP mode) on loopback.

    python benchmarks/bench_replicas.py [--shared ../shared] [--events 120] [--rounds 3]

Each replica is a real `aisafety-bot run` process; they share the machine's Redis (REDIS_URL, a key
prefix of this run) and one Qdrant server (QDRANT_BIN) holding the aisafety.info file. The LLM is the
fake Messages API with a fixed first-token delay (benchmarks/common.py). A burst of signed mentions is
spread round-robin over the replicas; an answer is done when its final message (with the feedback
buttons) is posted. Prints, per replica count, the medians over the rounds of: questions per second
over the burst and the p50 / p95 answer time, in one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import aiohttp  # noqa: E402

from benchmarks.common import LLM_FIRST_TOKEN_S, QUESTIONS, fake_llm, pct  # noqa: E402
from tests.fake_slack import BOT_USER, FakeSlack, event_callback, signed_headers  # noqa: E402
from tests.loopback import until_ready  # noqa: E402
from tests.qdrant_server import QdrantServer, free_port  # noqa: E402

SECRET = "bench-secret"
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _env(**settings: str) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "HF_HUB_OFFLINE")}
    return {**keep, **settings}


async def _burst(slack: FakeSlack, ports: list[int], events: int, run: str) -> tuple[float, list[float]]:
    """Send `events` mentions at once over the replicas; (questions per second, answer times)."""
    channels = [f"C{n:08d}" for n in range(10)]
    messages = [
        slack.user_message(
            channels[i % 10], f"<@{BOT_USER}> {QUESTIONS[i % len(QUESTIONS)]}", user=f"U{i:07d}"
        )
        for i in range(events)
    ]
    sent: dict[str, float] = {}
    async with aiohttp.ClientSession() as http:

        async def send(i: int) -> None:
            body = event_callback(messages[i], f"Ev{run}{i:05d}")
            sent[messages[i]["ts"]] = time.perf_counter()
            port = ports[i % len(ports)]
            async with http.post(
                f"http://127.0.0.1:{port}/slack/events", data=body, headers=signed_headers(SECRET, body)
            ) as r:
                assert r.status == 200, r.status

        started = time.perf_counter()
        await asyncio.gather(*(send(i) for i in range(events)))
        done: dict[str, float] = {}
        deadline = time.perf_counter() + 120
        while len(done) < events and time.perf_counter() < deadline:
            for channel in channels:
                for m in slack.messages.get(channel, []):
                    ts = m.get("thread_ts")
                    if m.get("user") == BOT_USER and ts in sent and ts not in done and m.get("blocks"):
                        if any(b.get("type") == "actions" for b in m["blocks"]):
                            done[ts] = time.perf_counter()
            await asyncio.sleep(0.005)
    assert len(done) == events, f"{len(done)} of {events} answered"
    times = [done[ts] - sent[ts] for ts in done]
    return events / (max(done.values()) - started), times


async def main() -> dict[str, Any]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--events", type=int, default=120)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    binary = os.environ.get("QDRANT_BIN") or str(ROOT / ".cache" / "qdrant" / "qdrant")
    qdrant = QdrantServer(str(Path(binary).resolve()), api_key="bench-key")
    qdrant.start()
    slack, llm = FakeSlack(), await fake_llm()
    await slack.start()
    home = tempfile.mkdtemp(prefix="bench-replicas-")
    prefix = f"bench-{uuid.uuid4().hex[:8]}:"
    common = dict(
        HOME=home,
        SOURCES=str(args.shared / "corpus" / "aisafety.info.jsonl"),
        EMBEDDING_MODEL_PATH=str(args.shared / "models" / "all-MiniLM-L6-v2"),
        QDRANT_URL=qdrant.url,
        QDRANT_API_KEY="bench-key",
        REDIS_URL=REDIS_URL,
        REDIS_KEY_PREFIX=prefix,
        ANTHROPIC_API_KEY="sk-ant-bench",
        ANTHROPIC_BASE_URL=llm.url,
        SLACK_BOT_TOKEN="xoxb-bench",
        SLACK_SIGNING_SECRET=SECRET,
        SLACK_API_URL=f"{slack.url}/api/",
        SLACK_HTTP_HOST="127.0.0.1",
        RATE_LIMIT_PER_MINUTE="0",
        STREAM_EDIT_INTERVAL_S="1.0",
    )
    ingest = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "aisafety_bot",
        "ingest",
        env=_env(**common),
        cwd=home,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert await ingest.wait() == 0, "ingest failed"
    results: dict[str, Any] = {"events": args.events, "llm_first_token_s": LLM_FIRST_TOKEN_S}
    try:
        for count in (1, 3):
            ports = [free_port() for _ in range(count)]
            procs = [
                await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "aisafety_bot",
                    "run",
                    env=_env(**common, SLACK_HTTP_PORT=str(p), FEEDBACK_DB=f"{home}/f{count}-{p}.sqlite3"),
                    cwd=home,
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.DEVNULL,
                )
                for p in ports
            ]
            try:
                for proc, port in zip(procs, ports, strict=True):
                    await until_ready(port, alive=lambda proc=proc: proc.returncode is None)
                rates, p50s, p95s = [], [], []
                for r in range(args.rounds):
                    rate, times = await _burst(
                        slack, ports, args.events, f"{count}x{r}{uuid.uuid4().hex[:6]}"
                    )
                    rates.append(rate)
                    p50s.append(statistics.median(times) * 1000)
                    p95s.append(pct(times, 0.95) * 1000)
                results[f"replicas_{count}"] = {
                    "questions_per_s": round(statistics.median(rates), 1),
                    "answer_p50_ms": round(statistics.median(p50s), 1),
                    "answer_p95_ms": round(statistics.median(p95s), 1),
                }
            finally:
                for proc in procs:
                    proc.terminate()
                for proc in procs:
                    await proc.wait()
        one, three = results["replicas_1"], results["replicas_3"]
        results["three_over_one_questions_per_s"] = round(
            three["questions_per_s"] / one["questions_per_s"], 2
        )
    finally:
        await slack.stop()
        await llm.stop()
        qdrant.stop()
    return results


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main()), indent=2))
