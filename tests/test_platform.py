"""What every platform shares: the replies, and the interface the runner uses (`Platform`), tried on\nDiscord and Slack against their fakes."""

from __future__ import annotations

import json
from typing import Any, cast

import discord
import pytest
from aiohttp import web

from aisafety_bot import platforms
from bot.conversation import Services
from bot.models import Answer, Source
from bot.platform import APOLOGY, THANKS, VOTE_LOST, Style, apology, thanks
from bot.ratelimit import MemoryLeases, RateLimiter, RecentKeys, RecentThreads
from service.feedback import FeedbackStore
from tests.fake_discord import JSON, FakeDiscord
from tests.fake_slack import FakeSlack

SOURCE = Source(1, "aisafety.info:6568", "The orthogonality thesis", "https://aisafety.info/questions/6568")


def render(answer: Answer) -> str:
    return "rendered: " + ", ".join(s.title for s in (*answer.sources, *answer.read_next))


def test_the_apology_carries_whatever_was_found() -> None:
    assert apology(None, render) == APOLOGY
    assert apology(Answer("", (), "abstain"), render) == APOLOGY
    with_sources = apology(Answer("text", (SOURCE,), "retrieval-only"), render)
    assert with_sources.startswith(APOLOGY) and with_sources.endswith("rendered: The orthogonality thesis")
    read_next_only = apology(Answer("", (), "abstain", read_next=(SOURCE,)), render)
    assert "rendered: The orthogonality thesis" in read_next_only


def test_thanks_says_when_the_answer_is_gone() -> None:
    assert thanks("up", True) == THANKS["up"] and thanks("down", True) == THANKS["down"]
    assert thanks("up", False) == VOTE_LOST


# -- the one interface the runner uses ----------------------------------------------------------------

OTHER_GUILD = 800000000000000050
DISCORD_PLACES = {
    "guild channel": 800000000000000002,
    "thread": 800000000000000010,
    "direct message": 800000000000000011,
    "gone": 800000000000000012,
    "hidden": 800000000000000013,
}


class ChannelsFake(FakeDiscord):
    """The fake, answering an unknown channel with Discord's 404 and one channel with its 403."""

    async def _channels(
        self, m: str, parts: list[str], body: Any, request: web.Request
    ) -> web.StreamResponse:
        cid = int(parts[0])
        if m == "GET" and len(parts) == 1 and cid == DISCORD_PLACES["hidden"]:
            return _discord_error(403, "Missing Access", 50001)
        if m == "GET" and len(parts) == 1 and cid not in self.channels:
            return _discord_error(404, "Unknown Channel", 10003)
        return await super()._channels(m, parts, body, request)


def _discord_error(status: int, message: str, code: int) -> web.Response:
    return web.Response(
        status=status, body=json.dumps({"message": message, "code": code}).encode(), headers=JSON
    )


def _services() -> Services:
    """Ports for a platform that answers nothing in these tests."""
    return Services(
        core=cast(Any, None),
        store=FeedbackStore(),
        limiter=RateLimiter(0),
        dedupe=RecentKeys(),
        threads=RecentThreads(),
        leases=MemoryLeases(),
    )


def test_every_registered_platform_has_the_factory_and_the_switch() -> None:
    from bot.config import load_settings

    settings = load_settings(discord_token="t", slack_bot_token="xoxb-1", slack_app_token="xapp-1")
    for name in platforms.PLATFORMS:
        platform = platforms.make_platform(name, settings, _services())
        assert platform.name == name and platform.conversation.platform == name
        assert isinstance(platform.digest_style, Style)
    assert platforms.enabled(settings) == ["discord", "slack"]
    assert platforms.enabled(load_settings(discord_token="t")) == ["discord"]


async def test_discord_finds_the_community_of_each_channel(monkeypatch: pytest.MonkeyPatch) -> None:
    from adapters.discord.platform import make_platform
    from bot.config import load_settings

    fake = ChannelsFake()
    await fake.start()
    monkeypatch.setattr(discord.http.Route, "BASE", fake.api_base)
    thread = {
        "id": str(DISCORD_PLACES["thread"]),
        "type": 11,
        "guild_id": str(OTHER_GUILD),
        "parent_id": "800000000000000099",
        "owner_id": str(fake.bot_id),
        "name": "what is corrigibility?",
        "last_message_id": None,
        "message_count": 0,
        "member_count": 1,
        "rate_limit_per_user": 0,
        "flags": 0,
        "thread_metadata": {
            "archived": False,
            "auto_archive_duration": 1440,
            "archive_timestamp": "2026-01-01T00:00:00+00:00",
            "locked": False,
        },
    }
    fake.channels[DISCORD_PLACES["thread"]] = thread
    fake.channels[DISCORD_PLACES["direct message"]] = {
        "id": str(DISCORD_PLACES["direct message"]),
        "type": 1,
        "recipients": [fake.user(5, "alice")],
        "last_message_id": None,
    }
    platform = make_platform(load_settings(discord_token="fake-token"), _services())
    try:
        await platform.start()  # signs in over REST; no gateway is needed to look channels up
        places = [f"discord:{cid}" for cid in DISCORD_PLACES.values()]
        found = await platform.communities_of([*places, "slack:C0001", "discord:not-a-number"])
    finally:
        await platform.close()
        await fake.stop()
    assert found == {
        f"discord:{DISCORD_PLACES['guild channel']}": f"discord:{fake.guild_id}",
        f"discord:{DISCORD_PLACES['thread']}": f"discord:{OTHER_GUILD}",
        f"discord:{DISCORD_PLACES['direct message']}": "dm",
    }  # the channel that is gone and the one the bot may not see are left out
    assert platform.http_app() is None


async def test_slack_channels_are_the_workspace_of_the_bot_token() -> None:
    from adapters.slack.platform import make_platform
    from bot.config import load_settings

    fake = FakeSlack()
    await fake.start()
    settings = load_settings(
        slack_bot_token="xoxb-test", slack_signing_secret="s", slack_api_url=f"{fake.url}/api/"
    )
    platform = make_platform(settings, _services())
    try:
        assert not await platform.ready()
        await platform.start()
        assert await platform.ready()  # HTTP mode: ready once the token is checked
        found = await platform.communities_of(
            ["slack:C0001", "slack:G0002", "slack:D0003", "discord:1", "slack:"]
        )
        assert platform.http_app() is not None  # HTTP mode: Slack's events come through the runner's server
    finally:
        await platform.close()
        await fake.stop()
    assert found == {"slack:C0001": "slack:T0001", "slack:G0002": "slack:T0001", "slack:D0003": "dm"}
    socket_mode = load_settings(slack_bot_token="xoxb-test", slack_app_token="xapp-1")
    assert make_platform(socket_mode, _services()).http_app() is None
