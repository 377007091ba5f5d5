"""The moderators' report page: `/admin/` on the running bot's HTTP port, served only when ADMIN_TOKEN is
set and only to requests that carry it (an `Authorization: Bearer` header, or the cookie the login form
sets). The same data as `report --format json`, for a chosen period: a chart of answers per day by
outcome, the tables, and each table as CSV. Server-rendered HTML; the chart is drawn by uPlot, served from
`service/static` (no CDN: communities self-host offline too).

The routes that change anything, `POST /admin/sync` (sync the article library now) and
`POST /admin/written` (mark a topic of "questions to write" written), also require the request to come
from the page itself: its `Origin` (or, without one, its `Referer`) must be the page's own origin (as the
request reached the bot, or PUBLIC_URL's behind a proxy), so no other site can make a signed-in browser
start a sync or mark a topic.

A community's moderators get a link of their own (`/aisafety-report`, `service/report_links.py`):
`/admin/?scope=<token>` keeps the signed token in a cookie and shows, for a day, that community's page,
CSV and JSON and marks topics in it only; a link edited to name another community, or expired, is
refused (401). The ADMIN_TOKEN holder (the operator) sees every community, with a picker; only the
operator can sync the library.

A wrong token and a refused sync are counted (`aisafety_rejected_requests_total{reason}`) and summed up
in one log line a minute, never a line each. The login cookie is `Secure` when the connection is TLS or
PUBLIC_URL is https; `X-Forwarded-Proto` is never trusted (anyone can send it).
"""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, urlencode, urlsplit

from aiohttp import web

from bot.errors import BotError
from retrieval.errors import LibraryError
from service.feedback import MAX_STORED_CHARS, SYNCED
from service.metrics import Metrics
from service.rejections import Rejections
from service.report import (
    BY_COMMUNITY,
    CLOSE_CALL,
    NO_ANSWERS,
    OUTCOMES,
    SHOWN,
    TABLES,
    table_csv,
    utc,
)
from service.report_links import LINK_TTL_S, link_key, verify

_log = logging.getLogger(__name__)

STATIC = Path(__file__).with_name("static")
COOKIE = "aisafety_admin"
SCOPE_COOKIE = "aisafety_scope"  # a community's signed link (its moderators' view)
PERIODS = (1, 7, 30, 90, 365)
DEFAULT_DAYS = 30
MAX_DAYS = 3650
# Only these files are served from service/static.
ASSETS = {
    "uPlot.iife.min.js": "application/javascript",
    "uPlot.min.css": "text/css",
    "admin.js": "application/javascript",
    "admin.css": "text/css",
}
HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    # Not no-referrer: with it a browser sends `Origin: null` on the page's own forms, and the sync
    # button's same-origin check could never pass. Other sites still get no referrer.
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
}
# The outcomes as the page names them (the chart's legend uses the same words).
LABELS = {
    "llm": "answered",
    "retrieval-only": "sources only",
    "abstain": "not covered",
    "error": "failed",
}
TITLES = {
    "by_day": "Answers per day",
    "most_asked": "Most asked",
    "abstained": "Questions the library did not cover",
    "offtopic": "Off-topic (declined, or far from every article: not for the library)",
    "to_write": "Questions to write (not covered, close calls or voted down, by topic)",
    "written": "Topics marked written",
    "downvoted": "Answers voted down",
    "most_cited": "Articles cited most (every source shown)",
    "never_cited": "Articles never cited (never shown as a source)",
    "library": "The library",
}
# What the page says after a sync it asked for (`?synced=<outcome>`); any other value shows nothing, so
# no link can put words of its own on the page.
SYNCED_NOTICES = {
    "changed": "The library was synced: the changes are listed below.",
    "unchanged": "The library was synced: nothing had changed.",
}
# What a refused community link is told (one line each).
LINK_EXPIRED = "This report link has expired (links last a day): ask for a new one with /aisafety-report."
LINK_INVALID = (
    "This report link is not valid (it was changed or cut short): ask for a new one with /aisafety-report."
)
NOT_YOURS = "This report link shows one community only."
WRITTEN_NOTICE = 'The topic was marked written: it leaves "questions to write" until it is asked again.'

