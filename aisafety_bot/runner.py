"""`aisafety-bot run` with platforms: every enabled platform in one event loop, with /healthz, /readyz,
/metrics (and the report page with ADMIN_TOKEN) beside them, the digest, and a graceful stop.

The runner names no platform: it starts, checks and stops each through `bot.platform.Platform`, as
registered in `aisafety_bot/platforms.py`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from aisafety_bot import platforms as registry
from aisafety_bot.wiring import App, SharedState, open_feedback
from bot.errors import ConfigError
from bot.models import DM, UNASSIGNED
from retrieval.vocabulary import EMPTY, Vocabulary

if TYPE_CHECKING:
    from bot.community import Deployment
    from bot.config import Settings
    from bot.conversation import Services
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
# How often answers past their retention (the deployment's, or a community's shorter one) are deleted.
PURGE_EVERY_S = 3600.0


async def warm_up(core: AnswerCore) -> float:
    """Load the embedding model and the index and run one search, so that the first member's question
    costs what later ones do. Returns the seconds it took."""
    started = time.monotonic()
    await core.retriever.search("What is AI alignment?", k=1)
    return time.monotonic() - started


def library_vocabulary(app: App) -> Vocabulary:
    """The library's vocabulary for the report's grouping of wordings; without it (the index unreachable
    now) every word counts the same, and the report is still built."""
    try:
        return app.store.vocabulary()
    except Exception as exc:
        _log.warning("report: the library's vocabulary could not be read (%s); words weigh the same", exc)
        return EMPTY


class LiveReport:
    """The report page's data source in the running bot: its own history, index and embedding model. A
    report (of one community, or with None of every one) is built once a minute, not again for each
    table downloaded from the page; a topic marked written on the page (`mark`) is stored and the next
    report built afresh."""

    def __init__(self, app: App, feedback: FeedbackStore):
        self.app = app
        self.feedback = feedback
        self._built: dict[tuple[float, str | None], tuple[float, dict[str, Any]]] = {}  # -> (when, report)
        self._marks = 0  # topics marked written so far: a build begun before a mark is not kept

    def _build(self, days: float, community: str | None) -> dict[str, Any]:
        from service.report import stored_report

        app = self.app
        return stored_report(
            self.feedback,
            embed=app.embedder.embed_dense_only,
            articles=app.store.catalogue(),
            since_days=days,
            questions_stored=app.settings.store_questions,
            community=community,
            vocabulary=library_vocabulary(app),
        )

    async def __call__(self, days: float, community: str | None = None) -> dict[str, Any]:
        when, data = self._built.get((days, community), (0.0, {}))
        if time.monotonic() - when > REPORT_FRESH_S:
            marks = self._marks
            data = await asyncio.to_thread(self._build, days, community)
            self._built.clear()  # one report kept: the one the page shows now
            if marks == self._marks:
                self._built[(days, community)] = (time.monotonic(), data)
        return data

    async def mark(self, community: str, question: str) -> None:
        await self.feedback.run(self.feedback.mark_written, community, question)
        self._marks += 1
        self._built.clear()


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
    if shared.redis is not None:
        # A community forgotten (the bot removed, the app uninstalled) loses its keys on Redis too.
        from service.redis_state import forget_community

        feedback.after_forget(functools.partial(forget_community, shared.redis))
    core = app.core()
    services = shared.services(core, feedback, on_drop=core.observer.dropped, deployment=s.deployment())
    await read_community_settings(services)
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
        _digest_channel(s, started)  # DIGEST_CHANNEL names a platform that runs
        served = [a for p in started if (a := p.http_app()) is not None]
        if len(served) > 1:
            raise ConfigError("only one platform can receive its events over HTTP at a time")
        site = served[0] if served else web.Application()  # one aiohttp app: a platform's events and health

        await asyncio.to_thread(app.ensure_ingested)
        await purge_old(feedback, services)
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

            page_report = LiveReport(app, feedback)
            add_admin_routes(
                site,
                token=s.admin_token.get_secret_value(),
                report=page_report,
                mark_written=page_report.mark,
                sync=sync_from_page,
                public_url=s.public_url,
                metrics=app.metrics,
                communities=lambda: feedback.run(feedback.communities),
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
        # Which community owns ALLOWED_CHANNELS, HANDOFF_ROLE and DIGEST_CHANNEL: each applies there only.
        owners = asyncio.create_task(follow_owners(s, started))
        background.append(owners)
        # Questions a stopped process (this one before a crash, or another replica) left unfinished.
        background += [asyncio.create_task(recover(p)) for p in started]
        background.append(asyncio.create_task(library.run()))
        background.append(asyncio.create_task(database.run()))
        on_hangup(lambda: background.append(asyncio.create_task(library.on_signal())))
        # Each community's digest, in its own channel: older answers are given their community first.
        background += [
            asyncio.create_task(
                run_digests(app, feedback, services.leases, p, after=_together(assigning[p.name], owners))
            )
            for p in started
        ]
        background.append(asyncio.create_task(purge_every_day(feedback, services)))

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
        await close_settings(services)
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


async def read_community_settings(services: Services) -> None:
    """Every community's settings read before the first question (`SqlSettings.load`)."""
    from service.community_settings import SqlSettings

    if isinstance(services.settings, SqlSettings):
        await services.settings.load()


