"""The composition root: `aisafety-bot ingest / search / ask / chat / eval / run`.

This is the one place that wires settings, the store, the models, the core and the adapters
together (the adapters lazily: a command imports only the platform libraries it uses).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from bot.config import Settings, load_settings, platform_of
from bot.errors import BotError, ConfigError
from bot.logs import configure as configure_logging
from retrieval.errors import LibraryError

# Only what every command needs is imported here. The model runtime, the Qdrant client, the Anthropic
# SDK and the platform libraries each take from a tenth of a second to several seconds to import, so a
# command imports each of them only when it uses it (`--help`, `healthcheck`, `feedback` and
# `discord-invite` use none; tests/test_startup.py checks this).
if TYPE_CHECKING:
    from bot.conversation import Conversation
    from bot.core import AnswerCore
    from bot.digest import Digest
    from bot.feedback import FeedbackStore
    from bot.observability import Metrics
    from bot.platform import PlatformOptions
    from bot.ports import Budget, Deduplicator, RateLimit, ThreadMemory
    from bot.redis_state import RedisLink
    from retrieval.embeddings import FastEmbedder
    from retrieval.index import SearchMode, VectorStore
    from retrieval.ingest import IngestReport, ProgressStyle
    from retrieval.search import HybridRetriever

_log = logging.getLogger(__name__)
T = TypeVar("T")


def _metrics() -> Metrics:
    from bot.observability import Metrics

    return Metrics()


@dataclass
class App:
    settings: Settings
    store: VectorStore
    embedder: FastEmbedder
    metrics: Metrics = field(default_factory=_metrics)
    budget: Budget | None = None

    def retriever(self, mode: SearchMode = "hybrid") -> HybridRetriever:
        from retrieval.search import HybridRetriever

        return HybridRetriever(store=self.store, embedder=self.embedder, mode=mode)

    def core(self, mode: SearchMode = "hybrid", *, use_llm: bool = True) -> AnswerCore:
        from bot.core import AnswerCore
        from bot.observability import Observer

        s = self.settings
        llm = None
        if use_llm and s.anthropic_api_key is not None:
            from bot.llm import AnthropicLLM

            llm = AnthropicLLM(
                api_key=s.anthropic_api_key.get_secret_value(),
                model=s.anthropic_model,
                base_url=s.anthropic_base_url,
                timeout_s=s.llm_timeout_s,
                max_retries=s.llm_max_retries,
            )
        return AnswerCore(
            retriever=self.retriever(mode),
            llm=llm,
            top_k=s.top_k,
            abstain_below=s.abstain_below,
            history_token_budget=s.history_token_budget,
            max_tokens=s.llm_max_tokens,
            max_question_chars=s.max_question_chars,
            deadline_s=s.answer_deadline_s,
            llm_unavailable_reason=(
                "no ANTHROPIC_API_KEY is set" if use_llm else "the language model is switched off"
            ),
            observer=Observer(self.metrics),
            budget=self.budget,
        )

    def ensure_ingested(self) -> None:
        """The first question on an empty store ingests the configured sources."""
        from retrieval.ingest import ingest

        if self.store.count() == 0:
            print(
                f"The article index is empty; ingesting {', '.join(self.settings.source_list)} first.",
                file=sys.stderr,
            )
            report = ingest(
                store=self.store,
                embedder=self.embedder,
                sources=self.settings.source_list,
                progress=_progress_style(),
            )
            _print_report(report, file=sys.stderr)


def _progress_style() -> ProgressStyle:
    """A bar on a terminal; plain progress lines in a log file, a container or CI."""
    return "bar" if sys.stderr.isatty() else "lines"


def open_store(settings: Settings) -> VectorStore:
    """A Qdrant server when `QDRANT_URL` is set, else the embedded store at `QDRANT_PATH`."""
    if settings.qdrant_url:
        from retrieval.store import QdrantStore

        return QdrantStore(
            alias=settings.qdrant_collection,
            url=settings.qdrant_url,
            api_key=settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None,
            timeout_s=settings.qdrant_timeout_s,
            shards=settings.qdrant_shards,
            replication=settings.qdrant_replication,
            write_consistency=settings.qdrant_write_consistency,
        )
    from retrieval.edge_store import EdgeStore

    return EdgeStore(alias=settings.qdrant_collection, path=str(settings.qdrant_path))


def make_embedder(settings: Settings) -> FastEmbedder:
    """The embedder; the model itself loads on first use (or at `warm_up`)."""
    from retrieval.embeddings import FastEmbedder, configure_offline

    configure_offline(str(settings.embedding_model_path) if settings.embedding_model_path else None)
    return FastEmbedder(
        model_name=settings.embedding_model,
        model_path=str(settings.embedding_model_path) if settings.embedding_model_path else None,
        cache_dir=str(settings.embedding_cache_dir) if settings.embedding_cache_dir else None,
    )


@contextlib.contextmanager
def open_app(settings: Settings) -> Iterator[App]:
    embedder = make_embedder(settings)
    store = open_store(settings)
    try:
        budget = None
        if settings.daily_token_budget:
            from bot.observability import TokenBudget

            budget = TokenBudget(settings.daily_token_budget)
        yield App(settings, store, embedder, budget=budget)
    finally:
        store.close()


def open_feedback(settings: Settings) -> FeedbackStore:
    """The answers and votes database; a bad `FEEDBACK_DB` is a `ConfigError` naming it."""
    from bot.feedback import FeedbackStore

    url = settings.database_url.get_secret_value() if settings.database_url else None
    return FeedbackStore(settings.feedback_db, store_questions=settings.store_questions, database_url=url)


def _summary_line(summary: dict[str, int]) -> str:
    return "Ingest: " + ", ".join(f"{v} {k}" for k, v in summary.items())


def _print_report(report: IngestReport, *, file: Any, as_json: bool = False) -> None:
    """Each skipped record once, with its place (on stderr), then the summary."""
    for rec in report.skipped_records:
        print(f"skipped {rec.origin} line {rec.line}: {rec.reason}", file=sys.stderr)
    print(json.dumps(report.summary()) if as_json else _summary_line(report.summary()), file=file)


# -- commands ------------------------------------------------------------------------------------


def cmd_ingest(app: App, args: argparse.Namespace) -> int:
    from retrieval.ingest import ingest

    sources = args.sources or app.settings.source_list
    report = ingest(
        store=app.store,
        embedder=app.embedder,
        sources=sources,
        rebuild=args.rebuild,
        progress=_progress_style(),
    )
    _print_report(report, file=sys.stdout, as_json=args.json)
    return 0


def cmd_search(app: App, args: argparse.Namespace) -> int:
    app.ensure_ingested()
    hits = app.retriever(args.mode).search_sync(args.question, k=args.k)
    if args.json:
        rows = [
            {"id": h.article_id, "title": h.title, "url": h.url, "score": round(h.score, 6), "text": h.text}
            for h in hits
        ]
        print(json.dumps(rows, ensure_ascii=False))
    else:
        for i, h in enumerate(hits, start=1):
            print(f"{i}. {h.title}  ({h.score:.4f}, cosine {h.dense_score:.3f})\n   {h.url}")
    return 0


def cmd_ask(app: App, args: argparse.Namespace) -> int:
    from adapters.terminal import render
    from bot.models import Question

    app.ensure_ingested()
    core = app.core()
    answer = asyncio.run(_closing(core, core.answer(Question(args.question))))
    print(json.dumps(answer.to_json(), ensure_ascii=False) if args.json else render(answer))
    return 0


async def _closing(core: AnswerCore, work: Awaitable[T]) -> T:
    """Run `work`, then close the core's LLM client on the same event loop."""
    try:
        return await work
    finally:
        await core.aclose()


