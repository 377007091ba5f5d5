"""The moderators' report page (/admin/): served only with ADMIN_TOKEN, only to requests that carry it,
the report's data as HTML, JSON and CSV, over a real socket. The page in a real browser is in
tests/test_admin_browser.py."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.models import Answer, Source
from retrieval.errors import SourceError
from retrieval.vocabulary import Vocabulary
from service.admin import COOKIE, add_admin_routes
from service.feedback import FeedbackStore
from service.report import build_report

TOKEN = "admin-token-for-tests-0123456789"
ORTHO = Source(1, "aisafety.info:6568", "What is the orthogonality thesis?", "https://aisafety.info/q/6568")
MESA = Source(1, "aisafety.info:8160", "What are mesa-optimizers?", "https://aisafety.info/q/8160")
ARTICLES = {s.id: (s.title, s.url) for s in (ORTHO, MESA)} | {
    "aisafety.info:1": ("Never used", "https://aisafety.info/q/1")
}


def toy_embed(texts: Sequence[str]) -> list[list[float]]:
    """Bag-of-words vectors: enough to group reworded questions without the embedding model."""
    out = []
    for t in texts:
        v = [0.0] * 64
        for word in t.lower().replace("?", " ").split():
            v[int(hashlib.sha256(word.encode()).hexdigest(), 16) % 64] += 1.0
        out.append(v)
    return out


def history(path: Path, *, store_questions: bool = True) -> FeedbackStore:
    store = FeedbackStore(path, store_questions=store_questions)
    for q in ("what is the orthogonality thesis?", "what is the orthogonality thesis"):
        store.record_answer(
            platform="slack",
            community="slack:1",
            place="c",
            asker="u",
            question=q,
            answer=Answer("x [1]", (ORTHO,), "llm"),
        )
    bad = store.record_answer(
        platform="discord",
        community="discord:1",
        place="c",
        asker="u",
        question="whats a mesa optimizer",
        answer=Answer("y [1]", (MESA,), "llm"),
    )
    store.record_vote(bad, voter="u2", vote="down")
    store.record_answer(
        platform="slack",
        community="slack:1",
        place="c",
        asker="u",
        question="<b>best pancake</b> recipe",
        answer=Answer("no", (), "abstain"),
    )
    store.record_answer(
        platform="slack",
        community="slack:1",
        place="c",
        asker="u",
        question="why not unplug it",
        answer=Answer("", (ORTHO,), "error"),
    )
    return store


def report_source(store: FeedbackStore, *, questions_stored: bool = True) -> Any:
    asked: list[float] = []

    async def report(days: float, community: str | None = None) -> dict[str, Any]:
        asked.append(days)
        return build_report(
            store.since(days, community=community),
            embed=toy_embed,
            articles=ARTICLES,
            since_days=days,
            questions_stored=questions_stored,
            community=community,
        )

    report.asked = asked  # type: ignore[attr-defined]
    return report


async def serve(app: web.Application) -> AsyncIterator[str]:
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[tuple[str, Any]]:
    store = history(tmp_path / "f.sqlite3")
    app = web.Application()
    source = report_source(store)
    add_admin_routes(app, token=TOKEN, report=source)
    async for url in serve(app):
        yield url, source
    store.close()


async def _get(url: str, **kwargs: Any) -> tuple[int, str, dict[str, str]]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.get(url, allow_redirects=False, **kwargs) as r:
            return r.status, await r.text(), dict(r.headers)


async def test_without_the_token_the_page_asks_for_it_and_shows_nothing(site: tuple[str, Any]) -> None:
    url, source = site
    status, body, headers = await _get(f"{url}/admin/")
    assert status == 401 and 'name="token"' in body and "orthogonality" not in body
    assert (
        headers["Cache-Control"] == "no-store"
        and "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    )
    for wrong in ("Bearer nope", f"Bearer {TOKEN[:-1]}", TOKEN, f"Basic {TOKEN}"):
        status, body, _ = await _get(f"{url}/admin/", headers={"Authorization": wrong})
        assert status == 401 and "orthogonality" not in body, wrong
    for path in ("/admin/report.json", "/admin/csv/most_asked.csv"):
        status, body, _ = await _get(url + path, headers={"Authorization": "Bearer nope"})
        assert status == 401 and TOKEN not in body
    assert source.asked == []  # nothing was read for a request without the token


async def test_the_bearer_token_shows_every_table_escaped_and_linked(site: tuple[str, Any]) -> None:
    url, source = site
    status, body, _ = await _get(f"{url}/admin/?days=7", headers={"Authorization": f"Bearer {TOKEN}"})
    assert status == 200 and source.asked == [7.0]
    assert "5 answers in the last 7 days" in body
    for table in ("by_day", "most_asked", "abstained", "to_write", "downvoted", "most_cited", "never_cited"):
        assert f'id="{table}"' in body and f"/admin/csv/{table}.csv?days=7" in body
    assert "&lt;b&gt;best pancake&lt;/b&gt;" in body and "<b>best" not in body  # a question is text
    assert (
        '<a href="https://aisafety.info/q/8160" rel="noopener noreferrer">What are mesa-optimizers?</a>'
        in body
    )
    assert (
        '<script src="/admin/static/uPlot.iife.min.js" defer></script>' in body and "https://cdn" not in body
    )
    assert TOKEN not in body
    status, js, headers = await _get(f"{url}/admin/static/uPlot.iife.min.js")
    assert status == 200 and "uPlot" in js and headers["Content-Type"].startswith("application/javascript")
    assert (await _get(f"{url}/admin/static/..%2Fadmin.py"))[0] == 404


async def test_the_login_form_sets_a_cookie_that_is_not_the_token(site: tuple[str, Any]) -> None:
    url, _ = site
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.post(f"{url}/admin/login", data={"token": "wrong"}, allow_redirects=False) as r:
            assert r.status == 401 and "That is not the token" in await r.text()
        async with http.post(f"{url}/admin/login", data={"token": TOKEN}, allow_redirects=False) as r:
            assert r.status == 303 and r.headers["Location"] == "/admin/"
            cookie = r.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/admin" in cookie
        assert TOKEN not in cookie
        async with http.get(f"{url}/admin/") as r:
            assert r.status == 200 and "What every community asked" in await r.text()
        async with http.get(f"{url}/admin/csv/to_write.csv?days=30") as r:
            assert r.status == 200 and r.headers["Content-Type"].startswith("text/csv")
            assert 'filename="to_write-30d.csv"' in r.headers["Content-Disposition"]
            rows = list(csv.reader(io.StringIO(await r.text())))
        # The operator's view of every community: each row says where it was asked.
        assert rows[0][:7] == [
            "community",
            "count",
            "not_covered",
            "close_calls",
            "downvoted",
            "question",
            "examples",
        ]
        assert {(r[0], r[5]) for r in rows[1:]} == {
            ("slack:1", "<b>best pancake</b> recipe"),
            ("discord:1", "whats a mesa optimizer"),
        }
        async with http.get(f"{url}/admin/report.json?days=30") as r:
            data = await r.json()
        assert data["by_outcome"] == {"llm": 3, "abstain": 1, "error": 1}
        today = time.strftime("%Y-%m-%d", time.gmtime())
        assert data["by_day"][-1] == {"day": today, "llm": 3, "retrieval-only": 0, "abstain": 1, "error": 1}
        async with http.post(f"{url}/admin/logout", allow_redirects=False) as r:
            assert r.status == 303
        async with http.get(f"{url}/admin/") as r:
            assert r.status == 401
        http.cookie_jar.update_cookies({COOKIE: "0" * 64})
        async with http.get(f"{url}/admin/") as r:
            assert r.status == 401  # a made-up cookie is no session


async def test_a_bad_period_or_table_gets_one_line_that_says_what_to_give(site: tuple[str, Any]) -> None:
    url, _ = site
    auth = {"Authorization": f"Bearer {TOKEN}"}
    for days in ("abc", "0", "-3", "99999", "nan"):
        status, body, _ = await _get(f"{url}/admin/?days={days}", headers=auth)
        assert (
            status == 400 and body == "days must be a number of days from 1 to 3650, for example ?days=30"
        ), days
    status, body, _ = await _get(f"{url}/admin/csv/secrets.csv", headers=auth)
    assert status == 404 and body.startswith("no table 'secrets'; tables: by_day, most_asked")


async def test_without_stored_questions_the_page_shows_counts_and_sources_only(tmp_path: Path) -> None:
    store = history(tmp_path / "f.sqlite3", store_questions=False)
    app = web.Application()
    add_admin_routes(app, token=TOKEN, report=report_source(store, questions_stored=False))
    async for url in serve(app):
        status, body, _ = await _get(f"{url}/admin/", headers={"Authorization": f"Bearer {TOKEN}"})
        assert status == 200 and "STORE_QUESTIONS=false" in body
        assert (
            "mesa optimizer" not in body and "pancake" not in body and "orthogonality thesis</td>" not in body
        )
        assert "What are mesa-optimizers?</a>" in body  # the 👎 answer's source
        assert "<em>not stored</em>" in body
    store.close()


async def test_when_the_report_cannot_be_built_the_page_says_so_in_one_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(days: float, community: str | None) -> dict[str, Any]:
        raise ConnectionError("PostgreSQL at db:5432 is unreachable")

    app = web.Application()
    add_admin_routes(app, token=TOKEN, report=broken)
    async for url in serve(app):
        for path in ("/admin/", "/admin/report.json", "/admin/csv/by_day.csv"):
            status, body, _ = await _get(url + path, headers={"Authorization": f"Bearer {TOKEN}"})
            assert status == 503 and body.startswith(
                "The report could not be built just now (ConnectionError)"
            )
            assert "Traceback" not in body and "db:5432" not in body
    assert "could not build the report" in caplog.text


async def test_the_running_bot_builds_a_report_once_for_the_page_and_its_downloads(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from aisafety_bot.runner import LiveReport

    store = history(tmp_path / "f.sqlite3")
    embedded: list[int] = []
    listed: list[int] = []

    def embed(texts: Sequence[str]) -> list[list[float]]:
        embedded.append(len(texts))
        return toy_embed(texts)

    def catalogue() -> dict[str, tuple[str, str]]:
        listed.append(1)
        return ARTICLES

    app = SimpleNamespace(
        embedder=SimpleNamespace(embed_dense_only=embed),
        store=SimpleNamespace(catalogue=catalogue, vocabulary=Vocabulary),
        settings=SimpleNamespace(store_questions=True),
    )
    report = LiveReport(app, store)  # type: ignore[arg-type]
    first = await report(30)
    assert first["answers"] == 5 and len(embedded) == 1 and len(listed) == 1
    assert await report(30) is first and len(embedded) == 1  # a table downloaded right after: no rebuild
    week = await report(7)
    assert week["since_days"] == 7 and len(embedded) == 2 and len(listed) == 2
    # A topic marked written on the page: stored, and the next report is built afresh.
    await report.mark("slack:T1", "what is a quantilizer")
    assert [w["question"] for w in store.written_topics()] == ["what is a quantilizer"]
    assert await report(7) is not week and len(embedded) == 3
    store.close()


async def test_a_report_built_while_a_topic_is_marked_is_not_kept(tmp_path: Path) -> None:
    import asyncio
    import threading
    from types import SimpleNamespace

    from aisafety_bot.runner import LiveReport

    store = history(tmp_path / "f.sqlite3")
    building, release = threading.Event(), threading.Event()
    builds: list[int] = []

    def embed(texts: Sequence[str]) -> list[list[float]]:
        builds.append(1)
        building.set()
        release.wait(10)
        return toy_embed(texts)

    app = SimpleNamespace(
        embedder=SimpleNamespace(embed_dense_only=embed),
        store=SimpleNamespace(catalogue=lambda: ARTICLES, vocabulary=Vocabulary),
        settings=SimpleNamespace(store_questions=True),
    )
    report = LiveReport(app, store)  # type: ignore[arg-type]
    first = asyncio.create_task(report(30))
    await asyncio.to_thread(building.wait, 10)  # the build has read the answers, before the mark
    await report.mark("slack:T1", "what is a quantilizer")
    release.set()
    await first
    await report(30)  # built again: the one begun before the mark was not kept
    assert len(builds) == 2
    store.close()


LIBRARY = {
    "articles": 412,
    "last_sync": 1_790_000_000.0,  # 2026-09-21 14:13 UTC
    "changes": [
        {
            "time": 1_790_000_000.0,
            "id": "aisafety.info:9001",
            "title": "<script>alert(1)</script> What is new?",
            "url": 'https://aisafety.info/questions/9001/What-is-new?a="x"',
            "change": "added",
        },
        {
            "time": 1_790_000_000.0,
            "id": "x:1",
            "title": "Not linked",
            "url": "javascript:alert(1)",
            "change": "removed",
        },
    ],
}


class FakeSync:
    """The running bot's sync: counts its calls; answers `result` or raises `error`."""

    def __init__(self, result: dict[str, Any] | None = None, error: Exception | None = None):
        self.result = result or {"outcome": "changed", "added": 1, "changed": 0, "removed": 0}
        self.error = error
        self.calls = 0

    async def __call__(self) -> dict[str, Any]:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return self.result


