"""Requests refused as a stranger's (a wrong admin token, a bad Slack signature, a body too big or too
slow): counted by reason in `aisafety_rejected_requests_total{reason}` and summed up in one log line a
minute at most, never a line (or a traceback) each, so hostile traffic costs the log nothing."""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable
from typing import Any

_log = logging.getLogger(__name__)

SUMMARY_EVERY_S = 60.0
# Each reason: where it happens, and the words for one and for several in the summary line.
REASONS: dict[str, tuple[str, str, str]] = {
    "wrong_login": ("report page", "wrong login", "wrong logins"),
    "cross_origin": ("report page", "sync request from another site", "sync requests from another site"),
    "bad_signature": ("Slack", "bad signature", "bad signatures"),
    "malformed": ("Slack", "signed body not in Slack's shape", "signed bodies not in Slack's shape"),
    "wrong_team": ("Slack", "event for another workspace", "events for another workspace"),
    "wrong_app": ("Slack", "event for another app", "events for another app"),
    "too_large": ("HTTP", "body over the size limit", "bodies over the size limit"),
    "too_slow": ("HTTP", "body sent too slowly", "bodies sent too slowly"),
    "bad_http": ("HTTP", "malformed request", "malformed requests"),
}


class Rejections:
    """Counts refused requests by reason (in `counter`, a Prometheus counter labelled by reason, when
    given) and logs what a window of `every_s` seconds refused in one WARNING line when it ends: the
    first refusal after a quiet spell opens the window. Call `note` from the event loop."""

    def __init__(
        self,
        counter: Any | None = None,
        *,
        every_s: float = SUMMARY_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.counter = counter
        self.every_s = every_s
        self._clock = clock
        self._pending: collections.Counter[str] = collections.Counter()
        self._window_end: float | None = None
        self._timer: asyncio.TimerHandle | None = None

    def note(self, reason: str) -> None:
        if self.counter is not None:
            self.counter.labels(reason).inc()
        now = self._clock()
        if self._window_end is not None and now >= self._window_end:
            self.flush()  # no event loop ran the timer (or it is late): the ended window first
        self._pending[reason] += 1
        if self._window_end is None:
            self._window_end = now + self.every_s
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return  # said at the next refusal after the window
            self._timer = loop.call_later(self.every_s, self.flush)

    def flush(self) -> None:
        """Log the window's refusals now (nothing when there were none) and start afresh."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._window_end = None
        if not self._pending:
            return
        line = summary(self._pending)
        self._pending.clear()
        _log.warning("refused in the last %s: %s", _period(self.every_s), line)

    def close(self) -> None:
        self.flush()


def summary(counts: collections.Counter[str]) -> str:
    """The window's refusals in words, places in the order of REASONS: `report page: 200 wrong logins;
    Slack: 3 bad signatures`."""
    places: dict[str, list[str]] = {}
    order = list(REASONS)
    for reason in sorted(counts, key=lambda r: (order.index(r) if r in order else len(order), r)):
        n = counts[reason]
        place, one, several = REASONS.get(reason, ("HTTP", reason, reason))
        places.setdefault(place, []).append(f"{n} {one if n == 1 else several}")
    return "; ".join(f"{place}: {', '.join(parts)}" for place, parts in places.items())


def _period(seconds: float) -> str:
    return "minute" if seconds == 60 else f"{seconds:g} s"
