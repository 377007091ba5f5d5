"""Isolation between communities, tested rather than assumed (issue 25, point 5).

Two Discord servers (the real discord.py over the fake gateway) and two Slack workspaces installed by
OAuth (the real slack-bolt over signed HTTP, the fake Web API), served by one process, by two replicas on
one SQLite answers database, and by two replicas on PostgreSQL sharing Redis (rate limits, and the keys
leaving forgets). Two replicas: Discord one shard each (each server's events reach one replica only);
Slack every workspace's requests to either replica, as a load balancer sends them. No LLM: answers come
from the articles.

Every community asks questions carrying its own marker, votes and presses "Ask a human"; then, for each
community: its scoped report page, every CSV and the JSON (the link from the real `/aisafety-report`)
hold its own marker and nothing of the three others; its digest (the runner's `digests_once`) goes to its
own channel only, with its own questions; every message the fakes recorded in a community carries nothing
of another (no marker, no other role or group, no other community's id). A scoped link edited to name
another community, or expired, gets 401. A rate limit set with `/aisafety-settings` in one server and one
workspace applies there, on the other replica within seconds, and nowhere else. Removing the bot from one
server (GUILD_DELETE) and uninstalling it from one workspace (app_uninstalled) deletes exactly their rows in
every table (and their Redis keys); the others are still answered, the uninstalled workspace no more."""

from __future__ import annotations

import asyncio
import functools
import json
import re
import time
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from adapters.discord.client import USAGE as DISCORD_USAGE
from adapters.discord.client import ShardedAiSafetyDiscord
from adapters.discord.platform import DiscordPlatform
from adapters.slack.app import USAGE as SLACK_USAGE
from adapters.slack.app import SlackBot
from adapters.slack.oauth import REDIRECT_PATH, OAuth
from adapters.slack.platform import SlackPlatform
from aisafety_bot.runner import digests_once
from bot.community import Deployment
from bot.config import load_settings
from bot.conversation import Conversation
from bot.core import AnswerCore
from bot.platform import HANDOFF_ASKED, SLOW_DOWN, PlatformOptions, handoff_message
from retrieval.embeddings import FastEmbedder
from retrieval.index import VectorStore
from retrieval.search import HybridRetriever
from service.admin import LINK_EXPIRED, LINK_INVALID, add_admin_routes
from service.community_settings import SqlSettings
from service.feedback import FeedbackStore, names_community
from service.health import serve
from service.journal import SqlJournal
from service.lease import SqlLeases
from service.metrics import Metrics
from service.redis_state import RedisLink, RedisRateLimit, forget_community
from service.report import TABLES as REPORT_TABLES
from service.report import stored_report
from service.report_links import link_key, sign
from service.slack_installations import SqlInstallations
from tests.conftest import need
from tests.fake_discord import FakeDiscord
from tests.fake_slack import CLIENT_ID, CLIENT_SECRET, FakeSlack, Grant, signed_headers
from tests.loopback import serve_loopback
from tests.qdrant_server import free_port
from tests.test_admin import toy_embed
from tests.test_discord import fake_discord, final_texts, mention  # noqa: F401  (a fixture)
from tests.test_feedback_backends import pg_schema  # noqa: F401  (a fixture)
from tests.test_forget import TABLES, snapshot
from tests.test_redis_state import REDIS_URL, _reachable
from tests.test_scoped_report import renamed
from tests.test_settings_commands import (
    ADMIN_TOKEN,
    SlackHarness,
    channel_resolved,
    interaction,
    links,
    option,
    role_resolved,
    run,
    said,
    scope_of,
)
from tests.test_slack_oauth import SECRET, Installed
from tests.test_slack_oauth import A as GRANT_1
from tests.test_slack_oauth import B as GRANT_2

KEY = link_key(ADMIN_TOKEN)
ROLE_1, ROLE_2 = 700000000000000041, 700000000000000042  # each server's moderators' role
GROUP_1, GROUP_2 = "S0T1MODS1", "S0T2MODS2"  # each workspace's moderators' user group
# The second server: on the other shard of 2 than the fake's own server (chosen in `guild_2`).
CHANNEL_2, DIGEST_2 = 830000000000000201, 830000000000000202
SLACK = {  # team -> (where members ask, the digest channel)
    GRANT_1.team_id: ("CT1ASK001", "CT1MODS01"),
    GRANT_2.team_id: ("CT2ASK002", "CT2MODS02"),
}


