"""`/aisafety-settings` and `/aisafety-report` end to end: the real discord.py over the fake gateway
(interactions delivered as Discord sends them, whatever the member's permissions) and the real
slack-bolt app over signed HTTP requests with the fake Web API (`users.info`, `response_url`).

What is checked: only admins (Manage Server; a Slack workspace admin or owner, asked of Slack on each
use) change or read anything, even when the platform delivers the command to someone else; a change is
saved as that community's own and shown as it applies (a number above the deployment's ceiling capped,
and said so; storing refused where the deployment keeps no questions); another community sees none of
it; a report link names the asking community only; no reply can ping anyone.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import discord
import pytest
import pytest_asyncio

from adapters import community_commands as cc
from adapters.discord.client import AiSafetyDiscord
from adapters.slack.app import SlackBot
from adapters.slack.commands import UNCHECKED
from aisafety_bot.platforms import report_links
from bot.community import CommunitySettings, Deployment, MemorySettings, SettingsStore, effective
from bot.config import load_settings
from bot.conversation import Conversation
from bot.core import AnswerCore
from bot.platform import PlatformOptions
from retrieval.documents import Passage
from service.community_settings import SqlSettings
from service.feedback import FeedbackStore
from service.health import serve
from service.report_links import link_key, verify
from tests.fake_discord import FakeDiscord
from tests.fake_slack import FakeSlack, signed_headers
from tests.qdrant_server import free_port

ADMIN_TOKEN = "admin-token-for-tests-0123456789"  # one of conftest's SECRETS: the log scan looks for it
PUBLIC_URL = "https://bot.example.org"
MEMBER_PERMISSIONS = 1071698660928  # what the fake's @everyone has: no Manage Server
MANAGE_GUILD = 1 << 5
SECRET = "test-signing-secret"
ROLE = 700000000000000042
GUILD_2, CHANNEL_2 = 800000000000000101, 800000000000000102


class Unused:
    """A retriever the settings commands never reach."""

    async def search(self, query: str, *, k: int = 5) -> list[Passage]:
        raise AssertionError("a settings command searched the library")

    async def articles(self, article_ids: Sequence[str]) -> dict[str, Passage]:
        raise AssertionError("a settings command read the library")


def conversation_for(
    platform: str, feedback: FeedbackStore, settings: SettingsStore, deployment: Deployment, **options: Any
) -> Conversation:
    conversation = Conversation.in_process(
        platform,
        core=AnswerCore(retriever=Unused(), llm=None),
        store=feedback,
        options=PlatformOptions(**options),
        usage="",
    )
    conversation.settings, conversation.deployment = settings, deployment
    return conversation


def links(public_url: str | None = PUBLIC_URL) -> Callable[[str], str | None]:
    """The composition root's report links for these settings (`aisafety_bot.platforms.report_links`)."""
    overrides: dict[str, Any] = {"admin_token": ADMIN_TOKEN}
    if public_url:
        overrides["public_url"] = public_url
    return report_links(load_settings(**overrides))


def scope_of(text: str) -> str | None:
    """The community a reply's report link is signed for (None: no link, or not a valid one)."""
    found = re.search(r"https://bot\.example\.org/admin/\?scope=([A-Za-z0-9_.%-]+)", text)
    if found is None:
        return None
    return verify(link_key(ADMIN_TOKEN), urllib.parse.unquote(found.group(1)))


# -- Discord -----------------------------------------------------------------------------------------
@pytest.fixture
def feedback(tmp_path: Path) -> Iterator[FeedbackStore]:
    store = FeedbackStore(tmp_path / "feedback.sqlite3")
    yield store
    store.close()


