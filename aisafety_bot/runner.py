"""`aisafety-bot run` with platforms: every enabled platform in one event loop, with /healthz, /readyz,
/metrics (and the report page with ADMIN_TOKEN) beside them, the digest, and a graceful stop.

The runner names no platform: it starts, checks and stops each through `bot.platform.Platform`, as
registered in `aisafety_bot/platforms.py`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from aisafety_bot import platforms as registry
from aisafety_bot.wiring import App, SharedState, open_feedback
from bot.errors import ConfigError
from bot.models import DM, UNASSIGNED

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.core import AnswerCore
    from bot.platform import Platform
    from bot.ports import Leases
    from service.feedback import FeedbackStore
    from service.library_sync import LibrarySync

_log = logging.getLogger(__name__)

# The report page's tables and their CSV downloads share one build of the report for this long.
REPORT_FRESH_S = 60.0
# How often a platform is asked whether it is ready, before the work that needs it connected.
READY_POLL_S = 0.5
# How long to wait before trying again to find the digest channel's community after a failure.
DIGEST_RETRY_S = 60.0


async def warm_up(core: AnswerCore) -> float:
    """Load the embedding model and the index and run one search, so that the first member's question
    costs what later ones do. Returns the seconds it took."""
    started = time.monotonic()
    await core.retriever.search("What is AI alignment?", k=1)
    return time.monotonic() - started


def live_report(
    app: App, feedback: FeedbackStore
) -> Callable[[float, str | None], Awaitable[dict[str, Any]]]:
    """The report page's data source in the running bot: its own history, index and embedding model. A
    report (of one community, or with None of every one) is built once a minute, not again for each
    table downloaded from the page."""
    from service.report import stored_report

    built: dict[tuple[float, str | None], tuple[float, dict[str, Any]]] = {}  # -> (when, report)

    def build(days: float, community: str | None) -> dict[str, Any]:
        return stored_report(
            feedback,
            embed=app.embedder.embed_dense_only,
            articles=app.store.catalogue(),
            since_days=days,
            questions_stored=app.settings.store_questions,
            community=community,
        )

    async def report(days: float, community: str | None = None) -> dict[str, Any]:
        when, data = built.get((days, community), (0.0, {}))
        if time.monotonic() - when > REPORT_FRESH_S:
            data = await asyncio.to_thread(build, days, community)
            built.clear()  # one report kept: the one the page shows now
            built[(days, community)] = (time.monotonic(), data)
        return data

    report.forget = built.clear  # type: ignore[attr-defined]
    return report


def live_marks(
    feedback: FeedbackStore, report: Callable[[float, str | None], Awaitable[dict[str, Any]]]
) -> Callable[[str, str], Awaitable[None]]:
    """The report page's "mark written": stored, and the page's next report is built afresh."""

    async def mark(community: str, question: str) -> None:
        await feedback.run(feedback.mark_written, community, question)
        forget = getattr(report, "forget", None)
        if forget is not None:
            forget()

    return mark


async def run_platforms(app: App) -> None:
    """Every enabled platform in one event loop, with the health endpoints beside them.

    Start-up order: the settings and tokens first (a bad FEEDBACK_DB or a refused token is reported at
    once, not after an ingest), then the index and the embedding model (so the first question costs what
    later ones do), then the health endpoints and the platforms' events."""
    from aiohttp import web

    from service.health import add_health_routes, serve

    s = app.settings
    feedback = open_feedback(s)
    shared = SharedState.from_settings(s, app.budget)
    app.budget = shared.budget
    core = app.core()
    services = shared.services(core, feedback, on_drop=core.observer.dropped)
    from service.feedback import DatabaseWatch

    database = DatabaseWatch(feedback)
    started: list[Platform] = []
    library: LibrarySync | None = None
    runner: web.AppRunner | None = None
    background: list[asyncio.Task[None]] = []
    try:
        for name in registry.enabled(s):
            platform = registry.make_platform(name, s, services)
            started.append(platform)  # closed below even if it fails to start
            await platform.start()
        digest = _digest_channel(s, started)
        served = [a for p in started if (a := p.http_app()) is not None]
        if len(served) > 1:
            raise ConfigError("only one platform can receive its events over HTTP at a time")
        site = served[0] if served else web.Application()  # one aiohttp app: a platform's events and health

        await asyncio.to_thread(app.ensure_ingested)
        await asyncio.to_thread(feedback.purge, s.question_retention_days)
        seconds = await warm_up(core)
        _log.info("embedding model and index ready in %.1f s", seconds)

        async def qdrant_ready() -> bool:
            return await asyncio.to_thread(app.store.live_collection) is not None

        library = library_sync(app, feedback, services.leases)
        writer = services.writer
        assert writer is not None

        def database_note() -> str | None:
            return database.note() or writer.degraded()

        notes: dict[str, Callable[[], str | None]] = {"library": library.stale, "database": database_note}
        if shared.redis is not None:
            if await shared.redis.ping():
                _log.info("shared state on Redis at %s", shared.redis.where)
            notes["redis"] = shared.redis.degraded
        checks = {"qdrant": qdrant_ready, **{p.name: p.ready for p in started}}
        add_health_routes(site, checks=checks, metrics=app.metrics, notes=notes)
        if s.admin_token is not None:
            from service.admin import add_admin_routes

            async def sync_from_page() -> dict[str, Any]:
                # A moderator asked for it: the removal guard is lifted this once.
                return (await library.sync_now(allow_large_removal=True)).to_json()

            page_report = live_report(app, feedback)
            add_admin_routes(
                site,
                token=s.admin_token.get_secret_value(),
                report=page_report,
                mark_written=live_marks(feedback, page_report),
                sync=sync_from_page,
                public_url=s.public_url,
                metrics=app.metrics,
            )
        from service.metrics import freeze_startup_heap

        freeze_startup_heap()
        host, port, variable = s.listen
        try:
            runner = await serve(site, host, port, metrics=app.metrics)
        except OSError as exc:
            raise ConfigError(
                f"cannot listen on {host}:{port} ({exc.strerror or exc}); set {variable} to a free port"
            ) from None
        _log.info("health and metrics on port %d (/healthz, /readyz, /metrics)", port)
        if s.admin_token is not None:
            _log.info("report page on port %d: /admin/ (sign in with ADMIN_TOKEN)", port)

        assigning = {p.name: asyncio.create_task(assign_communities(p, feedback)) for p in started}
        background = list(assigning.values())
        # Questions a stopped process (this one before a crash, or another replica) left unfinished.
        background += [asyncio.create_task(recover(p)) for p in started]
        background.append(asyncio.create_task(library.run()))
        background.append(asyncio.create_task(database.run()))
        on_hangup(lambda: background.append(asyncio.create_task(library.on_signal())))
        if digest is not None:
            # The digest sums up its community's answers: older ones are given theirs first.
            assigned = assigning[digest[0].name]
            background.append(
                asyncio.create_task(run_digest(app, feedback, services.leases, *digest, after=assigned))
            )

        stopped = await _until_stopped([p.run() for p in started])
        if stopped:
            # SIGTERM (Docker, systemd) or SIGINT: take no more questions, let answers in flight finish
            # within the grace period, apologise for the rest, then close.
            _log.info("stopping (%s)", stopped)
            for tcp in list(runner.sites):
                await tcp.stop()  # HTTP events go to another replica, or are re-sent after the restart
            await asyncio.gather(*(p.conversation.drain(s.shutdown_grace_s) for p in started))
    finally:
        on_hangup(None)
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        if library is not None:
            library.close()
        for platform in started:
            await platform.close()
        if runner is not None:
            await runner.cleanup()
        await core.aclose()
        await shared.aclose()
        feedback.close()