def guild_2(fake: FakeDiscord) -> int:
    """A server id whose shard (of 2) is not the fake's own server's."""
    home = fake.shard_of(fake.guild_id, 2)
    return next(g << 22 for g in range(6, 10) if fake.shard_of(g << 22, 2) != home)


@dataclass
class Community:
    name: str  # `discord:<id>` / `slack:<team>`
    marker: str  # in every question its members ask
    handoff: str  # its moderators' role or group id
    ask: str  # the channel members ask in
    digest: str  # its digest channel
    guild: int = 0  # Discord: the server's id
    grant: Grant | None = None  # Slack: the workspace's install


@dataclass
class Replica:
    store: FeedbackStore
    settings: SqlSettings
    discord: ShardedAiSafetyDiscord
    slack: SlackBot
    installed: Installed
    task: asyncio.Task[None]


@dataclass
class World:
    fake: FakeDiscord
    slack_fake: FakeSlack
    replicas: list[Replica]
    communities: list[Community]
    session: aiohttp.ClientSession
    commands: SlackHarness  # admins' slash commands, to the replica chosen for each
    redis: RedisLink | None = None  # shared rate limits and the forget hook (PostgreSQL mode)
    interactions: dict[str, int] = field(default_factory=dict)  # interaction id -> its server

    def of(self, name: str) -> Community:
        return next(c for c in self.communities if c.name == name)

    def foreign(self, c: Community) -> list[str]:
        """What must never appear in anything of `c`: the others' markers, roles or groups and names."""
        out: list[str] = []
        for other in self.communities:
            if other is not c:
                out += [other.marker, other.handoff, other.name, other.name.partition(":")[2]]
        return out

    def rows_of(self, store: FeedbackStore) -> dict[str, dict[str, int]]:
        """How many rows of each table belong to each community; every row must belong to exactly one."""
        counts = {c.name: dict.fromkeys(TABLES, 0) for c in self.communities}
        for table, rows in snapshot(store).items():
            for row in rows:
                owners = [c.name for c in self.communities if owns(c, table, row)]
                assert len(owners) == 1, (table, row, owners)
                counts[owners[0]][table] += 1
        return counts

    async def discord_interaction(self, payload: dict[str, Any]) -> dict[str, Any]:
        self.interactions[payload["id"]] = int(payload.get("guild_id") or 0)
        return await run(self.fake, payload)

    async def settle(self) -> None:
        """Every answer written to the database."""
        for r in self.replicas:
            for conversation in (r.discord.conversation, r.slack.conversation):
                if conversation.writer is not None:
                    assert await conversation.writer.flush(10) == 0


def owns(c: Community, table: str, row: tuple[Any, ...]) -> bool:
    if table == "slack_installations":
        return c.grant is not None and c.grant.team_id in row
    return c.name in map(str, row) or names_community(str(row[0]), c.name)


def discord_guild_of(world: World, path: str) -> int | None:
    """The server a REST call of the bot was made in (None: a call of no server's)."""
    parts = path.strip("/").split("/")
    if parts[0] == "channels":
        channel = world.fake.channels.get(int(parts[1]), {})
        return int(channel["guild_id"]) if channel.get("guild_id") else None
    if parts[0] == "interactions":
        return world.interactions.get(parts[1])
    if parts[0] == "webhooks" and len(parts) > 2:
        return world.interactions.get(parts[2].removeprefix("token-"))
    return None


async def within(seconds: float, check: Callable[[], Awaitable[bool]]) -> float:
    """Wait for `check`; how long it took."""
    started = time.monotonic()
    while not await check():
        assert time.monotonic() - started < seconds, "not within the time allowed"
        await asyncio.sleep(0.05)
    return time.monotonic() - started


def replica_conversation(
    platform: str,
    usage: str,
    store: FeedbackStore,
    settings: SqlSettings,
    retriever: HybridRetriever,
    redis: RedisLink | None,
) -> Conversation:
    """A platform's conversation in one replica: its connection to the shared database, the settings
    kept there (followed every 0.5 s), leases and journal there too; answers from the articles (no LLM)."""
    made = Conversation.in_process(
        platform,
        core=AnswerCore(retriever=retriever, llm=None),
        store=store,
        options=PlatformOptions(edit_interval_s=0.2, rate_limit_per_minute=5, report_link=links()),
        usage=usage,
        leases=SqlLeases(store),
        journal=SqlJournal(store),
        limiter=RedisRateLimit(redis, 5) if redis is not None else None,  # else one per replica
    )
    made.settings, made.deployment = settings, Deployment(rate_limit_per_minute=5)
    return made