async def _library_site(sync: FakeSync | None) -> AsyncIterator[str]:
    async def report(days: float, community: str | None) -> dict[str, Any]:
        return build_report(
            [], embed=toy_embed, articles={}, since_days=days, community=community, library=LIBRARY
        )

    app = web.Application()
    add_admin_routes(app, token=TOKEN, report=report, sync=sync)
    async for url in serve(app):
        yield url


async def _sync(url: str, **headers: str) -> tuple[int, str, dict[str, str]]:
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{url}/admin/sync?days=7", headers=headers, allow_redirects=False) as r:
            return r.status, await r.text(), dict(r.headers)


async def test_the_page_shows_the_library_escaped_and_links_only_web_addresses() -> None:
    async for url in _library_site(None):
        status, body, headers = await _get(f"{url}/admin/", headers={"Authorization": f"Bearer {TOKEN}"})
        assert status == 200 and 'id="library"' in body and "/admin/csv/library.csv?days=30" in body
        assert "412 articles; last synced 2026-09-21 14:13 UTC." in body
        assert (
            '<a href="https://aisafety.info/questions/9001/What-is-new?a=&quot;x&quot;" rel="noopener noreferrer">'
            "&lt;script&gt;alert(1)&lt;/script&gt; What is new?</a>" in body
        )
        assert (
            "<td>Not linked</td>" in body and 'href="javascript' not in body and "<script>alert" not in body
        )
        assert "Sync the library now" not in body  # no sync given: no button and no route
        assert (await _sync(url, Authorization=f"Bearer {TOKEN}", Origin=url))[0] == 404
        assert headers["Referrer-Policy"] == "same-origin"  # so the page's own forms carry their Origin


