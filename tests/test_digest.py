"""The digest in the moderators' channel: which period it covers, posted once per period (across
restarts, and by one replica of several), nothing in it can ping, and it reaches Discord and Slack through
the real libraries."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from adapters.discord.render import DIGEST_STYLE as DISCORD
from adapters.slack.render import DIGEST_STYLE as SLACK
from bot.models import Answer, Source
from bot.platform import Style
from bot.ports import Leases
from service.digest import Digest, digest_text, last_complete
from service.feedback import FeedbackStore
from service.lease import MemoryLeases, RedisLeases, SqlLeases, choose_leases
from service.redis_state import RedisLink
from service.report import build_report
from tests.fake_discord import FakeDiscord
from tests.test_admin import toy_embed
from tests.test_discord import StartBot, bot_posts, fake_discord, start_bot  # noqa: F401 (fixtures)
from tests.test_feedback_backends import open_store, pg_schema  # noqa: F401 (fixtures)
from tests.test_redis_state import REDIS_URL, prefix  # noqa: F401 (fixture)

ORTHO = Source(1, "aisafety.info:6568", "What is the orthogonality thesis?", "https://aisafety.info/q/6568")
# Wednesday 18 November 2026, 09:00 UTC: the last complete week is 9-15 November.
NOW = dt.datetime(2026, 11, 18, 9, 0, tzinfo=dt.UTC).timestamp()
PINGS = "@everyone @here <@123> <@&456> <!channel> <!here> <@U0123> [free money](https://evil.example)"


def _utc(year: int, month: int, day: int, hour: int = 0) -> float:
    return dt.datetime(year, month, day, hour, tzinfo=dt.UTC).timestamp()


def test_each_period_is_the_last_complete_one() -> None:
    daily, weekly, monthly = (last_complete(every, NOW) for every in ("daily", "weekly", "monthly"))
    assert (daily.key, daily.start, daily.end) == ("daily:2026-11-17", _utc(2026, 11, 17), _utc(2026, 11, 18))
    assert (weekly.key, weekly.start, weekly.end) == (
        "weekly:2026-W46",
        _utc(2026, 11, 9),
        _utc(2026, 11, 16),
    )
    assert weekly.label == "the week of 09 Nov 2026"
    assert (monthly.key, monthly.start, monthly.end) == (
        "monthly:2026-10",
        _utc(2026, 10, 1),
        _utc(2026, 11, 1),
    )
    january = last_complete("monthly", _utc(2027, 1, 3))
    assert (january.key, january.start) == ("monthly:2026-12", _utc(2026, 12, 1))
    with pytest.raises(ValueError, match="daily, weekly or monthly"):
        last_complete("hourly", NOW)


def _seed(store: FeedbackStore) -> None:
    """Last week: three answers (one 👎), one question not covered; this week: one more (not in it)."""
    script = [
        (_utc(2026, 11, 10, 12), "what is the orthogonality thesis?", "llm"),
        (_utc(2026, 11, 11, 12), "whats the orthogonality thesis", "llm"),
        (_utc(2026, 11, 12, 12), f"best pancake recipe {PINGS}", "abstain"),
        (_utc(2026, 11, 17, 12), "this week's question", "llm"),
    ]
    for at, q, mode in script:
        answer_id = store.record_answer(
            platform="slack",
            community="slack:1",
            place="c",
            asker="u",
            question=q,
            answer=Answer("x", (ORTHO,) if mode == "llm" else (), mode),  # type: ignore[arg-type]
        )
        with store._transaction() as db:
            store._execute(db, "UPDATE answers SET created = ? WHERE id = ?", (at, answer_id))
        if q.startswith("whats"):
            store.record_vote(answer_id, voter="u2", vote="down", community="slack:1")


def _digest(store: FeedbackStore, posted: list[str], *, leases: Leases | None = None, **kw: Any) -> Digest:
    """A replica's digest: by default on the leases the bot would choose without Redis."""

    async def post(text: str) -> None:
        posted.append(text)

    return Digest(
        store=store,
        leases=leases or choose_leases(store, None),
        embed=toy_embed,
        post=post,
        style=SLACK,
        clock=lambda: NOW,
        **kw,
    )


