"""A hung answers database or Redis (frozen with SIGSTOP: a full disk, a lock, a frozen machine) never
leaves a member without a reply: the answer is shown (without feedback buttons), a vote and an "Ask a
human" press get a reply saying it could not be recorded, and on Redis the in-process state takes over.
Private servers of the test's own are frozen, never the machine's."""

from __future__ import annotations

import asyncio
import functools
import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bot.conversation import Conversation
from bot.core import AnswerCore
from bot.models import Answer, Question, Source
from bot.observability import Observer
from bot.platform import HANDOFF_ASKED, HANDOFF_FAILED, VOTE_FAILED, PlatformOptions
from retrieval.embeddings import FastEmbedder
from retrieval.ingest import ingest
from retrieval.search import HybridRetriever
from retrieval.store import QdrantStore
from service.feedback import DatabaseWatch, FeedbackStore
from service.journal import RedisJournal, SqlJournal
from service.lease import RedisLeases, SqlLeases
from service.redis_state import RedisLink, RedisRateLimit, RedisThreads, forget_community
from tests.conftest import need
from tests.qdrant_server import QdrantServer
from tests.test_redis_state import PrivateRedis, _free_port, _wait
from tests.test_redis_state import private_redis as private_redis

pytestmark = pytest.mark.faults

SOURCE = Source(1, "aisafety.info:6568", "What is the orthogonality thesis?", "https://aisafety.info/q/6568")
TIMEOUT_S = 1.0  # the conversation's wait for state, shortened for the test


class Core:
    observer = Observer()

    async def stream(self, question: Question, *, found: list[Answer]) -> AsyncIterator[str | Answer]:
        yield Answer("Goals and intelligence are independent [1].", (SOURCE,), "llm")


class Shown:
    """The reply port: what the member saw."""

    def __init__(self) -> None:
        self.answers: list[tuple[Answer, int | None]] = []
        self.apologies: list[Answer | None] = []

    async def start(self) -> None: ...

    async def preview(self, text: str) -> None: ...

    async def final(self, answer: Answer, answer_id: int | None) -> None:
        self.answers.append((answer, answer_id))

    async def say(self, text: str) -> None: ...

    async def apologise(self, answer: Answer | None) -> None:
        self.apologies.append(answer)


def _conversation(store: FeedbackStore, leases: object) -> Conversation:
    conversation = Conversation.in_process(
        "slack",
        core=Core(),  # type: ignore[arg-type]
        store=store,
        options=PlatformOptions(rate_limit_per_minute=0, handoff="S0MODS"),
        usage="",
        leases=leases,  # type: ignore[arg-type]
    )
    conversation.state_timeout_s = TIMEOUT_S
    return conversation


def _pg_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        need("PostgreSQL's initdb for a private server", "install postgresql (apt-get install postgresql)")
    return Path(found[-1]).parent


