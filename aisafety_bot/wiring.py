"""The wiring every command shares: the article index, the embedding model, the answer core, the answers
database, and the shared state the platforms' conversations use (in-process, or Redis and PostgreSQL
when several replicas run).

Heavy libraries are imported inside the functions that use them (tests/test_startup.py checks this).
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bot.config import Settings

if TYPE_CHECKING:
    from bot.community import Deployment
    from bot.conversation import Services
    from bot.core import AnswerCore
    from bot.ports import Budget, Budgets, Deduplicator, Journal, RateLimit, ThreadMemory
    from retrieval.embeddings import FastEmbedder
    from retrieval.index import SearchMode, VectorStore
    from retrieval.ingest import IngestReport, ProgressStyle
    from retrieval.search import HybridRetriever
    from service.feedback import FeedbackStore
    from service.metrics import Metrics
    from service.redis_state import RedisLink


def _metrics() -> Metrics:
    from service.metrics import Metrics

    return Metrics()


@dataclass
class App:
    """The article index and the embedding model, and the answer core built on them."""

    settings: Settings
    store: VectorStore
    embedder: FastEmbedder
    metrics: Metrics = field(default_factory=_metrics)
    budget: Budget | None = None

    def retriever(self, mode: SearchMode = "hybrid") -> HybridRetriever:
        from retrieval.search import HybridRetriever

        return HybridRetriever(store=self.store, embedder=self.embedder, mode=mode)

    def core(self, mode: SearchMode = "hybrid", *, use_llm: bool = True) -> AnswerCore:
        from bot.core import NO_KEY, AnswerCore
        from bot.observability import Observer

        s = self.settings
        llm = None
        if use_llm and s.anthropic_api_key is not None:
            from service.anthropic_llm import AnthropicLLM

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
                NO_KEY if use_llm else "the evaluation runs without the language model (add --llm to use it)"
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
                progress=progress_style(),
                aisafety_info_url=self.settings.aisafety_info_url,
            )
            print_report(report, file=sys.stderr)


def progress_style() -> ProgressStyle:
    """A bar on a terminal; plain progress lines in a log file, a container or CI."""
    return "bar" if sys.stderr.isatty() else "lines"


def print_report(report: IngestReport, *, file: Any, as_json: bool = False) -> None:
    """Each skipped record once, with its place (on stderr), then the summary."""
    for rec in report.skipped_records:
        print(f"skipped {rec.origin} line {rec.line}: {rec.reason}", file=sys.stderr)
    summary = report.summary()
    line = "Ingest: " + ", ".join(f"{v} {k}" for k, v in summary.items())
    print(json.dumps(summary) if as_json else line, file=file)


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
    """The embedder; the model itself loads on first use (or at the runner's warm-up)."""
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
    from service.feedback import FeedbackStore

    url = settings.database_url.get_secret_value() if settings.database_url else None
    return FeedbackStore(
        settings.feedback_db,
        store_questions=settings.store_questions,
        database_url=url,
        timeout_s=settings.database_timeout_s,
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
        from service.redis_state import RedisBudget, RedisDedupe, RedisLink, RedisRateLimit, RedisThreads

        link = RedisLink(settings.redis_url.get_secret_value(), prefix=settings.redis_key_prefix)
        budget = RedisBudget(link, settings.daily_token_budget) if settings.daily_token_budget else None
        limiter = RedisRateLimit(link, settings.rate_limit_per_minute)
        return cls(limiter, RedisDedupe(link), RedisThreads(link), budget, link)

    def services(
        self,
        core: AnswerCore,
        store: FeedbackStore,
        *,
        on_drop: Callable[[], None] | None = None,
        deployment: Deployment | None = None,
    ) -> Services:
        """What every platform's conversation uses. The leases (hand-offs, the digest) live where they
        are shared and kept best: PostgreSQL, else Redis, else the answers database. Answers are stored
        after they are posted, through one queue (`bot/writer.py`; `on_drop`: one answer not stored).
        Each community's settings are read from the answers database (`SqlSettings`), bounded by
        `deployment` (the environment's, `Settings.deployment`)."""
        from bot.conversation import Services
        from bot.writer import AnswerWriter
        from service.community_settings import SqlSettings
        from service.lease import choose_leases

        return Services(
            core=core,
            store=store,
            limiter=self.limiter,
            dedupe=self.dedupe,
            threads=self.threads,
            leases=choose_leases(store, self.redis),
            writer=AnswerWriter(store, timeout_s=store.timeout_s, on_drop=on_drop),
            journal=self.journal(store),
            handoff_limits=self.handoff_limits(),
            settings=SqlSettings(store),
            deployment=deployment,
            budgets=self.budgets(),
        )

    def budgets(self) -> Budgets:
        """Each community's tokens spent today: on Redis when replicas share it, else in this process."""
        if self.redis is None:
            from bot.ratelimit import MemoryBudgets

            return MemoryBudgets()
        from service.redis_state import RedisBudgets

        return RedisBudgets(self.redis)

    def handoff_limits(self) -> tuple[RateLimit, RateLimit] | None:
        """ "Ask a human" counted per member and per community an hour across every replica on Redis
        (None: each conversation counts in its own process)."""
        if self.redis is None:
            return None
        from bot.conversation import HANDOFF_WINDOW_S, HANDOFFS_PER_COMMUNITY, HANDOFFS_PER_MEMBER
        from service.redis_state import RedisRateLimit

        return (
            RedisRateLimit(self.redis, HANDOFFS_PER_MEMBER, window_s=HANDOFF_WINDOW_S, kind="handoff-member"),
            RedisRateLimit(
                self.redis, HANDOFFS_PER_COMMUNITY, window_s=HANDOFF_WINDOW_S, kind="handoff-community"
            ),
        )

    def journal(self, store: FeedbackStore) -> Journal:
        """Questions are journaled on Redis when replicas share it (with the answers database behind it
        during an outage), else in the answers database: a kill loses none, even in one process."""
        from service.journal import RedisJournal, SqlJournal

        sql = SqlJournal(store)
        return RedisJournal(self.redis, sql) if self.redis is not None else sql

    async def aclose(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()