@pytest_asyncio.fixture
async def fake_discord(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeDiscord]:
    fake = FakeDiscord()
    await fake.start()
    fake.add_guild(GUILD_2, CHANNEL_2)
    monkeypatch.setattr(discord.http.Route, "BASE", fake.api_base)
    monkeypatch.setattr(discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY", fake.gateway_url)
    yield fake
    await fake.stop()


StartDiscord = Callable[..., Awaitable[AiSafetyDiscord]]


@pytest_asyncio.fixture
async def start_discord(fake_discord: FakeDiscord, feedback: FeedbackStore) -> AsyncIterator[StartDiscord]:
    started: list[tuple[AiSafetyDiscord, asyncio.Task[None]]] = []

    async def start(deployment: Deployment | None = None, **options: Any) -> AiSafetyDiscord:
        conversation = conversation_for(
            "discord", feedback, MemorySettings(), deployment or Deployment(), **options
        )
        client = AiSafetyDiscord(conversation=conversation, guild_ready_timeout=0.2)
        task = asyncio.create_task(client.start("fake-token"))
        started.append((client, task))
        async with asyncio.timeout(20):
            while not client.is_ready():
                if task.done():
                    task.result()
                await asyncio.sleep(0.02)
        return client

    yield start
    for client, task in started:
        await client.close()
        task.cancel()


def interaction(
    fake: FakeDiscord,
    name: str,
    sub: str | None = None,
    options: list[dict[str, Any]] | None = None,
    *,
    guild: int | None = None,
    channel: int | None = None,
    admin: bool = True,
    resolved: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An INTERACTION_CREATE for `/name [sub] options` by a member with (or without) Manage Server in
    `guild` (0: a direct message)."""
    iid = fake.new_id()
    guild = fake.guild_id if guild is None else guild
    channel = channel or (fake.channel_id if guild == fake.guild_id else CHANNEL_2)
    data: dict[str, Any] = {"id": "42", "name": name, "type": 1, "options": options or []}
    if sub is not None:
        data["options"] = [{"name": sub, "type": 1, "options": options or []}]
    if resolved:
        data["resolved"] = resolved
    payload: dict[str, Any] = {
        "id": str(iid),
        "application_id": str(fake.app_id),
        "type": 2,
        "data": data,
        "channel_id": str(channel),
        "token": f"token-{iid}",
        "version": 1,
        "locale": "en-US",
        "app_permissions": str(MEMBER_PERMISSIONS),
        "entitlements": [],
        "attachment_size_limit": 8388608,
    }
    alice = fake.user(111, "alice")
    if guild:
        payload |= {
            "guild_id": str(guild),
            "guild_locale": "en-US",
            "context": 0,
            "authorizing_integration_owners": {"0": str(guild)},
            "channel": fake.channels[channel],
            "member": {
                "user": alice,
                "roles": [],
                "joined_at": "2024-01-01T00:00:00+00:00",
                "deaf": False,
                "mute": False,
                "flags": 0,
                "permissions": str(MEMBER_PERMISSIONS | (MANAGE_GUILD if admin else 0)),
            },
        }
    else:
        payload |= {
            "user": alice,
            "context": 1,
            "authorizing_integration_owners": {"1": "111"},
            "channel": {"id": str(channel), "type": 1, "recipients": [alice], "last_message_id": None},
        }
    return payload


async def run(fake: FakeDiscord, payload: dict[str, Any]) -> dict[str, Any]:
    """Deliver an interaction; its reply (the callback's body) once the bot sent it."""
    path = f"/interactions/{payload['id']}/{payload['token']}/callback"
    await fake.dispatch("INTERACTION_CREATE", payload)
    calls = await fake.wait_for(lambda: fake.calls("POST", path))
    body: dict[str, Any] = calls[0].body
    return body


def said(reply: dict[str, Any]) -> str:
    """The text of a private reply that mentions no one (every reply must be one)."""
    assert reply["type"] == 4
    data = reply["data"]
    assert data["flags"] & 64, "not ephemeral"
    assert data["allowed_mentions"] == {"parse": []}, "could ping"
    text: str = data["content"]
    return text


def option(name: str, kind: int, value: Any) -> dict[str, Any]:
    return {"name": name, "type": kind, "value": value}


def role_resolved(role: int, guild: int, name: str = "mods") -> dict[str, Any]:
    return {
        "roles": {
            str(role): {
                "id": str(role),
                "name": name,
                "permissions": "0",
                "position": 1,
                "color": 0,
                "hoist": False,
                "managed": False,
                "mentionable": True,
                "flags": 0,
            }
        }
    }


def channel_resolved(channel: int, kind: int = 0, name: str = "digest") -> dict[str, Any]:
    return {"channels": {str(channel): {"id": str(channel), "type": kind, "name": name, "permissions": "0"}}}


async def test_discord_members_without_manage_server_are_refused_even_when_delivered(
    start_discord: StartDiscord, fake_discord: FakeDiscord
) -> None:
    fake = fake_discord
    client = await start_discord(report_link=links())
    store = client.conversation.settings
    for payload in (
        interaction(fake, "aisafety-settings", "rate-limit", [option("per_minute", 4, 1)], admin=False),
        interaction(
            fake,
            "aisafety-settings",
            "handoff",
            [option("role", 8, str(ROLE))],
            admin=False,
            resolved=role_resolved(ROLE, fake.guild_id),
        ),
        interaction(fake, "aisafety-settings", "show", admin=False),
    ):
        assert said(await run(fake, payload)) == cc.NOT_ADMIN_DISCORD
    report = said(await run(fake, interaction(fake, "aisafety-report", admin=False)))
    assert report == cc.NOT_ADMIN_DISCORD and scope_of(report) is None
    assert await store.get(f"discord:{fake.guild_id}") == CommunitySettings()
    # Outside a server (Discord offers neither command there; the fake delivers them anyway).
    dm = interaction(
        fake, "aisafety-settings", "rate-limit", [option("per_minute", 4, 1)], guild=0, channel=1
    )
    fake.channels[1] = dm["channel"]
    assert said(await run(fake, dm)) == cc.NOT_IN_DM
    assert said(await run(fake, interaction(fake, "aisafety-report", guild=0, channel=1))) == cc.NOT_IN_DM


async def test_discord_admin_changes_the_rate_limit_and_handoff_and_sees_what_applies(
    start_discord: StartDiscord, fake_discord: FakeDiscord
) -> None:
    fake = fake_discord
    deployment = Deployment(rate_limit_per_minute=5)
    client = await start_discord(deployment)
    community = f"discord:{fake.guild_id}"
    text = said(
        await run(fake, interaction(fake, "aisafety-settings", "rate-limit", [option("per_minute", 4, 3)]))
    )
    assert text.startswith("Saved.") and "Rate limit: 3 questions a minute per member (set here)" in text
    text = said(
        await run(
            fake,
            interaction(
                fake,
                "aisafety-settings",
                "handoff",
                [option("role", 8, str(ROLE))],
                resolved=role_resolved(ROLE, fake.guild_id),
            ),
        )
    )
    assert f"Ask a human calls: <@&{ROLE}> (set here)" in text
    assert "Rate limit: 3 questions a minute per member (set here)" in text  # the earlier change kept
    own = await client.conversation.settings.get(community)
    assert own == CommunitySettings(rate_limit_per_minute=3, handoff=str(ROLE))
    now = effective(community, own, deployment)
    assert (now.rate_limit_per_minute, now.handoff) == (3, str(ROLE))
    # The digest: a channel of this server and a period; a voice channel is refused in one line.
    digest = interaction(
        fake,
        "aisafety-settings",
        "digest",
        [option("channel", 7, str(fake.other_channel_id)), option("every", 3, "monthly")],
        resolved=channel_resolved(fake.other_channel_id),
    )
    text = said(await run(fake, digest))
    assert f"Digest: <#{fake.other_channel_id}> (set here), monthly (set here)" in text
    voice = interaction(
        fake,
        "aisafety-settings",
        "digest",
        [option("channel", 7, "123")],
        resolved=channel_resolved(123, kind=2),
    )
    assert said(await run(fake, voice)) == "Pick a text, announcement or forum channel."
    # @everyone is no moderators' role.
    everyone = interaction(
        fake,
        "aisafety-settings",
        "handoff",
        [option("role", 8, str(fake.guild_id))],
        resolved=role_resolved(fake.guild_id, fake.guild_id, "@everyone"),
    )
    assert said(await run(fake, everyone)) == "Pick a moderators' role, not @everyone."
    # A reset puts the deployment's value back.
    text = said(
        await run(fake, interaction(fake, "aisafety-settings", "reset", [option("setting", 3, "rate-limit")]))
    )
    assert "Rate limit: 5 questions a minute per member\n" in text
    assert (await client.conversation.settings.get(community)).rate_limit_per_minute is None


async def test_discord_values_above_the_ceiling_are_capped_and_storing_cannot_be_forced_on(
    start_discord: StartDiscord, fake_discord: FakeDiscord
) -> None:
    fake = fake_discord
    deployment = Deployment(rate_limit_per_minute=5, retention_days=30, store_questions=False)
    client = await start_discord(deployment)
    community = f"discord:{fake.guild_id}"
    text = said(
        await run(fake, interaction(fake, "aisafety-settings", "rate-limit", [option("per_minute", 4, 50)]))
    )
    assert "Rate limit: 5 questions a minute per member (you chose 50: capped at this deployment's 5)" in text
    assert (await client.conversation.settings.get(community)).rate_limit_per_minute == 50  # kept as chosen
    text = said(
        await run(fake, interaction(fake, "aisafety-settings", "store-questions", [option("on", 5, True)]))
    )
    assert text == cc.NOT_STORED and "\n" not in text
    assert (await client.conversation.settings.get(community)).store_questions is None
    text = said(
        await run(fake, interaction(fake, "aisafety-settings", "store-questions", [option("on", 5, False)]))
    )
    assert "Questions stored: no: this deployment keeps none" in text
    # A value out of range (Discord's client would not send it; the fake does): one line, nothing saved.
    text = said(
        await run(fake, interaction(fake, "aisafety-settings", "rate-limit", [option("per_minute", 4, 5000)]))
    )
    assert text == "The rate limit takes a whole number from 0 to 1,000."
    assert (await client.conversation.settings.get(community)).rate_limit_per_minute == 50


async def test_discord_two_servers_do_not_see_each_others_settings_or_reports(
    start_discord: StartDiscord, fake_discord: FakeDiscord
) -> None:
    fake = fake_discord
    client = await start_discord(Deployment(rate_limit_per_minute=5), report_link=links())
    one, two = f"discord:{fake.guild_id}", f"discord:{GUILD_2}"
    await run(fake, interaction(fake, "aisafety-settings", "rate-limit", [option("per_minute", 4, 2)]))
    channels = interaction(
        fake,
        "aisafety-settings",
        "channels",
        [option("add", 7, str(fake.channel_id))],
        resolved=channel_resolved(fake.channel_id, name="ask-the-bot"),
    )
    assert f"Channels I answer in: <#{fake.channel_id}> (set here)" in said(await run(fake, channels))
    shown = said(await run(fake, interaction(fake, "aisafety-settings", "show", guild=GUILD_2)))
    assert "Rate limit: 5 questions a minute per member\n" in shown
    assert "Channels I answer in: every channel\n" in shown and "(set here)" not in shown
    assert await client.conversation.settings.get(two) == CommunitySettings()
    assert (await client.conversation.settings.get(one)).rate_limit_per_minute == 2
    # Each server's report link is signed for that server only.
    first = said(await run(fake, interaction(fake, "aisafety-report")))
    second = said(await run(fake, interaction(fake, "aisafety-report", guild=GUILD_2)))
    assert (scope_of(first), scope_of(second)) == (one, two)
    assert ADMIN_TOKEN not in first + second


async def test_discord_report_without_public_url_says_what_the_operator_must_set(
    start_discord: StartDiscord, fake_discord: FakeDiscord
) -> None:
    fake = fake_discord
    await start_discord(report_link=links(public_url=None))
    assert said(await run(fake, interaction(fake, "aisafety-report"))) == cc.NO_LINKS


async def test_discord_commands_are_registered_for_managers_in_servers_only(
    fake_discord: FakeDiscord,
) -> None:
    from adapters.discord.client import sync_commands

    names = await sync_commands("fake-token")
    assert {"aisafety-settings", "aisafety-report"} <= set(names)
    put = fake_discord.calls("PUT", f"/applications/{fake_discord.app_id}/commands")[-1].body
    for command in (c for c in put if c["name"].startswith("aisafety-")):
        assert int(command["default_member_permissions"]) == MANAGE_GUILD
        assert command["dm_permission"] is False
    settings = next(c for c in put if c["name"] == "aisafety-settings")
    subs = {o["name"]: o for o in settings["options"]}
    assert {"show", "channels", "handoff", "digest", "rate-limit", "store-questions", "retention"} <= set(
        subs
    )
    assert subs["handoff"]["options"][0]["type"] == 8  # a role picker
    assert {o["type"] for o in subs["channels"]["options"] if o["name"] != "every"} == {7}  # channel pickers


# -- Slack -------------------------------------------------------------------------------------------
class SlackHarness:
    def __init__(self, fake: FakeSlack, session: aiohttp.ClientSession):
        self.fake, self.session = fake, session
        self.bots: dict[str, tuple[SlackBot, str]] = {}  # team -> (bot, its /slack/events address)

    async def command(self, name: str, text: str, *, team: str = "T0001", user: str = "UADMIN01") -> str:
        """A signed slash command from `user` of `team`; the private reply sent to its response_url."""
        _, url = self.bots[team]
        before = len(self.fake.responses)
        form = {
            "token": "x",
            "team_id": team,
            "channel_id": "C0000001",
            "channel_name": "general",
            "user_id": user,
            "user_name": user.lower(),
            "command": name,
            "text": text,
            "response_url": f"{self.fake.url}/respond",
            "trigger_id": f"t{time.time_ns()}",
            "api_app_id": "A0001",
        }
        body = urllib.parse.urlencode(form).encode()
        headers = signed_headers(SECRET, body, content_type="application/x-www-form-urlencoded")
        async with self.session.post(url, data=body, headers=headers) as resp:
            assert resp.status == 200 and (await resp.text()) == ""  # acknowledged at once, nothing shown
        await self.fake.wait_for(lambda: len(self.fake.responses) > before)
        reply = self.fake.responses[before]
        assert reply["response_type"] == "ephemeral"
        shown: str = reply["text"]
        assert not re.search(r"<[!@]", shown), "a reply that could ping"  # no <!channel>, <!subteam^>, <@U>
        return shown


@pytest_asyncio.fixture
async def slack(feedback: FeedbackStore) -> AsyncIterator[Callable[..., Awaitable[SlackHarness]]]:
    fake = FakeSlack()
    await fake.start()
    fake.admins.add("UADMIN01")
    fake.owners.add("UOWNER01")
    session = aiohttp.ClientSession()
    bots: list[SlackBot] = []
    runners: list[Any] = []

    async def start(deployment: Deployment | None = None, **options: Any) -> SlackHarness:
        """Two workspaces' bots (two single-token deployments, or replicas) sharing one answers database,
        each with its own view of the settings stored there (`SqlSettings`)."""
        harness = SlackHarness(fake, session)
        for team in ("T0001", "T0002"):
            settings = SqlSettings(feedback, refresh_s=0.0)
            bot = SlackBot(
                conversation=conversation_for(
                    "slack", feedback, settings, deployment or Deployment(), **options
                ),
                token="xoxb-test",
                signing_secret=SECRET,
                base_url=f"{fake.url}/api/",
            )
            await bot.identify()
            bot.team_id = team  # the fake's auth.test names T0001 only
            port = free_port()
            runners.append(await serve(bot.web_app(), "127.0.0.1", port))
            bots.append(bot)
            harness.bots[team] = (bot, f"http://127.0.0.1:{port}/slack/events")
        return harness

    yield start
    for bot in bots:
        await bot.close()
    for runner in runners:
        await runner.cleanup()
    await session.close()
    await fake.stop()


async def test_slack_members_who_are_not_admins_are_refused(
    slack: Callable[..., Awaitable[SlackHarness]],
) -> None:
    h = await slack(report_link=links())
    bot, _ = h.bots["T0001"]
    for name, text in (
        ("/aisafety-settings", "rate_limit 1"),
        ("/aisafety-settings", "show"),
        ("/aisafety-report", ""),
    ):
        assert await h.command(name, text, user="UALICE01") == cc.NOT_ADMIN_SLACK
    assert await bot.conversation.settings.get("slack:T0001") == CommunitySettings()
    asked = [c.args["user"] for c in h.fake.named("users.info")]
    assert asked == ["UALICE01"] * 3  # asked of Slack on every use, not remembered
    # An owner may: is_owner is enough.
    assert "Saved." in await h.command("/aisafety-settings", "rate_limit 2", user="UOWNER01")
    # Slack failing to say who the member is: refused, with the reason.
    h.fake.errors["users.info"] = "missing_scope"
    assert await h.command("/aisafety-settings", "rate_limit 1") == UNCHECKED
    assert (await bot.conversation.settings.get("slack:T0001")).rate_limit_per_minute == 2


async def test_slack_admin_changes_settings_by_text_and_sees_what_applies(
    slack: Callable[..., Awaitable[SlackHarness]],
) -> None:
    deployment = Deployment(rate_limit_per_minute=5, store_questions=False)
    h = await slack(deployment)
    bot, _ = h.bots["T0001"]
    text = await h.command("/aisafety-settings", "rate_limit 3")
    assert "Rate limit: 3 questions a minute per member (set here)" in text
    text = await h.command("/aisafety-settings", "handoff <!subteam^S0MODS1|@mods>")
    assert "Ask a human calls: user group `S0MODS1` (set here)" in text
    text = await h.command("/aisafety-settings", "channels <#C0000001|general> <#C0000002>")
    assert "Channels I answer in: <#C0000001>, <#C0000002> (set here)" in text
    text = await h.command("/aisafety-settings", "digest <#C0000009|mods> daily")
    assert "Digest: <#C0000009> (set here), daily (set here)" in text
    own = await bot.conversation.settings.get("slack:T0001")
    assert own == CommunitySettings(
        allowed_channels=frozenset({"C0000001", "C0000002"}),
        handoff="S0MODS1",
        digest_channel="C0000009",
        digest_every="daily",
        rate_limit_per_minute=3,
    )
    # Above the ceiling: kept, shown capped.
    text = await h.command("/aisafety-settings", "rate_limit 40")
    assert "Rate limit: 5 questions a minute per member (you chose 40: capped at this deployment's 5)" in text
    # Storing where the deployment keeps no questions: refused, nothing saved.
    assert await h.command("/aisafety-settings", "store_questions on") == cc.NOT_STORED
    assert (await bot.conversation.settings.get("slack:T0001")).store_questions is None
    # A bad argument: one line saying what is wrong, and the usage; nothing saved.
    for bad in ("rate_limit lots", "handoff @mods", "colour blue", "channels general", "digest hourly"):
        text = await h.command("/aisafety-settings", bad)
        problem, usage = text.split("\n")
        assert usage.startswith("Usage: `/aisafety-settings show`")
        assert problem and "Saved" not in problem
    assert (await bot.conversation.settings.get("slack:T0001")).rate_limit_per_minute == 40
    # Text that tries to ping comes back as a refusal that does not echo it.
    assert "<!" not in await h.command("/aisafety-settings", "handoff <!channel>")
    shown = await h.command("/aisafety-settings", "")
    assert shown.startswith("Settings for this workspace") and "Saved" not in shown
    # channels all: every channel again.
    assert "Channels I answer in: every channel\n" in await h.command("/aisafety-settings", "channels all")


async def test_slack_two_workspaces_are_kept_apart(slack: Callable[..., Awaitable[SlackHarness]]) -> None:
    h = await slack(Deployment(rate_limit_per_minute=5), report_link=links())
    bot, _ = h.bots["T0001"]
    await h.command("/aisafety-settings", "rate_limit 2", team="T0001")
    shown = await h.command("/aisafety-settings", "show", team="T0002")
    assert "Rate limit: 5 questions a minute per member\n" in shown and "(set here)" not in shown
    assert await bot.conversation.settings.get("slack:T0002") == CommunitySettings()
    first = await h.command("/aisafety-report", "", team="T0001")
    second = await h.command("/aisafety-report", "", team="T0002")
    assert (scope_of(first), scope_of(second)) == ("slack:T0001", "slack:T0002")
    assert ADMIN_TOKEN not in first + second


def test_report_links_need_both_settings() -> None:
    assert links(public_url=None)("discord:1") is None
    url = links()("slack:T1")
    assert url is not None and scope_of(url) == "slack:T1" and ADMIN_TOKEN not in url
    # Edited to name another community, the link is refused (the community is inside what is signed).
    token = urllib.parse.unquote(url.split("scope=", 1)[1])
    body, _, mac = token.partition(".")
    forged = json.dumps({"c": "slack:T2", "e": int(time.time()) + 3600}, separators=(",", ":")).encode()
    edited = base64.urlsafe_b64encode(forged).rstrip(b"=").decode() + "." + mac
    assert verify(link_key(ADMIN_TOKEN), edited) is None and body


def test_slack_text_is_read_as_slack_escapes_it() -> None:
    from adapters.slack.commands import parse

    assert parse("show") is None and parse("") is None
    assert parse("channels <#C1A|a> <#G2B>") == {"allowed_channels": frozenset({"C1A", "G2B"})}
    assert parse("handoff <!subteam^S123|@mods>") == {"handoff": "S123"}
    assert parse("rate-limit reset") == {"rate_limit_per_minute": None}
    assert parse("reset digest") == {"digest_channel": None, "digest_every": None}
    assert parse("store_questions off") == {"store_questions": False}
    for bad in ("handoff <@U123>", "channels <@U1>", "reset", "nonsense 1", "rate_limit", "retention 1 2"):
        with pytest.raises(cc.Refused):
            parse(bad)


async def test_a_settings_store_that_fails_gives_one_line_and_saves_nothing() -> None:
    from adapters.discord.commands import MARKS

    class Unwritable(MemorySettings):
        async def set(self, community: str, settings: CommunitySettings) -> None:
            raise OSError("database is locked")

    class Unreadable(MemorySettings):
        async def get(self, community: str) -> CommunitySettings:
            raise TimeoutError

    store = Unwritable()
    assert (
        await cc.change(store, Deployment(), "discord:1", {"rate_limit_per_minute": 3}, MARKS) == cc.UNSAVED
    )
    assert await store.get("discord:1") == CommunitySettings()
    assert await cc.change(Unreadable(), Deployment(), "discord:1", {"retention_days": 3}, MARKS) == cc.UNREAD
    assert await cc.show(Unreadable(), Deployment(), "discord:1", MARKS) == cc.UNREAD
