"""Slack behind a load balancer: three `aisafety-bot run` replicas in HTTP mode sharing Redis,
PostgreSQL and a Qdrant server. 300 signed events, a fifth of them re-delivered as retries to another
replica, get exactly 300 answers; one replica stopped with SIGTERM midway finishes its answers in flight
and the events re-sent to the others are answered once; a vote clicked on any replica counts once."""

from __future__ import annotations

import asyncio
import json
import random
import signal
import sys
import time
import urllib.parse
import uuid
from pathlib import Path
from typing import Any

import aiohttp

from tests.conftest import clean_env, cli, write_jsonl
from tests.fake_slack import BOT_USER, FakeSlack, event_callback, signed_headers
from tests.fixture_articles import rows as fixture_rows
from tests.loopback import until_ready
from tests.qdrant_server import QdrantServer, free_port
from tests.test_feedback_backends import pg_schema  # noqa: F401  (a fixture)
from tests.test_redis_state import REDIS_URL, _reachable, prefix  # noqa: F401  (a fixture)

SECRET = "test-signing-secret"
CHANNEL = "C0000001"
EVENTS = int(__import__("os").environ.get("SCALE_EVENTS", "300"))
QUESTIONS = [
    "what is a mesa-optimizer?",
    "why can't we just turn it off?",
    "what is corrigibility?",
    "what are quantilizers?",
    "what is the orthogonality thesis?",
]


async def _deliver(
    http: aiohttp.ClientSession, ports: list[int], first: int, body: bytes, retry: int = 0
) -> int:
    """What a load balancer does: send to one replica, and to the next one if it refuses the connection
    or answers 503 (stopping)."""
    headers = signed_headers(SECRET, body, content_type="application/json")
    if retry:
        headers = {**headers, "X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"}
    for i in range(len(ports)):
        port = ports[(first + i) % len(ports)]
        try:
            async with http.post(f"http://127.0.0.1:{port}/slack/events", data=body, headers=headers) as r:
                if r.status == 503:  # that replica is stopping: the next one takes it
                    continue
                return port if r.status == 200 else -r.status
        except aiohttp.ClientConnectionError:
            continue
    raise AssertionError("no replica took the event")


async def _click(http: aiohttp.ClientSession, port: int, message: dict[str, Any], user: str) -> int:
    button = next(e for b in message["blocks"] if b.get("type") == "actions" for e in b["elements"])
    payload = {
        "type": "block_actions",
        "user": {"id": user},
        "api_app_id": "A0001",
        "team": {"id": "T0001"},
        "channel": {"id": CHANNEL},
        "container": {"type": "message", "message_ts": message["ts"], "channel_id": CHANNEL},
        "trigger_id": "t",
        "actions": [
            {
                "action_id": button["action_id"],
                "block_id": "b",
                "value": button["value"],
                "type": "button",
                "action_ts": str(time.time()),
            }
        ],
    }
    body = urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()
    headers = signed_headers(SECRET, body, content_type="application/x-www-form-urlencoded")
    async with http.post(f"http://127.0.0.1:{port}/slack/events", data=body, headers=headers) as r:
        return r.status


