"""Slack installs by OAuth, end to end: the real slack-bolt OAuth flow (/slack/install, then Slack's
redirect to /slack/oauth_redirect) against the fake Slack Web API on 127.0.0.1, the installations and
OAuth states in the answers database (SQLite and PostgreSQL), two workspaces each answered with its own
token, token rotation, and an uninstall that forgets the workspace."""

from __future__ import annotations

import asyncio
import html
import json
import re
import time
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import yaml

from adapters.slack.app import USAGE, SlackBot
from adapters.slack.oauth import BOT_SCOPES, REDIRECT_PATH, OAuth, from_json
from bot.config import load_settings
from bot.conversation import Conversation
from bot.core import AnswerCore
from bot.errors import ConfigError
from bot.observability import Observer
from bot.platform import PlatformOptions
from retrieval.embeddings import FastEmbedder
from retrieval.index import VectorStore
from retrieval.search import HybridRetriever
from service.anthropic_llm import AnthropicLLM
from service.feedback import FeedbackStore
from service.health import serve
from service.metrics import Metrics
from service.slack_installations import SqlInstallations
from tests.conftest import ROOT
from tests.fake_anthropic import FakeAnthropic, Reply
from tests.fake_slack import CLIENT_ID, CLIENT_SECRET, FakeSlack, Grant, signed_headers
from tests.qdrant_server import free_port
from tests.test_feedback_backends import pg_schema  # noqa: F401  (the fixture, for the PostgreSQL runs)

SECRET = "test-signing-secret"
COOKIE = "slack-app-oauth-state"
A = Grant("TAAAA0001", "Alignment Readers", "UBOTA0001")
B = Grant("TBBBB0002", "Safety Circle", "UBOTB0002")


class Installed:
    """One bot installed by OAuth, served as the runner serves it, and a browser to install it with."""

    def __init__(
        self,
        fake: FakeSlack,
        bot: SlackBot,
        store: FeedbackStore,
        rows: SqlInstallations,
        base: str,
        session: aiohttp.ClientSession,
        metrics: Metrics,
    ):
        self.fake, self.bot, self.store, self.rows = fake, bot, store, rows
        self.base, self.session, self.metrics = base, session, metrics
        self._events = 0

    async def install_page(self) -> tuple[dict[str, list[str]], str, str]:
        """GET /slack/install: the "Add to Slack" link's query, its address, and the state cookie."""
        async with self.session.get(f"{self.base}/slack/install") as resp:
            assert resp.status == 200
            page = await resp.text()
            cookie = resp.headers["Set-Cookie"]
        link = html.unescape(re.search(r'href="([^"]+/authorize\?[^"]+)"', page).group(1))  # type: ignore[union-attr]
        address, _, query = link.partition("?")
        return urllib.parse.parse_qs(query), address, cookie

    async def callback(self, query: dict[str, str], state_cookie: str | None) -> tuple[int, str]:
        """Slack sends the browser back to the redirect URL. Its cookie jar would not send a `Secure`
        cookie over the test's plain http: the state cookie is copied by hand, as the browser would."""
        headers = {"Cookie": f"{COOKIE}={state_cookie}"} if state_cookie is not None else {}
        url = f"{self.base}{REDIRECT_PATH}?{urllib.parse.urlencode(query)}"
        async with self.session.get(url, headers=headers) as resp:
            return resp.status, await resp.text()

    async def install(self, grant: Grant) -> None:
        link, _, cookie = await self.install_page()
        state = link["state"][0]
        assert f"{COOKIE}={state}" in cookie
        status, page = await self.callback({"code": self.fake.grant(grant), "state": state}, state)
        assert status == 200, page

    def event_body(self, team: str, bot_user: str, event: dict[str, Any]) -> bytes:
        self._events += 1
        return json.dumps(
            {
                "token": "x",
                "team_id": team,
                "api_app_id": "A0001",
                "type": "event_callback",
                "event_id": f"Ev{self._events:08d}",
                "event_time": int(time.time()),
                "event": event,
                "authorizations": [
                    {"enterprise_id": None, "team_id": team, "user_id": bot_user, "is_bot": True}
                ],
            }
        ).encode()

    async def event(self, team: str, bot_user: str, event: dict[str, Any]) -> int:
        body = self.event_body(team, bot_user, event)
        headers = signed_headers(SECRET, body)
        async with self.session.post(f"{self.base}/slack/events", data=body, headers=headers) as resp:
            return resp.status

    async def mention(self, grant: Grant, channel: str, text: str) -> dict[str, Any]:
        msg = self.fake.user_message(channel, f"<@{grant.bot_user_id}> {text}")
        msg["team"] = grant.team_id
        assert await self.event(grant.team_id, grant.bot_user_id, dict(msg, type="app_mention")) == 200
        return msg

    def answered(self, channel: str) -> list[dict[str, Any]]:
        return [m for m in self.fake.messages.get(channel, []) if m.get("blocks")]

    async def installation(self, team: str) -> dict[str, Any] | None:
        text = await self.rows.find("", team)
        return json.loads(text) if text is not None else None

    def refused(self, reason: str) -> float:
        value = self.metrics.registry.get_sample_value("aisafety_rejected_requests_total", {"reason": reason})
        return float(value or 0.0)