async def close_settings(services: Services) -> None:
    from service.community_settings import SqlSettings

    if isinstance(services.settings, SqlSettings):
        await services.settings.aclose()


async def follow_owners(settings: Settings, started: list[Platform]) -> None:
    """Find the community that owns each of the environment's ids, once its platform is connected, and
    give every conversation the deployment that knows them (`bot.community.effective`): ALLOWED_CHANNELS'
    channels then apply in their own community only (until then, and for those not found, in every
    community of their platform, as before); HANDOFF_ROLE is mentioned in its own community only (not
    found: nowhere); DIGEST_CHANNEL carries its own community's digest (not found, or a direct message:
    none). A platform whose lookup fails is asked again after DIGEST_RETRY_S."""
    wanted: dict[str, list[str]] = {}  # platform -> places
    for channel in settings.deployment().allowed_channels:
        wanted.setdefault(channel.partition(":")[0], []).append(channel)
    for value in (settings.handoff_role, settings.digest_channel):
        if value is not None:
            wanted.setdefault(value.partition(":")[0], []).append(value)
    owners: dict[str, str] = {}

    async def look_up(platform: Platform) -> None:
        places = wanted.get(platform.name, [])
        if not places:
            return
        await when_ready(platform)
        while True:
            try:
                owners.update(await platform.communities_of(places))
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                _log.warning(
                    "%s: could not look up the communities of ALLOWED_CHANNELS, HANDOFF_ROLE or DIGEST_CHANNEL "
                    "(%s: %s); trying again in %g s",
                    platform.name,
                    type(exc).__name__,
                    exc,
                    DIGEST_RETRY_S,
                )
                await asyncio.sleep(DIGEST_RETRY_S)
        for place in places:
            if place not in owners:
                what = (
                    "HANDOFF_ROLE"
                    if place == settings.handoff_role
                    else "DIGEST_CHANNEL"
                    if place == settings.digest_channel
                    else "ALLOWED_CHANNELS"
                )
                _log.warning("%s %s was not found, or the bot cannot see it: %s", what, place, _UNFOUND[what])
        deployment = _owned(settings, owners)
        for each in started:
            each.conversation.deployment = deployment

    await asyncio.gather(*(look_up(p) for p in started))


# What an id of the environment whose community is not found means.
_UNFOUND = {
    "HANDOFF_ROLE": "no community is offered 'Ask a human' with it (a community can set its own role)",
    "DIGEST_CHANNEL": "no digest is posted there",
    "ALLOWED_CHANNELS": "it still limits every community of its platform",
}


def _owned(settings: Settings, owners: dict[str, str]) -> Deployment:
    """The deployment with the owners found so far (a direct message owns no digest)."""
    digest = owners.get(settings.digest_channel or "")
    if digest in (DM, UNASSIGNED):
        _log.warning(
            "digest: DIGEST_CHANNEL %s is a direct message, not a community's channel: no digest",
            settings.digest_channel,
        )
        digest = None
    return settings.deployment(
        channel_communities={c: owners[c] for c in settings.deployment().allowed_channels if c in owners},
        handoff_community=owners.get(settings.handoff_role or ""),
        digest_community=digest,
    )


