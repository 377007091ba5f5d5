"""In-process versions of the rate-limit, de-duplication, thread-memory, lease and per-community budget ports
(`bot/ports.py`)."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections import OrderedDict, defaultdict, deque
from collections.abc import Mapping
from typing import Any

from bot.ports import Claim, Lease

DONE = "done"  # the holder of a lease whose work is done (and the value of such a Redis key)


class RateLimiter:
    """At most `per_minute` questions in any 60 seconds per key; 0 turns the limit off."""

    def __init__(self, per_minute: int, *, window_s: float = 60.0):
        self.per_minute = per_minute
        self.window_s = window_s
        self._seen: dict[str, deque[float]] = defaultdict(deque)

    async def allow(self, key: str, limit: int | None = None) -> bool:
        return self.check(key, limit=limit)

    def check(self, key: str, now: float | None = None, *, limit: int | None = None) -> bool:
        """`limit`: this call's limit instead of `per_minute` (a community's own)."""
        per_minute = self.per_minute if limit is None else limit
        if per_minute <= 0:
            return True
        now = time.monotonic() if now is None else now
        times = self._seen[key]
        while times and now - times[0] >= self.window_s:
            times.popleft()
        if len(times) >= per_minute:
            return False
        times.append(now)
        return True


class MemoryBudgets:
    """Each community's LLM tokens spent today (UTC), in this process (`bot.ports.Budgets`)."""

    def __init__(self) -> None:
        self._day = ""
        self._spent: dict[str, int] = {}

    def _today(self) -> dict[str, int]:
        day = dt.datetime.now(dt.UTC).date().isoformat()
        if day != self._day:
            self._day, self._spent = day, {}
        return self._spent

    async def spent(self, community: str) -> int:
        return self._today().get(community, 0)

    async def spend(self, community: str, tokens: int) -> None:
        if tokens > 0:
            spent = self._today()
            spent[community] = spent.get(community, 0) + tokens


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


class MemoryLeases:
    """Leases in this process alone: for tests, one process without a database, and Redis outages."""

    def __init__(self) -> None:
        self._leases: dict[str, tuple[str, float | None]] = {}  # name -> (holder, expires; None: done)

    async def acquire(self, name: str, ttl_s: float) -> Lease | None:
        now = time.time()
        current = self._leases.get(name)
        if current is not None and (current[1] is None or current[1] >= now):
            return None
        lease = Lease(name, uuid.uuid4().hex, now + ttl_s)
        self._leases[name] = (lease.holder, lease.expires)
        return lease

    async def renew(self, lease: Lease, ttl_s: float) -> Lease | None:
        current = self._leases.get(lease.name)
        if current is None or current[0] != lease.holder or current[1] is None:
            return None
        renewed = Lease(lease.name, lease.holder, time.time() + ttl_s)
        self._leases[lease.name] = (lease.holder, renewed.expires)
        return renewed

    async def done(self, lease: Lease) -> bool:
        current = self._leases.get(lease.name)
        if current is not None and current[0] != lease.holder:
            return False
        self.mark_done(lease.name, lease.holder)
        return True

    async def release(self, lease: Lease) -> None:
        current = self._leases.get(lease.name)
        if current is not None and current[0] == lease.holder and current[1] is not None:
            del self._leases[lease.name]

    def mark_done(self, name: str, holder: str = DONE) -> None:
        """Remember that `name` is done (for Redis: what it said before an outage)."""
        self._leases[name] = (holder, None)


class MemoryJournal:
    """The journal in this process alone (tests, and a Redis outage without a database to fall back on)."""

    def __init__(self, *, keep_s: float = 86400.0) -> None:
        self.keep_s = keep_s
        # key -> (holder, expires (None: done), created, entry)
        self._claims: dict[str, tuple[str, float | None, float, dict[str, Any]]] = {}

    async def claim(self, key: str, entry: Mapping[str, Any], ttl_s: float) -> Claim | None:
        now = time.time()
        self._forget(now)
        current = self._claims.get(key)
        holder = uuid.uuid4().hex
        if current is None:
            self._claims[key] = (holder, now + ttl_s, now, dict(entry))
            return Claim(key, holder, dict(entry))
        _, expires, created, recorded = current
        if expires is None or expires >= now:
            return None
        self._claims[key] = (holder, now + ttl_s, created, recorded)
        return Claim(key, holder, dict(recorded), resumed=True)

    async def record(self, claim: Claim, entry: Mapping[str, Any], ttl_s: float) -> bool:
        current = self._claims.get(claim.key)
        if current is None or current[0] != claim.holder or current[1] is None:
            return False
        self._claims[claim.key] = (claim.holder, time.time() + ttl_s, current[2], dict(entry))
        return True

    async def done(self, claim: Claim) -> None:
        current = self._claims.get(claim.key)
        if current is not None and current[0] == claim.holder:
            self._claims[claim.key] = (claim.holder, None, time.time(), current[3])

    async def orphans(self, limit: int) -> list[str]:
        now = time.time()
        expired = [(c[2], k) for k, c in self._claims.items() if c[1] is not None and c[1] < now]
        return [k for _, k in sorted(expired)[:limit]]

    def _forget(self, now: float) -> None:
        for key in [k for k, c in self._claims.items() if c[1] is None and now - c[2] > self.keep_s]:
            del self._claims[key]
