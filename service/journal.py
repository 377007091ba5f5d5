"""The journal of questions being answered (`bot.ports.Journal`), on SQL (the answers database:
SQLite, or PostgreSQL for replicas) and on Redis (with the answers database behind it while Redis is
out of reach, so that a retry reaching another replica is still recognised).

A claim is a row (a Redis hash) with a holder and an expiry: the process answering renews it while it
works; a process that dies leaves it to expire, and the next process to look (`orphans`, or a retry of
the same event) takes it over with what was recorded, and continues. Done claims are kept a day.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from bot.ports import Claim
from service.feedback import JOURNAL_KEEP_S
from service.redis_state import _nothing

if TYPE_CHECKING:
    from service.feedback import FeedbackStore
    from service.redis_state import RedisLink

# Done claims (and abandoned ones) are forgotten after a day: Redis expires its keys, and the answers
# database's rows go with the hourly purge (`FeedbackStore.purge`).
KEEP_S = JOURNAL_KEEP_S


def _dump(entry: Mapping[str, Any]) -> str:
    return json.dumps(dict(entry), separators=(",", ":"))


class SqlJournal:
    """The journal in the answers database's `journal` table; each step is one statement."""

    def __init__(self, store: FeedbackStore):
        self.store = store

    async def claim(self, key: str, entry: Mapping[str, Any], ttl_s: float) -> Claim | None:
        return await self.store.run(self._claim, key, dict(entry), ttl_s)

    async def record(self, claim: Claim, entry: Mapping[str, Any], ttl_s: float) -> bool:
        return await self.store.run(self._record, claim, dict(entry), ttl_s)

    async def done(self, claim: Claim) -> None:
        await self.store.run(self._done, claim)

    async def orphans(self, limit: int) -> list[str]:
        return await self.store.run(self._orphans, limit)

    def seen(self, key: str) -> bool:
        """Whether `key` was ever claimed here (done, or being answered): Redis's outage fallback."""
        with self.store._transaction() as db:
            return (
                self.store._execute(db, "SELECT 1 FROM journal WHERE key = ?", (key,)).fetchone() is not None
            )

    def _claim(self, key: str, entry: dict[str, Any], ttl_s: float) -> Claim | None:
        now = time.time()
        holder = uuid.uuid4().hex
        with self.store._transaction() as db:
            run = self.store._execute
            # A new row, or a claim whose holder stopped renewing it before it was done: ours now.
            row = run(
                db,
                "INSERT INTO journal (key, holder, expires, created, finished, entry) VALUES (?, ?, ?, ?, NULL, ?) "
                "ON CONFLICT (key) DO UPDATE SET holder = excluded.holder, expires = excluded.expires "
                "WHERE journal.expires IS NOT NULL AND journal.expires < ? "
                "RETURNING created, entry",
                (key, holder, now + ttl_s, now, _dump(entry), now),
            ).fetchone()
        if row is None:
            return None
        resumed = float(row[0]) != now
        return Claim(key, holder, json.loads(row[1]) if resumed else entry, resumed=resumed)

    def _record(self, claim: Claim, entry: dict[str, Any], ttl_s: float) -> bool:
        with self.store._transaction() as db:
            changed = self.store._execute(
                db,
                "UPDATE journal SET entry = ?, expires = ? WHERE key = ? AND holder = ? AND expires IS NOT NULL",
                (_dump(entry), time.time() + ttl_s, claim.key, claim.holder),
            ).rowcount
        return int(changed) == 1

    def _done(self, claim: Claim) -> None:
        with self.store._transaction() as db:
            self.store._execute(
                db,
                "UPDATE journal SET expires = NULL, finished = ? WHERE key = ? AND holder = ?",
                (time.time(), claim.key, claim.holder),
            )

    def mark_done(self, key: str) -> None:
        """`key` is answered, whoever claimed it and wherever (Redis's copy): a done row, with no entry,
        that outlives a Redis restarted without its data."""
        now = time.time()
        with self.store._transaction() as db:
            self.store._execute(
                db,
                "INSERT INTO journal (key, holder, expires, created, finished, entry) "
                "VALUES (?, '', NULL, ?, ?, '{}') "
                "ON CONFLICT (key) DO UPDATE SET expires = NULL, finished = excluded.finished",
                (key, now, now),
            )

    def _orphans(self, limit: int) -> list[str]:
        with self.store._transaction() as db:
            rows = self.store._execute(
                db,
                "SELECT key FROM journal WHERE expires IS NOT NULL AND expires < ? ORDER BY created LIMIT ?",
                (time.time(), limit),
            ).fetchall()
        return [str(r[0]) for r in rows]


