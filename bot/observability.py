"""What the answer path reports (metrics through a `Meters` port, and one log line per answered question),
shared by every platform; the in-process token budget."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from dataclasses import dataclass, field
from typing import Any, Protocol

from bot.models import Answer, Question

_log = logging.getLogger("bot.answers")


class Meters(Protocol):
    """The counters and histograms the answer path feeds (Prometheus's, in `service/metrics.py`)."""

    questions: Any
    answer_latency: Any
    retrieval_latency: Any
    llm_tokens: Any
    llm_errors: Any
    feedback: Any
    rate_limited: Any


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

    def __init__(self, metrics: Meters | None = None):
        self.metrics = metrics

    def answered(
        self, platform: str, question: Question, answer: Answer | None, *, first_sign_s: float | None = None
    ) -> None:
        outcome = answer.mode if answer is not None else "error"
        coverage = answer.coverage if answer is not None and answer.mode != "error" else "-"
        timings = answer.timings if answer is not None else {}
        usage = answer.usage if answer is not None else {}
        if self.metrics is not None:
            self.metrics.questions.labels(platform, outcome).inc()
            counter = getattr(self.metrics, "coverage", None)  # optional on the port, like the others below
            if counter is not None and answer is not None and answer.mode != "error":
                counter.labels(answer.coverage).inc()
            if first_sign_s is not None:
                self.metrics.answer_latency.labels("first_sign").observe(first_sign_s)
            for stage in ("first_token", "done"):
                if stage in timings:
                    self.metrics.answer_latency.labels(stage).observe(timings[stage])
        _log.info(
            "answered id=%s platform=%s outcome=%s coverage=%s first_sign_ms=%s first_token_ms=%s total_ms=%s tokens_in=%d tokens_out=%d",
            question.id,
            platform,
            outcome,
            coverage,
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
                "coverage": coverage,
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

    def recovered(self, platform: str) -> None:
        """A question a stopped process left unfinished, continued by this one."""
        counter = getattr(self.metrics, "answers_recovered", None)
        if counter is not None:
            counter.labels(platform).inc()

    def dropped(self) -> None:
        """An answer posted but not stored: the answers database was too far behind."""
        counter = getattr(self.metrics, "answers_dropped", None)
        if counter is not None:
            counter.inc()


def _ms(seconds: float | None) -> int | None:
    return None if seconds is None else round(seconds * 1000)
