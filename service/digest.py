"""A digest where the moderators are: each community's digest channel (its own choice, or
`DIGEST_CHANNEL` in the community that owns it) gets a short summary of that community's questions
only, for each period (its own, or `DIGEST_EVERY`: daily, weekly or monthly, in UTC) once the period is
over: answers by outcome, the most asked questions, the questions the library did not cover, the number
of 👎, the articles new on aisafety.info and, for DIGEST_CHANNEL, a link to the report page
(`PUBLIC_URL`). A replica takes the period's lease (`bot.ports.Leases`, chosen by
`service.lease.choose_leases`) before it posts the digest and marks it done afterwards, so each period is
posted once: across restarts, and by one replica when several share PostgreSQL or Redis. No one is
pinged: the text is rendered by the platform's own escaping, and the posting adapter allows no mentions.
"""

from __future__ import annotations

import asyncio
import calendar
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from bot.platform import Style
from bot.ports import Lease, Leases
from retrieval.aisafety_info import SOURCE as AISAFETY_INFO
from retrieval.vocabulary import Vocabulary
from service.feedback import FeedbackStore
from service.report import Embed, build_report

_log = logging.getLogger(__name__)

CHECK_EVERY_S = 600.0  # how often the bot looks for a period whose digest is due
LEASE_TTL_S = 600.0  # how long a replica may take to post a digest before another may try
TOP = 5  # questions listed in each section
TOP_NEW = 10  # new articles listed (the first sync of a library adds hundreds)


@dataclass(frozen=True)
class Period:
    key: str  # "weekly:2026-W47": the lease's name
    start: float  # seconds since the epoch, included
    end: float  # excluded
    label: str  # "the week of 16 Nov 2026"


def last_complete(every: str, now: float) -> Period:
    """The most recent period of `every` that has ended by `now` (UTC)."""
    today = dt.datetime.fromtimestamp(now, dt.UTC).date()
    if every == "daily":
        start = today - dt.timedelta(days=1)
        end = today
        key, label = start.isoformat(), start.strftime("%d %b %Y")
    elif every == "weekly":
        end = today - dt.timedelta(days=today.weekday())  # this Monday
        start = end - dt.timedelta(days=7)
        year, week, _ = start.isocalendar()
        key, label = f"{year}-W{week:02d}", f"the week of {start.strftime('%d %b %Y')}"
    elif every == "monthly":
        end = today.replace(day=1)
        start = (end - dt.timedelta(days=1)).replace(day=1)
        key, label = start.strftime("%Y-%m"), start.strftime("%B %Y")
    else:
        raise ValueError(f"DIGEST_EVERY must be daily, weekly or monthly, not {every!r}")
    return Period(f"{every}:{key}", _epoch(start), _epoch(end), label)


def _epoch(day: dt.date) -> float:
    return float(calendar.timegm(day.timetuple()))


@dataclass(frozen=True)
class LibraryNews:
    """What the period did to the library, each article counted once by where it ended up: one added
    and then removed within the period is no news."""

    new: list[dict[str, Any]]  # aisafety.info's articles added (their latest title and address)
    changed: int
    removed: int

    def __bool__(self) -> bool:
        return bool(self.new or self.changed or self.removed)


def library_news(changes: Sequence[dict[str, Any]]) -> LibraryNews:
    """The period's library changes (`FeedbackStore.library_changes`, oldest first) as the digest tells
    them."""
    by_article: dict[str, list[dict[str, Any]]] = {}
    for c in changes:
        by_article.setdefault(str(c["id"]), []).append(c)
    new: list[dict[str, Any]] = []
    changed = removed = 0
    for aid, log in by_article.items():
        first, last = log[0]["change"], log[-1]["change"]
        if first == "added":
            if last != "removed" and aid.startswith(f"{AISAFETY_INFO}:"):
                new.append(log[-1])
        elif last == "removed":
            removed += 1
        else:
            changed += 1
    return LibraryNews(new, changed, removed)


def _article(style: Style, title: str, url: str) -> str:
    """An article's link from its stored address. Its title is text on every platform: a bracket could
    end a Markdown label early, an @ could mention someone; only a web address becomes a link."""
    label = (title or url).replace("[", "(").replace("]", ")").replace("@", "@\u200b")
    if urlsplit(url).scheme.lower() not in ("http", "https"):
        return style.clean(label)
    return style.link(label, url.replace(" ", "%20").replace("<", "%3C").replace(">", "%3E"))


