"""Redis versions of the shared-state ports (`bot/ports.py`), for several replicas (`REDIS_URL`).

Every replica talking to one Redis (or Valkey) shares: Slack event de-duplication (set-if-absent with a
TTL longer than Slack's retry window), the per-member rate limit (one atomic script per question), the
daily token budget (the deployment's and each community's), and which threads are the bot's. When Redis
cannot be reached, each port answers from its in-process version instead, the fault is logged once,
`degraded()` says so (and `/readyz` shows it), and Redis is tried again every `RETRY_S` seconds.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from bot.observability import TokenBudget
from bot.ratelimit import MemoryBudgets, RateLimiter, RecentKeys, RecentThreads

_log = logging.getLogger(__name__)
T = TypeVar("T")

RETRY_S = 15.0
TIMEOUT_S = 0.5
# Slack retries an unacknowledged event up to three times within minutes: remembered for a day.
DEDUPE_TTL_S = 24 * 3600
THREAD_TTL_S = 30 * 24 * 3600

# Drop the member's questions older than the window, then count this one only if there is room: one
# atomic step, so replicas answering the same member at once cannot both take the last place.
_RATE_SCRIPT = """
local key = KEYS[1]
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
if redis.call('ZCARD', key) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', key, now, ARGV[4])
redis.call('PEXPIRE', key, math.ceil(window * 1000))
return 1
"""


def where(url: str) -> str:
    """host:port of a Redis URL, for messages: never its password."""
    parts = urlsplit(url)
    return f"{parts.hostname or 'localhost'}:{parts.port or 6379}"


class RedisLink:
    """One client for every port, and what happens when Redis is out of reach."""

    def __init__(self, url: str, *, prefix: str = "aisafety:", timeout_s: float = TIMEOUT_S):
        import redis.asyncio as aioredis  # only when REDIS_URL is set

        self.prefix = prefix
        self.where = where(url)
        self.client: Any = aioredis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, decode_responses=True
        )
        self._down_since: float | None = None
        self._last_try = 0.0

    def key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    async def run(self, op: Callable[[Any], Awaitable[T]], fallback: Callable[[], Awaitable[T]]) -> T:
        """`op` on Redis; while Redis is unreachable, `fallback` (the in-process version)."""
        import redis.exceptions

        now = time.monotonic()
        if self._down_since is not None and now - self._last_try < RETRY_S:
            return await fallback()
        self._last_try = now
        try:
            result = await op(self.client)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
            if self._down_since is None:
                self._down_since = now
                _log.warning(
                    "Redis at %s is unreachable (%s): using this process's own rate limit, "
                    "de-duplication, budget and thread memory until it answers again",
                    self.where,
                    type(exc).__name__,
                )
            return await fallback()
        if self._down_since is not None:
            _log.warning("Redis at %s answers again: shared state restored", self.where)
            self._down_since = None
        return result

    def degraded(self) -> str | None:
        """None while Redis answers; else what `/readyz` shows."""
        if self._down_since is None:
            return None
        return f"Redis at {self.where} unreachable for {time.monotonic() - self._down_since:.0f} s: in-process state"

    async def ping(self) -> bool:
        return await self.run(lambda c: c.ping(), _false)

    async def aclose(self) -> None:
        await self.client.aclose()


async def _false() -> bool:
    return False


class RedisRateLimit:
    """At most `per_minute` questions in any 60 seconds per member, counted across every replica."""

    def __init__(self, link: RedisLink, per_minute: int, *, window_s: float = 60.0, kind: str = "rate"):
        self.link = link
        self.kind = kind
        self.per_minute = per_minute
        self.window_s = window_s
        self.local = RateLimiter(per_minute, window_s=window_s)
        self._script: Any = None

    async def allow(self, key: str, limit: int | None = None) -> bool:
        """`limit`: this call's limit instead of `per_minute` (a community's own; 0: none)."""
        per_minute = self.per_minute if limit is None else limit
        if per_minute <= 0:
            return True

        async def op(client: Any) -> bool:
            if self._script is None:
                self._script = client.register_script(_RATE_SCRIPT)
            args = [time.time(), self.window_s, per_minute, uuid.uuid4().hex]
            return bool(await self._script(keys=[self.link.key(self.kind, key)], args=args))

        return await self.link.run(op, lambda: self.local.allow(key, limit))


class RedisDedupe:
    """Event ids seen by any replica: the first to set one (set-if-absent) answers it."""

    def __init__(self, link: RedisLink, *, ttl_s: int = DEDUPE_TTL_S):
        self.link = link
        self.ttl_s = ttl_s
        self.local = RecentKeys()

    async def first(self, *keys: str) -> bool:
        keys = tuple(k for k in keys if k)
        if not keys:
            return True

        async def op(client: Any) -> bool:
            async with client.pipeline(transaction=False) as pipe:
                for k in keys:
                    pipe.set(self.link.key("event", k), "1", nx=True, ex=self.ttl_s)
                fresh = all(bool(r) for r in await pipe.execute())
            await self.local.first(*keys)  # remembered here too, for a later outage
            return fresh

        return await self.link.run(op, lambda: self.local.first(*keys))


class RedisThreads:
    """Which threads are the bot's, known to every replica."""

    def __init__(self, link: RedisLink, *, ttl_s: int = THREAD_TTL_S):
        self.link = link
        self.ttl_s = ttl_s
        self.local = RecentThreads()

    async def get(self, channel: str, thread_ts: str) -> bool | None:
        async def op(client: Any) -> bool | None:
            value = await client.get(self.link.key("thread", channel, thread_ts))
            return None if value is None else value == "1"

        return await self.link.run(op, lambda: self.local.get(channel, thread_ts))

    async def remember(self, channel: str, thread_ts: str, ours: bool) -> None:
        await self.local.remember(channel, thread_ts, ours)

        async def op(client: Any) -> None:
            await client.set(self.link.key("thread", channel, thread_ts), "1" if ours else "0", ex=self.ttl_s)

        await self.link.run(op, _nothing)


