"""Metrics (Prometheus) and the one log line per answered question, shared by every platform."""

from __future__ import annotations

import datetime as dt
import gc
import logging
import threading
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from bot.models import Answer, Question

_log = logging.getLogger("bot.answers")

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

    def render(self) -> bytes:
        return generate_latest(self.registry)


@dataclass
class TokenBudget:
    """An optional daily cap on LLM tokens (input + output); past it the bot answers from retrieval only.
    The in-process version of the `Budget` port."""

    daily_tokens: int
    _day: dt.date = field(default_factory=lambda: dt.datetime.now(dt.UTC).date())
    _spent: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _roll(self) -> None:
        today = dt.datetime.now(dt.UTC).date()
        if today != self._day:
            self._day, self._spent = today, 0

    async def exhausted(self) -> bool:
        with self._lock:
            self._roll()
            return self.daily_tokens > 0 and self._spent >= self.daily_tokens

    async def spend(self, tokens: int) -> None:
        with self._lock:
            self._roll()
            self._spent += tokens

    @property
    def spent(self) -> int:
        return self._spent


class Observer:
    """What adapters report after each question: metrics, and one log line with a correlation id.
    Message text is logged only at debug level."""

    def __init__(self, metrics: Metrics | None = None):
        self.metrics = metrics

    def answered(
        self, platform: str, question: Question, answer: Answer | None, *, first_sign_s: float | None = None
    ) -> None:
        outcome = answer.mode if answer is not None else "error"
        timings = answer.timings if answer is not None else {}
        usage = answer.usage if answer is not None else {}
        if self.metrics is not None:
            self.metrics.questions.labels(platform, outcome).inc()
            if first_sign_s is not None:
                self.metrics.answer_latency.labels("first_sign").observe(first_sign_s)
            for stage in ("first_token", "done"):
                if stage in timings:
                    self.metrics.answer_latency.labels(stage).observe(timings[stage])
        _log.info(
            "answered id=%s platform=%s outcome=%s first_sign_ms=%s first_token_ms=%s total_ms=%s tokens_in=%d tokens_out=%d",
            question.id,
            platform,
            outcome,
            _ms(first_sign_s),
            _ms(timings.get("first_token")),
            _ms(timings.get("done")),
            usage.get("input_tokens", 0),
            usage.get("output_tokens", 0),
            extra={
                "event": "answered",
                "question_id": question.id,
                "platform": platform,
                "outcome": outcome,
                "first_sign_ms": _ms(first_sign_s),
                "first_token_ms": _ms(timings.get("first_token")),
                "total_ms": _ms(timings.get("done")),
                "tokens_in": usage.get("input_tokens", 0),
                "tokens_out": usage.get("output_tokens", 0),
            },
        )
        _log.debug("question %s text: %r", question.id, question.text)

    def retrieved(self, seconds: float) -> None:
        if self.metrics is not None:
            self.metrics.retrieval_latency.observe(seconds)

    def llm_failed(self, kind: str) -> None:
        if self.metrics is not None:
            self.metrics.llm_errors.labels(kind).inc()

    def llm_tokens(self, input_tokens: int, output_tokens: int) -> None:
        if self.metrics is not None:
            self.metrics.llm_tokens.labels("input").inc(input_tokens)
            self.metrics.llm_tokens.labels("output").inc(output_tokens)

    def feedback(self, platform: str, vote: str) -> None:
        if self.metrics is not None:
            self.metrics.feedback.labels(platform, vote).inc()

    def rate_limited(self, platform: str) -> None:
        if self.metrics is not None:
            self.metrics.rate_limited.labels(platform).inc()


def freeze_startup_heap() -> None:
    """Move everything built at start-up (models, libraries, the index) out of the garbage collector's
    view: full collections then scan only what answering creates, instead of pausing the event loop
    for 100 ms and more (measured in benchmarks/bench_slack.py)."""
    gc.collect()
    gc.freeze()


def _ms(seconds: float | None) -> int | None:
    return None if seconds is None else round(seconds * 1000)