Start = Callable[..., Awaitable[Installed]]


async def stored_communities(h: Installed, wait_for: int = 0) -> list[str]:
    """The communities of the stored answers (answers are stored just after they are posted: waited
    for until there are `wait_for`)."""
    for _ in range(200):
        found = sorted(r.community for r in await h.store.run(h.store.since, 1))
        if len(found) >= wait_for:
            return found
        await asyncio.sleep(0.05)
    return found


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    """Where the answers (and installations) are kept: an SQLite file, or a PostgreSQL schema."""
    if request.param == "postgres":
        return {"database_url": request.getfixturevalue("pg_schema")}
    return {"path": tmp_path / "feedback.sqlite3"}


@pytest_asyncio.fixture
async def start(
    fake_slack: FakeSlack,
    slice_store: VectorStore,
    embedder: FastEmbedder,
    llm_server: FakeAnthropic,
    database: dict[str, Any],
) -> AsyncIterator[Start]:
    opened: list[tuple[SlackBot, Any, FeedbackStore]] = []
    session = aiohttp.ClientSession()

    async def start_bot(**oauth_options: Any) -> Installed:
        store = FeedbackStore(**database)
        core = AnswerCore(
            retriever=HybridRetriever(store=slice_store, embedder=embedder),
            llm=AnthropicLLM(
                api_key="k", model="claude-test", base_url=llm_server.url, timeout_s=5, max_retries=1
            ),
        )
        port = free_port()
        base = f"http://127.0.0.1:{port}"  # PUBLIC_URL
        rows = SqlInstallations(store)
        oauth = OAuth(
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            redirect_uri=f"{base}{REDIRECT_PATH}",
            rows=rows,
            authorization_url=f"{fake_slack.url}/oauth/v2/authorize",
            **oauth_options,
        )
        options = PlatformOptions(edit_interval_s=0.2, rate_limit_per_minute=0)
        bot = SlackBot(
            conversation=Conversation.in_process(
                "slack", core=core, store=store, options=options, usage=USAGE
            ),
            signing_secret=SECRET,
            base_url=f"{fake_slack.url}/api/",
            oauth=oauth,
        )
        await bot.identify()
        metrics = Metrics()
        core.observer = Observer(metrics)
        runner = await serve(bot.web_app(), "127.0.0.1", port, metrics=metrics)
        opened.append((bot, runner, store))
        return Installed(fake_slack, bot, store, rows, base, session, metrics)

    yield start_bot
    for bot, runner, store in opened:
        await bot.close()
        await runner.cleanup()
        store.close()
    await session.close()


async def test_install_page_links_to_slacks_authorize_page_with_a_state(start: Start) -> None:
    h = await start()
    assert not h.fake.named("auth.test")  # no workspace yet: nothing to ask at start-up
    assert await h.bot.connected()  # and ready, waiting for installs
    link, address, cookie = await h.install_page()
    assert address == f"{h.fake.url}/oauth/v2/authorize"
    assert link["client_id"] == [CLIENT_ID]
    assert link["scope"][0].split(",") == list(BOT_SCOPES)
    assert link["redirect_uri"] == [f"{h.base}{REDIRECT_PATH}"]
    state = link["state"][0]
    assert len(state) >= 20 and "Secure" in cookie and "HttpOnly" in cookie
    second, _, _ = await h.install_page()
    assert second["state"][0] != state  # one state per visit