def check_eval(args: argparse.Namespace) -> None:
    """Read the eval file before anything is opened: a bad file is reported in a second, not after
    the model and the index have loaded."""
    from bot.evaluate import EvalFileError, load_eval

    try:
        args.items = load_eval(Path(args.file))
    except EvalFileError as exc:
        raise UsageError(str(exc)) from None


def cmd_eval(app: App, args: argparse.Namespace) -> int:
    from bot.evaluate import evaluate, format_table

    app.ensure_ingested()
    core = app.core(args.mode, use_llm=args.llm)
    result = asyncio.run(_closing(core, evaluate(core, args.items, k=args.k)))
    if args.json:
        print(json.dumps(result))  # with the per-kind breakdown
    else:
        print(format_table(result))
    return 0


def cmd_chat(app: App, args: argparse.Namespace) -> int:
    from adapters.terminal import chat_loop

    app.ensure_ingested()
    core = app.core()
    asyncio.run(_closing(core, chat_loop(core)))
    return 0


def cmd_run(app: App, args: argparse.Namespace) -> int:
    """Discord and/or Slack when their tokens are set (one process, one event loop), else the chat."""
    s = app.settings
    if s.discord_token is None and s.slack_bot_token is None:
        return cmd_chat(app, args)
    asyncio.run(_run_platforms(app))
    return 0


