"""A community's report link (`/admin/?scope=<token>`, service/report_links.py) over a real socket: the
page, every table's CSV, the JSON and "mark written" show and act on that community only; nothing of
another community reaches it (its question texts are in the same database), however the link or the
request is edited; an expired link is refused with a line saying what to do. The operator (ADMIN_TOKEN)
keeps the view of every community, with a picker, and alone can sync the library."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bot.models import Answer, Source
from retrieval.documents import ArticleChange
from service.admin import COOKIE, LINK_EXPIRED, LINK_INVALID, SCOPE_COOKIE, add_admin_routes
from service.feedback import FeedbackStore
from service.report import TABLES, stored_report
from service.report_links import link_key, scoped_url, sign
from tests.test_admin import serve, toy_embed

TOKEN = "admin-token-for-tests-0123456789"
KEY = link_key(TOKEN)
A, B = "discord:1", "discord:12"  # one a prefix of the other: still two communities
ORTHO = Source(1, "aisafety.info:6568", "What is the orthogonality thesis?", "https://aisafety.info/q/6568")
MESA = Source(1, "aisafety.info:8160", "What are mesa-optimizers?", "https://aisafety.info/q/8160")
ARTICLES = {s.id: (s.title, s.url) for s in (ORTHO, MESA)} | {"aisafety.info:1": ("Never", "https://x.org/1")}


def fill(store: FeedbackStore, community: str, word: str) -> None:
    """A community's history, every question and answer marked with `word`: something in every table."""

    def answer(question: str, reply: Answer, vote: str | None = None) -> None:
        answer_id = store.record_answer(
            platform="discord",
            place=f"discord:{word}-thread",
            asker=f"discord:{word}-member",
            question=question,
            answer=reply,
            community=community,
            place_name=f"{word}-channel",
        )
        if vote:
            store.record_vote(answer_id, voter=f"discord:{word}-voter", vote=vote, community=community)

    source = ORTHO if word == "alpha" else MESA
    for _ in range(2):
        answer(f"{word} what is the orthogonality thesis?", Answer(f"{word} answer [1]", (source,), "llm"))
    answer(
        f"{word} why would an AI resist shutdown", Answer(f"{word} no", (), "abstain", coverage="not_covered")
    )
    answer(
        f"{word} explain corrigibility please",
        Answer(f"{word} close [1]", (source,), "llm", coverage="close"),
        vote="down",
    )
    answer(f"{word} best pancake recipe", Answer("", (), "abstain", coverage="not_covered", offtopic=True))
    store.mark_written(community, f"{word} a topic written long ago", at=time.time() - 3600)


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[tuple[str, FeedbackStore, list[str]]]:
    store = FeedbackStore(tmp_path / "f.sqlite3")
    fill(store, A, "alpha")
    fill(store, B, "bravo")
    store.record_library_sync(
        "changed", [ArticleChange("aisafety.info:1", "Never", "https://x.org/1", "added")], articles=3
    )
    synced: list[str] = []

    async def report(days: float, community: str | None = None) -> dict[str, Any]:
        return stored_report(store, embed=toy_embed, articles=ARTICLES, since_days=days, community=community)

    async def mark(community: str, question: str) -> None:
        await store.run(store.mark_written, community, question)

    async def sync() -> dict[str, Any]:
        synced.append("sync")
        return {"outcome": "unchanged"}

    async def communities() -> list[str]:
        return await store.run(store.communities)

    app = web.Application()
    add_admin_routes(app, token=TOKEN, report=report, mark_written=mark, sync=sync, communities=communities)
    async for url in serve(app):
        yield url, store, synced
    store.close()


def session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def opened(http: aiohttp.ClientSession, url: str, community: str, **kw: Any) -> None:
    """Follow a community's link as its moderator's browser does: the token is kept in a cookie, and the
    page is shown without it in the address."""
    link = scoped_url(url, KEY, community, **kw)
    async with http.get(link, allow_redirects=False) as r:
        assert r.status == 303 and r.headers["Location"] == "/admin/", await r.text()
        cookie = r.headers["Set-Cookie"]
    assert (
        SCOPE_COOKIE in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie and TOKEN not in cookie
    )


def assert_only_alpha(body: str) -> None:
    assert "alpha" in body
    assert "bravo" not in body and B not in body


async def test_a_community_link_shows_that_community_only_in_every_view(
    site: tuple[str, FeedbackStore, list[str]],
) -> None:
    url, _, _ = site
    async with session() as http:
        await opened(http, url, A)
        async with http.get(f"{url}/admin/") as r:
            page = await r.text()
        assert r.status == 200 and f"What {A} asked" in page
        assert_only_alpha(page)
        assert "Every community" not in page and 'id="community"' not in page  # no way to the others
        assert "Sync the library now" not in page and "/admin/sync" not in page
        for table in TABLES:
            async with http.get(f"{url}/admin/csv/{table}.csv?days=30") as r:
                body = await r.text()
            assert r.status == 200, (table, body)
            assert "bravo" not in body and B not in body, table
            if table not in ("by_day", "never_cited", "library"):
                assert "alpha" in body or table == "most_cited", table
        async with http.get(f"{url}/admin/report.json") as r:
            data = await r.json()
        assert data["community"] == A and data["answers"] == 5
        assert_only_alpha(json.dumps(data))
        # A parameter naming the other community is refused, whatever the view.
        for path in ("/admin/", "/admin/report.json", "/admin/csv/most_asked.csv"):
            async with http.get(f"{url}{path}?community={B}") as r:
                body = await r.text()
            assert r.status == 403 and "bravo" not in body, path
        async with http.get(f"{url}/admin/?community={A}") as r:  # its own: fine
            assert r.status == 200