@pytest.fixture(
    params=[(1, "sqlite"), (2, "sqlite"), (2, "postgres")],
    ids=["one-process", "two-replicas", "two-replicas-postgres-redis"],
)
async def world(
    request: pytest.FixtureRequest,
    fake_discord: FakeDiscord,  # noqa: F811
    fake_slack: FakeSlack,
    slice_store: VectorStore,
    embedder: FastEmbedder,
    tmp_path: Path,
) -> AsyncIterator[World]:
    fake = fake_discord
    g2 = guild_2(fake)
    fake.add_guild(g2, CHANNEL_2)
    fake.channels[DIGEST_2] = fake.text_channel(DIGEST_2, "mods-2", g2)
    fake_slack.admins.add("UADMIN01")
    n, backend = request.param
    database: dict[str, Any] = {"path": tmp_path / "answers.sqlite3"}
    redis = None
    if backend == "postgres":
        database = {"database_url": request.getfixturevalue("pg_schema")}
        if not _reachable(REDIS_URL):
            need(f"Redis at {REDIS_URL}", "start it (redis-server --port 6379) or set TEST_REDIS_URL")
        redis = RedisLink(REDIS_URL, prefix=f"aisafety-test-{uuid.uuid4().hex[:8]}:")
    session = aiohttp.ClientSession()
    replicas: list[Replica] = []
    runners: list[web.AppRunner] = []
    for shard in range(n):
        store = FeedbackStore(**database)  # one database, a connection of each replica's own
        if redis is not None:  # as the runner registers it: leaving forgets the Redis keys too
            store.after_forget(functools.partial(forget_community, redis))
        settings = SqlSettings(store, refresh_s=0.5)

        retriever = HybridRetriever(store=slice_store, embedder=embedder)

        discord_bot = ShardedAiSafetyDiscord(
            conversation=replica_conversation("discord", DISCORD_USAGE, store, settings, retriever, redis),
            shard_count=n,
            shard_ids=[shard],
            guild_ready_timeout=0.2,
        )
        task = asyncio.create_task(discord_bot.start("fake-token"))
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        rows = SqlInstallations(store)
        slack_bot = SlackBot(
            conversation=replica_conversation("slack", SLACK_USAGE, store, settings, retriever, redis),
            signing_secret=SECRET,
            base_url=f"{fake_slack.url}/api/",
            oauth=OAuth(
                client_id=CLIENT_ID,
                client_secret=CLIENT_SECRET,
                redirect_uri=f"{base}{REDIRECT_PATH}",
                rows=rows,
                authorization_url=f"{fake_slack.url}/oauth/v2/authorize",
            ),
        )
        await slack_bot.identify()
        metrics = Metrics()
        runners.append(await serve(slack_bot.web_app(), "127.0.0.1", port, metrics=metrics))
        installed = Installed(fake_slack, slack_bot, store, rows, base, session, metrics)
        installed._events = 1000 * shard  # event ids of their own per replica
        replicas.append(Replica(store, settings, discord_bot, slack_bot, installed, task))
    async with asyncio.timeout(20):
        while not all(r.discord.is_ready() for r in replicas):
            for r in replicas:
                if r.task.done():
                    r.task.result()
            await asyncio.sleep(0.02)
    # Each workspace installs the app through a different replica.
    await replicas[0].installed.install(GRANT_1)
    await replicas[-1].installed.install(GRANT_2)
    communities = [
        Community(
            f"discord:{fake.guild_id}",
            "markerg1",
            str(ROLE_1),
            str(fake.channel_id),
            str(fake.other_channel_id),
            guild=fake.guild_id,
        ),
        Community(f"discord:{g2}", "markerg2", str(ROLE_2), str(CHANNEL_2), str(DIGEST_2), guild=g2),
        Community(f"slack:{GRANT_1.team_id}", "markert1", GROUP_1, *SLACK[GRANT_1.team_id], grant=GRANT_1),
        Community(f"slack:{GRANT_2.team_id}", "markert2", GROUP_2, *SLACK[GRANT_2.team_id], grant=GRANT_2),
    ]
    world = World(fake, fake_slack, replicas, communities, session, SlackHarness(fake_slack, session), redis)
    yield world
    for r in replicas:
        await r.discord.close()
        r.task.cancel()
        await r.slack.close()
    await asyncio.gather(*(r.task for r in replicas), return_exceptions=True)
    for runner in runners:
        await runner.cleanup()
    for r in replicas:
        await r.settings.aclose()
        r.store.close()
    if redis is not None:  # CI reuses the server: this run's keys go
        keys = [k async for k in redis.client.scan_iter(match=redis.prefix + "*")]
        if keys:
            await redis.client.delete(*keys)
        await redis.aclose()
    await session.close()


