"""Each community's own settings: what they mean beside the environment's, kept in the answers database
(SQLite and PostgreSQL) behind a cache that follows another replica's change within seconds, and applied
by the conversation in that community only: allowed channels, rate limit, storing, token budget,
retention, the hand-off role and the digest."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from aisafety_bot.runner import digests_once, follow_owners, purge_old
from bot.community import EVERY, CommunitySettings, Deployment, MemorySettings, effective
from bot.config import load_settings
from bot.conversation import Conversation, Services
from bot.models import Answer, Question
from bot.observability import Observer
from bot.platform import HANDOFF_ASKED, HANDOFF_OFF, SLOW_DOWN, PlatformOptions, Style
from bot.ratelimit import MemoryBudgets, MemoryLeases, RateLimiter
from service.community_settings import SqlSettings
from service.feedback import FeedbackStore
from tests.test_feedback_backends import pg_schema  # noqa: F401  (a fixture)

A, B = "discord:111", "discord:222"
STYLE = Style(clean=lambda s: s, bold=lambda s: f"*{s}*", link=lambda label, url: f"{label} <{url}>")


# -- what a setting means ----------------------------------------------------------------------------
def test_numbers_are_ceilings_a_community_may_tighten_but_never_loosen() -> None:
    deployment = Deployment(rate_limit_per_minute=5, retention_days=30, daily_token_budget=10_000)
    tighter = effective(
        A, CommunitySettings(rate_limit_per_minute=2, retention_days=7, daily_token_budget=500), deployment
    )
    assert (tighter.rate_limit_per_minute, tighter.retention_days, tighter.daily_token_budget) == (2, 7, 500)
    looser = effective(
        A, CommunitySettings(rate_limit_per_minute=50, retention_days=365, daily_token_budget=0), deployment
    )
    assert (looser.rate_limit_per_minute, looser.retention_days, looser.daily_token_budget) == (5, 30, 10_000)
    # Where the deployment has no limit (0), a community may still set one.
    unlimited = Deployment(rate_limit_per_minute=0, daily_token_budget=0)
    assert effective(A, CommunitySettings(rate_limit_per_minute=3), unlimited).rate_limit_per_minute == 3
    assert effective(A, CommunitySettings(rate_limit_per_minute=0), unlimited).rate_limit_per_minute == 0


def test_store_questions_false_in_the_environment_stays_false() -> None:
    assert (
        effective(
            A, CommunitySettings(store_questions=True), Deployment(store_questions=False)
        ).store_questions
        is False
    )
    assert effective(A, CommunitySettings(store_questions=False), Deployment()).store_questions is False
    assert effective(A, None, Deployment()).store_questions is True


def test_the_environments_ids_apply_only_in_the_community_that_owns_them() -> None:
    deployment = Deployment(
        allowed_channels=frozenset({"discord:1", "discord:2", "slack:C9"}),
        handoff="discord:777",
        handoff_community=A,
        digest_channel="discord:1",
        digest_community=A,
        channel_communities={"discord:1": A, "discord:2": A, "slack:C9": "slack:T1"},
    )
    mine, other = effective(A, None, deployment), effective(B, None, deployment)
    assert mine.allowed_channels == {"1", "2"} and other.allowed_channels == frozenset()
    assert (mine.handoff, mine.digest_channel) == ("777", "1")
    assert (other.handoff, other.digest_channel) == (None, None)
    # A community's own choices win in it, and only in it.
    own = CommunitySettings(allowed_channels=frozenset({"5"}), handoff="888", digest_channel="5")
    chosen = effective(B, own, deployment)
    assert (chosen.allowed_channels, chosen.handoff, chosen.digest_channel) == ({"5"}, "888", "5")


def test_an_id_whose_owner_is_unknown_is_safe() -> None:
    """HANDOFF_ROLE and DIGEST_CHANNEL not (yet) found apply nowhere; an ALLOWED_CHANNELS channel not
    found keeps limiting every community of its platform (as the one list did), never another platform's."""
    deployment = Deployment(
        allowed_channels=frozenset({"discord:1", "slack:C9"}),
        handoff="discord:777",
        digest_channel="discord:1",
    )
    applies = effective(A, None, deployment)
    assert applies.handoff is None and applies.digest_channel is None
    assert applies.allowed_channels == {"1"}
    assert effective("slack:T1", None, deployment).allowed_channels == {"C9"}
    # A deployment made from one platform's options (one community's bot, tests): its role applies.
    assert effective(B, None, Deployment(handoff="discord:777", handoff_community=EVERY)).handoff == "777"