# The report of the last `days` days: of one community, or (None) the operator's view of all of them.
ReportSource = Callable[[float, str | None], Awaitable[dict[str, Any]]]
# Syncs the article library now; answers a JSON-ready dict with at least "outcome" (one of
# service.feedback.SYNC_OUTCOMES) and a "reason" when the sync was refused or failed.
SyncLibrary = Callable[[], Awaitable[dict[str, Any]]]
# Marks a topic written: (community, question); the next report leaves it out of "questions to write".
MarkWritten = Callable[[str, str], Awaitable[None]]
# Every community with something stored (`FeedbackStore.communities`): the operator's picker.
Communities = Callable[[], Awaitable[list[str]]]
# `discord:<guild id>`, `slack:<team id>`, `dm`, `unassigned`
_COMMUNITY = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")


@dataclass(frozen=True)
class Viewer:
    """Who is looking: the operator (`scope` None: every community) or one community's moderators."""

    scope: str | None = None

    @property
    def operator(self) -> bool:
        return self.scope is None


class LinkRefused(Exception):
    """A community link edited, cut short or expired: its one line is what the visitor is told."""


def session_value(token: str) -> str:
    """What the login cookie holds: derived from the token, never the token itself."""
    return hmac.new(token.encode(), b"aisafety-bot admin session", hashlib.sha256).hexdigest()