def library_sync(app: App, feedback: FeedbackStore, leases: Leases) -> LibrarySync:
    """The library's own sync (SYNC_EVERY_S), on the store and embedding model the bot already holds."""
    from service.library_sync import LibrarySync

    s = app.settings
    return LibrarySync(
        store=app.store,
        embedder=app.embedder,
        sources=s.source_list,
        aisafety_info_url=s.aisafety_info_url,
        every_s=s.sync_every_s,
        max_remove=s.sync_max_remove,
        leases=leases,
        feedback=feedback,
        metrics=app.metrics,
    )


def on_hangup(handler: Callable[[], object] | None) -> None:
    """SIGHUP runs `handler` (a sync now, as the report page's button does); None stops listening."""
    import signal

    loop = asyncio.get_running_loop()
    try:
        if handler is None:
            loop.remove_signal_handler(signal.SIGHUP)
        else:
            loop.add_signal_handler(signal.SIGHUP, handler)
    except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or no such signal
        pass


def _digest_channel(settings: Settings, started: list[Platform]) -> tuple[Platform, str] | None:
    """DIGEST_CHANNEL's platform and channel id."""
    target = settings.digest_target
    if target is None:
        return None
    for platform in started:
        if platform.name == target[0]:
            return platform, target[1]
    raise ConfigError(f"DIGEST_CHANNEL names {target[0]}, which is not running")