async def _nothing() -> None:
    return None


class RedisBudget:
    """The daily LLM token budget, spent by every replica together (one counter per UTC day)."""

    def __init__(self, link: RedisLink, daily_tokens: int):
        self.link = link
        self.daily_tokens = daily_tokens
        self.local = TokenBudget(daily_tokens)

    def _today(self) -> str:
        return self.link.key("budget", dt.datetime.now(dt.UTC).date().isoformat())

    async def exhausted(self) -> bool:
        if self.daily_tokens <= 0:
            return False

        async def op(client: Any) -> bool:
            return int(await client.get(self._today()) or 0) >= self.daily_tokens

        return await self.link.run(op, self.local.exhausted)

    async def spend(self, tokens: int) -> None:
        await self.local.spend(tokens)
        if tokens <= 0:
            return

        await _count_today(self.link, self._today(), tokens)


async def _count_today(link: RedisLink, key: str, tokens: int) -> None:
    """Add `tokens` to a day's count, kept two days (a budget's day is UTC's; a late reader still finds
    it); nothing when Redis cannot be reached (the process's own count stands)."""

    async def op(client: Any) -> None:
        async with client.pipeline(transaction=True) as pipe:
            pipe.incrby(key, tokens)
            pipe.expire(key, 2 * 24 * 3600)
            await pipe.execute()

    await link.run(op, _nothing)


async def forget_community(link: RedisLink, community: str) -> int:
    """Delete `community`'s keys (its members' rate limits, event ids, threads, journal claims and
    hand-off leases), as `FeedbackStore.forget_community` does its rows; returns how many went. Keys of
    another community never match: `discord:1` is not `discord:12`. While Redis is out of reach nothing
    is deleted (those keys expire by themselves, all but done hand-offs)."""
    from service.feedback import names_community

    pattern = link.prefix + "*" + "".join("\\" + c if c in "*?[]\\" else c for c in community) + "*"

    def ours(key: str) -> bool:
        _kind, _, rest = key[len(link.prefix) :].partition(":")
        return key.startswith(link.prefix) and names_community(rest, community)

    async def op(client: Any) -> int:
        gone = 0
        batch: list[str] = []
        async for key in client.scan_iter(match=pattern, count=500):
            if ours(key):
                batch.append(key)
            if len(batch) >= 500:
                gone += int(await client.unlink(*batch))
                batch = []
        if batch:
            gone += int(await client.unlink(*batch))
        expiring = link.key("journal-expiring")
        members = [m async for m, _ in client.zscan_iter(expiring) if names_community(m, community)]
        if members:
            await client.zrem(expiring, *members)
        return gone

    return await link.run(op, _none_gone)


async def _none_gone() -> int:
    return 0


class RedisBudgets:
    """Each community's LLM tokens spent today (UTC), counted by every replica together: one counter per
    community and day, kept two days. During an outage, this process's own count answers."""

    def __init__(self, link: RedisLink):
        self.link = link
        self.local = MemoryBudgets()

    def _key(self, community: str) -> str:
        return self.link.key("community-budget", dt.datetime.now(dt.UTC).date().isoformat(), community)

    async def spent(self, community: str) -> int:
        async def op(client: Any) -> int:
            return int(await client.get(self._key(community)) or 0)

        return await self.link.run(op, lambda: self.local.spent(community))

    async def spend(self, community: str, tokens: int) -> None:
        await self.local.spend(community, tokens)
        if tokens <= 0:
            return
        await _count_today(self.link, self._key(community), tokens)