def digest_text(
    report: dict[str, Any],
    period: Period,
    style: Style,
    *,
    admin_url: str | None,
    library: LibraryNews | None = None,
) -> str:
    counts = report.get("by_outcome", {})
    down = sum(int(d.get("down", 0)) for d in report.get("downvoted", []))
    lines = [
        style.bold(f"AI-safety bot digest: {period.label}"),
        f"{report.get('answers', 0)} questions: {counts.get('llm', 0)} answered, "
        f"{counts.get('retrieval-only', 0)} with sources only, {counts.get('abstain', 0)} not covered, "
        f"{counts.get('error', 0)} failed; {down} 👎."
        if report.get("answers", 0)
        else "No questions were asked.",
    ]
    for title, key in (("Most asked", "most_asked"), ("Not covered by the library", "abstained")):
        groups = report.get(key, [])[:TOP]
        if groups:
            lines += ["", style.bold(title)]
            lines += [f"• {g['count']}× {style.clean(_short(g['question']))}" for g in groups]
    if not report.get("questions_stored", True):
        lines += ["", "(Questions are not stored: STORE_QUESTIONS=false.)"]
    if library and library.new:
        lines += ["", style.bold("New on aisafety.info")]
        lines += [f"• {_article(style, str(c['title']), str(c['url']))}" for c in library.new[:TOP_NEW]]
        if len(library.new) > TOP_NEW:
            lines.append(f"…and {len(library.new) - TOP_NEW} more.")
    if library and (library.changed or library.removed):
        lines += ["", f"Articles changed: {library.changed}, removed: {library.removed}."]
    if admin_url:
        lines += ["", style.link("The full report", admin_url)]
    return "\n".join(lines)


def _short(question: str, limit: int = 160) -> str:
    question = " ".join(question.split())
    return question if len(question) <= limit else question[: limit - 1] + "…"


Post = Callable[[str], Awaitable[None]]


class Digest:
    """Posts each period's digest once it is over; `run` checks every `check_every_s` seconds. `store`
    gives the period's answers; `leases` makes sure one replica posts it, once."""

    def __init__(
        self,
        *,
        store: FeedbackStore,
        leases: Leases,
        embed: Embed,
        post: Post,
        style: Style,
        every: str = "weekly",
        admin_url: str | None = None,
        questions_stored: bool = True,
        clock: Callable[[], float] | None = None,
        check_every_s: float = CHECK_EVERY_S,
        lease_ttl_s: float = LEASE_TTL_S,
        community: str | None = None,
        lease_prefix: str = "",
        vocabulary: Callable[[], Vocabulary] | None = None,
    ):
        """`community`: the community of the channel the digest is posted in; only its answers are
        summed up (another community's members' questions never reach its channel). `lease_prefix`:
        in front of each period's lease name (`<community>:`: each community's digest is its own; empty
        for DIGEST_CHANNEL's, whose periods keep the names they had before communities). `vocabulary`:
        reads the library's (`retrieval.vocabulary`) for grouping wordings."""
        last_complete(every, 0)  # a bad period name fails here, at start-up
        self.store = store
        self.leases = leases
        self.embed = embed
        self.post = post
        self.style = style
        self.every = every
        self.admin_url = admin_url
        self.questions_stored = questions_stored
        self.clock = clock or time.time
        self.check_every_s = check_every_s
        self.lease_ttl_s = lease_ttl_s
        self.community = community
        self.lease_prefix = lease_prefix
        self.vocabulary = vocabulary

    async def once(self) -> bool:
        """Post the last complete period's digest unless another replica has it or it is done; True when
        posted. A period without a single answer or library change is marked done and skipped (nothing
        to say)."""
        period = last_complete(self.every, self.clock())
        lease = await self.leases.acquire(self.lease_prefix + period.key, self.lease_ttl_s)
        if lease is None:
            return False
        try:
            rows = await asyncio.to_thread(
                self.store.between, period.start, period.end, community=self.community
            )
            news = library_news(await asyncio.to_thread(self.store.library_changes, period.start, period.end))
            said = bool(rows or news)
            if said:
                words = await asyncio.to_thread(self.vocabulary) if self.vocabulary else None
                report = await asyncio.to_thread(
                    build_report,
                    rows,
                    embed=self.embed,
                    articles={},
                    since_days=(period.end - period.start) / 86400,
                    questions_stored=self.questions_stored,
                    now=period.end - 1,
                    community=self.community,
                    vocabulary=words,
                )
                await self.post(
                    digest_text(report, period, self.style, admin_url=self.admin_url, library=news)
                )
        except asyncio.CancelledError:
            # Stopped while posting: the digest has most likely gone out; posting it twice is worse.
            await self._finish(lease, period)
            raise
        except Exception:
            await self._release(lease)  # the next check tries again
            raise
        await self._finish(lease, period)
        if not said:
            _log.info("digest for %s: no questions and no library changes, nothing posted", period.label)
            return False
        _log.info("digest for %s posted", period.label)
        return True

    async def _finish(self, lease: Lease, period: Period) -> None:
        """Mark the period done; if that fails, the lease expires and the period may be posted again."""
        try:
            finished = await self.leases.done(lease)
        except Exception as exc:
            _log.warning(
                "digest for %s: could not be marked done (%s: %s); it may be posted again",
                period.label,
                type(exc).__name__,
                exc,
            )
            return
        if not finished:
            _log.warning(
                "digest for %s: its lease expired and another replica took it; it may be posted twice",
                period.label,
            )

    async def _release(self, lease: Lease) -> None:
        try:
            await self.leases.release(lease)
        except Exception as exc:
            _log.warning(
                "the digest's lease could not be given back (%s: %s); another try waits until it expires",
                type(exc).__name__,
                exc,
            )

    async def run(self) -> None:
        """Until cancelled: a failed digest is logged and tried again at the next check."""
        while True:
            try:
                await self.once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                _log.warning(
                    "the digest could not be posted (%s: %s); trying again later", type(exc).__name__, exc
                )
            await asyncio.sleep(self.check_every_s)
