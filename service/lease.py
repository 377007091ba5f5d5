"""Leases (`bot.ports.Leases`): work that one replica does at a time, or once ever.

Three implementations: on the answers database (`SqlLeases`, SQLite or PostgreSQL), on Redis
(`RedisLeases`, with this process's own `MemoryLeases` while Redis is out of reach), and in this process
alone (`MemoryLeases`). `choose_leases` picks one for a deployment. A lease names its holder with a
random token: only that holder can renew, finish or release it. A lease that is done never expires, so
its name can never be acquired again.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from typing import Any

from bot.ports import Lease, Leases
from bot.ratelimit import DONE, MemoryLeases
from service.feedback import FeedbackStore
from service.redis_state import RedisLink

_log = logging.getLogger(__name__)

# Each script checks the holder and acts in one atomic step.
_RENEW_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
# Done also when the key has expired and no one took it: the work is done all the same.
_DONE_SCRIPT = """
local value = redis.call('GET', KEYS[1])
if value == ARGV[1] or value == false then
    redis.call('SET', KEYS[1], ARGV[2])
    return 1
end
return 0
"""
_RELEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


def _holder() -> str:
    return uuid.uuid4().hex


class SqlLeases:
    """Leases in the answers database's `leases` table: shared by every replica on one PostgreSQL, kept
    across restarts. Each step is one statement, so two replicas cannot both win."""

    def __init__(self, store: FeedbackStore):
        self.store = store

    async def acquire(self, name: str, ttl_s: float) -> Lease | None:
        return await self.store.run(self._acquire, name, ttl_s)

    async def renew(self, lease: Lease, ttl_s: float) -> Lease | None:
        return await self.store.run(self._renew, lease, ttl_s)

    async def done(self, lease: Lease) -> bool:
        return await self.store.run(self._done, lease)

    async def release(self, lease: Lease) -> None:
        await self.store.run(self._release, lease)

    def _run(self, query: str, params: tuple[Any, ...]) -> int:
        """One statement in its own transaction; how many rows it inserted, changed or deleted."""
        with self.store._transaction() as db:
            return int(self.store._execute(db, query, params).rowcount)

    def _acquire(self, name: str, ttl_s: float) -> Lease | None:
        now = time.time()
        lease = Lease(name, _holder(), now + ttl_s)
        # A new row, or a lease that expired without being done: either way the row is now ours.
        taken = self._run(
            "INSERT INTO leases (name, holder, expires) VALUES (?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires = excluded.expires "
            "WHERE leases.expires IS NOT NULL AND leases.expires < ?",
            (name, lease.holder, lease.expires, now),
        )
        return lease if taken == 1 else None

    def _renew(self, lease: Lease, ttl_s: float) -> Lease | None:
        renewed = Lease(lease.name, lease.holder, time.time() + ttl_s)
        changed = self._run(
            "UPDATE leases SET expires = ? WHERE name = ? AND holder = ? AND expires IS NOT NULL",
            (renewed.expires, lease.name, lease.holder),
        )
        return renewed if changed == 1 else None

    def _done(self, lease: Lease) -> bool:
        # Ours, or released or gone since: the work is done all the same. Another holder's: lost.
        changed = self._run(
            "INSERT INTO leases (name, holder, expires) VALUES (?, ?, NULL) "
            "ON CONFLICT (name) DO UPDATE SET expires = NULL WHERE leases.holder = excluded.holder",
            (lease.name, lease.holder),
        )
        return changed == 1

    def _release(self, lease: Lease) -> None:
        self._run(
            "DELETE FROM leases WHERE name = ? AND holder = ? AND expires IS NOT NULL",
            (lease.name, lease.holder),
        )


class RedisLeases:
    """Leases on Redis, shared by every replica: a key per lease that Redis expires by itself. While
    Redis is out of reach (logged by `RedisLink`), this process's own `MemoryLeases` answers."""

    def __init__(self, link: RedisLink):
        self.link = link
        self.local = MemoryLeases()
        self._scripts: dict[str, Any] = {}

    def _key(self, name: str) -> str:
        return self.link.key("lease", name)

    def _script(self, client: Any, source: str) -> Any:
        if source not in self._scripts:
            self._scripts[source] = client.register_script(source)
        return self._scripts[source]

    async def acquire(self, name: str, ttl_s: float) -> Lease | None:
        async def op(client: Any) -> Lease | None:
            lease = Lease(name, _holder(), time.time() + ttl_s)
            # NX: a held lease, and a done one (its key never expires), stay as they are.
            taken = await client.set(self._key(name), lease.holder, nx=True, px=_ms(ttl_s))
            return lease if taken else None

        return await self.link.run(op, lambda: self.local.acquire(name, ttl_s))

    async def renew(self, lease: Lease, ttl_s: float) -> Lease | None:
        async def op(client: Any) -> Lease | None:
            renewed = Lease(lease.name, lease.holder, time.time() + ttl_s)
            script = self._script(client, _RENEW_SCRIPT)
            changed = await script(keys=[self._key(lease.name)], args=[lease.holder, _ms(ttl_s)])
            return renewed if changed else None

        return await self.link.run(op, lambda: self.local.renew(lease, ttl_s))

    async def done(self, lease: Lease) -> bool:
        async def op(client: Any) -> bool:
            script = self._script(client, _DONE_SCRIPT)
            finished = bool(await script(keys=[self._key(lease.name)], args=[lease.holder, DONE]))
            if finished:
                self.local.mark_done(lease.name)  # remembered here too, for a later outage
            return finished

        return await self.link.run(op, lambda: self.local.done(lease))

    async def release(self, lease: Lease) -> None:
        async def op(client: Any) -> None:
            script = self._script(client, _RELEASE_SCRIPT)
            await script(keys=[self._key(lease.name)], args=[lease.holder])

        await self.link.run(op, lambda: self.local.release(lease))


def _ms(seconds: float) -> int:
    """A TTL in whole milliseconds, at least one (Redis refuses zero)."""
    return max(1, math.ceil(seconds * 1000))


def choose_leases(store: FeedbackStore, redis: RedisLink | None) -> Leases:
    """The leases a deployment shares: durable and shared wins. PostgreSQL is both, so it comes first.
    Redis is shared by every replica but keeps a done marker only as long as its memory does, so it
    comes next. SQLite is durable but local to one process, which is enough when there is only one."""
    if store.postgres:
        return SqlLeases(store)
    if redis is not None:
        return RedisLeases(redis)
    return SqlLeases(store)