async def test_two_workspaces_install_and_each_is_answered_with_its_own_token(
    start: Start, llm_server: FakeAnthropic
) -> None:
    h = await start()
    await h.install(A)
    await h.install(B)
    exchange = h.fake.named("oauth.v2.access")
    assert [c.client for c in exchange] == [CLIENT_ID, CLIENT_ID]
    assert all(c.args["redirect_uri"] == f"{h.base}{REDIRECT_PATH}" for c in exchange)
    stored_a, stored_b = await h.installation(A.team_id), await h.installation(B.team_id)
    assert stored_a is not None and stored_b is not None
    assert stored_a["bot_user_id"] == A.bot_user_id and stored_b["bot_user_id"] == B.bot_user_id
    token_a, token_b = stored_a["bot_token"], stored_b["bot_token"]
    assert {h.fake.tokens[token_a].team_id, h.fake.tokens[token_b].team_id} == {A.team_id, B.team_id}

    llm_server.script += [
        Reply(text="Corrigibility is accepting correction [1]."),
        Reply(text="Goals vary [1]."),
    ]
    await h.mention(A, "CAAAA0001", "what is corrigibility?")
    await h.fake.wait_for(lambda: h.answered("CAAAA0001"))
    await h.mention(B, "CBBBB0002", "what is the orthogonality thesis?")
    await h.fake.wait_for(lambda: h.answered("CBBBB0002"))

    def tokens_in(channel: str) -> set[str]:
        return {
            c.token for c in h.fake.calls if c.method.startswith("chat.") and c.args.get("channel") == channel
        }

    assert tokens_in("CAAAA0001") == {token_a}  # placeholder, streamed updates and the final answer
    assert tokens_in("CBBBB0002") == {token_b}
    # Each workspace's mention of its own bot user is taken out of the question.
    asked = [json.dumps(r.body) for r in llm_server.requests]
    assert not any(A.bot_user_id in r or B.bot_user_id in r for r in asked)
    assert await stored_communities(h, 2) == [f"slack:{A.team_id}", f"slack:{B.team_id}"]


async def test_an_unknown_used_or_expired_state_is_refused(start: Start) -> None:
    h = await start()
    link, _, _ = await h.install_page()
    state = link["state"][0]
    # A state the bot never issued (with a cookie that matches it, as a forger would send).
    status, _ = await h.callback({"code": h.fake.grant(A), "state": "forged-state"}, "forged-state")
    assert status == 401
    # The browser's cookie must match the state: another browser's redirect is refused.
    status, _ = await h.callback({"code": h.fake.grant(A), "state": state}, None)
    assert status == 400
    # An expired state.
    await h.rows.add_state("old-state", time.time() - 1)
    status, _ = await h.callback({"code": h.fake.grant(A), "state": "old-state"}, "old-state")
    assert status == 401
    assert not h.fake.named("oauth.v2.access") and await h.installation(A.team_id) is None
    # The real one works once, and only once.
    status, _ = await h.callback({"code": h.fake.grant(A), "state": state}, state)
    assert status == 200 and await h.installation(A.team_id) is not None
    status, _ = await h.callback({"code": h.fake.grant(B), "state": state}, state)
    assert status == 401 and await h.installation(B.team_id) is None


async def test_an_expiring_rotating_token_is_refreshed_stored_and_used(
    start: Start, llm_server: FakeAnthropic
) -> None:
    h = await start()
    rotating = Grant("TROTA0003", "Rotating Readers", "UBOTR0003", rotating=True, expires_in=600)
    await h.install(rotating)
    first = await h.installation(rotating.team_id)
    assert first is not None and first["bot_refresh_token"] and first["bot_token_expires_at"]
    # Ten minutes left: within the two hours before expiry in which bolt refreshes it.
    llm_server.script.append(Reply(text="Corrigibility is accepting correction [1]."))
    await h.mention(rotating, "CROTA0003", "what is corrigibility?")
    await h.fake.wait_for(lambda: h.answered("CROTA0003"))
    refreshed = [c for c in h.fake.named("oauth.v2.access") if c.args.get("grant_type") == "refresh_token"]
    assert [c.args["refresh_token"] for c in refreshed] == [first["bot_refresh_token"]]
    stored = await h.installation(rotating.team_id)
    assert stored is not None and stored["bot_token"] != first["bot_token"]
    assert stored["bot_refresh_token"] != first["bot_refresh_token"]
    assert h.fake.tokens[stored["bot_token"]] is rotating
    posted = {c.token for c in h.fake.calls if c.args.get("channel") == "CROTA0003"}
    assert posted == {stored["bot_token"]}  # the new token answers, the old one no more
    assert from_json(json.dumps(stored)).bot_token == stored["bot_token"]