async def test_a_sync_needs_the_session_and_a_request_from_the_page_itself() -> None:
    sync = FakeSync()
    async for url in _library_site(sync):
        auth = f"Bearer {TOKEN}"
        status, body, _ = await _get(f"{url}/admin/", headers={"Authorization": auth})
        assert '<form method="post" action="/admin/sync?days=30" class="sync">' in body
        assert (await _get(f"{url}/admin/sync", headers={"Authorization": auth}))[0] == 405
        assert (await _sync(url, Origin=url))[0] == 401
        for refused in (
            {"Origin": "https://evil.example"},
            {"Origin": "null"},
            {"Origin": url.replace("127.0.0.1", "localhost")},
            {"Referer": "https://evil.example/admin/"},
            {"Referer": url + ".evil.example/admin/"},
            {},
        ):
            status, body, _ = await _sync(url, Authorization=auth, **refused)
            assert status == 403 and "\n" not in body.strip(), refused
        assert sync.calls == 0

        status, body, headers = await _sync(url, Authorization=auth, Referer=f"{url}/admin/?days=7")
        assert status == 303 and headers["Location"] == "/admin/?days=7&synced=changed" and sync.calls == 1
        status, body, _ = await _sync(url, Authorization=auth, Origin=url, Accept="application/json")
        assert status == 200 and json.loads(body) == sync.result and sync.calls == 2