def test_settings_deployment_names_each_ids_platform() -> None:
    settings = load_settings(
        discord_token="x",
        allowed_channels="123,456",
        handoff_role="discord:777",
        digest_channel="discord:123",
    )
    deployment = settings.deployment(handoff_community=A)
    assert deployment.allowed_channels == {"discord:123", "discord:456"}
    assert (deployment.handoff, deployment.handoff_community, deployment.digest_community) == (
        "discord:777",
        A,
        None,
    )


# -- kept in the answers database, followed by every replica -------------------------------------------
@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], FeedbackStore]]:
    """Stores on one database (several: several replicas)."""
    opened: list[FeedbackStore] = []
    url = request.getfixturevalue("pg_schema") if request.param == "postgres" else None

    def make() -> FeedbackStore:
        store = FeedbackStore(database_url=url) if url else FeedbackStore(tmp_path / "f.sqlite3")
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


async def test_a_change_in_one_replica_reaches_the_other_within_refresh_s(
    database: Callable[[], FeedbackStore],
) -> None:
    one, two = SqlSettings(database(), refresh_s=0.2), SqlSettings(database(), refresh_s=0.2)
    assert await two.get(A) == CommunitySettings()  # read (and cached) before the change
    chosen = CommunitySettings(rate_limit_per_minute=2, handoff="777", allowed_channels=frozenset({"5"}))
    await one.set(A, chosen)
    assert await one.get(A) == chosen  # at once where it was made
    changed_at = time.monotonic()
    while await two.get(A) != chosen:
        assert time.monotonic() - changed_at < 2.0, "the other replica did not see the change"
        await asyncio.sleep(0.05)
    # Another community is untouched, in both replicas.
    assert await one.get(B) == CommunitySettings() and await two.get(B) == CommunitySettings()
    # A community forgotten in one replica is forgotten by the other (a delete, not an update).
    await one.set(B, CommunitySettings(retention_days=7))
    await one.forget(A)
    forgotten_at = time.monotonic()
    while await two.get(A) != CommunitySettings() or await two.get(B) == CommunitySettings():
        assert time.monotonic() - forgotten_at < 2.0
        await asyncio.sleep(0.05)
    assert set(await two.all()) == {B}
    # A third replica started now reads everything at once.
    three = SqlSettings(database())
    await three.load()
    assert await three.get(B) == CommunitySettings(retention_days=7)
    for settings in (one, two, three):
        await settings.aclose()


async def test_a_writer_whose_clock_runs_behind_is_still_seen(database: Callable[[], FeedbackStore]) -> None:
    one, two = SqlSettings(database(), refresh_s=0.0), SqlSettings(database(), refresh_s=0.0)
    await one.set(A, CommunitySettings(rate_limit_per_minute=1))
    assert (await two.get(A)).rate_limit_per_minute == 1
    real = time.time
    try:
        time.time = lambda: real() - 3600  # type: ignore[assignment]  # this replica's clock is an hour late
        await one.set(B, CommunitySettings(rate_limit_per_minute=2))
    finally:
        time.time = real  # type: ignore[assignment]
    assert (await two.get(B)).rate_limit_per_minute == 2
    await one.aclose()
    await two.aclose()


async def test_a_database_outage_never_holds_an_answer(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "f.sqlite3", timeout_s=5)
    settings = SqlSettings(store, refresh_s=0.0, wait_s=0.2)
    await settings.set(A, CommunitySettings(rate_limit_per_minute=1))
    with store._locked():  # the database hangs: every call waits for its time-out
        started = time.monotonic()
        for _ in range(5):
            assert (await settings.get(A)).rate_limit_per_minute == 1  # the cache answers
        assert time.monotonic() - started < 1.0
    await settings.aclose()
    store.close()


# -- the conversation applies them in their community only -------------------------------------------
class Core:
    """Answers with 100 tokens of the model, unless the answer's budget is spent: then from the articles."""

    def __init__(self) -> None:
        self.budget = None
        self.observer = Observer()

    async def stream(
        self, question: Question, *, found: list[Answer], budget: Any = None
    ) -> AsyncIterator[str | Answer]:
        budget = budget or self.budget
        if budget is not None and await budget.exhausted():
            yield Answer("from the articles", (), "retrieval-only")
            return
        if budget is not None:
            await budget.spend(100)
        yield Answer(f"answer to {question.text}", (), "llm")