async def test_the_digest_is_posted_once_per_period_across_restarts_and_replicas(
    open_store: Callable[..., FeedbackStore],  # noqa: F811
) -> None:
    first = open_store()
    _seed(first)
    posted: list[str] = []
    replicas = [_digest(open_store(), posted, admin_url="https://bot.example.org/admin/") for _ in range(3)]
    results = await asyncio.gather(*(d.once() for d in replicas))
    assert sorted(results) == [False, False, True] and len(posted) == 1
    text = posted[0]
    assert text.startswith("*AI-safety bot digest: the week of 09 Nov 2026*")
    assert "3 questions: 2 answered, 0 with sources only, 1 not covered, 0 failed; 1 👎." in text
    assert "this week's question" not in text and "orthogonality thesis" in text
    assert "<https://bot.example.org/admin/|The full report>" in text
    restarted = _digest(open_store(), posted)  # a restart: a new process on the same database
    assert await restarted.once() is False and len(posted) == 1


async def test_replicas_sharing_redis_post_the_digest_once(tmp_path: Path, prefix: str) -> None:  # noqa: F811
    """Replicas with answers of their own (SQLite) but one Redis: Redis's leases decide who posts."""
    store = FeedbackStore(tmp_path / "f.sqlite3")
    _seed(store)
    links = [RedisLink(REDIS_URL, prefix=prefix) for _ in range(3)]
    posted: list[str] = []
    replicas = [_digest(store, posted, leases=choose_leases(store, link)) for link in links]
    assert all(isinstance(d.leases, RedisLeases) for d in replicas)
    results = await asyncio.gather(*(d.once() for d in replicas))
    assert sorted(results) == [False, False, True] and len(posted) == 1
    assert await _digest(store, posted, leases=RedisLeases(links[0])).once() is False and len(posted) == 1
    for link in links:
        assert link.degraded() is None
        await link.aclose()
    store.close()


async def test_a_failed_digest_gives_its_period_back_at_once(tmp_path: Path) -> None:
    """Another replica need not wait for the lease to expire: the failed one releases it."""
    store = FeedbackStore(tmp_path / "f.sqlite3")
    _seed(store)
    leases = SqlLeases(store)

    async def down(text: str) -> None:
        raise ConnectionError("Slack is down")

    failing = Digest(store=store, leases=leases, embed=toy_embed, post=down, style=SLACK, clock=lambda: NOW)
    with pytest.raises(ConnectionError):
        await failing.once()
    other = FeedbackStore(tmp_path / "f.sqlite3")  # another replica on the same database
    posted: list[str] = []
    assert await _digest(other, posted, leases=SqlLeases(other)).once() is True and len(posted) == 1
    other.close()
    store.close()


async def test_a_digest_that_could_not_be_posted_is_tried_again(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "f.sqlite3")
    _seed(store)
    attempts: list[str] = []

    async def flaky(text: str) -> None:
        attempts.append(text)
        if len(attempts) == 1:
            raise ConnectionError("Slack is down")

    leases = SqlLeases(store)
    digest = Digest(
        store=store,
        leases=leases,
        embed=toy_embed,
        post=flaky,
        style=SLACK,
        clock=lambda: NOW,
        check_every_s=0.01,
    )
    task = asyncio.create_task(digest.run())
    for _ in range(200):
        if len(attempts) >= 2:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)
    task.cancel()
    assert len(attempts) == 2 and attempts[0] == attempts[1]  # failed once, posted on the next check, once
    assert await leases.acquire(last_complete("weekly", NOW).key, 60) is None  # and marked done
    store.close()


async def test_an_empty_period_posts_nothing(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "f.sqlite3")
    posted: list[str] = []
    leases = SqlLeases(store)
    assert await _digest(store, posted, leases=leases).once() is False and posted == []
    assert await leases.acquire(last_complete("weekly", NOW).key, 60) is None  # done: not looked at again
    store.close()


@pytest.mark.parametrize(
    ("style", "bad"),
    [
        (DISCORD, ("@everyone", "@here", "<@123>", "<@&456>", "](https://evil")),
        (SLACK, ("<!channel>", "<!here>", "<@U0123>", "@everyone", "<https://evil")),
    ],
)
def test_nothing_in_a_digest_can_ping_or_hide_a_link(style: Style, bad: tuple[str, ...]) -> None:
    rows = []
    store = FeedbackStore()
    _seed(store)
    rows = store.between(_utc(2026, 11, 9), _utc(2026, 11, 16))
    report = build_report(rows, embed=toy_embed, articles={}, since_days=7)
    text = digest_text(report, last_complete("weekly", NOW), style, admin_url=None)
    assert "pancake" in text
    for ping in bad:
        assert ping not in text, ping