async def test_a_signed_in_moderator_syncs_and_sees_the_outcome() -> None:
    sync = FakeSync({"outcome": "unchanged"})
    async for url in _library_site(sync):
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            async with http.post(f"{url}/admin/login", data={"token": TOKEN}, allow_redirects=False) as r:
                assert r.status == 303
            async with http.post(
                f"{url}/admin/sync?days=7&community=slack:T1", headers={"Origin": url}, allow_redirects=False
            ) as r:
                assert r.status == 303 and sync.calls == 1
                location = r.headers["Location"]
            assert location == "/admin/?days=7&community=slack%3AT1&synced=unchanged"
            async with http.get(url + location) as r:
                body = await r.text()
            assert '<p class="notice" role="status">The library was synced: nothing had changed.</p>' in body
            async with http.get(f"{url}/admin/?synced=%3Cscript%3Eyou+were+hacked") as r:
                body = await r.text()
            assert r.status == 200 and 'class="notice"' not in body and "hacked" not in body


@pytest.mark.parametrize(
    ("sync", "status", "reason"),
    [
        (
            FakeSync(error=SourceError("the feed timed out <after 60 s>\nmore")),
            503,
            "the feed timed out &lt;after 60 s&gt;",
        ),
        (
            FakeSync(error=RuntimeError("password=hunter2 at db:5432")),
            503,
            "RuntimeError; the bot&#x27;s log says more",
        ),
        (
            FakeSync({"outcome": "refused", "reason": "the feed lost 300 of 412 articles"}),
            200,
            "the feed lost 300",
        ),
    ],
)
async def test_a_sync_that_fails_or_is_refused_says_why_in_one_line(
    sync: FakeSync, status: int, reason: str
) -> None:
    async for url in _library_site(sync):
        got, body, _ = await _sync(url, Authorization=f"Bearer {TOKEN}", Origin=url)
        shown = re.search(r'<p class="error">(.*?)</p>', body, re.DOTALL)
        assert got == status and shown is not None and shown.group(1).startswith(reason)
        assert "\n" not in shown.group(1) and "Traceback" not in body and "db:5432" not in body
        assert 'href="/admin/?days=7">Back to the report</a>' in body
        got, body, _ = await _sync(
            url, Authorization=f"Bearer {TOKEN}", Origin=url, Accept="application/json"
        )
        data = json.loads(body)
        assert (
            got == (503 if sync.error else 200)
            and data["outcome"] in ("error", "refused")
            and "hunter2" not in body
        )