class Quiet:
    def __init__(self) -> None:
        self.said: list[str] = []
        self.answers: list[Answer] = []

    async def start(self) -> None: ...

    async def preview(self, text: str) -> None: ...

    async def final(self, answer: Answer, answer_id: int | None) -> None:
        self.answers.append(answer)

    async def apologise(self, answer: Answer | None) -> None: ...

    async def say(self, text: str) -> None:
        self.said.append(text)


def _conversation(
    store: FeedbackStore, deployment: Deployment, settings: MemorySettings | SqlSettings | None = None
) -> Conversation:
    services = Services(
        core=Core(),  # type: ignore[arg-type]
        store=store,
        limiter=RateLimiter(deployment.rate_limit_per_minute),
        dedupe=SimpleNamespace(),  # type: ignore[arg-type]
        threads=SimpleNamespace(),  # type: ignore[arg-type]
        leases=MemoryLeases(),
        settings=settings or MemorySettings(),
        deployment=deployment,
        budgets=MemoryBudgets(),
    )
    return Conversation.for_platform("discord", services, options=PlatformOptions(), usage="ask me")


async def test_allowed_channels_and_rate_limit_apply_per_community(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "f.sqlite3")
    settings = MemorySettings()
    conversation = _conversation(store, Deployment(rate_limit_per_minute=3), settings)
    await settings.set(A, CommunitySettings(allowed_channels=frozenset({"10"}), rate_limit_per_minute=1))
    assert await conversation.allowed_in(A, {"10"}) and not await conversation.allowed_in(A, {"11"})
    assert await conversation.allowed_in(A, {"11"}, direct=True)
    assert await conversation.allowed_in(B, {"11"})  # B chose no list
    for community, allowed in ((A, 1), (B, 3)):
        reply = Quiet()
        for n in range(4):
            await conversation.answer(Question(f"q{n}", asker="discord:9", community=community), reply)
        assert len(reply.answers) == allowed and reply.said == [SLOW_DOWN] * (4 - allowed)
    store.close()


async def test_a_community_that_keeps_no_questions_gets_rows_without_them(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "f.sqlite3")
    settings = MemorySettings()
    conversation = _conversation(store, Deployment(rate_limit_per_minute=0), settings)
    await settings.set(A, CommunitySettings(store_questions=False))
    assert not await conversation.stores_questions(A) and await conversation.stores_questions(B)
    for community in (A, B):
        question = Question(
            f"secret of {community}", asker="discord:9", place="discord:10", community=community
        )
        await conversation.answer(question, Quiet())
    assert conversation.writer is not None and await conversation.writer.flush(5) == 0
    rows = {r.community: r for r in store.rows(only_voted=False)}
    assert (rows[A].question, rows[A].answer, rows[A].asker, rows[A].place) == ("", "", "", "")
    assert rows[A].mode == "llm"  # still counted
    assert rows[B].question == f"secret of {B}" and rows[B].answer
    store.close()


async def test_a_communitys_token_budget_is_its_own(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "f.sqlite3")
    settings = MemorySettings()
    conversation = _conversation(store, Deployment(rate_limit_per_minute=0), settings)
    await settings.set(A, CommunitySettings(daily_token_budget=150))
    modes: dict[str, list[str]] = {A: [], B: []}
    for community in (A, B):
        for n in range(3):
            reply = Quiet()
            await conversation.answer(Question(f"q{n}", asker="discord:9", community=community), reply)
            modes[community].append(reply.answers[0].mode)
    # A spent 100, then 200 (over its 150): from the articles from then on; B has no budget of its own.
    assert modes[A] == ["llm", "llm", "retrieval-only"] and modes[B] == ["llm"] * 3
    assert await conversation.budgets.spent(A) == 200
    store.close()