async def test_the_discord_digest_reaches_the_channel_without_mentions(
    start_bot: StartBot,  # noqa: F811
    fake_discord: FakeDiscord,  # noqa: F811
) -> None:
    client = await start_bot()
    store = FeedbackStore()
    _seed(store)
    posted: list[str] = []

    async def post(text: str) -> None:
        posted.append(text)
        await client.post(str(fake_discord.channel_id), text)

    digest = Digest(
        store=store, leases=MemoryLeases(), embed=toy_embed, post=post, style=DISCORD, clock=lambda: NOW
    )
    assert await digest.once() is True
    sent = bot_posts(fake_discord, fake_discord.channel_id)
    assert [b["content"] for b in sent] == posted and sent[0]["allowed_mentions"] == {"parse": []}
    assert sent[0]["content"].startswith("**AI-safety bot digest: the week of 09 Nov 2026**")
    store.close()


async def test_a_running_bot_posts_yesterdays_digest_in_the_slack_channel_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, model_env: dict[str, str]
) -> None:
    import time

    from tests.fake_slack import FakeSlack
    from tests.test_run_redis import replica

    for k, v in model_env.items():
        monkeypatch.setenv(k, v)
    yesterday = time.time() // 86400 * 86400 - 43200
    db = tmp_path / "answers.sqlite3"
    store = FeedbackStore(db)
    for q, mode, community in (
        ("what is the orthogonality thesis?", "llm", "slack:T0001"),
        ("<!channel> best pancake recipe", "abstain", "slack:T0001"),
        # Another workspace's question and a direct message: never in this workspace's channel.
        ("another workspace asks about corrigibility", "abstain", "slack:T0999"),
        ("a direct message about mesa-optimizers", "abstain", "dm"),
    ):
        answer_id = store.record_answer(
            platform="slack",
            community=community,
            place="c",
            asker="u",
            question=q,
            answer=Answer("x", (), mode),  # type: ignore[arg-type]
        )
        with store._transaction() as tx:
            store._execute(tx, "UPDATE answers SET created = ? WHERE id = ?", (yesterday, answer_id))
    store.close()
    fake = FakeSlack()
    await fake.start()
    env = {"DIGEST_CHANNEL": "CMODS01", "DIGEST_EVERY": "daily", "FEEDBACK_DB": str(db)}
    try:
        for run in ("first", "restarted"):
            async with replica(monkeypatch, tmp_path / run, env, fake):
                await fake.wait_for(lambda: len(fake.messages.get("CMODS01", [])) >= 1)
                await asyncio.sleep(1.5)  # time for a second digest to show up, if there were one
        digests = fake.messages["CMODS01"]
        assert len(digests) == 1  # the restarted bot found yesterday's digest already posted
        text = digests[0]["text"]
        assert text.startswith("*AI-safety bot digest: ") and "2 questions: 1 answered" in text
        assert "<!channel>" not in text and "&lt;!channel&gt; best pancake recipe" in text
        assert "corrigibility" not in text and "direct message" not in text
    finally:
        await fake.stop()