async def run_digests(
    app: App,
    feedback: FeedbackStore,
    leases: Leases,
    platform: Platform,
    *,
    after: Awaitable[None] | None = None,
    check_every_s: float | None = None,
) -> None:
    """Each of the platform's communities with a digest channel (its own choice, or DIGEST_CHANNEL in
    the community that owns it) gets the digest of its own questions only, in that channel, at its own
    period, once per period across replicas (`service.digest.Digest`). Checked every `check_every_s`."""
    from service.digest import CHECK_EVERY_S

    await when_ready(platform)
    if after is not None:
        await after
    while True:
        await digests_once(app, feedback, leases, platform)
        await asyncio.sleep(CHECK_EVERY_S if check_every_s is None else check_every_s)


async def digests_once(app: App, feedback: FeedbackStore, leases: Leases, platform: Platform) -> int:
    """Post the digests that are due on `platform`; returns how many were posted. One community's
    failure is logged and does not hold back the others'."""
    from bot.community import effective
    from service.digest import Digest

    s = app.settings
    conversation = platform.conversation
    deployment = conversation.deployment
    prefix = f"{platform.name}:"
    try:
        chosen = await conversation.settings.all()
    except Exception as exc:  # the database: the communities with DIGEST_CHANNEL still get theirs
        _log.warning("digest: could not read the communities' settings (%s)", type(exc).__name__)
        chosen = {}
    communities = {c for c in chosen if c.startswith(prefix)}
    if deployment.digest_community is not None and deployment.digest_community.startswith(prefix):
        communities.add(deployment.digest_community)
    posted = 0
    for community in sorted(communities):
        applies = effective(community, chosen.get(community), deployment)  # the settings just read
        channel = applies.digest_channel
        if channel is None:
            continue
        # DIGEST_CHANNEL's community keeps the operator's link and the period names it always had.
        operators = community == deployment.digest_community
        digest = Digest(
            store=feedback,
            leases=leases,
            embed=app.embedder.embed_dense_only,
            post=_to_channel(platform, channel, community),
            style=platform.digest_style,
            every=applies.digest_every,
            admin_url=s.public_link(f"/admin/?community={quote(community, safe=':')}") if operators else None,
            questions_stored=applies.store_questions,
            community=community,
            lease_prefix="" if operators else f"{community}:",
            vocabulary=lambda: library_vocabulary(app),
        )
        try:
            posted += await digest.once()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            _log.warning(
                "digest of %s could not be posted (%s: %s); trying again later",
                community,
                type(exc).__name__,
                exc,
            )
    return posted


async def _together(*steps: Awaitable[None]) -> None:
    for step in steps:
        await step


def _to_channel(platform: Platform, channel: str, community: str) -> Callable[[str], Awaitable[None]]:
    """Post a community's digest in its channel, unless the platform finds that channel to be another
    community's (a digest never reaches another community's members)."""

    async def post(text: str) -> None:
        place = f"{platform.name}:{channel}"
        owner = (await platform.communities_of([place])).get(place)
        if owner is not None and owner != community:
            raise PermissionError(f"channel {channel} is not one of {community}'s")
        await platform.post(channel, text, community=community)

    return post


async def purge_old(feedback: FeedbackStore, services: Services) -> int:
    """Delete the answers older than QUESTION_RETENTION_DAYS, and those of each community that chose a
    shorter retention older than that; returns how many."""
    from bot.community import Deployment, effective

    deployment = services.deployment or Deployment()
    shorter: dict[str, float] = {}
    if services.settings is not None:
        for community, own in (await services.settings.all()).items():
            days = effective(community, own, deployment).retention_days
            if days < deployment.retention_days:
                shorter[community] = days
    return await feedback.run(feedback.purge, deployment.retention_days, shorter)


async def purge_every_day(
    feedback: FeedbackStore, services: Services, *, every_s: float = PURGE_EVERY_S
) -> None:
    """`purge_old` every `every_s` (the first is at start-up), so that a retention a community shortens
    applies within a day."""
    while True:
        await asyncio.sleep(every_s)
        try:
            await purge_old(feedback, services)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            _log.warning("could not delete old answers (%s); trying again later", type(exc).__name__)