async def test_three_replicas_behind_a_load_balancer(
    tmp_path: Path,
    model_env: dict[str, str],
    qdrant_server: QdrantServer,
    pg_schema: str,  # noqa: F811
    prefix: str,  # noqa: F811
) -> None:
    if not _reachable(REDIS_URL):
        from tests.conftest import need

        need("Redis at 127.0.0.1:6379", "start it (redis-server --port 6379) or set TEST_REDIS_URL")
    slack = FakeSlack()
    await slack.start()
    source = write_jsonl(tmp_path / "articles.jsonl", fixture_rows())
    common = dict(
        HOME=str(tmp_path),
        SOURCES=str(source),
        QDRANT_URL=qdrant_server.url,
        QDRANT_API_KEY=qdrant_server.api_key or "",
        QDRANT_COLLECTION=f"scale_{uuid.uuid4().hex[:8]}",
        REDIS_URL=REDIS_URL,
        REDIS_KEY_PREFIX=prefix,
        DATABASE_URL=pg_schema,
        SLACK_BOT_TOKEN="xoxb-test",
        SLACK_SIGNING_SECRET=SECRET,
        SLACK_API_URL=f"{slack.url}/api/",
        SLACK_HTTP_HOST="127.0.0.1",
        RATE_LIMIT_PER_MINUTE="0",
        SHUTDOWN_GRACE_S="20",
        **model_env,
    )
    ingested = cli(clean_env(**common), "ingest")
    assert ingested.returncode == 0, ingested.stderr
    ports = [free_port() for _ in range(3)]
    replicas = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "aisafety_bot",
            "run",
            env=clean_env(**common, SLACK_HTTP_PORT=str(port), HEALTH_PORT=str(free_port())),
            cwd=tmp_path,
            stderr=asyncio.subprocess.PIPE,
        )
        for port in ports
    ]
    try:
        for proc, port in zip(replicas, ports, strict=True):
            try:
                await until_ready(port, alive=lambda proc=proc: proc.returncode is None)
            except AssertionError:
                assert proc.stderr is not None
                raise AssertionError((await proc.stderr.read()).decode()[-2000:]) from None

        rng = random.Random(7)
        run = uuid.uuid4().hex[:8]  # event ids of this run only: the machine's Redis outlives it
        messages = [
            slack.user_message(CHANNEL, f"<@{BOT_USER}> {QUESTIONS[i % len(QUESTIONS)]}", user=f"U{i:07d}")
            for i in range(EVENTS)
        ]
        retried = set(rng.sample(range(EVENTS), EVENTS // 5))
        taken_by: dict[int, int] = {}
        async with aiohttp.ClientSession() as http:
            for i, msg in enumerate(messages):
                if i == EVENTS // 2:
                    replicas[2].send_signal(signal.SIGTERM)  # a rolling restart takes replica 3 out
                body = event_callback(msg, f"Ev{run}{i:05d}")
                taken_by[i] = await _deliver(http, ports, i % 3, body)
                if i in retried:  # Slack re-sends it; the load balancer picks another replica
                    await _deliver(http, ports, i % 3 + 1, body, retry=1)

            def finals() -> list[dict[str, Any]]:
                return [
                    m
                    for m in slack.messages.get(CHANNEL, [])
                    if m.get("user") == BOT_USER and m.get("blocks")
                ]

            try:
                await slack.wait_for(
                    lambda: len({m.get("thread_ts") for m in finals()}) >= EVENTS, within=120
                )
            except TimeoutError:
                bots = [m for m in slack.messages.get(CHANNEL, []) if m.get("user") == BOT_USER]
                answered = {m.get("thread_ts") for m in bots}
                missing = [
                    (i, m["ts"], taken_by[i], i in retried)
                    for i, m in enumerate(messages)
                    if m["ts"] not in answered
                ]
                raise AssertionError(f"{len(bots)} bot messages; unanswered: {missing[:10]}") from None
            await asyncio.sleep(1.5)  # time for a duplicate to show up, if there were one
            answered = [m.get("thread_ts") for m in finals()]
            assert len(answered) == EVENTS and set(answered) == {m["ts"] for m in messages}
            assert all(p > 0 for p in taken_by.values())
            assert {taken_by[i] for i in range(EVENTS // 2 + 10, EVENTS)} <= set(ports[:2])  # 3 was gone

            # Replica 3 finished what it had and exited cleanly.
            assert await asyncio.wait_for(replicas[2].wait(), 30) == 0

            # A member clicks 👍 on one answer through both remaining replicas: one vote.
            message = finals()[0]
            assert await _click(http, ports[0], message, "UVOTER01") == 200
            assert await _click(http, ports[1], message, "UVOTER01") == 200
            await asyncio.sleep(0.5)
        shown = cli(clean_env(**common), "feedback", "--json")
        assert shown.returncode == 0, shown.stderr
        votes = [(r["up"], r["down"]) for r in json.loads(shown.stdout)]
        assert votes == [(1, 0)]
    finally:
        for proc in replicas:
            if proc.returncode is None:
                proc.kill()
            await proc.wait()
        await slack.stop()
