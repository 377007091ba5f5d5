"""The report page on a running bot, in a real browser: `aisafety-bot run` (Slack in HTTP mode against the
fake Slack) answers questions, then headless Chromium (Debian's package, driven by Playwright) signs in,
sees the chart drawn, downloads a CSV, and keeps screenshots in test-artifacts/."""

from __future__ import annotations

import asyncio
import csv
import io
import os
import shutil
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import ROOT, need
from tests.fake_slack import FakeSlack
from tests.test_admin import TOKEN
from tests.test_run_redis import _answers, _event, _post, replica

ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium() -> str:
    path = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        need(
            "Chromium for the report page's browser test",
            "install Debian's chromium package (apt-get install chromium)",
        )
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        need("Playwright for the report page's browser test", "pip install -e '.[dev]'")
    return str(path)


async def test_a_moderator_signs_in_sees_the_chart_and_downloads_a_csv(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, model_env: dict[str, str]
) -> None:
    browser_path = chromium()
    from playwright.async_api import async_playwright

    for k, v in model_env.items():
        monkeypatch.setenv(k, v)
    fake = FakeSlack()
    await fake.start()
    try:
        async with replica(monkeypatch, tmp_path / "bot", {"ADMIN_TOKEN": TOKEN}, fake) as port:
            for n, question in enumerate(
                ("what is a mesa-optimizer?", "what's a mesa optimizer", "best pancake recipe?")
            ):
                assert await _post(port, _event(fake, f"EvAdmin{n}", question)) == 200
            await fake.wait_for(lambda: len(_answers(fake)) + len(fake.messages.get("C0000001", [])) >= 3)
            await asyncio.sleep(0.5)  # the answers are stored after they are posted
            base = f"http://127.0.0.1:{port}"
            async with aiohttp.ClientSession() as http:
                async with http.get(
                    f"{base}/admin/report.json", headers={"Authorization": f"Bearer {TOKEN}"}
                ) as r:
                    data = await r.json()
            assert (
                data["answers"] == 3 and data["by_day"][-1]["llm"] + data["by_day"][-1]["retrieval-only"] >= 2
            )
            # The real core called the pancake recipe off-topic: its own table, never "questions to write".
            assert [g["question"] for g in data["offtopic"]] == ["best pancake recipe?"]
            assert "best pancake recipe?" not in {g["question"] for g in data["to_write"] + data["abstained"]}

            ARTIFACTS.mkdir(exist_ok=True)
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path=browser_path, args=CHROMIUM_FLAGS)
                try:
                    page = await browser.new_page(
                        viewport={"width": 1200, "height": 900}, accept_downloads=True
                    )
                    response = await page.goto(f"{base}/admin/")
                    assert response is not None and response.status == 401
                    await page.fill("#token", "not the token")
                    await page.click("button[type=submit]")
                    assert await page.locator(".error").inner_text() == "That is not the token."
                    await page.fill("#token", TOKEN)
                    await page.click("button[type=submit]")
                    await page.wait_for_selector("#chart[data-drawn] canvas", timeout=15000)
                    assert await page.locator("#chart").get_attribute("data-drawn") == "30"
                    box = await page.locator("#chart canvas").bounding_box()
                    assert box is not None and box["width"] > 500 and box["height"] > 100
                    assert "mesa" in (await page.locator("#most_asked").inner_text()).lower()
                    await page.screenshot(path=str(ARTIFACTS / "admin-report.png"), full_page=True)

                    async with page.expect_download() as caught:
                        await page.click("#offtopic a.csv")
                    download = await caught.value
                    assert download.suggested_filename == "offtopic-30d.csv"
                    saved = ARTIFACTS / download.suggested_filename
                    await download.save_as(str(saved))
                    rows = list(csv.reader(io.StringIO(saved.read_text(encoding="utf-8"))))
                    # The operator's view: each question with the community (workspace) it was asked in.
                    assert rows[0] == [
                        "community",
                        "count",
                        "question",
                        "variants",
                        "previous",
                        "last_asked",
                        "where",
                    ]
                    assert rows[1][0] == "slack:T0001" and rows[1][2] == "best pancake recipe?"

                    await page.select_option("#days", "7")
                    await page.click("header form button[type=submit]")
                    await page.wait_for_selector("#chart[data-drawn='7'] canvas", timeout=15000)

                    phone = await browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
                    await phone.context.add_cookies(await page.context.cookies())
                    await phone.goto(f"{base}/admin/")
                    await phone.wait_for_selector("#chart[data-drawn] canvas", timeout=15000)
                    overflow = await phone.evaluate(
                        "document.documentElement.scrollWidth - window.innerWidth"
                    )
                    assert overflow <= 0  # nothing wider than a phone's screen but the tables' own scroll
                    await phone.screenshot(path=str(ARTIFACTS / "admin-report-phone.png"), full_page=True)
                finally:
                    await browser.close()
    finally:
        await fake.stop()


async def test_without_admin_token_the_running_bot_has_no_report_page(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, model_env: dict[str, str]
) -> None:
    for k, v in model_env.items():
        monkeypatch.setenv(k, v)
    fake = FakeSlack()
    await fake.start()
    try:
        async with replica(monkeypatch, tmp_path / "bot", {}, fake) as port:
            async with aiohttp.ClientSession() as http:
                async with http.get(
                    f"http://127.0.0.1:{port}/admin/", headers={"Authorization": f"Bearer {TOKEN}"}
                ) as r:
                    assert r.status == 404
    finally:
        await fake.stop()


async def test_a_moderator_syncs_the_library_from_the_page() -> None:
    """The button's POST passes the same-origin check as a real browser sends it (its Origin header)."""
    browser_path = chromium()
    from playwright.async_api import async_playwright

    from tests.test_admin import FakeSync, _library_site

    sync = FakeSync({"outcome": "unchanged"})
    async for base in _library_site(sync):
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=browser_path, args=CHROMIUM_FLAGS)
            try:
                page = await browser.new_page()
                await page.goto(f"{base}/admin/?days=7")
                await page.fill("#token", TOKEN)
                await page.click("button[type=submit]")
                await page.wait_for_selector("#library")
                assert "412 articles" in await page.locator("#library").inner_text()
                await page.click("text=Sync the library now")
                notice = page.locator(".notice")
                await notice.wait_for(timeout=15000)
                assert await notice.inner_text() == "The library was synced: nothing had changed."
                assert sync.calls == 1 and page.url.endswith("/admin/?days=30&synced=unchanged")
            finally:
                await browser.close()