async def _until_stopped(runs: list[Coroutine[Any, Any, None]]) -> str | None:
    """Run the platforms until one of them ends (its error is raised) or a stop signal arrives; returns
    the signal's name, or None."""
    import signal

    loop = asyncio.get_running_loop()
    signalled: list[str] = []
    stop = asyncio.Event()

    def on_signal(name: str) -> None:
        signalled.append(name)
        stop.set()

    handled = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, on_signal, sig.name)
            handled.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or no such signal
            pass
    running: asyncio.Future[Any] = asyncio.ensure_future(asyncio.gather(*runs, asyncio.Event().wait()))
    stopping: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if running.done():
            running.result()  # a platform failed: its error ends the run
        return signalled[0] if signalled else None
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)
        for task in (running, stopping):
            if not task.done():
                task.cancel()
        await asyncio.gather(running, stopping, return_exceptions=True)


async def when_ready(platform: Platform) -> None:
    """Return once `platform` says it is connected."""
    while True:
        if await platform.ready():
            return
        await asyncio.sleep(READY_POLL_S)


async def recover(platform: Platform) -> None:
    """Once the platform is connected, continue the questions left unfinished (`Conversation.recover`)."""
    await when_ready(platform)
    await platform.conversation.recover(platform.resume)


async def assign_communities(platform: Platform, store: FeedbackStore) -> None:
    """Answers stored before communities were recorded get the community of their place, once the
    platform can look places up. A failure is logged: those answers stay in the operator's view only."""
    await when_ready(platform)
    try:
        places = await asyncio.to_thread(store.unassigned_places, platform.name)
        if not places:
            return
        found = await platform.communities_of(places)
        assigned = await asyncio.to_thread(store.assign, platform.name, found)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        _log.warning(
            "%s: could not find the communities of older answers (%s: %s); they stay in the operator's "
            "view, and the next start tries again",
            platform.name,
            type(exc).__name__,
            exc,
        )
        return
    _log.info(
        "%s: %d older answers assigned to their communities (%d of %d places found)",
        platform.name,
        assigned,
        len(found),
        len(places),
    )


async def run_digest(
    app: App,
    feedback: FeedbackStore,
    leases: Leases,
    platform: Platform,
    channel: str,
    *,
    after: Awaitable[None] | None = None,
) -> None:
    """DIGEST_CHANNEL's digest: posted by its platform, in that platform's style, of that channel's
    community (found once the platform is connected)."""
    from service.digest import Digest

    s = app.settings
    place = f"{platform.name}:{channel}"
    await when_ready(platform)
    while True:
        try:
            community = (await platform.communities_of([place])).get(place)
            break
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            _log.warning(
                "digest: could not look up DIGEST_CHANNEL %s (%s: %s); trying again in %g s",
                place,
                type(exc).__name__,
                exc,
                DIGEST_RETRY_S,
            )
            await asyncio.sleep(DIGEST_RETRY_S)
    if community is None:
        _log.warning("digest: DIGEST_CHANNEL %s was not found, or the bot cannot see it: no digest", place)
        return
    if community in (DM, UNASSIGNED):
        # Members' direct messages are no community's: they are never summed up into anyone's channel.
        _log.warning(
            "digest: DIGEST_CHANNEL %s is a direct message, not a community's channel: no digest", place
        )
        return
    if after is not None:
        await after

    async def to_channel(text: str) -> None:
        await platform.post(channel, text)

    _log.info("digest: %s to %s (community %s)", s.digest_every, place, community)
    await Digest(
        store=feedback,
        leases=leases,
        embed=app.embedder.embed_dense_only,
        post=to_channel,
        style=platform.digest_style,
        every=s.digest_every,
        admin_url=s.public_link(f"/admin/?community={quote(community, safe=':')}"),
        questions_stored=s.store_questions,
        community=community,
    ).run()