async def test_marking_written_through_a_community_link_marks_in_that_community_only(
    site: tuple[str, FeedbackStore, list[str]],
) -> None:
    url, store, _ = site
    before = store.written_topics(community=B)
    async with session() as http:
        await opened(http, url, A)
        question = "alpha why would an AI resist shutdown"
        async with http.get(f"{url}/admin/") as r:
            page = await r.text()
        assert f'name="question" value="{question}"' in page and f'name="community" value="{A}"' in page
        form = {"community": A, "question": question}
        async with http.post(
            f"{url}/admin/written", data=form, headers={"Origin": url}, allow_redirects=False
        ) as r:
            assert r.status == 303 and r.headers["Location"] == "/admin/?days=30&written=1"
        # The other community, by the form or by the address: refused, nothing marked.
        for target, query in ((B, ""), (A, f"?community={B}")):
            async with http.post(
                f"{url}/admin/written{query}",
                data={"community": target, "question": "bravo explain corrigibility please"},
                headers={"Origin": url},
                allow_redirects=False,
            ) as r:
                assert r.status == 403
    assert [m["question"] for m in store.written_topics(community=A)][-1] == question
    assert store.written_topics(community=B) == before


async def test_a_community_link_cannot_sync_the_library(site: tuple[str, FeedbackStore, list[str]]) -> None:
    url, _, synced = site
    async with session() as http:
        await opened(http, url, A)
        async with http.post(f"{url}/admin/sync", headers={"Origin": url}, allow_redirects=False) as r:
            assert r.status == 403 and "operator" in await r.text()
    assert synced == []


def renamed(token: str, community: str) -> str:
    """The token with its body re-encoded to name another community, the signature kept."""
    body, _, mac = token.partition(".")
    data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    data["c"] = community
    edited = base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).rstrip(b"=").decode()
    return f"{edited}.{mac}"


async def test_an_edited_or_expired_link_is_refused_with_one_line(
    site: tuple[str, FeedbackStore, list[str]],
) -> None:
    url, _, _ = site
    token = sign(KEY, A)
    edited = {
        "another community": renamed(token, B),
        "cut short": token[:-3],
        "another key": sign(link_key("another deployment's token"), A),
        "no signature": token.partition(".")[0],
    }
    expired = sign(KEY, A, now=time.time() - 86401)
    async with session() as http:
        for why, bad in edited.items():
            async with http.get(f"{url}/admin/", params={"scope": bad}, allow_redirects=False) as r:
                body = await r.text()
            assert r.status == 401 and LINK_INVALID in body and "alpha" not in body and "bravo" not in body, (
                why
            )
        async with http.get(f"{url}/admin/", params={"scope": expired}, allow_redirects=False) as r:
            body = await r.text()
        assert r.status == 401 and LINK_EXPIRED in body and "/aisafety-report" in body and "alpha" not in body
    # A cookie of either kind, set by hand, is refused the same way on every view.
    for value, line in ((renamed(token, B), LINK_INVALID), (expired, LINK_EXPIRED)):
        async with aiohttp.ClientSession(cookies={SCOPE_COOKIE: value}) as http:
            for path in ("/admin/", "/admin/report.json", "/admin/csv/most_asked.csv"):
                async with http.get(f"{url}{path}", allow_redirects=False) as r:
                    body = await r.text()
                assert r.status == 401 and line in body and "bravo" not in body and "alpha" not in body, path
            async with http.post(
                f"{url}/admin/written",
                data={"community": B, "question": "bravo x"},
                headers={"Origin": url},
                allow_redirects=False,
            ) as r:
                assert r.status == 401


async def test_a_link_stops_working_when_it_expires(site: tuple[str, FeedbackStore, list[str]]) -> None:
    """The cookie holds the signed link itself: the day is counted from when it was made, not opened."""
    url, _, _ = site
    async with session() as http:
        await opened(http, url, A, now=time.time() - 86400 + 1.5)
        async with http.get(f"{url}/admin/report.json") as r:
            assert r.status == 200
        await asyncio.sleep(2)
        async with http.get(f"{url}/admin/report.json") as r:
            assert r.status == 401 and LINK_EXPIRED in await r.text()


async def test_the_operator_sees_every_community_and_picks_one(
    site: tuple[str, FeedbackStore, list[str]],
) -> None:
    url, _, synced = site
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with session() as http:
        async with http.get(f"{url}/admin/", headers=auth) as r:
            page = await r.text()
        assert "What every community asked" in page and "alpha" in page and "bravo" in page
        assert '<select id="community" name="community">' in page
        assert f'<option value="{A}">{A}</option>' in page and f'<option value="{B}">{B}</option>' in page
        assert "Sync the library now" in page
        async with http.get(f"{url}/admin/?community={B}", headers=auth) as r:
            page = await r.text()
        assert f'<option value="{B}" selected>' in page and "bravo" in page and "alpha" not in page
        async with http.get(f"{url}/admin/csv/most_asked.csv?community={A}", headers=auth) as r:
            body = await r.text()
        assert "alpha" in body and "bravo" not in body
        async with http.post(
            f"{url}/admin/sync", headers={**auth, "Origin": url}, allow_redirects=False
        ) as r:
            assert r.status == 303
        assert synced == ["sync"]
        # A community's link opened by the signed-in operator shows that community in the operator's view.
        async with http.post(f"{url}/admin/login", data={"token": TOKEN}, allow_redirects=False) as r:
            assert r.status == 303 and COOKIE in r.headers["Set-Cookie"]
        async with http.get(scoped_url(url, KEY, B), allow_redirects=False) as r:
            assert r.status == 303 and r.headers["Location"] == f"/admin/?community={B.replace(':', '%3A')}"
