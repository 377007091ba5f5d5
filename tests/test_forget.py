"""Leaving forgets: a community's rows go from every table of the answers database (SQLite and
PostgreSQL) and its keys from Redis, another community's never (`discord:1` is not `discord:12`); on
Discord, a server that removes the bot (GUILD_DELETE over the fake gateway) or removed it while the bot
was away is forgotten, a server in an outage is not, and the other servers are still answered."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from adapters.discord.client import USAGE, ShardedAiSafetyDiscord
from bot.conversation import Conversation
from bot.core import AnswerCore
from bot.models import Answer, Source
from bot.platform import PlatformOptions
from retrieval.embeddings import FastEmbedder
from retrieval.index import VectorStore
from retrieval.search import HybridRetriever
from service.feedback import FeedbackStore, names_community
from service.journal import RedisJournal, SqlJournal
from service.lease import RedisLeases, SqlLeases
from service.redis_state import RedisDedupe, RedisLink, RedisRateLimit, RedisThreads, forget_community
from tests.fake_anthropic import FakeAnthropic, Reply
from tests.fake_discord import FakeDiscord
from tests.loopback import wait_until
from tests.test_discord import StartBot, asked, fake_discord, feedback_of, start_bot  # noqa: F401
from tests.test_feedback_backends import open_store, pg_schema  # noqa: F401  (fixtures)
from tests.test_redis_state import REDIS_URL, prefix  # noqa: F401  (a fixture)

SOURCE = Source(1, "aisafety.info:6568", "What is the orthogonality thesis?", "https://aisafety.info/q/6568")
TABLES = (
    "answers",
    "votes",
    "journal",
    "leases",
    "claims",
    "community_settings",
    "written_topics",
    "slack_installations",
)


def snapshot(store: FeedbackStore) -> dict[str, set[tuple[Any, ...]]]:
    """Every row of every table a community has rows in."""
    with store._transaction() as db:
        return {t: {tuple(r) for r in store._execute(db, f"SELECT * FROM {t}").fetchall()} for t in TABLES}


def counted(store: FeedbackStore) -> dict[str, int]:
    return {t: len(rows) for t, rows in snapshot(store).items()}


async def fill(store: FeedbackStore, community: str, question: str) -> None:
    """One of everything a community leaves, written the way the bot writes it."""
    platform, _, ident = community.partition(":")
    answer_id = store.record_answer(
        platform=platform,
        place=f"{platform}:C1",
        asker=f"{platform}:U1",
        question=question,
        answer=Answer("an answer [1]", (SOURCE,), "llm"),
        community=community,
    )
    store.record_vote(answer_id, voter=f"{platform}:U2", vote="down", community=community)
    journal = SqlJournal(store)
    claim = await journal.claim(f"{community}:{platform}:message:7", {"kind": "message"}, 60)  # a question
    assert claim is not None
    await journal.done(claim)
    assert await journal.claim(f"{community}:{platform}:interaction:8", {"kind": "slash"}, 60) is not None
    leases = SqlLeases(store)
    handoff = await leases.acquire(f"handoff:{community}:{platform}:answer:{answer_id}", 60)
    assert handoff is not None and await leases.done(handoff)
    assert await leases.acquire(f"handoff:{community}:{platform}:T9", 60) is not None  # a thread's, older
    assert await leases.acquire(f"digest:{community}:weekly:2026-W47", 60) is not None
    store.mark_written(community, question)
    with store._transaction() as db:
        run = store._execute
        run(db, "INSERT INTO claims (name, claimed) VALUES (?, ?)", (f"handoff:{community}:T9", time.time()))
        run(
            db,
            "INSERT INTO community_settings (community, settings, updated) VALUES (?, ?, ?)",
            (community, '{"rate_limit_per_minute": 2}', time.time()),
        )
        if platform == "slack":
            run(
                db,
                "INSERT INTO slack_installations (team_id, installation, installed) VALUES (?, ?, ?)",
                (ident, '{"bot_token": "xoxb-secret"}', time.time()),
            )


ONE_OF_EACH = {
    "answers": 1,
    "votes": 1,
    "journal": 2,
    "leases": 3,
    "claims": 1,
    "community_settings": 1,
    "written_topics": 1,
}


@pytest.mark.parametrize(
    ("gone", "kept"),
    [("discord:1", "discord:12"), ("discord:12", "discord:1"), ("slack:T1", "slack:T12")],
)
async def test_forgetting_a_community_deletes_its_rows_from_every_table_and_no_other(
    open_store: Callable[..., FeedbackStore],  # noqa: F811
    gone: str,
    kept: str,
) -> None:
    store = open_store()
    await fill(store, kept, "what is the orthogonality thesis?")
    await fill(store, "dm", "a direct message")
    before = snapshot(store)
    await fill(store, gone, "what is corrigibility?")
    assert all(counted(store)[t] > len(before[t]) for t in ONE_OF_EACH)  # the forgotten one has rows

    counts = await store.run(store.forget_community, gone)

    assert snapshot(store) == before  # exactly the forgotten community's rows went, in every table
    slack = gone.startswith("slack:")
    assert counts == ONE_OF_EACH | {"slack_installations": 1 if slack else 0}
    assert gone not in store.communities() and kept in store.communities()
    assert [r.question for r in store.since(1, community=kept)] == ["what is the orthogonality thesis?"]
    # Nothing is left to forget the second time.
    assert not any((await store.run(store.forget_community, gone)).values())


async def test_a_copy_outside_the_database_that_cannot_be_reached_is_logged_and_the_rest_goes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = FeedbackStore(tmp_path / "f.sqlite3")
    await fill(store, "discord:1", "what is corrigibility?")
    reached: list[str] = []

    async def down(community: str) -> None:
        raise ConnectionError("redis://:secret@10.0.0.9:6379 refused")

    async def up(community: str) -> None:
        reached.append(community)

    store.after_forget(down)
    store.after_forget(up)
    with caplog.at_level(logging.WARNING):
        counts = await store.forget("discord:1")
    assert counts["answers"] == 1 and store.since(1, community="discord:1") == []
    assert reached == ["discord:1"]  # the next copy still goes
    assert "could not forget a community's copies outside the database (ConnectionError)" in caplog.text
    assert "secret" not in caplog.text
    store.close()


def test_a_community_to_forget_is_named_in_full(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "f.sqlite3")
    for bad in ("dm", "unassigned", "discord", "discord:", ""):
        with pytest.raises(ValueError, match="<platform>:<id>"):
            store.forget_community(bad)
    store.close()


def test_keys_belong_to_a_community_by_whole_parts() -> None:
    assert names_community("discord:1:discord:message:5", "discord:1")
    assert names_community("handoff:discord:1:discord:answer:5", "discord:1")
    assert names_community("handoff-community:discord:1", "discord:1")
    assert not names_community("discord:12:discord:message:5", "discord:1")
    assert not names_community("handoff:discord:12:discord:answer:5", "discord:1")
    # An older hand-off's thread id is no server: thread 123 in server 5 is not server 123's.
    assert not names_community("handoff:discord:5:discord:123", "discord:123")
    assert not names_community("weekly:2026-W47", "discord:1")


async def test_redis_keys_of_a_community_go_and_another_communitys_stay(
    prefix: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    link = RedisLink(REDIS_URL, prefix=prefix)
    store = FeedbackStore(tmp_path / "f.sqlite3")
    try:

        async def use(community: str) -> None:
            """Every port that keys by community, as the conversation keys it."""
            assert await RedisRateLimit(link, 5).allow(f"{community}:discord:U1")
            assert await RedisRateLimit(link, 5, kind="handoff-community").allow(community)
            assert await RedisDedupe(link).first(f"{community}:message:7")
            await RedisThreads(link).remember(f"{community}:C1", "T1", True)
            journal = RedisJournal(link, SqlJournal(store))
            assert await journal.claim(f"{community}:discord:message:7", {}, 60) is not None
            lease = await RedisLeases(link).acquire(f"handoff:{community}:discord:answer:3", 60)
            assert lease is not None

        async def keys() -> set[str]:
            return {k async for k in link.client.scan_iter(match=prefix + "*")}

        async def expiring() -> set[str]:
            return set(await link.client.zrange(link.key("journal-expiring"), 0, -1))

        await use("discord:12")
        kept, kept_expiring = await keys(), await expiring()
        await use("discord:1")
        assert len(await keys()) == 2 * len(kept) - 1  # one journal-expiring set for both

        assert await forget_community(link, "discord:1") == len(kept) - 1
        assert await keys() == kept and await expiring() == kept_expiring

        # Forgetting through the answers database reaches Redis too (the runner registers the hook).
        await use("discord:1")
        store.after_forget(lambda community: forget_community(link, community))
        await store.forget("discord:1")  # done when it returns: the process may stop right after
        assert await keys() == kept
        assert await expiring() == kept_expiring
    finally:
        store.close()
        await link.aclose()


# -- Discord ------------------------------------------------------------------------------------------
GUILD_B, CHANNEL_B = 830000000000000001, 830000000000000002


def stored(store: FeedbackStore, community: str) -> int:
    """The rows that name `community`: in a column of its own, or as their key's or name's part."""
    return sum(
        community in map(str, r) or names_community(str(r[0]), community)
        for rows in snapshot(store).values()
        for r in rows
    )


async def until(check: Callable[[], bool], within: float = 10.0) -> None:
    await wait_until(check, asyncio.Event(), within=within, recent=lambda: "")


async def test_a_server_that_removes_the_bot_is_forgotten_and_the_other_is_still_answered(
    start_bot: StartBot,  # noqa: F811
    fake_discord: FakeDiscord,  # noqa: F811
    llm_server: FakeAnthropic,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake = fake_discord
    llm_server.script.append(Reply(text="Intelligence and goals vary independently [1]."))
    fake.add_guild(GUILD_B, CHANNEL_B)
    bot = await start_bot()
    store = feedback_of(bot)
    a, b = f"discord:{fake.guild_id}", f"discord:{GUILD_B}"
    await fill(store, a, "server A asks about corrigibility")
    await fill(store, b, "server B asks about inner alignment")
    assert stored(store, a) > 0 and stored(store, b) > 0

    # An outage first: GUILD_DELETE with `unavailable` is no removal.
    await fake.dispatch("GUILD_DELETE", {"id": str(GUILD_B), "unavailable": True})
    caplog.set_level(logging.INFO, logger="adapters.discord.client")
    await fake.dispatch("GUILD_DELETE", {"id": str(fake.guild_id)})
    await until(lambda: stored(store, a) == 0)
    assert stored(store, b) > 0 and b in store.communities()
    lines = [r.getMessage() for r in caplog.records if "removed the bot" in r.getMessage()]
    assert lines == [
        "Discord: a server removed the bot; deleted 1 votes, 1 answers, 2 journal, 3 leases, "
        "1 claims, 1 community_settings, 1 written_topics"
    ]
    assert str(fake.guild_id) not in lines[0]

    # Server B (back from its outage) is answered as before.
    await fake.dispatch("GUILD_CREATE", fake.guild(GUILD_B))
    await asked(fake, "what is the orthogonality thesis?", CHANNEL_B)
    await until(lambda: len(store.since(1, community=b)) == 2)


@dataclass
class OutageDiscord(FakeDiscord):
    """The fake gateway with some servers in an outage: READY lists them, GUILD_CREATE says unavailable."""

    outage: set[int] = field(default_factory=set)

    def guild(self, guild_id: int | None = None) -> dict[str, Any]:
        if guild_id in self.outage:
            return {"id": str(guild_id), "unavailable": True}
        return super().guild(guild_id)


@pytest_asyncio.fixture
async def outage_discord(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[OutageDiscord]:
    import discord

    fake = OutageDiscord()
    await fake.start()
    monkeypatch.setattr(discord.http.Route, "BASE", fake.api_base)
    monkeypatch.setattr(discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY", fake.gateway_url)
    yield fake
    await fake.stop()


# Servers on shard 0 and shard 1 of 2 (a server's shard is (id >> 22) % 2).
LEFT_ON_0, LEFT_ON_1, DOWN_ON_0, HERE_ON_0 = 6 << 22, 7 << 22, 8 << 22, 10 << 22


async def test_servers_that_removed_the_bot_while_it_was_away_are_forgotten_at_start_up(
    outage_discord: OutageDiscord,
    slice_store: VectorStore,
    embedder: FastEmbedder,
    tmp_path: Path,
) -> None:
    """This process runs shard 0 of 2: of the servers it stored, those of its shard that READY no longer
    lists are forgotten; one in an outage (listed, unavailable) is not, nor another shard's, nor Slack's."""
    fake = outage_discord
    fake.add_guild(HERE_ON_0, 830000000000000011)
    fake.add_guild(DOWN_ON_0, 830000000000000012)
    fake.outage = {DOWN_ON_0}
    store = FeedbackStore(tmp_path / "f.sqlite3")
    for guild in (LEFT_ON_0, LEFT_ON_1, DOWN_ON_0, HERE_ON_0):
        await fill(store, f"discord:{guild}", f"a question in {guild}")
    await fill(store, "slack:T1", "a workspace's question")
    conversation = Conversation.in_process(
        "discord",
        core=AnswerCore(retriever=HybridRetriever(store=slice_store, embedder=embedder), llm=None),
        store=store,
        options=PlatformOptions(edit_interval_s=0.2, rate_limit_per_minute=0),
        usage=USAGE,
    )
    bot = ShardedAiSafetyDiscord(
        conversation=conversation, shard_count=2, shard_ids=[0], guild_ready_timeout=0.2
    )
    task = asyncio.create_task(bot.start("fake-token"))
    try:
        await until(lambda: f"discord:{LEFT_ON_0}" not in store.communities(), within=20)
        assert bot.get_guild(DOWN_ON_0) is not None and bot.get_guild(DOWN_ON_0).unavailable  # type: ignore[union-attr]
        assert set(store.communities()) == {
            f"discord:{LEFT_ON_1}",  # another process's shard
            f"discord:{DOWN_ON_0}",  # in an outage: still the bot's
            f"discord:{HERE_ON_0}",
            "slack:T1",
            # the shard's own default server had nothing stored
        }
        assert stored(store, f"discord:{LEFT_ON_0}") == 0
    finally:
        await bot.close()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        store.close()