def add_admin_routes(
    app: web.Application,
    *,
    token: str,
    report: ReportSource,
    sync: SyncLibrary | None = None,
    public_url: str | None = None,
    metrics: Metrics | None = None,
    mark_written: MarkWritten | None = None,
    communities: Communities | None = None,
) -> None:
    """Serve the report page on `app`. `report(days, community)` builds the report for the last `days`
    days. The ADMIN_TOKEN holder is the operator: every community, or one with `?community=ID`. With
    `sync`, the page has a button that syncs the library now (`POST /admin/sync`). `public_url`
    (PUBLIC_URL): the address browsers reach the bot at, behind a proxy. `metrics`: where refused logins
    are counted (without them, only the minute's log line). With `mark_written`, each topic of "questions
    to write" has a button that marks it written (`POST /admin/written`). `communities`: the stored
    communities, for the operator's picker. A community's link (`?scope=`) shows that community only."""
    session = session_value(token)
    key = link_key(token)
    rejections = metrics.rejections if metrics is not None else Rejections()
    rejected = metrics.rejected if metrics is not None else rejections.note
    app.on_cleanup.append(lambda _: _flushed(rejections))  # the last window's line is not lost
    secure = (public_url or "").lower().startswith("https://")
    public_origin = _origin_of(public_url or "")

    def authorised(request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        if header[:7].lower() == "bearer ":
            if hmac.compare_digest(header[7:].strip().encode(), token.encode()):
                return True
            rejected("wrong_login")
            return False
        return hmac.compare_digest(request.cookies.get(COOKIE, "").encode(), session.encode())

    def scope_of(raw: str) -> str:
        """The community a link names; `LinkRefused` when it was edited or has expired."""
        community = verify(key, raw)
        if community is not None and _COMMUNITY.match(community):
            return community
        if community is None and verify(key, raw, now=0.0) is not None:
            raise LinkRefused(LINK_EXPIRED)  # intact, but out of date
        rejected("wrong_login")
        raise LinkRefused(LINK_INVALID)

    def viewer(request: web.Request) -> Viewer | None:
        """The operator (ADMIN_TOKEN), a community's moderators (their link's cookie), or None."""
        if authorised(request):
            return Viewer()
        raw = request.cookies.get(SCOPE_COOKIE)
        return Viewer(scope_of(raw)) if raw else None

    def allowed(request: web.Request, nobody: str) -> Viewer:
        """The viewer of a download or a form: 401 (with the link's own line) for anyone else."""
        try:
            found = viewer(request)
        except LinkRefused as refused:
            raise web.HTTPUnauthorized(text=str(refused), headers=HEADERS) from None
        if found is None:
            raise web.HTTPUnauthorized(text=nobody, headers=HEADERS)
        return found

    def chosen(request: web.Request, who: Viewer) -> str | None:
        """The community shown: the operator's choice (None: every one), or the link's own, which no
        parameter can change."""
        if who.scope is None:
            return community_of(request)
        asked = request.query.get("community")
        if asked and asked != who.scope:
            raise web.HTTPForbidden(text=NOT_YOURS, headers=HEADERS)
        return who.scope

    def days_of(request: web.Request) -> float:
        raw = request.query.get("days", str(DEFAULT_DAYS))
        try:
            days = float(raw)
        except ValueError:
            days = -1.0
        if not 0 < days <= MAX_DAYS:
            raise web.HTTPBadRequest(
                text=f"days must be a number of days from 1 to {MAX_DAYS}, for example ?days=30",
                headers=HEADERS,
            )
        return days

    def community_of(request: web.Request) -> str | None:
        raw = request.query.get("community")
        if raw is None or raw == "":
            return None
        if not _COMMUNITY.match(raw):
            raise web.HTTPBadRequest(
                text="community must be a community id such as discord:123456789 or slack:T0123, or dm",
                headers=HEADERS,
            )
        return raw

    async def built(days: float, community: str | None, who: Viewer) -> dict[str, Any]:
        """The report, or a 503 that says what failed (the answers database, the index) in one line."""
        try:
            data = await report(days, community)
        except Exception as exc:
            _log.exception("the report page could not build the report")
            raise web.HTTPServiceUnavailable(
                text=f"The report could not be built just now ({type(exc).__name__}); the bot's log says more. "
                "Try again in a minute.",
                headers=HEADERS,
            ) from None
        if who.scope is not None and data.get("community") != who.scope:  # never another community's
            raise web.HTTPInternalServerError(text="the report was built for another view", headers=HEADERS)
        return data

    def scoped(request: web.Request, raw: str) -> web.Response:
        """A community's link opened: its token kept in a cookie (the page's downloads and forms carry
        it), and on to the page without the token in the address. The operator is shown the community."""
        try:
            community = scope_of(raw)
        except LinkRefused as refused:
            return _login(status=401, note=str(refused))
        if authorised(request):
            return _see_other("/admin/?" + urlencode({"community": community}))
        response = _see_other()
        response.set_cookie(
            SCOPE_COOKIE,
            raw,
            path="/admin",
            httponly=True,
            samesite="Lax",  # the link is opened from the platform: a top-level visit from another site
            secure=secure or request.secure,
            max_age=int(LINK_TTL_S),
        )
        return response

    async def page(request: web.Request) -> web.Response:
        raw = request.query.get("scope")
        if raw is not None:
            return scoped(request, raw)
        try:
            who = viewer(request)
        except LinkRefused as refused:
            return _login(status=401, note=str(refused))
        if who is None:
            return _login(status=401)
        days, community = days_of(request), chosen(request, who)
        data = await built(days, community, who)
        notice = SYNCED_NOTICES.get(request.query.get("synced", ""), "")
        if request.query.get("written") == "1":
            notice = WRITTEN_NOTICE
        choices = await _listed(communities) if who.operator and communities is not None else None
        return web.Response(
            text=render_page(
                data,
                days,
                can_sync=sync is not None and who.operator,
                notice=notice,
                can_mark=mark_written is not None,
                choices=choices,
                operator=who.operator,
            ),
            content_type="text/html",
            headers=HEADERS,
        )

    def same_origin(request: web.Request) -> None:
        """A change of state only from the page itself (403 otherwise, counted)."""
        refused = _cross_origin(request, public_origin)
        if refused:
            rejected("cross_origin")
            raise web.HTTPForbidden(text=refused, headers=HEADERS)

    async def sync_now(request: web.Request) -> web.Response:
        """Sync the library, then back to the page (303) with the outcome, or the outcome as JSON."""
        assert sync is not None  # the route exists only with `sync`
        if not allowed(request, "sign in on /admin/ first").operator:
            raise web.HTTPForbidden(
                text="only the operator (ADMIN_TOKEN) can sync the library", headers=HEADERS
            )
        same_origin(request)
        days, community = days_of(request), community_of(request)
        wants_json = "application/json" in request.headers.get("Accept", "")
        try:
            result = await sync()
        except Exception as exc:
            _log.exception("the library sync asked for on the report page failed")
            reason = _reason(exc)
            if wants_json:
                return web.json_response({"outcome": "error", "reason": reason}, status=503, headers=HEADERS)
            return _not_synced(reason, days, community, status=503)
        if wants_json:
            return web.json_response(result, headers=HEADERS)
        outcome = str(result.get("outcome", ""))
        if outcome not in SYNCED:
            return _not_synced(_one_line(str(result.get("reason", "")) or outcome), days, community)
        back = {"days": f"{days:g}"} | ({"community": community} if community else {}) | {"synced": outcome}
        return _see_other("/admin/?" + urlencode(back))

    async def mark(request: web.Request) -> web.Response:
        """Mark a topic written (the form's `community` and `question`), then back to the page (303)."""
        assert mark_written is not None  # the route exists only with `mark_written`
        who = allowed(request, "sign in on /admin/ first")
        same_origin(request)
        days, view = days_of(request), chosen(request, who)
        form = await request.post()
        where = str(form.get("community", ""))
        question = " ".join(str(form.get("question", "")).split())
        if who.scope is not None and where != who.scope:
            raise web.HTTPForbidden(text=NOT_YOURS, headers=HEADERS)
        if not _COMMUNITY.match(where) or (view is not None and where != view):
            raise web.HTTPBadRequest(text="community must be the topic's community id", headers=HEADERS)
        if not question or len(question) > MAX_STORED_CHARS:
            raise web.HTTPBadRequest(
                text=f"question must be the topic's question (1 to {MAX_STORED_CHARS} characters)",
                headers=HEADERS,
            )
        try:
            await mark_written(where, question)
        except Exception as exc:
            _log.exception("marking a topic written from the report page failed")
            return _not_done("The topic was not marked written", _reason(exc), days, view, status=503)
        back = (
            {"days": f"{days:g}"} | ({"community": view} if who.operator and view else {}) | {"written": "1"}
        )
        return _see_other("/admin/?" + urlencode(back))

    async def login(request: web.Request) -> web.Response:
        form = await request.post()
        given = str(form.get("token", ""))
        if not hmac.compare_digest(given.strip().encode(), token.encode()):
            rejected("wrong_login")
            return _login(status=401, wrong=True)
        response = _see_other()
        response.set_cookie(
            COOKIE,
            session,
            path="/admin",
            httponly=True,
            samesite="Strict",
            secure=secure or request.secure,  # TLS to the bot itself; never X-Forwarded-Proto
            max_age=7 * 86400,
        )
        return response

    async def logout(request: web.Request) -> web.Response:
        response = _see_other()
        response.del_cookie(COOKIE, path="/admin")
        response.del_cookie(SCOPE_COOKIE, path="/admin")
        return response

    async def data(request: web.Request) -> web.Response:
        who = allowed(request, "send Authorization: Bearer <ADMIN_TOKEN>")
        days, community = days_of(request), chosen(request, who)
        return web.json_response(await built(days, community, who), headers=HEADERS)

    async def csv_table(request: web.Request) -> web.Response:
        who = allowed(request, "send Authorization: Bearer <ADMIN_TOKEN>")
        table = request.match_info["table"]
        if table not in TABLES:
            raise web.HTTPNotFound(text=f"no table {table!r}; tables: {', '.join(TABLES)}", headers=HEADERS)
        days, community = days_of(request), chosen(request, who)
        body = table_csv(await built(days, community, who), table)
        return web.Response(
            text=body,
            content_type="text/csv",
            charset="utf-8",
            headers={**HEADERS, "Content-Disposition": f'attachment; filename="{table}-{days:g}d.csv"'},
        )

    async def asset(request: web.Request) -> web.FileResponse:
        name = request.match_info["name"]
        if name not in ASSETS:
            raise web.HTTPNotFound()
        return web.FileResponse(
            STATIC / name, headers={"Content-Type": ASSETS[name], "Cache-Control": "max-age=3600"}
        )

    async def to_page(request: web.Request) -> web.Response:
        raise web.HTTPMovedPermanently("/admin/")

    app.router.add_get("/admin", to_page)
    app.router.add_get("/admin/", page)
    app.router.add_post("/admin/login", login)
    app.router.add_post("/admin/logout", logout)
    app.router.add_get("/admin/report.json", data)
    app.router.add_get("/admin/csv/{table}.csv", csv_table)
    app.router.add_get("/admin/static/{name}", asset)
    if sync is not None:
        app.router.add_post("/admin/sync", sync_now)  # a GET is 405: nothing changes on a link
    if mark_written is not None:
        app.router.add_post("/admin/written", mark)


async def _flushed(rejections: Rejections) -> None:
    rejections.flush()


async def _listed(communities: Communities) -> list[str]:
    """The picker's communities; none (the picker shows the current choice only) if they cannot be read."""
    try:
        return [c for c in await communities() if _COMMUNITY.match(c)]
    except Exception as exc:
        _log.warning("the report page could not list the communities (%s)", type(exc).__name__)
        return []


def _own_origin(request: web.Request) -> str:
    """The page's origin as this request reached it (scheme://host[:port]): the connection's own scheme,
    never one a header claims."""
    return f"{request.scheme}://{request.host}".lower()


def _origin_of(url: str) -> str:
    """scheme://host[:port] of an address, lower case; "" for none."""
    parts = urlsplit(url.strip())
    return f"{parts.scheme}://{parts.netloc}".lower() if parts.scheme and parts.netloc else ""


def _cross_origin(request: web.Request, public_origin: str = "") -> str:
    """Why a state-changing request is not from the page itself, in one line; "" when it is. Browsers
    send `Origin` with every form POST; a request without it must name the page in `Referer` (a script
    sends `Origin: <the bot's address>`). The page's origin is the one the request reached, or behind a
    proxy PUBLIC_URL's (`public_origin`)."""
    own = {_own_origin(request), public_origin} - {""}
    origin = request.headers.get("Origin")
    if origin is not None:
        return "" if origin.strip().lower() in own else "the request came from another site (Origin)"
    if _origin_of(request.headers.get("Referer", "")) in own:
        return ""
    return "the request did not say it came from this page (no Origin or Referer)"


def _one_line(text: str, limit: int = 300) -> str:
    line = " ".join(text.strip().splitlines()[0].split()) if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _reason(exc: Exception) -> str:
    """Why a sync failed, safe to show: the app's own errors say it (their messages hold no secrets);
    anything else only by its kind, the log has the rest."""
    if isinstance(exc, BotError | LibraryError) and str(exc).strip():
        return _one_line(str(exc))
    return f"{type(exc).__name__}; the bot's log says more"


def _not_synced(reason: str, days: float, community: str | None, *, status: int = 200) -> web.Response:
    return _not_done("The library was not synced", reason, days, community, status=status)


def _not_done(
    title: str, reason: str, days: float, community: str | None, *, status: int = 200
) -> web.Response:
    body = _frame(
        title,
        f"""<main class="login"><h1>{_e(title)}</h1>
<p class="error">{_e(reason)}</p>
<p><a href="/admin/?{_query(days, community)}">Back to the report</a></p></main>""",
    )
    return web.Response(text=body, status=status, content_type="text/html", headers=HEADERS)


def _see_other(location: str = "/admin/") -> web.Response:
    return web.Response(status=303, headers={**HEADERS, "Location": location})


def _login(*, status: int, wrong: bool = False, note: str = "") -> web.Response:
    """The sign-in form (the operator's), under `note` (a refused community link's line)."""
    if wrong:
        note = "That is not the token."
    note = f'<p class="error">{_e(note)}</p>' if note else ""
    body = _frame(
        "Sign in",
        f"""<main class="login"><h1>AI-safety bot: report</h1>{note}
<form method="post" action="/admin/login">
<label for="token">Admin token (ADMIN_TOKEN)</label>
<input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
<button type="submit">Sign in</button></form></main>""",
    )
    return web.Response(text=body, status=status, content_type="text/html", headers=HEADERS)


def _frame(title: str, body: str, *, chart: bool = False) -> str:
    scripts = (
        '<link rel="stylesheet" href="/admin/static/uPlot.min.css">'
        '<script src="/admin/static/uPlot.iife.min.js" defer></script>'
        '<script src="/admin/static/admin.js" defer></script>'
        if chart
        else ""
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<link rel="stylesheet" href="/admin/static/admin.css">{scripts}</head>
<body>{body}</body></html>
"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def _link(title: str, url: str) -> str:
    """An article link, only to a web address (the stored sources are the library's)."""
    if urlsplit(url).scheme in ("http", "https"):
        return f'<a href="{_e(url)}" rel="noopener noreferrer">{_e(title or url)}</a>'
    return _e(title or url)


def _query(days: float, community: str | None) -> str:
    """The page's own query string: the period, and the community when one is chosen."""
    return f"days={days:g}" + (f"&amp;community={_e(quote(community, safe=':'))}" if community else "")


def _community_link(community: str, days: float) -> str:
    """A community's name in the operator's view, linking to its own report."""
    return f'<a href="/admin/?{_query(days, community)}">{_e(community)}</a>' if community else ""


T = TypeVar("T")


def _table(
    name: str,
    head: list[str],
    items: Sequence[T],
    row: Callable[[T], list[str]],
    query: str,
    empty: str,
    *,
    lead: str = "",
) -> str:
    """A section with its table (or a line saying it is empty), under `lead` (HTML) when given: the
    first SHOWN items, each made a row of HTML cells by `row`, and how many more the CSV holds."""
    link = f"/admin/csv/{name}.csv?{query}"
    csv = f'<a class="csv" href="{link}" download>CSV</a>'
    top = f'<section id="{name}"><h2>{_e(TITLES[name])} {csv}</h2>{lead}'
    if not items:
        return f'{top}<p class="empty">{_e(empty)}</p></section>'
    header = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row(item)) + "</tr>" for item in items[:SHOWN])
    more = (
        f'<p class="more">{len(items) - SHOWN} more in the <a href="{link}" download>CSV</a>.</p>'
        if len(items) > SHOWN
        else ""
    )
    return (
        f'{top}<div class="scroll"><table>'
        f"<thead><tr>{header}</tr></thead><tbody>{body}</tbody></table></div>{more}</section>"
    )