async def test_app_uninstalled_forgets_that_workspace_only(start: Start, llm_server: FakeAnthropic) -> None:
    h = await start()
    await h.install(A)
    await h.install(B)
    llm_server.script += [
        Reply(text="Corrigibility is accepting correction [1]."),
        Reply(text="Goals vary [1]."),
    ]
    await h.mention(A, "CAAAA0001", "what is corrigibility?")
    await h.mention(B, "CBBBB0002", "what is the orthogonality thesis?")

    assert len(await stored_communities(h, 2)) == 2
    assert await h.event(A.team_id, A.bot_user_id, {"type": "app_uninstalled", "event_ts": "1"}) == 200
    for _ in range(200):
        if await h.installation(A.team_id) is None and len(await stored_communities(h)) == 1:
            break
        await asyncio.sleep(0.02)
    assert await h.installation(A.team_id) is None
    assert await stored_communities(h) == [f"slack:{B.team_id}"]
    assert await h.installation(B.team_id) is not None

    # Workspace A's events are no longer answered (acknowledged and dropped, counted); B's still are.
    calls = len(h.fake.calls)
    before = h.refused("wrong_team")
    msg = h.fake.user_message("CAAAA0001", f"<@{A.bot_user_id}> still there?")
    assert await h.event(A.team_id, A.bot_user_id, dict(msg, type="app_mention")) == 200
    assert h.refused("wrong_team") == before + 1 and len(h.fake.calls) == calls
    llm_server.script.append(Reply(text="Still here [1]."))
    await h.mention(B, "CBBBB0002", "and inner alignment?")
    await h.fake.wait_for(lambda: len(h.answered("CBBBB0002")) == 2)


async def test_tokens_revoked_removes_the_installation(start: Start) -> None:
    h = await start()
    await h.install(B)
    revoked = {"type": "tokens_revoked", "tokens": {"oauth": [], "bot": [B.bot_user_id]}, "event_ts": "1"}
    assert await h.event(B.team_id, B.bot_user_id, revoked) == 200
    for _ in range(200):
        if await h.installation(B.team_id) is None:
            break
        await asyncio.sleep(0.02)
    assert await h.installation(B.team_id) is None


async def test_a_signed_event_from_a_workspace_that_never_installed_is_dropped(start: Start) -> None:
    h = await start()
    await h.install(A)
    calls = len(h.fake.calls)
    msg = h.fake.user_message("CZZZZ0009", "<@UBOTZ0009> hello?")
    assert await h.event("TZZZZ0009", "UBOTZ0009", dict(msg, type="app_mention")) == 200
    assert h.refused("wrong_team") == 1.0
    assert len(h.fake.calls) == calls  # no Web API call at all


# -- settings --------------------------------------------------------------------------------------
OAUTH = {
    "slack_client_id": CLIENT_ID,
    "slack_client_secret": CLIENT_SECRET,
    "slack_signing_secret": SECRET,
    "public_url": "https://bot.example.org",
}