def test_a_digest_channel_or_handoff_role_needs_its_platform(monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.config import load_settings
    from bot.errors import ConfigError

    for k in ("DISCORD_TOKEN", "SLACK_BOT_TOKEN", "DIGEST_CHANNEL", "HANDOFF_ROLE"):
        monkeypatch.delenv(k, raising=False)
    wrong_platform = {
        "DIGEST_CHANNEL: names a Discord channel, but DISCORD_TOKEN is not set": {
            "digest_channel": "discord:123"
        },
        "DIGEST_CHANNEL: names a Slack channel, but SLACK_BOT_TOKEN is not set": {
            "digest_channel": "slack:C0123"
        },
        "HANDOFF_ROLE: names a Slack user group, but SLACK_BOT_TOKEN is not set": {
            "handoff_role": "slack:S0MODS"
        },
        "HANDOFF_ROLE: names a Discord role, but DISCORD_TOKEN is not set": {"handoff_role": "discord:777"},
        # Nothing guesses a platform from the shape of an id.
        "DIGEST_CHANNEL: write discord: or slack: in front of the id": {"digest_channel": "123456789"},
        "DIGEST_CHANNEL: Discord and Slack are both set up: write discord: or slack:": {
            "digest_channel": "C0123",
            "discord_token": "t",
            "slack_bot_token": "xoxb-t",
            "slack_app_token": "xapp-t",
        },
    }
    for message, settings in wrong_platform.items():
        with pytest.raises(ConfigError, match=re.escape(message)):
            load_settings(**settings)
    with pytest.raises(ConfigError, match="DIGEST_EVERY"):
        load_settings(digest_every="hourly")
    assert load_settings(digest_channel="123", discord_token="t").digest_every == "weekly"


def _library(store: FeedbackStore) -> None:
    """Last week's library syncs: two new aisafety.info articles (one with pings and brackets in its title),
    one new article from elsewhere, one added and removed again, one changed, one removed; and a change
    this week (not in it)."""
    from retrieval.documents import ArticleChange as C

    store.record_library_sync(
        "changed",
        [
            C(
                "aisafety.info:9001",
                "What is new?",
                "https://aisafety.info/questions/9001/What-is-new",
                "added",
            ),
            C(
                "aisafety.info:9002",
                f"Draft {PINGS}",
                "https://aisafety.info/questions/9002/Draft>x",
                "added",
            ),
            C("atlas:7", "A chapter", "https://ai-safety-atlas.com/7", "added"),
            C("aisafety.info:9003", "Gone again", "https://aisafety.info/questions/9003/Gone", "added"),
            C("aisafety.info:6568", "Orthogonality", "https://aisafety.info/questions/6568/O", "changed"),
        ],
        articles=500,
        when=_utc(2026, 11, 10, 6),
    )
    store.record_library_sync(
        "changed",
        [
            C("aisafety.info:9003", "Gone again", "https://aisafety.info/questions/9003/Gone", "removed"),
            C("aisafety.info:1", "Retired", "https://aisafety.info/questions/1/Retired", "removed"),
        ],
        articles=499,
        when=_utc(2026, 11, 13, 6),
    )
    store.record_library_sync(
        "changed",
        [C("aisafety.info:9100", "This week", "https://aisafety.info/questions/9100/T", "added")],
        articles=500,
        when=_utc(2026, 11, 17, 6),
    )


async def test_a_period_with_library_changes_and_no_questions_still_posts(
    open_store: Callable[..., FeedbackStore],  # noqa: F811
) -> None:
    store = open_store()
    _library(store)
    posted: list[str] = []
    assert await _digest(store, posted, admin_url="https://bot.example.org/admin/").once() is True
    text = posted[0]
    assert text.startswith("*AI-safety bot digest: the week of 09 Nov 2026*\nNo questions were asked.")
    new = text.split("*New on aisafety.info*\n")[1].split("\n\n")[0].splitlines()
    assert new == [
        "• <https://aisafety.info/questions/9001/What-is-new|What is new?>",
        "• <https://aisafety.info/questions/9002/Draft%3Ex|Draft @\u200beveryone @\u200bhere &lt;@\u200b123&gt; "
        "&lt;@\u200b&amp;456&gt; &lt;!channel&gt; &lt;!here&gt; &lt;@\u200bU0123&gt; (free money)(https://evil.example)>",
    ]  # not the atlas chapter, not the article removed again, not this week's
    assert "Articles changed: 1, removed: 1." in text
    assert await _digest(open_store(), posted).once() is False and len(posted) == 1  # once, as ever


async def test_the_digest_lists_questions_and_new_articles_together(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "f.sqlite3")
    _seed(store)
    _library(store)
    posted: list[str] = []

    async def post(text: str) -> None:
        posted.append(text)

    digest = Digest(
        store=store, leases=MemoryLeases(), embed=toy_embed, post=post, style=DISCORD, clock=lambda: NOW
    )
    assert await digest.once() is True
    text = posted[0]
    assert "3 questions: 2 answered" in text and "**New on aisafety.info**" in text
    assert "• [What is new?](<https://aisafety.info/questions/9001/What-is-new>)" in text
    assert "](https://evil" not in text and "@everyone" not in text and "<@123>" not in text
    store.close()


def test_many_new_articles_are_cut_short() -> None:
    from service.digest import TOP_NEW, library_news

    changes = [
        {
            "time": 1.0,
            "id": f"aisafety.info:{n}",
            "title": f"A{n}",
            "url": f"https://aisafety.info/q/{n}",
            "change": "added",
        }
        for n in range(TOP_NEW + 5)
    ]
    report = build_report([], embed=toy_embed, articles={}, since_days=7)
    text = digest_text(
        report, last_complete("weekly", NOW), SLACK, admin_url=None, library=library_news(changes)
    )
    assert text.count("• <https://aisafety.info/q/") == TOP_NEW and "…and 5 more." in text
