"""In-process versions of the rate-limit, de-duplication and thread-memory ports (`bot/ports.py`)."""

from __future__ import annotations

import time
from collections import OrderedDict, defaultdict, deque


class RateLimiter:
    """At most `per_minute` questions in any 60 seconds per key; 0 turns the limit off."""

    def __init__(self, per_minute: int, *, window_s: float = 60.0):
        self.per_minute = per_minute
        self.window_s = window_s
        self._seen: dict[str, deque[float]] = defaultdict(deque)

    async def allow(self, key: str) -> bool:
        return self.check(key)

    def check(self, key: str, now: float | None = None) -> bool:
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


class RecentKeys:
    """Remembers recent keys: Slack delivers a mention twice and retries unacknowledged events."""

    def __init__(self, size: int = 4096):
        self.size = size
        self._keys: OrderedDict[str, None] = OrderedDict()

    async def first(self, *keys: str) -> bool:
        fresh = not any(k in self._keys for k in keys if k)
        for k in keys:
            if k:
                self._keys[k] = None
                self._keys.move_to_end(k)
        while len(self._keys) > self.size:
            self._keys.popitem(last=False)
        return fresh


class RecentThreads:
    """Which threads are the bot's (it answered or was mentioned there), remembered so that a reply in
    any other thread costs no Web API call. Bounded; a thread forgotten or unknown after a restart is
    looked up once."""

    def __init__(self, size: int = 20_000):
        self.size = size
        self._ours: OrderedDict[str, bool] = OrderedDict()

    async def get(self, channel: str, thread_ts: str) -> bool | None:
        return self._ours.get(f"{channel}:{thread_ts}")

    async def remember(self, channel: str, thread_ts: str, ours: bool) -> None:
        key = f"{channel}:{thread_ts}"
        self._ours[key] = ours
        self._ours.move_to_end(key)
        while len(self._ours) > self.size:
            self._ours.popitem(last=False)