async def test_the_handoff_role_is_each_communitys_own(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "f.sqlite3")
    settings = MemorySettings()
    deployment = Deployment(handoff="discord:777", handoff_community=A)
    conversation = _conversation(store, deployment, settings)
    assert (await conversation.effective(A)).handoff == "777"
    assert (await conversation.effective(B)).handoff is None  # HANDOFF_ROLE is A's role, not B's
    called: list[str] = []

    async def call(role: str) -> None:
        called.append(role)

    assert await conversation.handoff(B, "discord:9", "1:2", call) == HANDOFF_OFF and called == []
    await settings.set(B, CommunitySettings(handoff="888"))
    assert (await conversation.effective(B)).handoff == "888"
    assert await conversation.handoff(B, "discord:9", "1:2", call) == HANDOFF_ASKED and called == ["888"]
    store.close()


async def test_a_shorter_retention_deletes_that_communitys_answers_only(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "f.sqlite3")
    for community in (A, B):
        answer_id = store.record_answer(
            platform="discord",
            place="p",
            asker="u",
            question=f"old {community}",
            answer=Answer("x", (), "llm"),
            community=community,
        )
        with store._transaction() as db:
            store._execute(
                db, "UPDATE answers SET created = ? WHERE id = ?", (time.time() - 10 * 86400, answer_id)
            )
    settings = MemorySettings()
    await settings.set(A, CommunitySettings(retention_days=7))
    services = SimpleNamespace(settings=settings, deployment=Deployment(retention_days=30))
    assert await purge_old(store, services) == 1  # type: ignore[arg-type]
    assert [r.community for r in store.rows(only_voted=False)] == [B]
    store.close()


# -- digests: each community's own questions, in its own channel ---------------------------------------
class Platform:
    """A platform that knows which community each channel is of, and records what it posts."""

    name = "discord"
    digest_style = STYLE

    def __init__(self, conversation: Conversation, channels: dict[str, str]):
        self.conversation = conversation
        self.channels = channels
        self.posted: list[tuple[str, str, str | None]] = []

    async def ready(self) -> bool:
        return True

    async def communities_of(self, places: Sequence[str]) -> dict[str, str]:
        return {p: self.channels[p] for p in places if p in self.channels}

    async def post(self, channel: str, text: str, *, community: str | None = None) -> None:
        self.posted.append((channel, text, community))


async def test_each_community_gets_a_digest_of_its_own_questions_in_its_own_channel(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "f.sqlite3")
    yesterday = time.time() // 86400 * 86400 - 43200
    for community, question in (
        (A, "what is corrigibility?"),
        (B, "what is mesa-optimization?"),
        ("dm", "a direct one"),
    ):
        answer_id = store.record_answer(
            platform="discord",
            place="p",
            asker="u",
            question=question,
            answer=Answer("x", (), "llm"),
            community=community,
        )
        with store._transaction() as db:
            store._execute(db, "UPDATE answers SET created = ? WHERE id = ?", (yesterday, answer_id))
    env = load_settings(discord_token="x", digest_channel="discord:1", digest_every="daily")
    settings = MemorySettings()
    conversation = _conversation(store, env.deployment(), settings)
    platform = Platform(conversation, {"discord:1": A, "discord:2": B, "discord:3": A})
    await follow_owners(env, [platform])  # type: ignore[list-item]
    assert conversation.deployment.digest_community == A
    await settings.set(B, CommunitySettings(digest_channel="2", digest_every="daily"))
    app = SimpleNamespace(
        settings=env, embedder=SimpleNamespace(embed_dense_only=lambda t: [[1.0, 0.0] for _ in t])
    )
    leases = MemoryLeases()
    assert await digests_once(app, store, leases, platform) == 2  # type: ignore[arg-type]
    posted = {channel: (text, community) for channel, text, community in platform.posted}
    assert set(posted) == {"1", "2"}
    assert "corrigibility" in posted["1"][0] and "mesa-optimization" not in posted["1"][0]
    assert "mesa-optimization" in posted["2"][0] and "corrigibility" not in posted["2"][0]
    assert all("direct one" not in text for text, _ in posted.values())
    assert (posted["1"][1], posted["2"][1]) == (A, B)
    # Once per period: another replica on the same leases posts nothing more.
    assert await digests_once(app, store, leases, platform) == 0  # type: ignore[arg-type]
    # A digest channel that is another community's is refused: B naming A's channel posts nothing.
    await settings.set(B, CommunitySettings(digest_channel="3", digest_every="daily"))
    platform.posted.clear()
    assert await digests_once(app, store, MemoryLeases(), platform) == 1  # type: ignore[arg-type]
    assert [channel for channel, _, _ in platform.posted] == ["1"]  # A's own, again; nothing in "3"
    store.close()