async def warm_up(core: AnswerCore) -> float:
    """Load the embedding model and the index and run one search, so that the first member's question
    costs what later ones do. Returns the seconds it took."""
    import time

    started = time.monotonic()
    await core.retriever.search("What is AI alignment?", k=1)
    return time.monotonic() - started


async def _run_platforms(app: App) -> None:
    """Discord and Slack in one event loop, with /healthz, /readyz and /metrics beside them.

    Start-up order: the settings and tokens first (a bad FEEDBACK_DB or a refused token is reported at
    once, not after an ingest), then the index and the embedding model (so the first question costs what
    later ones do), then the health endpoints and the platform connections."""
    from aiohttp import web

    from bot.health import add_health_routes, serve

    s = app.settings
    feedback = open_feedback(s)
    shared = SharedState.from_settings(s, app.budget)
    app.budget = shared.budget
    core = app.core()
    checks: dict[str, Callable[[], Awaitable[bool]]] = {}
    runs: list[Awaitable[None]] = []
    closers: list[Callable[[], Awaitable[None]]] = []
    conversations: list[Conversation] = []
    health = web.Application()
    port = s.health_port
    runner: web.AppRunner | None = None
    posters: dict[str, Callable[[str, str], Awaitable[None]]] = {}  # platform -> post(channel, text)
    background: list[asyncio.Task[None]] = []
    try:
        if s.discord_token is not None:
            client = _discord_client(app, core, feedback, shared)
            posters["discord"] = client.post
            closers.append(client.close)
            await client.sign_in(s.discord_token.get_secret_value())

            async def discord_ready() -> bool:
                return client.is_ready() and not client.is_closed()

            checks["discord"] = discord_ready
            conversations.append(client.conversation)
            runs.append(client.run_connected())
        if s.slack_bot_token is not None:
            bot = _slack_bot(app, core, feedback, shared)
            posters["slack"] = bot.post
            closers.append(bot.close)
            await bot.identify()
            checks["slack"] = bot.connected
            conversations.append(bot.conversation)
            if s.slack_app_token is not None:
                await bot.check_app_token(s.slack_app_token.get_secret_value())
                runs.append(bot.run_socket_mode(s.slack_app_token.get_secret_value()))
            else:
                health, port = bot.web_app(), s.slack_http_port  # one aiohttp app: Slack's events and health
                _log.info("Slack: HTTP mode on port %d (/slack/events)", port)

        await asyncio.to_thread(app.ensure_ingested)
        await asyncio.to_thread(feedback.purge, s.question_retention_days)
        seconds = await warm_up(core)
        _log.info("embedding model and index ready in %.1f s", seconds)

        async def qdrant_ready() -> bool:
            return await asyncio.to_thread(app.store.live_collection) is not None

        if shared.redis is not None:
            if await shared.redis.ping():
                _log.info("shared state on Redis at %s", shared.redis.where)
            notes = {"redis": shared.redis.degraded}
        else:
            notes = {}
        add_health_routes(health, checks={"qdrant": qdrant_ready, **checks}, metrics=app.metrics, notes=notes)
        if s.admin_token is not None:
            from bot.admin import add_admin_routes

            add_admin_routes(
                health, token=s.admin_token.get_secret_value(), report=live_report(app, feedback)
            )
        from bot.observability import freeze_startup_heap

        freeze_startup_heap()
        host = s.health_host if port == s.health_port else s.slack_http_host
        try:
            runner = await serve(health, host, port)
        except OSError as exc:
            variable = "HEALTH_PORT" if port == s.health_port else "SLACK_HTTP_PORT"
            raise ConfigError(
                f"cannot listen on {host}:{port} ({exc.strerror or exc}); set {variable} to a free port"
            ) from None
        _log.info("health and metrics on port %d (/healthz, /readyz, /metrics)", port)
        if s.digest_channel is not None:
            background.append(asyncio.create_task(_digest(app, feedback, posters).run()))
        if s.admin_token is not None:
            _log.info("report page on port %d: /admin/ (sign in with ADMIN_TOKEN)", port)
        stopped = await _until_stopped(runs)
        if stopped:
            # SIGTERM (Docker, systemd) or SIGINT: take no more questions, let answers in flight finish
            # within the grace period, apologise for the rest, then close.
            _log.info("stopping (%s)", stopped)
            for site in list(runner.sites):
                await site.stop()  # Slack's HTTP events go elsewhere, or are re-sent after the restart
            await asyncio.gather(*(c.drain(s.shutdown_grace_s) for c in conversations))
    finally:
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        for close in closers:
            await close()
        if runner is not None:
            await runner.cleanup()
        await core.aclose()
        await shared.aclose()
        feedback.close()


