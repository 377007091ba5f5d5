"""Leases (service/lease.py) keep one contract on every backend: in this process, SQLite, PostgreSQL and
Redis. The first to acquire wins, an expired lease can be taken and is then lost to its old holder, done
is forever, release frees the name, and many replicas asking at once get exactly one winner."""

from __future__ import annotations

import asyncio
import logging
import socket
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from bot.ports import Leases
from service.feedback import MIGRATIONS, FeedbackStore
from service.lease import DONE, MemoryLeases, RedisLeases, SqlLeases, choose_leases
from service.redis_state import RedisLink
from tests.test_feedback_backends import pg_schema  # noqa: F401 (fixture)
from tests.test_redis_state import REDIS_URL, PrivateRedis, prefix, private_redis  # noqa: F401 (fixtures)

SHORT = 0.3  # seconds: a lease that expires within the test
LONG = 60.0

Replicas = Callable[[], Leases]


@pytest.fixture(params=["memory", "sqlite", "postgres", "redis"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    """Which backend, and where: a file, a DATABASE_URL of the test's own schema, or a key prefix."""
    if request.param == "postgres":
        return "postgres", str(request.getfixturevalue("pg_schema"))
    if request.param == "redis":
        return "redis", str(request.getfixturevalue("prefix"))
    return request.param, str(tmp_path / "answers.sqlite3")


@pytest_asyncio.fixture
async def replicas(backend: tuple[str, str]) -> AsyncIterator[Replicas]:
    """A factory of leases on one shared backend: each call is another replica (its own connection or
    client). In-process leases are shared only within one process, so each call gives the same one."""
    kind, where = backend
    memory = MemoryLeases()
    stores: list[FeedbackStore] = []
    links: list[RedisLink] = []

    def make() -> Leases:
        if kind == "memory":
            return memory
        if kind == "redis":
            links.append(RedisLink(REDIS_URL, prefix=where))
            return RedisLeases(links[-1])
        stores.append(FeedbackStore(database_url=where) if kind == "postgres" else FeedbackStore(where))
        return SqlLeases(stores[-1])

    yield make
    for link in links:
        assert link.degraded() is None  # the Redis tests ran on Redis, not on the fallback
        await link.aclose()
    for store in stores:
        store.close()


async def test_the_first_to_acquire_wins(replicas: Replicas) -> None:
    a, b = replicas(), replicas()
    before = time.time()
    lease = await a.acquire("digest:weekly:2026-W46", LONG)
    assert lease is not None and lease.name == "digest:weekly:2026-W46"
    assert before + LONG <= lease.expires <= time.time() + LONG
    assert await b.acquire("digest:weekly:2026-W46", LONG) is None
    assert await a.acquire("digest:weekly:2026-W46", LONG) is None  # not twice by the same replica either
    other = await b.acquire("digest:weekly:2026-W47", LONG)
    assert other is not None and other.holder != lease.holder


async def test_an_expired_lease_can_be_taken_and_is_lost_to_its_old_holder(replicas: Replicas) -> None:
    a, b, c = replicas(), replicas(), replicas()
    old = await a.acquire("n", SHORT)
    assert old is not None
    await asyncio.sleep(SHORT + 0.1)
    new = await b.acquire("n", LONG)
    assert new is not None and new.holder != old.holder
    assert await a.renew(old, LONG) is None
    assert await a.done(old) is False
    await a.release(old)  # giving back a lost lease does not free the new holder's
    assert await c.acquire("n", LONG) is None
    assert await b.done(new) is True


async def test_done_is_forever(replicas: Replicas) -> None:
    a, b = replicas(), replicas()
    lease = await a.acquire("n", SHORT)
    assert lease is not None and await a.done(lease) is True
    assert await b.acquire("n", LONG) is None
    await asyncio.sleep(SHORT + 0.1)  # past the lease's expiry: still done
    assert await b.acquire("n", LONG) is None and await a.acquire("n", LONG) is None
    assert await a.renew(lease, LONG) is None
    await a.release(lease)  # too late to give it back
    assert await b.acquire("n", LONG) is None


async def test_release_frees_the_name(replicas: Replicas) -> None:
    a, b = replicas(), replicas()
    lease = await a.acquire("n", LONG)
    assert lease is not None
    await a.release(lease)
    again = await b.acquire("n", LONG)
    assert again is not None and again.holder != lease.holder


async def test_renew_extends_the_lease(replicas: Replicas) -> None:
    a, b = replicas(), replicas()
    lease = await a.acquire("n", SHORT)
    assert lease is not None
    renewed = await a.renew(lease, LONG)
    assert renewed is not None and renewed.holder == lease.holder and renewed.expires > lease.expires + 30
    await asyncio.sleep(SHORT + 0.1)  # past the first expiry
    assert await b.acquire("n", LONG) is None
    assert await a.done(renewed) is True


async def test_one_winner_among_many_at_once(replicas: Replicas) -> None:
    a, b = replicas(), replicas()
    results = await asyncio.gather(*((a, b)[i % 2].acquire("n", LONG) for i in range(20)))
    assert sum(lease is not None for lease in results) == 1


async def test_an_expired_lease_has_one_winner_too(replicas: Replicas) -> None:
    a, b = replicas(), replicas()
    assert await a.acquire("n", SHORT) is not None
    await asyncio.sleep(SHORT + 0.1)
    results = await asyncio.gather(*((a, b)[i % 2].acquire("n", LONG) for i in range(20)))
    assert sum(lease is not None for lease in results) == 1


# The schema at migration 3 (when things done once were rows of `claims`), with one claimed period.
def _claims_era(db: Any, types: dict[str, str]) -> None:
    db.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied REAL NOT NULL)")
    for version, script in MIGRATIONS[:3]:
        for statement in script.format(**types).split(";"):
            if statement.strip():
                db.execute(statement)
        db.execute(f"INSERT INTO schema_migrations (version, applied) VALUES ({version}, 1.0)")
    assert MIGRATIONS[2][0] == 3 and "claims" in MIGRATIONS[2][1]
    db.execute("INSERT INTO claims (name, claimed) VALUES ('weekly:2026-W46', 1.0)")


async def test_claims_from_before_leases_stay_done_on_sqlite(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as db:
        _claims_era(db, {"id": "INTEGER PRIMARY KEY AUTOINCREMENT", "real": "REAL"})
    store = FeedbackStore(path)
    assert store.schema_version() >= 5
    leases = SqlLeases(store)
    assert await leases.acquire("weekly:2026-W46", LONG) is None  # posted by the earlier release
    assert await leases.acquire("weekly:2026-W47", LONG) is not None
    store.close()


async def test_claims_from_before_leases_stay_done_on_postgresql(pg_schema: str) -> None:  # noqa: F811
    import psycopg

    with psycopg.connect(pg_schema, autocommit=True) as db:
        _claims_era(
            db, {"id": "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY", "real": "DOUBLE PRECISION"}
        )
    store = FeedbackStore(database_url=pg_schema)
    leases = SqlLeases(store)
    assert await leases.acquire("weekly:2026-W46", LONG) is None
    assert await leases.acquire("weekly:2026-W47", LONG) is not None
    store.close()


async def test_a_done_lease_on_redis_is_a_key_without_expiry(prefix: str) -> None:  # noqa: F811
    link = RedisLink(REDIS_URL, prefix=prefix)
    leases = RedisLeases(link)
    lease = await leases.acquire("n", LONG)
    assert lease is not None
    key = link.key("lease", "n")
    assert await link.client.get(key) == lease.holder and 0 < await link.client.pttl(key) <= LONG * 1000
    assert await leases.done(lease)
    assert await link.client.get(key) == DONE and await link.client.ttl(key) == -1
    await link.aclose()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_leases_work_in_process_while_redis_is_unreachable(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="service.redis_state")
    link = RedisLink(f"redis://127.0.0.1:{_closed_port()}/0", prefix="aisafety-test-down:")
    leases = RedisLeases(link)
    lease = await leases.acquire("n", LONG)
    assert lease is not None and await leases.acquire("n", LONG) is None
    assert "unreachable" in (link.degraded() or "")
    assert [r for r in caplog.records if "unreachable" in r.getMessage()]
    renewed = await leases.renew(lease, LONG)
    assert renewed is not None and await leases.done(renewed)
    assert await leases.acquire("n", LONG) is None
    other = await leases.acquire("m", LONG)
    assert other is not None
    await leases.release(other)
    assert await leases.acquire("m", LONG) is not None
    await link.aclose()


async def test_what_redis_said_was_done_stays_done_through_an_outage(
    private_redis: PrivateRedis,  # noqa: F811
) -> None:
    link = RedisLink(private_redis.url)
    leases = RedisLeases(link)
    lease = await leases.acquire("n", LONG)
    assert lease is not None and await leases.done(lease)
    await asyncio.to_thread(private_redis.stop)
    assert await leases.acquire("n", LONG) is None  # remembered here while Redis was up
    assert await leases.acquire("m", LONG) is not None
    assert link.degraded() is not None
    await link.aclose()


def test_durable_and_shared_leases_are_chosen_first(tmp_path: Path, pg_schema: str) -> None:  # noqa: F811
    sqlite = FeedbackStore(tmp_path / "answers.sqlite3")
    postgres = FeedbackStore(database_url=pg_schema)
    link = RedisLink(f"redis://127.0.0.1:{_closed_port()}/0")
    try:
        assert isinstance(choose_leases(postgres, link), SqlLeases)
        assert isinstance(choose_leases(postgres, None), SqlLeases)
        chosen = choose_leases(sqlite, link)
        assert isinstance(chosen, RedisLeases) and chosen.link is link
        alone = choose_leases(sqlite, None)
        assert isinstance(alone, SqlLeases) and alone.store is sqlite
    finally:
        sqlite.close()
        postgres.close()
