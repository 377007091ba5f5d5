"""The running bot keeps its library in step with its sources (aisafety.info's feed first): every
SYNC_EVERY_S, on SIGHUP, or from the report page, it re-reads SOURCES and applies the incremental ingest
to the store it already holds, the embedded one included: no second process, no cron.

Each sync is one of four outcomes: `changed`, `unchanged` (the feed's `timestamp` and every file as
before, or nothing differed), `refused` (a guard said no: the sync would remove too much) and `failed`
(a download, the feed or the store failed). A sync that does not succeed changes nothing and is tried
again next period (after a 429, not before its Retry-After). Of several replicas, one syncs each period:
the others find the period's lease done (`bot.ports.Leases`).

The work runs on a thread of its own, embedding in small batches, so questions never queue behind it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from retrieval import aisafety_info
from retrieval.documents import ArticleChange
from retrieval.errors import LibraryError

if TYPE_CHECKING:
    from bot.ports import Leases
    from retrieval.embeddings import Embedder
    from retrieval.index import VectorStore
    from service.feedback import FeedbackStore
    from service.metrics import Metrics

_log = logging.getLogger(__name__)

Outcome = Literal["changed", "unchanged", "refused", "failed"]

# Passages per embedding call during a sync: a question's embedding waits for at most one such call.
SYNC_EMBED_BATCH = 8
# A period's start is spread over this share of the period, so replicas (and installs) do not all ask
# the site at the same second.
JITTER = 0.1
# How long one replica may hold the right to sync before another may take it (a killed replica's sync).
RUNNING_TTL_S = 1800.0
# The library counts as stale (/readyz "degraded") when no sync succeeded for this many periods.
STALE_PERIODS = 3
LEASE = "library-sync"


@dataclass
class SyncResult:
    outcome: Outcome
    added: int = 0
    changed: int = 0
    removed: int = 0
    articles: int = 0
    reason: str = ""
    changes: list[ArticleChange] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "added": self.added,
            "changed": self.changed,
            "removed": self.removed,
            "articles": self.articles,
            "reason": self.reason,
        }

    def summary(self) -> str:
        if self.outcome == "changed":
            return f"{self.added} added, {self.changed} changed, {self.removed} removed; {self.articles} articles"
        if self.outcome == "unchanged":
            return "nothing changed"
        return self.reason


def fingerprint(spec: str) -> str | None:
    """What says a file source is unchanged without reading it: its size and modification time (a
    folder's: of every Markdown file in it). None for a URL: only its content can tell."""
    path = Path(spec).expanduser()
    try:
        if path.is_file():
            st = path.stat()
            return f"{st.st_size}:{st.st_mtime_ns}"
        if path.is_dir():
            h = hashlib.sha256()
            for md in sorted(path.rglob("*.md")):
                st = md.stat()
                h.update(f"{md}:{st.st_size}:{st.st_mtime_ns}\n".encode())
            return h.hexdigest()
    except OSError:
        return None
    return None


class LibrarySync:
    """Syncs the library on a timer, and on demand (`sync_now`)."""

    def __init__(
        self,
        *,
        store: VectorStore,
        embedder: Embedder,
        sources: Sequence[str],
        aisafety_info_url: str,
        every_s: float,
        max_remove: float,
        leases: Leases,
        feedback: FeedbackStore | None = None,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self.store = store
        self.embedder = embedder
        self.sources = list(sources)
        self.base = aisafety_info_url
        self.every_s = every_s
        self.max_remove = max_remove
        self.leases = leases
        self.feedback = feedback
        self.metrics = metrics
        self.clock = clock
        self._seen: dict[str, str] = {}  # entry -> its fingerprint at the last successful sync
        self._not_before = 0.0  # a 429's Retry-After
        self._local = asyncio.Lock()  # one sync at a time in this process
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="library-sync")
        self.last_success: float | None = None
        self._started = clock()

    # -- the timer ------------------------------------------------------------------------------
    async def run(self) -> None:
        """Sync once a period, the first one period after start (each with up to JITTER of it added)."""
        if self.every_s <= 0:
            return
        await self._refresh_last_success()
        while True:
            await asyncio.sleep(self.every_s * (1 + random.uniform(0, JITTER)))
            await self.scheduled()

    async def scheduled(self) -> SyncResult | None:
        """The period's sync, unless another replica has done it (or a Retry-After still holds)."""
        now = self.clock()
        if now < self._not_before:
            _log.info(
                "library sync: waiting for the site's Retry-After (%.0f s more)", self._not_before - now
            )
            return None
        period = f"{LEASE}:{int(now // self.every_s)}" if self.every_s > 0 else f"{LEASE}:{now}"
        lease = await self.leases.acquire(period, RUNNING_TTL_S)
        if lease is None:  # another replica has synced this period, or is syncing
            await self._refresh_last_success()  # its success counts for this replica's /readyz too
            return None
        result = await self.sync_now(allow_large_removal=False)
        if result.outcome in ("changed", "unchanged", "refused"):
            await self.leases.done(lease)
        else:
            await self.leases.release(lease)
        return result

    # -- one sync -------------------------------------------------------------------------------
    async def sync_now(self, *, allow_large_removal: bool = False) -> SyncResult:
        """Sync now (SIGHUP, the report page: `allow_large_removal` lifts the guard once)."""
        async with self._local:
            running = await self.leases.acquire(f"{LEASE}:running", RUNNING_TTL_S)
            if running is None:
                return SyncResult(
                    "failed", reason="another replica is syncing the library now; try again later"
                )
            try:
                loop = asyncio.get_running_loop()
                result = await loop.run_in_executor(self._thread, self._sync, allow_large_removal)
            finally:
                await self.leases.release(running)
            await self._record(result)
            return result

    async def on_signal(self) -> None:
        """SIGHUP: sync now (the guard stays: a signal is not a moderator looking at the page)."""
        await self.sync_now()

    def _sync(self, allow_large_removal: bool) -> SyncResult:
        from retrieval.ingest import LargeRemoval, ingest

        try:
            prefetched, seen = self._read_fingerprints()
            if self._seen and seen == self._seen and all(v is not None for v in seen.values()):
                return SyncResult("unchanged", articles=self._articles())
            report = ingest(
                store=self.store,
                embedder=self.embedder,
                sources=self.sources,
                aisafety_info_url=self.base,
                max_remove=1.0 if allow_large_removal else self.max_remove,
                prefetched=prefetched,
                batch_size=SYNC_EMBED_BATCH,
            )
        except LargeRemoval as exc:
            return SyncResult("refused", reason=str(exc))
        except LibraryError as exc:
            if exc.retry_after:
                self._not_before = self.clock() + exc.retry_after
            return SyncResult("failed", reason=str(exc))
        except Exception as exc:  # not one of ours: its message may say anything, so the log has it
            _log.exception("library sync failed")
            return SyncResult("failed", reason=f"{type(exc).__name__} (the bot's log has the details)")
        self._seen = {k: v for k, v in seen.items() if v is not None}
        if len(self._seen) < len(seen):
            self._seen = {}  # a URL source: only its content tells; never skip by fingerprint
        kinds = [c.change for c in report.changes]
        return SyncResult(
            "changed" if report.changes else "unchanged",
            added=kinds.count("added"),
            changed=kinds.count("changed"),
            removed=kinds.count("removed"),
            articles=report.articles,
            changes=report.changes,
        )

    def _read_fingerprints(self) -> tuple[dict[str, object], dict[str, str | None]]:
        """Each entry's fingerprint; the feed is downloaded (and kept for the ingest) to read its
        `timestamp`, so an unchanged feed is not parsed into articles at all."""
        prefetched: dict[str, object] = {}
        seen: dict[str, str | None] = {}
        for spec in self.sources:
            if spec.strip() == aisafety_info.SOURCE:
                url = aisafety_info.feed_url(self.base)
                body = aisafety_info.download(
                    url, timeout_s=aisafety_info.FEED_TIMEOUT_S, max_bytes=aisafety_info.FEED_MAX_BYTES
                )
                payload = aisafety_info.decode(body, url)
                stamp = payload.get("timestamp") if isinstance(payload, dict) else None
                seen[spec] = f"feed:{stamp}" if stamp else "body:" + hashlib.sha256(body).hexdigest()
                prefetched[spec] = payload
            else:
                seen[spec] = fingerprint(spec)
        return prefetched, seen

    def _articles(self) -> int:
        live = self.store.live_collection()
        return len(self.store.article_states(live)) if live else 0

    async def _record(self, result: SyncResult) -> None:
        level = logging.WARNING if result.outcome in ("refused", "failed") else logging.INFO
        _log.log(level, "library sync %s: %s", result.outcome, result.summary())
        if self.metrics is not None:
            self.metrics.library_syncs.labels(result.outcome).inc()
        if result.outcome in ("changed", "unchanged"):
            self.last_success = self.clock()
            if self.metrics is not None:
                self.metrics.library_articles.set(result.articles)
                self.metrics.library_synced.set(self.last_success)
        if self.feedback is not None:
            try:
                await asyncio.to_thread(
                    self.feedback.record_library_sync,
                    result.outcome,
                    result.changes,
                    articles=result.articles,
                    reason=result.reason,
                    when=self.clock(),
                )
            except Exception as exc:  # the library changed either way; only its log entry is missing
                _log.warning("could not record the library sync: %s: %s", type(exc).__name__, exc)
        await self._refresh_last_success()

    async def _refresh_last_success(self) -> None:
        """The last success by any replica (they share the answers database)."""
        if self.feedback is None:
            return
        try:
            when = await asyncio.to_thread(self.feedback.last_library_sync)
            articles = await asyncio.to_thread(self.feedback.library_articles)
        except Exception as exc:
            _log.info("could not read the last library sync: %s", type(exc).__name__)
            return
        if when is not None and (self.last_success is None or when > self.last_success):
            self.last_success = when
            if self.metrics is not None:
                self.metrics.library_synced.set(when)
                if articles is not None:
                    self.metrics.library_articles.set(articles)

    def stale(self) -> str | None:
        """/readyz's `degraded.library`: why the library may be out of date, or None."""
        if self.every_s <= 0:
            return None
        limit = STALE_PERIODS * self.every_s
        since = self.last_success
        if since is None:
            return None if self.clock() - self._started < limit else "never synced since start"
        if self.clock() - since > limit:
            return f"last synced {int(self.clock() - since)} s ago (more than {STALE_PERIODS} periods)"
        return None

    def close(self) -> None:
        self._thread.shutdown(wait=False, cancel_futures=True)