async def _until_stopped(runs: list[Awaitable[None]]) -> str | None:
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
    platforms: asyncio.Future[Any] = asyncio.ensure_future(asyncio.gather(*runs, asyncio.Event().wait()))
    stopping: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({platforms, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if platforms.done():
            platforms.result()  # a platform failed: its error ends the run
        return signalled[0] if signalled else None
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)
        for task in (platforms, stopping):
            if not task.done():
                task.cancel()
        await asyncio.gather(platforms, stopping, return_exceptions=True)


def _platform_options(s: Settings, platform: str) -> PlatformOptions:
    """The options of `platform` ("discord" or "slack"); HANDOFF_ROLE is a Discord role's number or a
    Slack user group's id, so it applies to one of them."""
    from bot.platform import PlatformOptions

    role = s.handoff_role
    mine = role is not None and platform_of(role) == platform
    return PlatformOptions(
        allowed_channels=s.allowed_channel_ids,
        rate_limit_per_minute=s.rate_limit_per_minute,
        edit_interval_s=s.stream_edit_interval_s,
        handoff=role if mine else None,
    )


@dataclass
class SharedState:
    """The ports every platform shares (`bot/ports.py`): chosen here, once. In-process by default; on
    Redis when REDIS_URL is set, so that several replicas share them."""

    limiter: RateLimit
    dedupe: Deduplicator
    threads: ThreadMemory
    budget: Budget | None = None
    redis: RedisLink | None = None

    @classmethod
    def in_process(cls, settings: Settings, budget: Budget | None = None) -> SharedState:
        from bot.ratelimit import RateLimiter, RecentKeys, RecentThreads

        return cls(RateLimiter(settings.rate_limit_per_minute), RecentKeys(), RecentThreads(), budget)

    @classmethod
    def from_settings(cls, settings: Settings, budget: Budget | None = None) -> SharedState:
        """`budget`: the process's own token budget, kept when there is no Redis to share one."""
        if settings.redis_url is None:
            return cls.in_process(settings, budget)
        from bot.redis_state import RedisBudget, RedisDedupe, RedisLink, RedisRateLimit, RedisThreads

        link = RedisLink(settings.redis_url.get_secret_value(), prefix=settings.redis_key_prefix)
        budget = RedisBudget(link, settings.daily_token_budget) if settings.daily_token_budget else None
        limiter = RedisRateLimit(link, settings.rate_limit_per_minute)
        return cls(limiter, RedisDedupe(link), RedisThreads(link), budget, link)

    async def aclose(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()


def _discord_client(app: App, core: AnswerCore, feedback: FeedbackStore, shared: SharedState) -> Any:
    from adapters.discord_bot import AiSafetyDiscord, ShardedAiSafetyDiscord

    s = app.settings
    common: dict[str, Any] = dict(
        core=core,
        feedback=feedback,
        options=_platform_options(s, "discord"),
        sync_commands=s.discord_sync_commands,
        limiter=shared.limiter,
    )
    if s.discord_shard_count is not None:
        _log.info("Discord: shards %s of %d", s.shard_ids or "all", s.discord_shard_count)
        return ShardedAiSafetyDiscord(shard_count=s.discord_shard_count, shard_ids=s.shard_ids, **common)
    return AiSafetyDiscord(**common)


def _slack_bot(app: App, core: AnswerCore, feedback: FeedbackStore, shared: SharedState) -> Any:
    from adapters.slack_app import SlackBot

    s = app.settings
    assert s.slack_bot_token is not None
    return SlackBot(
        core=core,
        feedback=feedback,
        options=_platform_options(s, "slack"),
        token=s.slack_bot_token.get_secret_value(),
        signing_secret=s.slack_signing_secret.get_secret_value() if s.slack_signing_secret else "",
        base_url=s.slack_api_url,
        limiter=shared.limiter,
        dedupe=shared.dedupe,
        threads=shared.threads,
    )


def _application_id(settings: Settings) -> int:
    from adapters.discord_invite import MalformedToken, application_id_from_token

    if settings.discord_application_id is not None:
        return settings.discord_application_id
    if settings.discord_token is None:
        raise ConfigError(
            "set DISCORD_APPLICATION_ID (the Application ID on the Discord developer portal) or DISCORD_TOKEN"
        )
    try:
        return application_id_from_token(settings.discord_token.get_secret_value())
    except MalformedToken as exc:
        raise ConfigError(
            f"DISCORD_TOKEN is malformed: {exc}. Copy the bot token again from the developer portal "
            "(Bot -> Reset Token), or set DISCORD_APPLICATION_ID instead"
        ) from None


def cmd_discord_invite(settings: Settings, args: argparse.Namespace) -> int:
    from adapters.discord_invite import invite_url

    print(invite_url(_application_id(settings)))
    return 0


def cmd_discord_sync(settings: Settings, args: argparse.Namespace) -> int:
    """Register /ask and /help with Discord (globally; it can take up to an hour to show everywhere)."""
    from adapters.discord_bot import sync_commands

    if settings.discord_token is None:
        raise ConfigError("set DISCORD_TOKEN to sync the slash commands")
    names = asyncio.run(sync_commands(settings.discord_token.get_secret_value(), guild_id=args.guild))
    print(f"synced: {', '.join('/' + n for n in names)}")
    return 0


def cmd_feedback(settings: Settings, args: argparse.Namespace) -> int:
    store = open_feedback(settings)
    try:
        rows = store.rows(limit=args.limit, only_voted=not args.all)
    finally:
        store.close()
    if args.json:
        print(json.dumps([r.to_json() for r in rows], ensure_ascii=False))
        return 0
    if not rows:
        print("No feedback yet.")
    for r in rows:
        print(f"#{r.answer_id} [{r.platform}] 👍 {r.up} 👎 {r.down} ({r.mode})\n  Q: {r.question}")
        for src in r.sources:
            print(f"    [{src['n']}] {src['title']} {src['url']}")
    return 0


def cmd_move_history(settings: Settings, args: argparse.Namespace) -> int:
    """Copy an SQLite history (FEEDBACK_DB) into the PostgreSQL database of DATABASE_URL."""
    from bot.feedback import FeedbackStore

    if settings.database_url is None:
        raise UsageError("set DATABASE_URL to the PostgreSQL database to move the history into")
    source = Path(args.sqlite or settings.feedback_db)
    if not source.is_file():
        raise UsageError(f"{source} is not a file; give the SQLite history with --from (or set FEEDBACK_DB)")
    old = FeedbackStore(source)
    new = open_feedback(settings)
    try:
        answers, votes = new.copy_from(old)
    finally:
        old.close()
        new.close()
    print(f"Copied {answers} answers and {votes} votes from {source} into PostgreSQL.")
    return 0


def library_articles(settings: Settings) -> dict[str, tuple[str, str]]:
    """Every article of the live index (title, url), for the report's "never cited" list. The embedded
    store may be held by the running bot: then its catalogue file is read, which needs no lock."""
    from retrieval.edge_store import StoreInUse, read_catalogue

    try:
        store = open_store(settings)
    except StoreInUse:
        catalogue = read_catalogue(str(settings.qdrant_path), settings.qdrant_collection)
        if catalogue is None:
            print(
                "note: the running bot holds the index and it has no article list yet, so the report "
                "leaves out the articles never cited (run `aisafety-bot ingest` once, or stop the bot)",
                file=sys.stderr,
            )
            return {}
        return catalogue
    try:
        return store.catalogue()
    finally:
        store.close()


def _digest(
    app: App, feedback: FeedbackStore, posters: dict[str, Callable[[str, str], Awaitable[None]]]
) -> Digest:
    """The digest of DIGEST_CHANNEL's platform (a number: Discord; letters: Slack, as the settings check)."""
    from bot.digest import Digest

    s = app.settings
    channel = str(s.digest_channel)
    platform = platform_of(channel)
    if platform == "discord":
        from adapters.discord_render import DIGEST_STYLE
    else:
        from adapters.slack_render import DIGEST_STYLE
    post = posters[platform]

    async def to_channel(text: str) -> None:
        await post(channel, text)

    _log.info("digest: %s to channel %s", s.digest_every, channel)
    return Digest(
        store=feedback,
        embed=app.embedder.embed_dense_only,
        post=to_channel,
        style=DIGEST_STYLE,
        every=s.digest_every,
        admin_url=s.admin_url,
        questions_stored=s.store_questions,
    )


# The report page's tables and their CSV downloads share one build of the report for this long.
REPORT_FRESH_S = 60.0


def live_report(app: App, feedback: FeedbackStore) -> Callable[[float], Awaitable[dict[str, Any]]]:
    """The report page's data source in the running bot: its own history, index and embedding model. A
    report is built (answers read, questions embedded, articles listed) once per period a minute, not
    again for each table downloaded from the page."""
    import time

    from bot.report import build_report

    built: dict[float, tuple[float, dict[str, Any]]] = {}  # days -> (when, report)

    def build(days: float) -> dict[str, Any]:
        return build_report(
            feedback.since(days),
            embed=app.embedder.embed_dense_only,
            articles=app.store.catalogue(),
            since_days=days,
            questions_stored=app.settings.store_questions,
        )

    async def report(days: float) -> dict[str, Any]:
        when, data = built.get(days, (0.0, {}))
        if time.monotonic() - when > REPORT_FRESH_S:
            data = await asyncio.to_thread(build, days)
            built.clear()  # one period kept: the one the page shows now
            built[days] = (time.monotonic(), data)
        return data

    return report


def cmd_report(settings: Settings, args: argparse.Namespace) -> int:
    from bot.report import TABLES, build_report, render, table_csv

    if args.table and args.table not in TABLES:
        raise UsageError(f"there is no report table {args.table!r}: use one of {', '.join(TABLES)}")
    store = open_feedback(settings)
    try:
        store.purge(settings.question_retention_days)
        rows = store.since(args.since)
    finally:
        store.close()
    articles = library_articles(settings)
    embedder = make_embedder(settings)
    report = build_report(
        rows,
        embed=embedder.embed_dense_only,
        articles=articles,
        since_days=args.since,
        questions_stored=settings.store_questions,
    )
    print(table_csv(report, args.table) if args.table else render(report, args.format), end="")
    return 0


def cmd_healthcheck(settings: Settings, args: argparse.Namespace) -> int:
    """For container health checks: is the running bot's /healthz answering?"""
    import urllib.request

    slack_http = settings.slack_bot_token is not None and settings.slack_app_token is None
    port = settings.slack_http_port if slack_http else settings.health_port
    variable = "SLACK_HTTP_PORT" if slack_http else "HEALTH_PORT"
    url = f"http://127.0.0.1:{port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=4) as resp:
            return 0 if resp.status == 200 else 1
    except OSError as exc:
        reason = getattr(exc, "reason", None) or exc
        print(f"unhealthy: no answer from {url} ({variable}={port}): {reason}", file=sys.stderr)
        return 1


# -- the command line ------------------------------------------------------------------------------


class UsageError(Exception):
    """A mistake on the command line: one line saying what to change, exit status 2."""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def _days(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of days") from None
    if not value >= 0:  # also rejects nan
        raise argparse.ArgumentTypeError(f"must be 0 or more days, not {text}")
    return value


def _question(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError('give a question, for example: "what is inner alignment?"')
    return text


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:
        """One line that says what to change (argparse's own adds the whole usage block)."""
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="aisafety-bot",
        description="Answers AI-safety questions from a library of articles, with sources.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv: debug)")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)

    p = sub.add_parser("ingest", help="index the sources (incremental unless --rebuild)")
    p.add_argument("sources", nargs="*", metavar="SOURCE", help="paths or URLs (default: SOURCES)")
    p.add_argument("--rebuild", action="store_true", help="build a new index and switch to it when complete")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=cmd_ingest)

    modes = ["hybrid", "dense", "sparse"]
    p = sub.add_parser("search", help="the most relevant articles for a question")
    p.add_argument("question", type=_question)
    p.add_argument("--k", type=_positive_int, default=5)
    p.add_argument("--mode", choices=modes, default="hybrid")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("ask", help="answer one question with numbered sources")
    p.add_argument("question", type=_question)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser("chat", help="interactive chat in the terminal")
    p.set_defaults(func=cmd_chat)

    p = sub.add_parser("eval", help="retrieval and abstention metrics over a JSONL question file")
    p.add_argument("file")
    p.add_argument("--k", type=_positive_int, default=5)
    p.add_argument("--mode", choices=modes, default="hybrid")
    p.add_argument("--llm", action="store_true", help="condense follow-ups with the LLM when configured")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_eval, check=check_eval)

    p = sub.add_parser("run", help="run the bot (terminal chat when no platform token is set)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("report", help="what the community asks: most asked, abstained, 👎, articles cited")
    p.add_argument("--since", type=_days, default=30, metavar="DAYS")
    p.add_argument("--format", choices=["md", "csv", "json"], default="md")
    p.add_argument(
        "--table",
        metavar="NAME",
        help="one table as CSV: by_day, most_asked, abstained, to_write (the questions not covered or 👎, "
        "by topic, for article writers), downvoted, most_cited, never_cited",
    )
    p.set_defaults(func=cmd_report, needs_store=False)

    p = sub.add_parser("healthcheck", help="exit 0 if the running bot's /healthz answers (for containers)")
    p.set_defaults(func=cmd_healthcheck, needs_store=False)

    p = sub.add_parser("discord-invite", help="print the URL that adds the bot to a Discord server")
    p.set_defaults(func=cmd_discord_invite, needs_store=False)

    p = sub.add_parser("discord-sync", help="register the /ask and /help slash commands with Discord")
    p.add_argument("--guild", type=int, help="a server id: commands show there at once (for testing)")
    p.set_defaults(func=cmd_discord_sync, needs_store=False)

    p = sub.add_parser(
        "move-history", help="copy the SQLite answers and votes into DATABASE_URL's PostgreSQL"
    )
    p.add_argument("--from", dest="sqlite", metavar="FILE", help="the SQLite file (default: FEEDBACK_DB)")
    p.set_defaults(func=cmd_move_history, needs_store=False)

    p = sub.add_parser("feedback", help="answers that got 👍 / 👎, newest first")
    p.add_argument("--limit", type=_positive_int, default=50)
    p.add_argument("--all", action="store_true", help="every recorded answer, voted on or not")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_feedback, needs_store=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        args = parser.parse_args(["run", *(argv or [])])
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)]
    if args.command == "run":
        level = min(level, logging.INFO)  # a running bot logs one line per answered question
    configure_logging(level=level, json_format=os.environ.get("LOG_FORMAT", "").lower() == "json")
    try:
        check = getattr(args, "check", None)
        if check is not None:
            check(args)
        settings = load_settings()
        configure_logging(level=level, json_format=settings.log_format == "json")  # LOG_FORMAT may be in .env
        if not getattr(args, "needs_store", True):
            return int(args.func(settings, args))
        with open_app(settings) as app:
            return int(args.func(app, args))
    except UsageError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (LibraryError, BotError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
