"""The bot's Prometheus metrics (served at /metrics) and the start-up heap freeze."""

from __future__ import annotations

import gc

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from service.rejections import REASONS, Rejections

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120)


class Metrics:
    """The bot's Prometheus metrics, in a registry of their own (no process-wide state)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.questions = Counter(
            "aisafety_questions",
            "Questions answered, by platform and outcome",
            ["platform", "outcome"],
            registry=r,
        )
        self.coverage = Counter(
            "aisafety_coverage",
            "Questions answered, by how well the library covers them: covered (the articles answer it), "
            "close (a close call: the closest articles, with what they do not cover), not_covered",
            ["coverage"],
            registry=r,
        )
        for coverage in ("covered", "close", "not_covered"):
            self.coverage.labels(coverage)  # every value shows, at 0, from the start
        self.answer_latency = Histogram(
            "aisafety_answer_latency_seconds",
            "Time from the question to the first visible sign of work, the first token, and the whole answer",
            ["stage"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.retrieval_latency = Histogram(
            "aisafety_retrieval_latency_seconds",
            "Query embedding plus search",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.llm_tokens = Counter(
            "aisafety_llm_tokens", "LLM tokens, by direction", ["direction"], registry=r
        )
        self.llm_errors = Counter("aisafety_llm_errors", "LLM failures, by kind", ["kind"], registry=r)
        self.feedback = Counter(
            "aisafety_feedback", "Feedback clicks, by vote", ["platform", "vote"], registry=r
        )
        self.rate_limited = Counter(
            "aisafety_rate_limited", "Questions refused by the rate limit", ["platform"], registry=r
        )
        self.answers_dropped = Counter(
            "aisafety_answers_dropped",
            "Answers posted but not stored: the answers database was too far behind (its queue was full)",
            registry=r,
        )
        self.answers_recovered = Counter(
            "aisafety_answers_recovered",
            "Questions a stopped process left unfinished, continued by this one",
            ["platform"],
            registry=r,
        )
        self.library_articles = Gauge(
            "aisafety_library_articles", "Articles in the library after the last successful sync", registry=r
        )
        self.library_synced = Gauge(
            "aisafety_library_synced_timestamp_seconds",
            "When the library was last synced successfully, by any replica (seconds since the epoch)",
            registry=r,
        )
        self.library_syncs = Counter(
            "aisafety_library_syncs",
            "Library syncs by outcome: changed, unchanged, refused (a guard said no), failed",
            ["outcome"],
            registry=r,
        )
        for outcome in ("changed", "unchanged", "refused", "failed"):
            self.library_syncs.labels(outcome)  # every outcome shows, at 0, from the start
        self.rejected_requests = Counter(
            "aisafety_rejected_requests",
            "Requests refused as a stranger's, by reason: wrong_login, bad_signature, wrong_team, "
            "wrong_app, too_large, too_slow, ...",
            ["reason"],
            registry=r,
        )
        for reason in REASONS:
            self.rejected_requests.labels(reason)
        # Counts refused requests and sums them up in one log line a minute (`rejected`).
        self.rejections = Rejections(self.rejected_requests)

    def rejected(self, reason: str) -> None:
        """A request refused as a stranger's (`service.rejections.REASONS`): counted, and summed up in
        the minute's log line, never a line of its own."""
        self.rejections.note(reason)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def freeze_startup_heap() -> None:
    """Move everything built at start-up (models, libraries, the index) out of the garbage collector's
    view: full collections then scan only what answering creates, instead of pausing the event loop
    for 100 ms and more (measured in benchmarks/bench_slack.py)."""
    gc.collect()
    gc.freeze()
