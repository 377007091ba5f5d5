"""Per-member question rate limit, the same on every platform."""

from __future__ import annotations

import time
from collections import defaultdict, deque


class RateLimiter:
    """At most `per_minute` questions in any 60 seconds per key; 0 turns the limit off."""

    def __init__(self, per_minute: int, *, window_s: float = 60.0):
        self.per_minute = per_minute
        self.window_s = window_s
        self._seen: dict[str, deque[float]] = defaultdict(deque)

    def allow(self, key: str, now: float | None = None) -> bool:
        if self.per_minute <= 0:
            return True
        now = time.monotonic() if now is None else now
        times = self._seen[key]
        while times and now - times[0] >= self.window_s:
            times.popleft()
        if len(times) >= self.per_minute:
            return False
        times.append(now)
        return True