@pytest.fixture
def private_postgres() -> Iterator[tuple[str, int]]:
    """A PostgreSQL cluster of the test's own (run as the postgres user when the tests run as root, in a
    folder that user can reach); yields its URL and its postmaster's pid."""
    bin_dir = _pg_bin()
    folder = Path(tempfile.mkdtemp(prefix="aisafety-pg-"))
    port = _free_port()
    as_root = os.geteuid() == 0
    if as_root:
        shutil.chown(folder, "postgres")
    user = ["runuser", "-u", "postgres", "--"] if as_root else []
    subprocess.run(
        [*user, str(bin_dir / "initdb"), "-D", str(folder / "data"), "-A", "trust", "-U", "postgres"],
        check=True,
        capture_output=True,
    )
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1"
    subprocess.run(
        # The server's output goes to its log file: it outlives pg_ctl, and would hold a pipe open.
        [
            *user,
            str(bin_dir / "pg_ctl"),
            "-D",
            str(folder / "data"),
            "-o",
            options,
            "-l",
            str(folder / "log"),
            "-w",
            "start",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=60,
    )
    pid = int((folder / "data" / "postmaster.pid").read_text().split()[0])
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres", pid
    finally:
        _thaw_all(pid)
        subprocess.run(
            [*user, str(bin_dir / "pg_ctl"), "-D", str(folder / "data"), "-m", "immediate", "stop"],
            capture_output=True,
        )
        shutil.rmtree(folder, ignore_errors=True)


def _family(pid: int) -> list[int]:
    """The postmaster and its children (each connection's backend)."""
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [pid, *(int(p) for p in out.split())]


def _freeze_all(pid: int) -> None:
    for p in _family(pid):
        os.kill(p, signal.SIGSTOP)


def _thaw_all(pid: int) -> None:
    for p in _family(pid):
        os.kill(p, signal.SIGCONT)


async def test_a_frozen_answers_database_still_answers_and_says_what_it_could_not_record(
    private_postgres: tuple[str, int],
) -> None:
    url, pid = private_postgres
    store = FeedbackStore(database_url=url, timeout_s=TIMEOUT_S)
    watch = DatabaseWatch(store)
    assert await watch.check() and watch.note() is None
    conversation = _conversation(store, SqlLeases(store))
    assert conversation.writer is not None
    shown = Shown()
    question = Question("what is the orthogonality thesis?", asker="slack:U1", community="slack:T1")
    assert await conversation.answer(question, shown) is not None
    answer_id = shown.answers[-1][1]
    assert answer_id is not None
    assert await conversation.writer.flush(5) == 0  # stored while PostgreSQL answers

    _freeze_all(pid)
    try:
        started = time.monotonic()
        assert await conversation.answer(question, shown) is not None
        # Posted at once, with its buttons: the answer never waits on the database, which stores it later.
        assert time.monotonic() - started < TIMEOUT_S
        frozen_id = shown.answers[-1][1]
        assert frozen_id is not None and frozen_id != answer_id
        said = await conversation.vote("slack:T1", answer_id, voter="slack:U2", vote="up")
        assert said == VOTE_FAILED

        async def call(role: str) -> None:
            raise AssertionError("the moderators were called without a record that keeps it to once")

        assert await conversation.handoff("slack:T1", "slack:U2", "C1:1.0", call) == HANDOFF_FAILED
        assert time.monotonic() - started < 4 * TIMEOUT_S + 2  # each waited at most its timeout
        assert shown.apologies == []
        # The writer keeps the answer and says the database is behind (/readyz's degraded.database).
        deadline = time.monotonic() + 10
        while conversation.writer.degraded() is None:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
        assert conversation.writer.waiting == 1
        # The health check's own round trip fails in time too: /readyz shows degraded.database.
        checked = time.monotonic()
        assert not await watch.check()
        assert time.monotonic() - checked < TIMEOUT_S + 1
        assert "answers database is failing (no answer in time)" in str(watch.note())
    finally:
        _thaw_all(pid)
    # Thawed: the answer given meanwhile is stored (none lost), and votes count again.
    assert await watch.check() and watch.note() is None
    deadline = time.monotonic() + 20
    while conversation.writer.waiting:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)
    assert conversation.writer.degraded() is None
    stored = {r.answer_id for r in await asyncio.to_thread(store.rows, only_voted=False)}
    assert stored == {answer_id, frozen_id}
    assert await conversation.vote("slack:T1", frozen_id, voter="slack:U2", vote="up") != VOTE_FAILED
    await asyncio.to_thread(store.close)