_CLAIM = """
local now = tonumber(ARGV[3])
local current = redis.call('HMGET', KEYS[1], 'holder', 'expires', 'entry')
if current[1] then
    if current[2] == '' or tonumber(current[2]) >= now then
        return false
    end
    redis.call('HSET', KEYS[1], 'holder', ARGV[1], 'expires', ARGV[2])
    redis.call('ZADD', KEYS[2], ARGV[2], ARGV[5])
    return {'resumed', current[3]}
end
redis.call('HSET', KEYS[1], 'holder', ARGV[1], 'expires', ARGV[2], 'entry', ARGV[4], 'created', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[6])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[5])
return {'new', ARGV[4]}
"""
_RECORD = """
local holder = redis.call('HGET', KEYS[1], 'holder')
if not holder then
    -- Redis lost the claim (restarted without its data): its holder writes it back.
    redis.call('HSET', KEYS[1], 'holder', ARGV[1], 'created', ARGV[5])
    redis.call('EXPIRE', KEYS[1], ARGV[6])
    redis.call('HSET', KEYS[1], 'expires', ARGV[2], 'entry', ARGV[3])
    redis.call('ZADD', KEYS[2], ARGV[2], ARGV[4])
    return 2
elseif holder ~= ARGV[1] or redis.call('HGET', KEYS[1], 'expires') == '' then
    return 0
end
redis.call('HSET', KEYS[1], 'expires', ARGV[2], 'entry', ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[4])
return 1
"""
_SETTLE = """
if redis.call('EXISTS', KEYS[1]) == 1 then
    redis.call('HSET', KEYS[1], 'expires', '')
    redis.call('EXPIRE', KEYS[1], ARGV[2])
end
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
"""
_DONE = """
if redis.call('HGET', KEYS[1], 'holder') == ARGV[1] then
    redis.call('HSET', KEYS[1], 'expires', '')
    redis.call('EXPIRE', KEYS[1], ARGV[3])
    redis.call('ZREM', KEYS[2], ARGV[2])
end
return 1
"""


class RedisJournal:
    """The journal on Redis, shared by every replica; while Redis is out of reach, the answers
    database's (`SqlJournal`), which a claim on Redis also consults: an event claimed during the outage
    is not answered again when Slack retries it after Redis is back.

    Each answered question is also marked done in the answers database, and a claim being answered
    writes itself back at its next renewal when Redis lost it: a Redis restarted without its data
    (no `appendonly`) forgets nothing that was answered."""

    def __init__(self, link: RedisLink, fallback: SqlJournal):
        self.link = link
        self.fallback = fallback

    def _keys(self, key: str) -> list[str]:
        return [self.link.key("journal", key), self.link.key("journal-expiring")]

    async def claim(self, key: str, entry: Mapping[str, Any], ttl_s: float) -> Claim | None:
        if await self.fallback.store.run(self.fallback.seen, key):
            # Answered, or claimed during an outage: the answers database holds it (and its pick-up).
            got = await self.fallback.claim(key, entry, ttl_s)
            if got is None:  # Redis's own copy, if it kept one, is settled too (no pick-up of it)
                await self.link.run(
                    lambda client: client.eval(_SETTLE, 2, *self._keys(key), key, int(KEEP_S)), _nothing
                )
            return got
        holder = uuid.uuid4().hex
        now = time.time()

        async def op(client: Any) -> Claim | None:
            got = await client.eval(
                _CLAIM, 2, *self._keys(key), holder, now + ttl_s, now, _dump(entry), key, int(KEEP_S)
            )
            if not got:
                return None
            kind, recorded = (v.decode() if isinstance(v, bytes) else str(v) for v in got)
            return Claim(key, holder, json.loads(recorded), resumed=kind == "resumed")

        return await self.link.run(op, lambda: self.fallback.claim(key, entry, ttl_s))

    async def record(self, claim: Claim, entry: Mapping[str, Any], ttl_s: float) -> bool:
        async def op(client: Any) -> bool:
            # 1: renewed on Redis. 2: written back (Redis had lost it) and 0: not Redis's; either may
            # be a claim begun in the answers database during an outage, renewed there too.
            got = int(
                await client.eval(
                    _RECORD,
                    2,
                    *self._keys(claim.key),
                    claim.holder,
                    time.time() + ttl_s,
                    _dump(entry),
                    claim.key,
                    time.time(),
                    int(KEEP_S),
                )
            )
            if got == 1:
                return True
            in_sql = await self.fallback.record(claim, entry, ttl_s)
            return got == 2 or in_sql

        return await self.link.run(op, lambda: self.fallback.record(claim, entry, ttl_s))

    async def done(self, claim: Claim) -> None:
        async def op(client: Any) -> None:
            await client.eval(_DONE, 2, *self._keys(claim.key), claim.holder, claim.key, int(KEEP_S))

        await self.link.run(op, _nothing)
        # Also where a restarted Redis, or a retry during an outage, will look.
        await self.fallback.store.run(self.fallback.mark_done, claim.key)

    async def orphans(self, limit: int) -> list[str]:
        async def op(client: Any) -> list[str]:
            found = await client.zrangebyscore(
                self.link.key("journal-expiring"), "-inf", time.time(), start=0, num=limit
            )
            return [v.decode() if isinstance(v, bytes) else str(v) for v in found]

        on_redis = await self.link.run(op, _no_keys)
        left = limit - len(on_redis)
        return on_redis + (await self.fallback.orphans(left) if left > 0 else [])


async def _no_keys() -> list[str]:
    return []