async def _login_cookie(url: str, *, ssl: Any = None, **headers: str) -> str:
    """The Set-Cookie a right token gets."""
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{url}/admin/login", data={"token": TOKEN}, headers=headers, allow_redirects=False, ssl=ssl
        ) as r:
            assert r.status == 303
            return r.headers["Set-Cookie"]


async def test_wrong_logins_are_counted_and_summed_up_in_one_line(caplog: pytest.LogCaptureFixture) -> None:
    from service.metrics import Metrics

    metrics = Metrics()
    app = web.Application()
    add_admin_routes(app, token=TOKEN, report=report_source(history_free()), metrics=metrics)
    with caplog.at_level(logging.DEBUG):
        async for url in serve(app):
            async with aiohttp.ClientSession() as http:
                for i in range(200):
                    guess = {"token": f"guess-{i}"}
                    async with http.post(f"{url}/admin/login", data=guess, allow_redirects=False) as r:
                        assert r.status == 401
                async with http.get(f"{url}/admin/", headers={"Authorization": "Bearer guess"}) as r:
                    assert r.status == 401  # a wrong token in the header is a wrong login too
            said = [r for r in caplog.records if r.levelno >= logging.INFO and r.name.startswith("service")]
            assert said == []  # nothing yet: the window's line comes when it ends, or when the page stops
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("service")]
    assert lines == ["refused in the last minute: report page: 201 wrong logins"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR] and "guess-" not in caplog.text
    text = metrics.render().decode()
    assert 'aisafety_rejected_requests_total{reason="wrong_login"} 201.0' in text