def _library(report: dict[str, Any], query: str, *, can_sync: bool) -> str:
    """The library's size, its last sync and the period's changes (public facts, the same for every
    community), with the sync button when the running bot can sync."""
    library = report.get("library")
    if library is None and not can_sync:
        return ""
    facts = (
        f'<p class="lead">{_e(library["articles"])} articles; '
        f"last synced {_e(utc(library['last_sync']))}.</p>"
        if library is not None
        else ""
    )
    button = (
        f'<form method="post" action="/admin/sync?{query}" class="sync">'
        '<button type="submit">Sync the library now</button></form>'
        if can_sync
        else ""
    )
    return _table(
        "library",
        ["when", "change", "article"],
        (library or {}).get("changes", []),
        lambda c: [_e(utc(c["time"])), _e(c["change"]), _link(str(c["title"]), str(c["url"]))],
        query,
        "No article changed in this period.",
        lead=facts + button,
    )


def _prev(report: dict[str, Any], value: Any, previous: Any) -> str:
    """A count with the previous period's beside it, when the report compares periods."""
    if "previous" not in report or previous is None:
        return _e(value)
    return f'{_e(value)} <span class="prev">(prev {_e(previous)})</span>'


def _places(item: dict[str, Any]) -> str:
    places = item.get("where") or []
    return _e(", ".join([places] if isinstance(places, str) else places))