async def test_a_frozen_redis_hands_off_from_this_process(
    private_redis: PrivateRedis,
    tmp_path: Path,
) -> None:
    assert private_redis.proc is not None
    link = RedisLink(private_redis.url)
    store = FeedbackStore(tmp_path / "f.sqlite3")
    conversation = _conversation(store, RedisLeases(link))
    calls: list[str] = []

    async def call(role: str) -> None:
        calls.append("pinged")

    os.kill(private_redis.proc.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        assert await conversation.handoff("slack:T1", "slack:U2", "C1:1.0", call) == HANDOFF_ASKED
        assert time.monotonic() - started < 3  # one Redis time-out, then the in-process leases
        assert calls == ["pinged"]
    finally:
        os.kill(private_redis.proc.pid, signal.SIGCONT)
    _wait(private_redis.port, up=True)
    await link.aclose()
    store.close()


async def test_forgetting_a_community_while_redis_is_frozen_does_not_hang(
    private_redis: PrivateRedis, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A community leaves (the bot is removed) while Redis is frozen: its rows leave the database, and
    forgetting waits one Redis time-out, not for Redis to thaw; what Redis kept of it expires by itself."""
    assert private_redis.proc is not None
    link = RedisLink(private_redis.url)
    store = FeedbackStore(tmp_path / "f.sqlite3")
    store.after_forget(functools.partial(forget_community, link))
    store.record_answer(
        platform="discord",
        place="discord:5",
        asker="discord:U1",
        question="what is a quantilizer",
        answer=Answer("An agent that...", (SOURCE,), "llm"),
        community="discord:1",
    )
    assert await RedisRateLimit(link, 5).allow("discord:1:discord:U1")
    await RedisThreads(link).remember("discord:1:C1", "T1", True)

    os.kill(private_redis.proc.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        counts = await store.forget("discord:1")
        assert time.monotonic() - started < 3  # one Redis time-out (0.5 s), then done
    finally:
        os.kill(private_redis.proc.pid, signal.SIGCONT)
    _wait(private_redis.port, up=True)
    assert counts["answers"] == 1 and store.between(0, 2**40, community="discord:1") == []
    assert "unreachable" in caplog.text
    left = [k async for k in link.client.scan_iter(match=link.prefix + "*discord:1*")]
    ttls = [await link.client.ttl(k) for k in left]
    assert left and all(t > 0 for t in ttls), dict(zip(left, ttls, strict=True))
    await link.aclose()
    store.close()


async def test_a_burst_while_the_answers_database_is_frozen_loses_nothing(
    private_postgres: tuple[str, int],
) -> None:
    """Ten questions while PostgreSQL is frozen: each is posted at once with its buttons, none waits on
    the database, and all ten are stored once it thaws (lost 0, duplicated 0)."""
    url, pid = private_postgres
    store = FeedbackStore(database_url=url, timeout_s=TIMEOUT_S)
    conversation = _conversation(store, SqlLeases(store))
    assert conversation.writer is not None
    shown = Shown()
    _freeze_all(pid)
    try:
        started = time.monotonic()
        questions = [
            Question(f"question {n} about orthogonality?", asker=f"slack:U{n}", community="slack:T1")
            for n in range(10)
        ]
        done = await asyncio.gather(*(conversation.answer(q, shown) for q in questions))
        assert all(a is not None for a in done) and len(shown.answers) == 10
        assert time.monotonic() - started < TIMEOUT_S  # not one of them waited on the database
        assert shown.apologies == [] and conversation.writer.waiting == 10
    finally:
        _thaw_all(pid)
    deadline = time.monotonic() + 30
    while conversation.writer.waiting:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)
    stored = [r.answer_id for r in await asyncio.to_thread(store.rows, only_voted=False)]
    assert sorted(stored) == sorted(a for _, a in shown.answers)  # every one, once
    await asyncio.to_thread(store.close)


async def test_a_burst_while_redis_is_frozen_is_answered_once_each(
    private_redis: PrivateRedis,
    tmp_path: Path,
) -> None:
    """Redis frozen (SIGSTOP) during a burst: each question is claimed in the answers database instead
    and answered once; retried after Redis thaws, none is answered again."""
    assert private_redis.proc is not None
    link = RedisLink(private_redis.url, timeout_s=0.3)
    store = FeedbackStore(tmp_path / "f.sqlite3")
    conversation = _conversation(store, RedisLeases(link))
    conversation.journal = RedisJournal(link, SqlJournal(store))
    shown = Shown()

    async def delivered(n: int) -> None:
        claim = await conversation.claim("slack:T1", f"message:C1:{n}.0", {"kind": "event"})
        if claim is not None:
            question = Question(f"question {n}?", asker=f"slack:U{n}", community="slack:T1")
            await conversation.answer(question, shown, claim=claim)

    os.kill(private_redis.proc.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        await asyncio.gather(*(delivered(n) for n in range(5)))
        assert len(shown.answers) == 5 and shown.apologies == []
        assert time.monotonic() - started < 10
    finally:
        os.kill(private_redis.proc.pid, signal.SIGCONT)
    await asyncio.gather(*(delivered(n) for n in range(5)))  # Slack's retries, Redis back
    assert len(shown.answers) == 5  # none answered twice
    await link.aclose()
    await asyncio.to_thread(store.close)


async def test_a_frozen_database_never_holds_the_searches_on_a_qdrant_server(
    private_postgres: tuple[str, int],
    qdrant_server: QdrantServer,
    embedder: FastEmbedder,
    slice_file: Path,
    tmp_path: Path,
) -> None:
    """Database calls stuck on a frozen PostgreSQL wait on threads of their own: the searches, which a
    Qdrant server's store runs on the shared pool, and so the answers, go on as before."""
    url, pid = private_postgres
    store = FeedbackStore(database_url=url, timeout_s=TIMEOUT_S)
    library = QdrantStore(
        alias=f"frozen_{tmp_path.name.replace('-', '_')}",
        url=qdrant_server.url,
        api_key=qdrant_server.api_key,
    )
    ingest(store=library, embedder=embedder, sources=[str(slice_file)])
    core = AnswerCore(retriever=HybridRetriever(store=library, embedder=embedder), llm=None)
    conversation = Conversation.in_process(
        "slack",
        core=core,
        store=store,
        options=PlatformOptions(rate_limit_per_minute=0),
        usage="",
        leases=SqlLeases(store),
    )
    conversation.state_timeout_s = TIMEOUT_S
    _freeze_all(pid)
    try:
        # Votes pile database calls onto the frozen server (each member is told it failed, in time)...
        said = await asyncio.gather(
            *(conversation.vote("slack:T1", 1, voter=f"slack:V{n}", vote="up") for n in range(8))
        )
        assert set(said) == {VOTE_FAILED}
        # ...and a burst of questions is answered from the library all the same.
        shown = Shown()
        started = time.monotonic()
        questions = ["what is a mesa-optimizer?", "what is corrigibility?", "what are quantilizers?"] * 3
        answers = await asyncio.gather(
            *(
                conversation.answer(Question(q, asker=f"slack:U{n}", community="slack:T1"), shown)
                for n, q in enumerate(questions)
            )
        )
        assert all(a is not None and a.sources for a in answers) and shown.apologies == []
        assert time.monotonic() - started < 20
    finally:
        _thaw_all(pid)
        for name in library.build_collections():
            library.drop_collection(name)
        library.close()
    await asyncio.to_thread(store.close)