# -- what members and admins do -------------------------------------------------------------------
async def slack_command(world: World, c: Community, replica: Replica, name: str, text: str) -> str:
    """An admin's slash command in `c`'s workspace, delivered to `replica`; the private reply, which
    carries nothing of another community."""
    assert c.grant is not None
    world.commands.bots[c.grant.team_id] = (replica.slack, f"{replica.installed.base}/slack/events")
    shown = await world.commands.command(name, text, team=c.grant.team_id)
    assert not any(f in shown for f in world.foreign(c)), shown
    return shown


async def discord_settings(world: World, c: Community, sub: str, options: list[Any], **kw: Any) -> str:
    payload = interaction(
        world.fake, "aisafety-settings", sub, options, guild=c.guild, channel=int(c.ask), **kw
    )
    shown = said(await world.discord_interaction(payload))
    assert shown.startswith("Saved."), shown
    return shown


async def ask_discord(world: World, c: Community, text: str, user: int = 111) -> dict[str, Any]:
    """A member mentions the bot in `c`'s channel; their message."""
    author = world.fake.user(user, f"member{user}")
    return await world.fake.user_says(int(c.ask), mention(world.fake, text), author=author)


async def answered_discord(world: World, msg: dict[str, Any]) -> dict[str, Any]:
    """The bot's answer (with its buttons) in the thread opened on `msg`."""
    fake = world.fake
    await fake.wait_for(lambda: any("**Sources**" in t for t in final_texts(fake, msg["id"])))
    return next(m for m in fake.messages[int(msg["id"])] if m["components"])


def button_press(
    world: World, c: Community, answer: dict[str, Any], custom_id: str, user: int
) -> dict[str, Any]:
    thread = int(answer["channel_id"])
    payload = interaction(world.fake, "x", guild=c.guild, channel=thread, admin=False)
    payload |= {"type": 3, "data": {"custom_id": custom_id, "component_type": 2}, "message": answer}
    payload["member"]["user"] = world.fake.user(user, f"member{user}")
    return payload


async def press_discord(world: World, c: Community, answer: dict[str, Any], custom_id: str, user: int) -> str:
    """A member clicks a button of the answer; what the bot told them (privately)."""
    payload = button_press(world, c, answer, custom_id, user)
    world.interactions[payload["id"]] = c.guild
    await world.fake.dispatch("INTERACTION_CREATE", payload)
    token = payload["token"]
    fake = world.fake

    def told() -> list[str]:
        followups = [r.body.get("content") for r in fake.calls("POST", "/webhooks/") if token in r.path]
        replies = [
            ((r.body or {}).get("data") or {}).get("content")
            for r in fake.calls("POST", f"/interactions/{payload['id']}/")
        ]
        return [str(t) for t in followups + replies if t]

    return str((await fake.wait_for(told))[-1])


async def ask_slack(
    world: World, c: Community, replica: Replica, text: str, user: str = "UALICE01"
) -> dict[str, Any]:
    assert c.grant is not None
    msg = world.slack_fake.user_message(c.ask, f"<@{c.grant.bot_user_id}> {text}", user=user)
    msg["team"] = c.grant.team_id
    status = await replica.installed.event(
        c.grant.team_id, c.grant.bot_user_id, dict(msg, type="app_mention")
    )
    assert status == 200
    return msg


async def answered_slack(world: World, c: Community, msg: dict[str, Any]) -> dict[str, Any]:
    """The bot's finished answer (with its buttons) in the thread of `msg`."""
    fake = world.slack_fake
    found = await fake.wait_for(
        lambda: [
            m
            for m in fake.messages.get(c.ask, [])
            if m.get("thread_ts") == msg["ts"] and "feedback_up" in json.dumps(m.get("blocks"))
        ]
    )
    answer: dict[str, Any] = found[0]
    return answer