def history_free() -> Any:
    """An empty answers history, for tests that never reach the report."""

    class Empty:
        def since(self, days: float, community: str | None = None) -> list[Any]:
            return []

    return Empty()


async def test_the_cookie_is_secure_over_tls_or_an_https_public_url_and_never_by_a_header() -> None:
    source = report_source(history_free())
    plain = web.Application()
    add_admin_routes(plain, token=TOKEN, report=source)
    async for url in serve(plain):
        cookie = await _login_cookie(url, **{"X-Forwarded-Proto": "https", "Forwarded": "proto=https"})
        assert "Secure" not in cookie  # anyone can send those headers
    for public_url, secure in (("https://bot.example.org", True), ("http://bot.example.org", False)):
        proxied = web.Application()
        add_admin_routes(proxied, token=TOKEN, report=source, public_url=public_url)
        async for url in serve(proxied):
            assert ("Secure" in await _login_cookie(url)) is secure, public_url


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (key, certificate), made by the openssl command."""
    import shutil
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a test certificate")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subject = ["-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)]
    command = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", *subject]
    subprocess.run(command, check=True, capture_output=True)
    return key, cert


async def test_the_cookie_is_secure_when_the_bot_itself_speaks_tls(certificate: tuple[Path, Path]) -> None:
    import ssl

    key, cert = certificate
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    client_tls = ssl.create_default_context(cafile=str(cert))
    client_tls.check_hostname = False
    app = web.Application()
    add_admin_routes(app, token=TOKEN, report=report_source(history_free()))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_tls)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        assert "Secure" in await _login_cookie(f"https://127.0.0.1:{port}", ssl=client_tls)
    finally:
        await runner.cleanup()


async def test_behind_an_https_proxy_a_sync_from_the_public_address_is_the_pages_own() -> None:
    from service.metrics import Metrics

    sync, metrics = FakeSync(), Metrics()
    app = web.Application()
    add_admin_routes(
        app,
        token=TOKEN,
        report=report_source(history_free()),
        sync=sync,
        public_url="https://bot.example.org",
        metrics=metrics,
    )
    auth = f"Bearer {TOKEN}"
    async for url in serve(app):
        own_host_over_https = url.replace("http://", "https://")
        for refused in (
            {"Origin": "https://evil.example"},
            {"Origin": "http://bot.example.org"},  # not the public scheme
            {"Origin": own_host_over_https, "X-Forwarded-Proto": "https"},  # a header proves nothing
            {"Referer": "https://bot.example.org.evil.example/admin/"},
        ):
            assert (await _sync(url, Authorization=auth, **refused))[0] == 403, refused
        assert sync.calls == 0
        for accepted in (
            {"Origin": "https://bot.example.org"},
            {"Referer": "https://bot.example.org/admin/?days=7"},
            {"Origin": url},  # as the request reached the bot
        ):
            assert (await _sync(url, Authorization=auth, **accepted))[0] == 303, accepted
        assert sync.calls == 3
    assert 'aisafety_rejected_requests_total{reason="cross_origin"} 4.0' in metrics.render().decode()