@pytest.fixture
def no_slack_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in (
        "SLACK_BOT_TOKEN",
        "SLACK_APP_TOKEN",
        "SLACK_SIGNING_SECRET",
        "SLACK_CLIENT_ID",
        "SLACK_CLIENT_SECRET",
        "PUBLIC_URL",
        "ADMIN_URL",
        "DISCORD_TOKEN",
        "DIGEST_CHANNEL",
        "HANDOFF_ROLE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env


def one_line_error(**settings: object) -> str:
    with pytest.raises(ConfigError) as err:
        load_settings(**settings)
    message = str(err.value)
    assert "\n" not in message and message.endswith(" (in the environment or .env)"), message
    return message.removesuffix(" (in the environment or .env)")


@pytest.mark.usefixtures("no_slack_env")
def test_oauth_settings_switch_slack_on_in_http_mode() -> None:
    s = load_settings(**OAUTH, slack_http_port=3100)
    assert s.slack_oauth and s.platforms == ["slack"]
    assert s.listen == ("0.0.0.0", 3100, "SLACK_HTTP_PORT")  # where healthcheck asks, too
    assert CLIENT_SECRET in s.secrets()
    assert load_settings(**OAUTH, handoff_role="S0MODS").handoff_role == "slack:S0MODS"
    assert not load_settings(slack_bot_token="xoxb-1", slack_signing_secret="s").slack_oauth


@pytest.mark.usefixtures("no_slack_env")
@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        (
            {"slack_client_id": CLIENT_ID},
            "SLACK_CLIENT_ID is set but SLACK_CLIENT_SECRET is not: set both",
        ),
        (
            {"slack_client_secret": CLIENT_SECRET},
            "SLACK_CLIENT_SECRET is set but SLACK_CLIENT_ID is not: set both",
        ),
        ({**OAUTH, "public_url": None}, "SLACK_CLIENT_ID is set but PUBLIC_URL is not"),
        ({**OAUTH, "slack_signing_secret": None}, "SLACK_CLIENT_ID is set but SLACK_SIGNING_SECRET is not"),
        ({**OAUTH, "slack_app_token": "xapp-1"}, "installs by OAuth need HTTP mode; unset SLACK_APP_TOKEN"),
        ({**OAUTH, "slack_bot_token": "xoxb-1"}, "SLACK_BOT_TOKEN and SLACK_CLIENT_ID are both set"),
    ],
)
def test_oauth_setting_mistakes_are_one_line_each(settings: dict[str, Any], expected: str) -> None:
    message = one_line_error(**settings)
    assert expected in message and CLIENT_SECRET not in message


def test_the_manifest_asks_for_what_the_oauth_flow_asks_for() -> None:
    manifest = yaml.safe_load((ROOT / "slack-app-manifest.yml").read_text())
    assert manifest["oauth_config"]["scopes"]["bot"] == list(BOT_SCOPES)
    assert {"app_uninstalled", "tokens_revoked"} <= set(
        manifest["settings"]["event_subscriptions"]["bot_events"]
    )
    assert any(url.endswith(REDIRECT_PATH) for url in manifest["oauth_config"]["redirect_urls"])


@pytest.mark.usefixtures("no_slack_env")
async def test_the_runner_makes_an_oauth_slack_that_starts_without_any_install(fake_slack: FakeSlack) -> None:
    """The runner's platform selection: OAuth settings make Slack in HTTP mode, its installations in the
    answers database, the install and redirect routes served beside /slack/events, started (no
    auth.test: no workspace yet) and ready."""
    from aisafety_bot import platforms
    from tests.test_platform import _services

    settings = load_settings(**OAUTH, slack_api_url=f"{fake_slack.url}/api/")
    services = _services()
    assert platforms.enabled(settings) == ["slack"]
    platform = platforms.make_platform("slack", settings, services)
    try:
        await platform.start()
        assert await platform.ready() and not fake_slack.named("auth.test")
        app = platform.http_app()
        assert app is not None
        paths = {r.resource.canonical for r in app.router.routes() if r.resource is not None}
        assert {"/slack/events", "/slack/install", REDIRECT_PATH} <= paths
        bot = platform.bot  # type: ignore[attr-defined]
        assert bot.oauth.redirect_uri == "https://bot.example.org/slack/oauth_redirect"
        assert isinstance(bot.oauth.rows, SqlInstallations) and bot.oauth.rows.store is services.store
    finally:
        await platform.close()
        services.store.close()  # type: ignore[attr-defined]


async def test_the_digest_is_posted_with_its_workspaces_token(start: Start) -> None:
    """Outside a request (the digest, an answer resumed after a restart) the workspace's token is looked
    up by its community; a community with no installation gets nothing posted."""
    h = await start()
    await h.install(A)
    await h.install(B)
    stored_b = await h.installation(B.team_id)
    assert stored_b is not None
    await h.bot.post("CBBBB0002", "This week's questions", community=f"slack:{B.team_id}")
    assert h.fake.tokens_used("chat.postMessage") == [stored_b["bot_token"]]
    await h.bot.post("CZZZZ0009", "This week's questions", community="slack:TZZZZ0009")
    await h.bot.post("CZZZZ0009", "This week's questions")  # no community: no token to post with
    assert len(h.fake.named("chat.postMessage")) == 1