async def press_slack(
    world: World, c: Community, replica: Replica, answer: dict[str, Any], action: str, user: str
) -> None:
    """A member clicks a button of the bot's answer (block_actions), delivered to `replica`."""
    assert c.grant is not None
    button = next(b for b in answer["blocks"][-1]["elements"] if b["action_id"] == action)
    payload = {
        "type": "block_actions",
        "user": {"id": user, "team_id": c.grant.team_id},
        "api_app_id": "A0001",
        "team": {"id": c.grant.team_id},
        "channel": {"id": c.ask, "name": "ask"},
        "container": {"type": "message", "message_ts": answer["ts"], "channel_id": c.ask},
        # Slack shows the bot's messages as posted by this workspace's bot user.
        "message": {"ts": answer["ts"], "thread_ts": answer.get("thread_ts"), "user": c.grant.bot_user_id},
        "trigger_id": "t",
        "response_url": f"{world.slack_fake.url}/respond",
        "actions": [
            {
                "action_id": action,
                "block_id": answer["blocks"][-1]["block_id"],
                "value": button["value"],
                "type": "button",
                "action_ts": str(time.time()),
            }
        ],
        "authorizations": [
            {
                "enterprise_id": None,
                "team_id": c.grant.team_id,
                "user_id": c.grant.bot_user_id,
                "is_bot": True,
            }
        ],
    }
    body = urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()
    headers = signed_headers(SECRET, body, content_type="application/x-www-form-urlencoded")
    async with world.session.post(f"{replica.installed.base}/slack/events", data=body, headers=headers) as r:
        assert r.status == 200


def slack_team_of(world: World, token: str) -> str | None:
    grant = world.slack_fake.tokens.get(token)
    return grant.team_id if grant is not None else None


# -- the report page a community's link opens ------------------------------------------------------
async def admin_site(store: FeedbackStore) -> tuple[web.AppRunner, str]:
    async def report(days: float, community: str | None = None) -> dict[str, Any]:
        return stored_report(store, embed=toy_embed, articles={}, since_days=days, community=community)

    async def mark(community: str, question: str) -> None:
        await store.run(store.mark_written, community, question)

    async def sync() -> dict[str, Any]:
        return {"outcome": "unchanged"}

    async def communities() -> list[str]:
        return await store.run(store.communities)

    app = web.Application()
    add_admin_routes(
        app, token=ADMIN_TOKEN, report=report, mark_written=mark, sync=sync, communities=communities
    )
    return await serve_loopback(app)


def token_of(reply: str) -> str:
    found = re.search(r"scope=([A-Za-z0-9_.%-]+)", reply)
    assert found is not None, reply
    return urllib.parse.unquote(found.group(1))


async def report_link(world: World, c: Community) -> str:
    """The signed token of `c`'s report link, as its admins get it from `/aisafety-report`."""
    if c.grant is None:
        payload = interaction(world.fake, "aisafety-report", guild=c.guild, channel=int(c.ask))
        reply = said(await world.discord_interaction(payload))
    else:
        reply = await slack_command(world, c, world.replicas[-1], "/aisafety-report", "")
    assert scope_of(reply) == c.name
    return token_of(reply)


async def views(url: str, token: str) -> dict[str, str]:
    """Everything a moderator's browser reads through the link: the page, every CSV, the JSON."""
    seen: dict[str, str] = {}
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.get(f"{url}/admin/", params={"scope": token}) as r:  # 303 to /admin/, then the page
            assert r.status == 200, await r.text()
            seen["page"] = await r.text()
        for table in REPORT_TABLES:
            async with http.get(f"{url}/admin/csv/{table}.csv?days=30") as r:
                assert r.status == 200, table
                seen[table] = await r.text()
        async with http.get(f"{url}/admin/report.json?days=30") as r:
            assert r.status == 200
            seen["json"] = await r.text()
    return seen


