"""Discord shards (DISCORD_SHARD_COUNT, DISCORD_SHARD_IDS): two bots, one shard each, against the fake
gateway, which sends each server's events only to the shard that has it (Discord's rule), answer every
server's questions exactly once between them."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from adapters.discord.client import USAGE, ShardedAiSafetyDiscord
from bot.config import Settings
from bot.conversation import Conversation
from bot.core import AnswerCore
from bot.errors import ConfigError
from bot.platform import PlatformOptions
from retrieval.embeddings import FastEmbedder
from retrieval.index import VectorStore
from retrieval.search import HybridRetriever
from service.feedback import FeedbackStore
from tests.fake_discord import FakeDiscord
from tests.test_discord import fake_discord, final_texts, mention  # noqa: F401  (a fixture)

# Two more servers, on shard 0 and shard 1 of 2 (a server's shard is (id >> 22) % 2).
GUILD_ON_0, CHANNEL_ON_0 = 4 << 22, 820000000000000001
GUILD_ON_1, CHANNEL_ON_1 = 5 << 22, 820000000000000002


async def test_two_processes_with_one_shard_each_share_the_servers(
    fake_discord: FakeDiscord,  # noqa: F811
    slice_store: VectorStore,
    embedder: FastEmbedder,
    tmp_path: Path,
) -> None:
    fake = fake_discord
    fake.add_guild(GUILD_ON_0, CHANNEL_ON_0)
    fake.add_guild(GUILD_ON_1, CHANNEL_ON_1)
    feedback = FeedbackStore(tmp_path / "f.sqlite3")
    bots: list[ShardedAiSafetyDiscord] = []
    tasks: list[asyncio.Task[Any]] = []
    for shard in (0, 1):
        core = AnswerCore(retriever=HybridRetriever(store=slice_store, embedder=embedder), llm=None)
        conversation = Conversation.in_process(
            "discord",
            core=core,
            store=feedback,
            options=PlatformOptions(edit_interval_s=0.2, rate_limit_per_minute=0),
            usage=USAGE,
        )
        bot = ShardedAiSafetyDiscord(
            conversation=conversation,
            shard_count=2,
            shard_ids=[shard],
            guild_ready_timeout=0.2,
        )
        bots.append(bot)
        tasks.append(asyncio.create_task(bot.start("fake-token")))
    try:
        async with asyncio.timeout(20):
            while not all(b.is_ready() for b in bots):
                for t in tasks:
                    if t.done():
                        t.result()
                await asyncio.sleep(0.02)
        assert fake.identifies == 2
        # Each bot sees only its shard's servers.
        home = fake.shard_of(fake.guild_id, 2)
        assert {g.id for g in bots[0].guilds} == {GUILD_ON_0} | ({fake.guild_id} if home == 0 else set())
        assert {g.id for g in bots[1].guilds} == {GUILD_ON_1} | ({fake.guild_id} if home == 1 else set())

        asked = []
        for channel in (CHANNEL_ON_0, CHANNEL_ON_1, fake.channel_id):
            for question in ("what is a mesa-optimizer?", "what is corrigibility?"):
                asked.append(await fake.user_says(channel, mention(fake, question)))
        await fake.wait_for(
            lambda: all(any("**Sources**" in t for t in final_texts(fake, m["id"])) for m in asked), within=30
        )
        await asyncio.sleep(0.5)  # time for a second answer to show up, if there were one
        threads = fake.calls("POST", "/channels/")
        per_message = [
            len([r for r in threads if r.path.endswith(f"/messages/{m['id']}/threads")]) for m in asked
        ]
        assert per_message == [1] * len(asked)  # every question got one thread, from one bot
    finally:
        for bot in bots:
            await bot.close()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        feedback.close()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"DISCORD_SHARD_IDS": "0"}, "DISCORD_SHARD_COUNT is not"),
        ({"DISCORD_SHARD_COUNT": "2", "DISCORD_SHARD_IDS": "0,2"}, "below DISCORD_SHARD_COUNT (2)"),
        ({"DISCORD_SHARD_COUNT": "2", "DISCORD_SHARD_IDS": "first"}, "not a shard number"),
    ],
)
def test_shard_settings_that_cannot_work_are_one_line(
    settings: dict[str, str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.config import load_settings

    for k, v in settings.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_settings()
    assert Settings(discord_shard_count=4, discord_shard_ids="1, 3").shard_ids == [1, 3]
