"""The runner names no platform: a made-up one registered in its place is started, checked on /readyz,
served, given its older answers' communities, posts the digest of its channel's community, and is
drained and closed on SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from aisafety_bot import platforms as registry
from aisafety_bot.runner import assign_communities, digests_once, follow_owners, run_digests, run_platforms
from aisafety_bot.wiring import open_app
from bot.config import load_settings
from bot.conversation import Conversation, Services
from bot.models import UNASSIGNED, Answer, Source
from bot.platform import PlatformOptions, Style
from bot.ratelimit import MemoryLeases
from service.feedback import FeedbackStore
from tests.conftest import write_jsonl
from tests.fixture_articles import rows as fixture_rows
from tests.loopback import until_ready, wait_until
from tests.qdrant_server import free_port

STYLE = Style(clean=lambda s: s, bold=lambda s: f"<b>{s}</b>", link=lambda label, url: f"{label} <{url}>")
SOURCE = Source(1, "fixture:orthogonality", "Orthogonality", "https://example.org/articles/orthogonality")


class Smoke:
    """A platform with no library behind it: events come through its HTTP app, and it records what
    the runner asks of it."""

    name = "smoke"
    digest_style = STYLE

    def __init__(
        self,
        conversation: Conversation | None = None,
        *,
        found: dict[str, str] | None = None,
        started: bool = True,
    ):
        """`started`: as if the runner had started it already (False: the runner does)."""
        self._conversation = conversation
        self.found = found or {}
        self.asked: list[list[str]] = []
        self.resumed: list[Any] = []
        self.posted: list[tuple[str, str]] = []
        self.started, self.closed = started, False
        self.running = asyncio.Event()
        self.changed = asyncio.Event()
        self.connected = True

    @property
    def conversation(self) -> Conversation:
        assert self._conversation is not None
        return self._conversation

    async def start(self) -> None:
        self.started = True

    async def run(self) -> None:
        self.running.set()
        await asyncio.Event().wait()

    async def ready(self) -> bool:
        return self.started and self.connected and not self.closed

    async def resume(self, claim: Any) -> None:
        self.resumed.append(claim)

    async def post(self, channel: str, text: str, *, community: str | None = None) -> None:
        self.posted.append((channel, text))
        self.changed.set()

    async def communities_of(self, places: Sequence[str]) -> dict[str, str]:
        self.asked.append(list(places))
        self.changed.set()
        if "fail" in self.found:
            raise ConnectionError("the platform is down")
        return {p: self.found[p] for p in places if p in self.found}

    def http_app(self) -> Any | None:
        async def events(request: web.Request) -> web.Response:
            return web.Response(text="smoke events")

        app = web.Application()
        app.router.add_get("/smoke/events", events)
        return app

    async def close(self) -> None:
        self.closed = True

    async def wait_for(self, check: Callable[[], object]) -> None:
        await wait_until(check, self.changed, within=30, recent=lambda: f"asked {self.asked}")


def _store(
    path: Path, *, platform: str = "smoke", community: str = UNASSIGNED, ago_s: float = 0
) -> FeedbackStore:
    store = FeedbackStore(path)
    for place, question in (("smoke:C1", "what is corrigibility?"), ("smoke:C2", "is AI risk real?")):
        answer_id = store.record_answer(
            platform=platform,
            community=community,
            place=place,
            asker="smoke:U1",
            question=question,
            answer=Answer("Yes [1].", (SOURCE,), "llm"),
        )
        if ago_s:
            with store._transaction() as db:
                store._execute(
                    db, "UPDATE answers SET created = ? WHERE id = ?", (time.time() - ago_s, answer_id)
                )
    return store


async def test_older_answers_get_the_community_of_their_place(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    store = _store(tmp_path / "f.sqlite3")
    platform = Smoke(found={"smoke:C1": "smoke:team1"})
    await assign_communities(platform, store)
    assert platform.asked == [["smoke:C1", "smoke:C2"]]
    assert sorted(r.community for r in store.rows(only_voted=False)) == ["smoke:team1", UNASSIGNED]
    assert "smoke: 1 older answers assigned to their communities (1 of 2 places found)" in caplog.text

    failing = Smoke(found={"fail": "x"})
    await assign_communities(failing, store)  # logged, not raised
    assert "smoke: could not find the communities of older answers (ConnectionError" in caplog.text
    store.close()


def _digest_conversation(store: FeedbackStore, settings: Any) -> Conversation:
    """A conversation with the deployment of `settings` (no library behind it: only its settings)."""
    conversation = Conversation.in_process(
        "smoke",
        core=SimpleNamespace(),
        store=store,
        options=PlatformOptions(),
        usage="",  # type: ignore[arg-type]
    )
    conversation.deployment = settings.deployment()
    return conversation


async def test_the_digest_is_its_channels_platforms_in_its_style(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _store(tmp_path / "f.sqlite3", community="smoke:team1", ago_s=86400)
    settings = load_settings(digest_every="daily", public_url="https://bot.example.org")
    settings.digest_channel = "smoke:CMODS"  # a made-up platform's channel (the setting names real ones)
    app = SimpleNamespace(
        settings=settings,
        embedder=SimpleNamespace(embed_dense_only=lambda texts: [[1.0, 0.0] for _ in texts]),
    )
    platform = Smoke(_digest_conversation(store, settings), found={"smoke:CMODS": "smoke:team1"})
    await follow_owners(settings, [platform])  # type: ignore[list-item]
    assert platform.conversation.deployment.digest_community == "smoke:team1"
    digest = asyncio.create_task(run_digests(app, store, MemoryLeases(), platform))  # type: ignore[arg-type]
    try:
        await platform.wait_for(lambda: platform.posted)
    finally:
        digest.cancel()
        await asyncio.gather(digest, return_exceptions=True)
    assert platform.asked[0] == ["smoke:CMODS"]
    channel, text = platform.posted[0]
    assert channel == "CMODS" and text.startswith("<b>AI-safety bot digest: ")
    # The link opens the report of the channel's own community.
    assert "The full report <https://bot.example.org/admin/?community=smoke:team1>" in text

    # A channel the platform cannot find gets no digest: it is not known whose questions it may show.
    lost = Smoke(_digest_conversation(store, settings))
    await follow_owners(settings, [lost])  # type: ignore[list-item]
    assert await digests_once(app, store, MemoryLeases(), lost) == 0  # type: ignore[arg-type]
    assert lost.posted == []
    # Nor does a direct message: members' direct messages are never summed up into anyone's channel.
    direct = Smoke(_digest_conversation(store, settings), found={"smoke:CMODS": "dm"})
    await follow_owners(settings, [direct])  # type: ignore[list-item]
    assert await digests_once(app, store, MemoryLeases(), direct) == 0  # type: ignore[arg-type]
    assert direct.asked == [["smoke:CMODS"]] and direct.posted == []
    store.close()


async def test_the_digest_waits_for_older_answers_to_get_their_community(tmp_path: Path) -> None:
    """At the first start after the upgrade, yesterday's answers are still unassigned: the digest of
    their community is made only once they have been given it."""
    store = _store(tmp_path / "f.sqlite3", ago_s=86400)  # unassigned
    settings = load_settings(digest_every="daily")
    settings.digest_channel = "smoke:CMODS"
    app = SimpleNamespace(
        settings=settings,
        embedder=SimpleNamespace(embed_dense_only=lambda texts: [[1.0, 0.0] for _ in texts]),
    )
    platform = Smoke(
        _digest_conversation(store, settings),
        found={"smoke:CMODS": "smoke:team1", "smoke:C1": "smoke:team1", "smoke:C2": "smoke:team1"},
    )
    assigned = asyncio.Event()

    async def assigning() -> None:
        await assigned.wait()
        await assign_communities(platform, store)

    backfill = asyncio.create_task(assigning())
    await follow_owners(app.settings, [platform])  # type: ignore[list-item]
    digest = asyncio.create_task(
        run_digests(app, store, MemoryLeases(), platform, after=backfill)  # type: ignore[arg-type]
    )
    try:
        await asyncio.sleep(0.3)
        assert platform.posted == []  # waiting for the older answers' communities
        assigned.set()
        await platform.wait_for(lambda: platform.posted)
    finally:
        digest.cancel()
        await asyncio.gather(digest, backfill, return_exceptions=True)
    assert "2 questions" in platform.posted[0][1]
    store.close()


async def test_the_runner_starts_serves_and_stops_a_platform_it_does_not_name(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, model_env: dict[str, str]
) -> None:
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("stop signals are handled on the main thread only")
    made: list[Smoke] = []

    def make_platform(settings: Any, services: Services) -> Smoke:
        conversation = Conversation.for_platform(
            "smoke", services, options=settings.platform_options("smoke"), usage="ask me"
        )
        made.append(Smoke(conversation, found={"smoke:C1": "smoke:team1", "smoke:C2": "dm"}, started=False))
        return made[-1]

    monkeypatch.setattr(registry, "PLATFORMS", {"smoke": "not.imported"})
    monkeypatch.setattr(registry, "enabled", lambda settings: ["smoke"])
    monkeypatch.setattr(
        registry, "make_platform", lambda name, settings, services: make_platform(settings, services)
    )
    port = free_port()
    source = write_jsonl(tmp_path / "s.jsonl", fixture_rows("orthogonality", "mesa-optimizers"))
    for k in (
        "ANTHROPIC_API_KEY",
        "QDRANT_URL",
        "DISCORD_TOKEN",
        "SLACK_BOT_TOKEN",
        "REDIS_URL",
        "DATABASE_URL",
    ):
        monkeypatch.delenv(k, raising=False)
    env = {
        "QDRANT_PATH": str(tmp_path / "store"),
        "SOURCES": str(source),
        "FEEDBACK_DB": str(tmp_path / "f.sqlite3"),
        "HEALTH_PORT": str(port),
        "HEALTH_HOST": "127.0.0.1",
        "SHUTDOWN_GRACE_S": "1",
        **model_env,
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.chdir(tmp_path)
    _store(tmp_path / "f.sqlite3").close()  # answers from before communities were recorded
    with open_app(load_settings()) as app:
        task = asyncio.create_task(run_platforms(app))
        try:
            await until_ready(port, within=60)
            (platform,) = made
            async with aiohttp.ClientSession() as http:
                async with http.get(f"http://127.0.0.1:{port}/readyz") as r:
                    assert await r.json() == {"ready": True, "checks": {"qdrant": True, "smoke": True}}
                async with http.get(f"http://127.0.0.1:{port}/smoke/events") as r:
                    assert await r.text() == "smoke events"  # its HTTP app is the server's
                platform.connected = False
                async with http.get(f"http://127.0.0.1:{port}/readyz") as r:
                    assert r.status == 503 and (await r.json())["checks"]["smoke"] is False
                platform.connected = True
            await asyncio.wait_for(platform.running.wait(), 10)
            await platform.wait_for(lambda: platform.asked)
            # SIGHUP syncs the library now, on the store the bot holds (no second process).
            write_jsonl(source, fixture_rows("orthogonality", "mesa-optimizers", "corrigibility"))
            os.kill(os.getpid(), signal.SIGHUP)

            async def synced() -> str:
                async with aiohttp.ClientSession() as http:
                    async with http.get(f"http://127.0.0.1:{port}/metrics") as r:
                        return await r.text()

            deadline = time.monotonic() + 60
            while 'aisafety_library_syncs_total{outcome="changed"} 1.0' not in (text := await synced()):
                assert time.monotonic() < deadline, text
                await asyncio.sleep(0.2)
            assert "aisafety_library_articles 3.0" in text
            found = await app.retriever().search("What is corrigibility?", k=1)
            assert found[0].article_id == "fixture:corrigibility"
            os.kill(os.getpid(), signal.SIGTERM)  # handled by the runner: drain, then close
            await asyncio.wait_for(task, 30)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    assert platform.conversation.closing and platform.closed
    store = FeedbackStore(tmp_path / "f.sqlite3")
    assert sorted(r.community for r in store.rows(only_voted=False)) == ["dm", "smoke:team1"]
    store.close()