async def refused(url: str, token: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{url}/admin/", params={"scope": token}, allow_redirects=False) as r:
            return r.status, await r.text()


# -- the story ---------------------------------------------------------------------------------------
async def test_communities_never_see_or_ping_each_other(world: World, embedder: FastEmbedder) -> None:
    fake, slack_fake = world.fake, world.slack_fake
    first, last = world.replicas[0], world.replicas[-1]
    g1, g2, t1, t2 = world.communities

    if len(world.replicas) == 2:  # one shard each: each replica's Discord has one of the servers
        assert [{g.id for g in r.discord.guilds} for r in world.replicas] == [
            {c.guild for c in (g1, g2) if fake.shard_of(c.guild, 2) == shard} for shard in (0, 1)
        ]
        assert all(len(r.discord.guilds) == 1 for r in world.replicas)

    # Each community's admins choose their moderators and digest channel (Discord: on the server's own
    # replica; Slack: one workspace through each replica).
    for c in (g1, g2):
        await discord_settings(
            world,
            c,
            "handoff",
            [option("role", 8, c.handoff)],
            resolved=role_resolved(int(c.handoff), c.guild),
        )
        await discord_settings(
            world,
            c,
            "digest",
            [option("channel", 7, c.digest), option("every", 3, "daily")],
            resolved=channel_resolved(int(c.digest)),
        )
    for c, replica in ((t1, first), (t2, last)):
        shown = await slack_command(
            world, c, replica, "/aisafety-settings", f"handoff <!subteam^{c.handoff}|@mods>"
        )
        assert f"`{c.handoff}` (set here)" in shown
        await slack_command(world, c, replica, "/aisafety-settings", f"digest <#{c.digest}|mods> daily")
    for replica in world.replicas:  # every replica follows every community's choice within seconds
        for c in world.communities:
            await within(3, functools.partial(_handoff_is, replica, c))

    # Members ask (two questions each; Slack's through both replicas), vote and ask for a human.
    discord_answers: dict[str, dict[str, Any]] = {}
    for c in (g1, g2):
        for text in (f"{c.marker} what is corrigibility?", f"{c.marker} what is a mesa-optimizer?"):
            answer = await answered_discord(world, await ask_discord(world, c, text))
            discord_answers.setdefault(c.name, answer)
    slack_answers: dict[str, dict[str, Any]] = {}
    for c in (t1, t2):
        for replica, text in ((first, "what is corrigibility?"), (last, "what is a mesa-optimizer?")):
            msg = await ask_slack(world, c, replica, f"{c.marker} {text}")
            slack_answers.setdefault(c.name, await answered_slack(world, c, msg))
    for c in (g1, g2):
        answer = discord_answers[c.name]
        ids = [b["custom_id"] for row in answer["components"] for b in row["components"]]
        assert "aisafety:handoff" in ids
        await press_discord(world, c, answer, ids[0], user=4242)  # 👍
        assert await press_discord(world, c, answer, "aisafety:handoff", user=4242) == HANDOFF_ASKED
        thread = int(answer["channel_id"])
        calls = [
            r.body
            for r in fake.calls("POST", f"/channels/{thread}/messages")
            if "would like a human" in r.body["content"]
        ]
        assert [b["content"] for b in calls] == [handoff_message(f"<@&{c.handoff}>")]
        assert calls[0]["allowed_mentions"] == {"parse": [], "roles": [int(c.handoff)]}
    for c, replica in ((t1, last), (t2, first)):  # clicks reach the replica the answer did not come from
        answer = slack_answers[c.name]
        await press_slack(world, c, replica, answer, "feedback_up", "UBOB0001")
        await press_slack(world, c, replica, answer, "handoff", "UBOB0001")
        wanted = handoff_message(f"<!subteam^{c.handoff}>")
        posted = await slack_fake.wait_for(functools.partial(_slack_posted, world, c, wanted))
        assert len(posted) == 1 and posted[0]["thread_ts"] == answer["thread_ts"]
    await world.settle()
    await within(5, functools.partial(_votes, first.store, 4))

    # Every community has its own rows, and every row is one community's.
    counts = world.rows_of(first.store)
    for c in world.communities:
        assert counts[c.name]["answers"] == 2 and counts[c.name]["votes"] == 1, (c.name, counts[c.name])
        assert counts[c.name]["community_settings"] == 1 and counts[c.name]["journal"] >= 2
        assert counts[c.name]["leases"] >= 1  # the hand-off's
    assert counts[t1.name]["slack_installations"] == counts[t2.name]["slack_installations"] == 1

    # Each community's report link shows its own questions and nothing of the others', in every view.
    runner, url = await admin_site(last.store)
    try:
        for c in world.communities:
            token = await report_link(world, c)
            for view, text in (await views(url, token)).items():
                assert not any(f in text for f in world.foreign(c)), (c.name, view)
                if view in ("page", "json", "most_asked"):
                    assert c.marker in text, (c.name, view)
            # Edited to name another community, or expired: 401, and nothing shown.
            for other in world.communities:
                if other is not c:
                    status, body = await refused(url, renamed(token, other.name))
                    assert status == 401 and LINK_INVALID in body and other.marker not in body
            status, body = await refused(url, sign(KEY, c.name, now=time.time() - 86401))
            assert status == 401 and LINK_EXPIRED in body and c.marker not in body
    finally:
        await runner.cleanup()

    # The digests, as the runner posts them (yesterday's questions), from one replica for every
    # community: each in its own channel, with its own questions only.
    yesterday = time.time() // 86400 * 86400 - 43200
    with first.store._transaction() as db:
        first.store._execute(db, "UPDATE answers SET created = ?", (yesterday,))
    app: Any = SimpleNamespace(settings=load_settings(), embedder=embedder)
    requests_before, calls_before = len(fake.requests), len(slack_fake.calls)
    assert (
        await digests_once(
            app, last.store, SqlLeases(last.store), DiscordPlatform(client=last.discord, token="t")
        )
        == 2
    )
    assert await digests_once(app, first.store, SqlLeases(first.store), SlackPlatform(bot=first.slack)) == 2
    posted = [r for r in fake.requests[requests_before:] if r.method == "POST"]
    assert {r.path for r in posted} == {f"/channels/{c.digest}/messages" for c in (g1, g2)}
    assert all(r.body["allowed_mentions"] == {"parse": []} for r in posted)  # pings no one
    for c in (g1, g2):
        text = "\n".join(r.body["content"] for r in posted if r.path == f"/channels/{c.digest}/messages")
        assert c.marker in text and not any(f in text for f in world.foreign(c)), text
    sent = [call for call in slack_fake.calls[calls_before:] if call.method == "chat.postMessage"]
    assert {call.args["channel"] for call in sent} == {c.digest for c in (t1, t2)}
    for call in sent:
        c = world.of(f"slack:{slack_team_of(world, call.token)}")
        assert call.args["channel"] == c.digest  # posted with that workspace's own token
        text = json.dumps(call.args)
        assert c.marker in text and not any(f in text for f in world.foreign(c)), text

    # A setting changed in one server and one workspace applies there, on the other replica within
    # seconds, and nowhere else.
    await discord_settings(world, g1, "rate-limit", [option("per_minute", 4, 1)])
    await slack_command(world, t1, first, "/aisafety-settings", "rate_limit 1")
    for c in (g1, t1):
        took = await within(3, functools.partial(_rate_is, last, c, 1))
        assert took < 3
    for c in (g2, t2):
        assert (await first.discord.conversation.effective(c.name)).rate_limit_per_minute == 5
    for c in (g1, g2):  # a new member asks twice: once too often in G1 only
        first_ask = await ask_discord(world, c, f"{c.marker} what is the orthogonality thesis?", user=5151)
        await answered_discord(world, first_ask)
        again = await ask_discord(world, c, f"{c.marker} what are quantilizers?", user=5151)
        if c is g1:
            await fake.wait_for(functools.partial(_slowed, world, c))
        else:
            await answered_discord(world, again)
    assert not _slowed(world, g2)
    # In Slack, on the replica the setting was not made on (the first question, with Redis's shared
    # limits, on the one it was made on).
    for c in (t1, t2):
        replica = first if world.redis is not None else last
        await answered_slack(
            world, c, await ask_slack(world, c, replica, f"{c.marker} what is AI takeoff?", "UCAROL01")
        )
        again = await ask_slack(world, c, last, f"{c.marker} what are quantilizers?", "UCAROL01")
        if c is t1:
            await slack_fake.wait_for(functools.partial(_slack_slowed, world, c))
        else:
            await answered_slack(world, c, again)
    assert not _slack_slowed(world, t2)

    # Nothing any community was sent carries anything of another: every REST call of the Discord bot in
    # a server, every Web API call made with a workspace's token.
    audited = dict.fromkeys((c.name for c in world.communities), 0)
    for req in fake.requests:
        guild = discord_guild_of(world, req.path)
        if guild and req.body is not None:
            c = next(c for c in (g1, g2) if c.guild == guild)
            audited[c.name] += 1
            text = json.dumps(req.body)
            assert not any(f in text for f in world.foreign(c)), (c.name, req.path, text[:300])
    for call in slack_fake.calls:
        team = slack_team_of(world, call.token)
        if team is not None:
            c = world.of(f"slack:{team}")
            audited[c.name] += 1
            text = json.dumps(call.args)
            assert not any(f in text for f in world.foreign(c)), (c.name, call.method, text[:300])
    assert all(n >= 10 for n in audited.values()), audited  # answers, edits, replies, hand-offs, digests
    assert all(
        "<!subteam" not in m["text"] or m["text"] == handoff_message(f"<!subteam^{c.handoff}>")
        for c in (t1, t2)
        for m in slack_fake.messages[c.ask]
    )

    # Leaving forgets: G1 removes the bot, T1 uninstalls it. Exactly their rows go, in every table.
    await world.settle()
    before = world.rows_of(first.store)
    rows_before = snapshot(first.store)
    keys_before = await redis_keys(world)
    if world.redis is not None:
        assert all(keys_before[c.name] > 0 for c in world.communities), keys_before  # rate limits
    await fake.dispatch("GUILD_DELETE", {"id": str(g1.guild)})
    assert t1.grant is not None
    status = await last.installed.event(  # T1 installed through the first replica
        t1.grant.team_id, t1.grant.bot_user_id, {"type": "app_uninstalled", "event_ts": "1"}
    )
    assert status == 200
    await within(10, functools.partial(_gone, world, first.store, (g1, t1)))
    after = world.rows_of(first.store)
    for c in (g1, t1):
        assert not any(after[c.name].values()) and before[c.name]["answers"] >= 3
    for c in (g2, t2):
        assert after[c.name] == before[c.name]
    assert snapshot(first.store) == {
        t: {row for row in rows if not any(owns(c, t, row) for c in (g1, t1))}
        for t, rows in rows_before.items()
    }
    assert sorted(await first.store.run(first.store.communities)) == sorted([g2.name, t2.name])
    if world.redis is not None:  # and their Redis keys, the others' kept
        await within(5, functools.partial(_redis_forgot, world, (g1, t1)))
        kept = await redis_keys(world)
        assert (kept[g2.name], kept[t2.name]) == (keys_before[g2.name], keys_before[t2.name])
    for replica in world.replicas:  # the settings are gone on every replica, the others' kept
        await within(3, functools.partial(_rate_is, replica, g1, 5))
        assert (await replica.settings.get(g2.name)).handoff == g2.handoff

    # The others are still answered, on every replica; the uninstalled workspace no more.
    await answered_discord(
        world, await ask_discord(world, g2, f"{g2.marker} what is inner alignment?", user=6161)
    )
    for replica in world.replicas:
        await answered_slack(
            world, t2, await ask_slack(world, t2, replica, f"{t2.marker} what is reward hacking?", "UDAVE001")
        )
    made = len(slack_fake.calls)
    for replica in world.replicas:  # not even the replica that installed it and answered with its token
        await ask_slack(world, t1, replica, f"{t1.marker} still there?", "UDAVE001")
    await asyncio.sleep(0.3)
    assert len(slack_fake.calls) == made  # dropped: not one Web API call
    await world.settle()
    final = world.rows_of(first.store)
    assert final[g2.name]["answers"] == 4 + 1 and final[t2.name]["answers"] == 4 + len(world.replicas)
    assert not any(final[g1.name].values()) and not any(final[t1.name].values())


async def redis_keys(world: World) -> dict[str, int]:
    """How many Redis keys name each community (none without Redis)."""
    found: list[str] = []
    if world.redis is not None:
        prefix = world.redis.prefix
        found = [str(k).removeprefix(prefix) async for k in world.redis.client.scan_iter(match=prefix + "*")]
    return {c.name: sum(names_community(k, c.name) for k in found) for c in world.communities}


async def _redis_forgot(world: World, gone: tuple[Community, ...]) -> bool:
    keys = await redis_keys(world)
    return not any(keys[c.name] for c in gone)


async def _handoff_is(replica: Replica, c: Community) -> bool:
    conversation = replica.slack.conversation if c.grant else replica.discord.conversation
    return (await conversation.effective(c.name)).handoff == c.handoff


async def _rate_is(replica: Replica, c: Community, limit: int) -> bool:
    conversation = replica.slack.conversation if c.grant else replica.discord.conversation
    return (await conversation.effective(c.name)).rate_limit_per_minute == limit


async def _votes(store: FeedbackStore, n: int) -> bool:
    with store._transaction() as db:
        return int(store._execute(db, "SELECT COUNT(*) FROM votes").fetchone()[0]) == n


async def _gone(world: World, store: FeedbackStore, gone: tuple[Community, ...]) -> bool:
    counts = world.rows_of(store)
    return not any(any(counts[c.name].values()) for c in gone)


def _slowed(world: World, c: Community) -> bool:
    """The bot told someone in `c` to slow down."""
    return any(
        SLOW_DOWN in json.dumps(r.body)
        for r in world.fake.requests
        if r.body is not None and discord_guild_of(world, r.path) == c.guild
    )


def _slack_posted(world: World, c: Community, text: str) -> list[dict[str, Any]]:
    return [m for m in world.slack_fake.messages.get(c.ask, []) if m["text"] == text]


def _slack_slowed(world: World, c: Community) -> bool:
    return any(
        SLOW_DOWN in json.dumps(call.args)
        for call in world.slack_fake.calls
        if c.grant is not None and slack_team_of(world, call.token) == c.grant.team_id
    )