def render_page(
    report: dict[str, Any],
    days: float,
    *,
    can_sync: bool = False,
    notice: str = "",
    can_mark: bool = False,
    choices: Sequence[str] | None = None,
    operator: bool = True,
) -> str:
    """The report as the page; `can_sync`: show the sync button; `notice`: a line at the top (escaped);
    `can_mark`: each topic to write has a button that marks it written; `choices`: the communities the
    operator can pick from; `operator`: False for a community's moderators, who see theirs only (no
    picker, no way to every community)."""
    stored = report.get("questions_stored", True)
    community = report.get("community")
    query = _query(days, community)
    before = report.get("previous")

    def table(name: str, head: list[str], row: Callable[[dict[str, Any]], list[str]], empty: str) -> str:
        """The report's table `name`, each item a row by `row`; in the operator's view of every
        community, the tables of members' questions say where each was asked."""
        if name in BY_COMMUNITY and community is None:
            return _table(
                name,
                ["community", *head],
                report.get(name, []),
                lambda item: [_community_link(str(item.get("community", "")), days), *row(item)],
                query,
                empty,
            )
        return _table(name, head, report.get(name, []), row, query, empty)

    no_text = "Questions are not stored (STORE_QUESTIONS=false): counts and sources only."
    counts = report.get("by_outcome", {})
    summary = "".join(
        f'<li class="{o}"><span>{_e(counts.get(o, 0))}</span> {_e(LABELS[o])}'
        + (f' <span class="prev">(prev {_e(before["by_outcome"].get(o, 0))})</span>' if before else "")
        + "</li>"
        for o in OUTCOMES
    )
    for key, label in (("close_calls", f"{CLOSE_CALL}s"), ("off_topic", "off-topic")):
        summary += (
            f'<li class="{key}"><span>{_e(report.get(key, 0))}</span> {_e(label)}'
            + (f' <span class="prev">(prev {_e(before.get(key, 0))})</span>' if before else "")
            + "</li>"
        )
    periods = "".join(
        f'<option value="{p}"{" selected" if p == days else ""}>last {p} day{"s" if p > 1 else ""}</option>'
        for p in PERIODS
    )
    if days not in PERIODS:
        periods += f'<option value="{days:g}" selected>last {days:g} days</option>'
    chart_data = json.dumps(report.get("by_day", [])).replace("</", "<\\/")

    def grouped(name: str) -> str:
        return table(
            name,
            ["asked", "question", "other wordings", "last asked", "where"],
            lambda g: [
                _prev(report, g["count"], g.get("previous")),
                _e(g["question"]),
                _e(" | ".join(v for v in g["variants"] if v != g["question"])),
                _e(utc(g["asked"])) if g.get("asked") else "",
                _places(g),
            ],
            no_text if not stored else "None in this period.",
        )

    def mark_button(g: dict[str, Any]) -> str:
        where = str(g.get("community") or community or "")
        if not can_mark or not stored or not where:
            return ""
        return (
            f'<form method="post" action="/admin/written?{query}" class="mark">'
            f'<input type="hidden" name="community" value="{_e(where)}">'
            f'<input type="hidden" name="question" value="{_e(g["question"])}">'
            '<button type="submit" class="quiet">Mark written</button></form>'
        )

    def topic(g: dict[str, Any]) -> str:
        again = (
            f'<br><span class="prev">marked written {_e(utc(g["written"]))}, asked again since</span>'
            if g.get("written")
            else ""
        )
        return _e(g["question"]) + again + mark_button(g)

    def answer(d: dict[str, Any]) -> str:
        if not stored:
            return "<em>not stored</em>"
        close = f' <span class="prev">({_e(CLOSE_CALL)})</span>' if d.get("coverage") == "close" else ""
        return f'<div class="answer">{_e(d.get("answer", ""))}</div>{close}'

    empty = report.get("answers", 0) == 0 and not (before or {}).get("answers")
    sections = [
        f"""<section id="by_day"><h2>{_e(TITLES["by_day"])} <a class="csv"
href="/admin/csv/by_day.csv?{query}" download>CSV</a></h2>
<ul class="summary">{summary}</ul><div id="chart" role="img" aria-label="answers per day by outcome"></div>
<script type="application/json" id="by-day-data">{chart_data}</script></section>""",
        grouped("most_asked"),
        table(
            "to_write",
            [
                "questions",
                "not covered",
                f"{CLOSE_CALL}s",
                "voted down",
                "topic",
                "other wordings",
                "last asked",
                "where",
            ],
            lambda g: [
                _prev(report, g["count"], g.get("previous")),
                _e(g["abstained"]),
                _e(g.get("close", 0)),
                _e(g["downvoted"]),
                topic(g),
                _e(" | ".join(v for v in g["variants"] if v != g["question"])),
                _e(utc(g["asked"])) if g.get("asked") else "",
                _places(g),
            ],
            no_text if not stored else "None in this period.",
        ),
        grouped("abstained"),
        table(
            "downvoted",
            ["down", "up", "question", "answer", "asked", "where", "sources"],
            lambda d: [
                _e(d["down"]),
                _e(d["up"]),
                _e(d["question"]) if stored else "<em>not stored</em>",
                answer(d),
                _e(utc(d["asked"])) if d.get("asked") else "",
                _places(d),
                ", ".join(_link(str(s.get("title", "")), str(s.get("url", ""))) for s in d["sources"])
                or "no sources",
            ],
            "No answer was voted down in this period.",
        ),
        grouped("offtopic"),
        table(
            "written",
            ["marked", "topic"],
            lambda w: [_e(utc(w["marked"])), _e(w["question"])],
            "No topic has been marked written.",
        ),
        table(
            "most_cited",
            ["shown", "cited by an LLM answer", "article"],
            lambda a: [_e(a["count"]), _e(a.get("llm_cited", 0)), _link(a["title"], a["url"])],
            "No answer showed an article in this period.",
        ),
        table(
            "never_cited",
            ["article"],
            lambda a: [_link(a["title"], a["url"])],
            "Every article was shown.",
        ),
        _library(report, query, can_sync=can_sync),
    ]
    if empty:  # nothing to list but where answers come from, and the library
        sections = [sections[0], sections[-1]]
    who = _e(community) if community else "every community"
    back = f' <a href="/admin/?days={days:g}">Every community</a>' if community and operator else ""
    keep = f'<input type="hidden" name="community" value="{_e(community)}">' if community else ""
    if operator and choices is not None:
        listed = sorted({*choices, *([community] if community else [])})
        options = "".join(
            f'<option value="{_e(c)}"{" selected" if c == community else ""}>{_e(c)}</option>' for c in listed
        )
        keep = (
            '<label for="community">Community</label><select id="community" name="community">'
            f'<option value=""{"" if community else " selected"}>every community</option>{options}</select>'
        )
    answers = _prev(report, report.get("answers", 0), (before or {}).get("answers"))
    body = f"""<header><h1>What {who} asked</h1>
<form method="get" action="/admin/"><label for="days">Period</label>
<select id="days" name="days">{periods}</select>{keep}<button type="submit">Show</button></form>
<form method="post" action="/admin/logout"><button type="submit" class="quiet">Sign out</button></form></header>
<main>{f'<p class="notice" role="status">{_e(notice)}</p>' if notice else ""}
<p class="lead">{answers} answers in the last {days:g} days.{back}</p>
{f'<p class="note">{_e(NO_ANSWERS)}</p>' if empty else ""}
{"" if stored else f'<p class="note">{_e(no_text)}</p>'}{"".join(sections)}</main>"""
    return _frame("AI-safety bot: report", body, chart=True)
