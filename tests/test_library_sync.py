"""The running bot's library sync against a fake aisafety.info on 127.0.0.1 built from the site's code:
publish, edit, unpublish, remove and reorder change the library as they should; a 500, a 429, a
time-out, a body that is not JSON, an empty list and a mass removal change nothing and are counted; a
kill mid-sync leaves every article whole; two replicas on one Qdrant server sync once a period."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.ratelimit import MemoryLeases
from retrieval import aisafety_info
from retrieval.edge_store import EdgeStore
from retrieval.embeddings import FastEmbedder
from retrieval.index import VectorStore
from retrieval.store import QdrantStore
from service.feedback import FeedbackStore
from service.lease import SqlLeases
from service.library_sync import LibrarySync, SyncResult
from service.metrics import Metrics
from tests.conftest import MODEL_PATH
from tests.fake_aisafety import FakeAisafety, question
from tests.fixture_articles import ARTICLES
from tests.qdrant_server import QdrantServer

ROOT = Path(__file__).resolve().parents[1]
SLUGS = [str(a["id"]).split(":", 1)[1] for a in ARTICLES]


def feed(*slugs: str, edited: str = "", unlisted: str = "") -> list[dict[str, Any]]:
    """The fixture articles named (all by default) as the feed's answers, pageid 1000 + their place."""
    out = []
    for n, a in enumerate(ARTICLES):
        slug = SLUGS[n]
        if slugs and slug not in slugs:
            continue
        text = str(a["text"]) + (" It was edited: a new paragraph on oversight." if slug == edited else "")
        status = "Unlisted" if slug == unlisted else "Live on site"
        out.append(question(str(1000 + n), str(a["title"]), text, status=status))
    return out


def fid(slug: str) -> str:
    return f"aisafety.info:{1000 + SLUGS.index(slug)}"


class Site:
    """The fake site, whose `timestamp` moves on with each change, as the site's cache does."""

    def __init__(self, fake: FakeAisafety):
        self.fake = fake
        self.version = 0

    def publish(self, questions: list[dict[str, Any]]) -> None:
        self.version += 1
        self.fake.questions = questions
        self.fake.timestamp = f"2026-12-06T00:00:{self.version:02d}.000Z"


@pytest.fixture
def site() -> Iterator[Site]:
    with FakeAisafety(feed()) as fake:
        yield Site(fake)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EdgeStore]:
    s = EdgeStore(alias="articles", path=str(tmp_path / "qdrant"))
    yield s
    s.close()


@pytest.fixture
def feedback(tmp_path: Path) -> Iterator[FeedbackStore]:
    f = FeedbackStore(tmp_path / "answers.sqlite3")
    yield f
    f.close()


def make_sync(
    store: VectorStore, embedder: FastEmbedder, site: Site, feedback: FeedbackStore | None = None, **kw: Any
) -> LibrarySync:
    return LibrarySync(
        store=store,
        embedder=embedder,
        sources=["aisafety.info"],
        aisafety_info_url=site.fake.base,
        every_s=kw.pop("every_s", 3600.0),
        max_remove=kw.pop("max_remove", 0.25),
        leases=kw.pop("leases", MemoryLeases()),
        feedback=feedback,
        metrics=kw.pop("metrics", Metrics()),
        **kw,
    )


def states(store: VectorStore) -> dict[str, str]:
    live = store.live_collection()
    return {aid: s.content_hash for aid, s in store.article_states(live).items()} if live else {}


def whole(store: VectorStore) -> None:
    """Every searchable point belongs to one whole version of its article: its passages 0..n-1 and its
    phrasings, all of one hash; anything else is a tombstone, which no search finds."""
    live = str(store.live_collection())
    fields = ["article_id", "chunk", "chunks", "hash", "phrasing", "state"]
    if isinstance(store, EdgeStore):
        payloads = store._scroll(live, fields, first_only=False)
    else:
        assert isinstance(store, QdrantStore)
        payloads = store._scroll(live, first_only=False, fields=fields)
    by_article: dict[str, list[dict[str, Any]]] = {}
    for pl in payloads:
        if pl.get("state") == "tombstone":
            continue
        by_article.setdefault(str(pl["article_id"]), []).append(pl)
    assert by_article
    for aid, points in by_article.items():
        passages = [p for p in points if "chunk" in p]
        assert passages, f"{aid}: a phrasing without its article"
        assert len({p["hash"] for p in points}) == 1, f"{aid}: passages of two versions"
        assert sorted(p["chunk"] for p in passages) == list(range(passages[0]["chunks"])), aid


async def test_publish_edit_unpublish_remove_and_reorder(
    site: Site, store: EdgeStore, embedder: FastEmbedder, feedback: FeedbackStore
) -> None:
    metrics = Metrics()
    sync = make_sync(store, embedder, site, feedback, metrics=metrics, max_remove=1.0)
    first = await sync.sync_now()
    assert first.outcome == "changed" and first.added == len(ARTICLES)

    # Published, edited, unlisted, and taken off the site, in one period.
    site.publish(feed(*[s for s in SLUGS if s != "timelines"], edited="corrigibility", unlisted="rlhf"))
    site.fake.questions.append(question("2000", "What is a new answer?", "A freshly published answer " * 5))
    result = await sync.sync_now()
    assert result.outcome == "changed"
    got = sorted((c.change, c.article_id) for c in result.changes)
    assert got == sorted(
        [
            ("added", "aisafety.info:2000"),
            ("changed", fid("corrigibility")),
            ("removed", fid("rlhf")),
            ("removed", fid("timelines")),
        ]
    )
    assert set(states(store)) >= {"aisafety.info:2000"} and fid("rlhf") not in states(store)
    whole(store)

    # The same answers in another order: nothing to do.
    before = states(store)
    site.publish(list(reversed(site.fake.questions)))
    assert (await sync.sync_now()).outcome == "unchanged"
    assert states(store) == before

    # Recorded for the report: the changes, and the last success for /metrics and /readyz.
    logged = feedback.library_changes(0, 2e9)
    assert {(c["change"], c["id"]) for c in logged} >= set(got)
    assert feedback.last_library_sync() is not None
    text = metrics.render().decode()
    assert 'aisafety_library_syncs_total{outcome="changed"} 2.0' in text
    assert 'aisafety_library_syncs_total{outcome="unchanged"} 1.0' in text
    assert f"aisafety_library_articles {float(len(before))}" in text
    assert "aisafety_library_synced_timestamp_seconds 1." in text


async def test_an_unchanged_feed_is_not_parsed_into_articles(
    site: Site, store: EdgeStore, embedder: FastEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    sync = make_sync(store, embedder, site)
    assert (await sync.sync_now()).outcome == "changed"
    parsed: list[str] = []
    real = aisafety_info.parse_feed
    monkeypatch.setattr(aisafety_info, "parse_feed", lambda *a, **k: parsed.append("x") or real(*a, **k))
    assert (await sync.sync_now()).outcome == "unchanged"
    assert parsed == []  # the same `timestamp`: the answers were never read
    assert len(site.fake.seen) == 2 and all(s.path == aisafety_info.FEED_PATH for s in site.fake.seen)
    assert all(s.headers["user-agent"].startswith("aisafety-bot/") for s in site.fake.seen)
    site.publish(site.fake.questions)  # a new timestamp, the same answers
    assert (await sync.sync_now()).outcome == "unchanged" and parsed == ["x"]


@pytest.mark.parametrize(
    ("fault", "outcome", "reason"),
    [
        ({"status": 500}, "failed", "HTTP 500"),
        ({"status": 429, "retry_after": "120"}, "failed", "HTTP 429"),
        ({"delay_s": 5.0}, "failed", "no complete answer within"),
        ({"body": b"<html>Just a moment...</html>"}, "failed", "is not JSON"),
        ({"body": b'{"timestamp": "t", "data": []}'}, "failed", "no usable articles"),
        ({"mass_removal": True}, "refused", "SYNC_MAX_REMOVE"),
    ],
    ids=["500", "429", "time-out", "not-json", "empty-list", "mass-removal"],
)
async def test_a_bad_feed_changes_nothing(
    site: Site,
    store: EdgeStore,
    embedder: FastEmbedder,
    feedback: FeedbackStore,
    monkeypatch: pytest.MonkeyPatch,
    fault: dict[str, Any],
    outcome: str,
    reason: str,
) -> None:
    monkeypatch.setattr(aisafety_info, "FEED_TIMEOUT_S", 0.5)
    metrics = Metrics()
    now = [1_000_000.0]
    sync = make_sync(store, embedder, site, feedback, metrics=metrics, clock=lambda: now[0])
    assert (await sync.sync_now()).outcome == "changed"
    before = states(store)
    logged = len(feedback.library_changes(0, 2e9))
    if fault.pop("mass_removal", False):
        site.publish(feed(*SLUGS[:5]))
    for key, value in fault.items():
        setattr(site.fake, key, value)
    site.version += 1
    site.fake.timestamp = "changed"
    result = await sync.sync_now()
    assert (result.outcome, reason in result.reason) == (outcome, True), result.reason
    assert "\n" not in result.reason
    assert states(store) == before  # not one article gone, not one re-embedded
    whole(store)
    assert f'aisafety_library_syncs_total{{outcome="{outcome}"}} 1.0' in metrics.render().decode()
    assert len(feedback.library_changes(0, 2e9)) == logged  # no change to log
    if fault.get("status") == 429:
        # The site asked for two minutes: the next period's sync does not ask before then.
        asked = len(site.fake.seen)
        assert await sync.scheduled() is None and len(site.fake.seen) == asked
        now[0] += 121
        site.fake.status = 200
        assert (await sync.scheduled()) is not None and len(site.fake.seen) == asked + 1
    if result.outcome == "refused":
        # A moderator's sync (the report page) lifts the guard once.
        lifted = await sync.sync_now(allow_large_removal=True)
        assert lifted.outcome == "changed" and lifted.removed == len(before) - 5


def test_stale_library_is_a_degraded_note() -> None:
    now = [0.0]

    class NoStore:
        pass

    sync = LibrarySync(
        store=NoStore(),  # type: ignore[arg-type]
        embedder=NoStore(),  # type: ignore[arg-type]
        sources=["aisafety.info"],
        aisafety_info_url="http://127.0.0.1:9",
        every_s=100.0,
        max_remove=0.25,
        leases=MemoryLeases(),
        clock=lambda: now[0],
    )
    assert sync.stale() is None
    now[0] = 301
    assert sync.stale() == "never synced since start"
    sync.last_success = 250
    assert sync.stale() is None
    now[0] = 551
    assert "more than 3 periods" in str(sync.stale())
    sync.every_s = 0  # syncing is off: nothing to be late for
    assert sync.stale() is None


async def test_two_replicas_on_one_qdrant_server_sync_once_a_period(
    site: Site, embedder: FastEmbedder, qdrant_server: QdrantServer, tmp_path: Path
) -> None:
    alias = f"articles_{tmp_path.name.replace('-', '_')}"
    shared = FeedbackStore(tmp_path / "shared.sqlite3")  # the replicas' shared database
    stores = [
        QdrantStore(alias=alias, url=qdrant_server.url, api_key=qdrant_server.api_key) for _ in range(2)
    ]
    try:
        now = [7200.0 * 100]
        replicas = [
            make_sync(
                s, embedder, site, shared, leases=SqlLeases(shared), every_s=3600.0, clock=lambda: now[0]
            )
            for s in stores
        ]
        assert (await replicas[0].sync_now()).outcome == "changed"
        site.publish(feed(edited="corrigibility"))
        asked = len(site.fake.seen)
        done = [await r.scheduled() for r in replicas]
        assert [d is not None for d in done] == [True, False]  # the second finds the period done
        assert isinstance(done[0], SyncResult) and done[0].changed == 1
        assert len(site.fake.seen) == asked + 1
        # The other replica searches the synced library at once (one collection on the server).
        assert states(stores[1]) == states(stores[0])
        # /readyz on the replica that did not sync: the last success is the other's.
        assert replicas[1].last_success == replicas[0].last_success is not None
        assert replicas[1].stale() is None
        now[0] += 3600
        site.publish(feed(edited="orthogonality"))
        later = [await r.scheduled() for r in reversed(replicas)]
        assert [d is not None for d in later] == [True, False]
    finally:
        for s in stores:
            for name in s.build_collections():
                s.drop_collection(name)
            s.close()
        shared.close()


CHILD = textwrap.dedent(
    """
    import sys
    from retrieval.edge_store import EdgeStore
    from retrieval.embeddings import FastEmbedder
    from retrieval.ingest import ingest
    from retrieval.store import QdrantStore

    base, kind, where, model = sys.argv[1:5]
    emb = FastEmbedder(model_name="sentence-transformers/all-MiniLM-L6-v2", model_path=model or None)
    if kind == "embedded":
        store = EdgeStore(alias="articles", path=where)
    else:
        url, key, alias = where.split("|")
        store = QdrantStore(alias=alias, url=url, api_key=key)
    def tick(n):
        print(f"batch {n}", flush=True)
    ingest(store=store, embedder=emb, sources=["aisafety.info"], aisafety_info_url=base, max_remove=1.0,
           batch_size=4, on_batch=tick)
    print("done", flush=True)
    """
)


def _longer(questions: list[dict[str, Any]], times: int) -> list[dict[str, Any]]:
    for q in questions:
        q["markdown"] = "\n\n".join([q["markdown"]] * times) + "\n\nAn added closing paragraph."
    return questions


@pytest.mark.parametrize(("kind", "kill_after"), [("embedded", 0), ("embedded", 3), ("server", 2)])
def test_a_kill_mid_sync_leaves_every_article_whole(
    request: pytest.FixtureRequest,
    site: Site,
    embedder: FastEmbedder,
    tmp_path: Path,
    kind: str,
    kill_after: int,
) -> None:
    """A sync process killed (SIGKILL) after some of its batches: every article is its old version or its
    new one, whole; the next sync finishes the work and leaves no tombstone."""
    store: VectorStore
    if kind == "embedded":
        where = str(tmp_path / "qdrant")

        def open_store() -> VectorStore:
            return EdgeStore(alias="articles", path=where)
    else:
        server: QdrantServer = request.getfixturevalue("qdrant_server")
        alias = f"kill_{tmp_path.name.replace('-', '_')}"
        where = f"{server.url}|{server.api_key}|{alias}"

        def open_store() -> VectorStore:
            return QdrantStore(alias=alias, url=server.url, api_key=server.api_key)

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    args = [sys.executable, "-c", CHILD, site.fake.base, kind, where, str(MODEL_PATH or "")]
    site.publish(_longer(feed(), 3))
    subprocess.run(args, env=env, check=True, capture_output=True, timeout=300)
    # Every article edited: half shorter (fewer passages: their old tail must go), half longer, and
    # three gone, so the sync overwrites, tombstones and removes.
    edited = feed(*SLUGS[:-3])
    site.publish(edited[::2] + _longer(edited[1::2], 5))
    child = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert child.stdout is not None
    for line in child.stdout:
        if line.strip() == f"batch {kill_after}":
            child.send_signal(signal.SIGKILL)
            break
    child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL
    store = open_store()
    try:
        whole(store)
    finally:
        store.close()
    subprocess.run(args, env=env, check=True, capture_output=True, timeout=300)
    store = open_store()
    try:
        whole(store)
        live = str(store.live_collection())
        assert len(store.article_states(live)) == len(edited)
        assert store.count() == sum(s.chunks + s.phrasings for s in store.article_states(live).values())
    finally:
        if kind == "server":
            for name in store.build_collections():
                store.drop_collection(name)
        store.close()


async def test_the_timer_syncs_one_period_after_start_with_jitter(
    site: Site, store: EdgeStore, embedder: FastEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first sync waits a whole period (plus its jitter), then one a period; 0 turns it off."""
    import asyncio

    from service import library_sync

    waits: list[float] = []
    real_sleep = asyncio.sleep

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        await real_sleep(0)

    monkeypatch.setattr(library_sync.asyncio, "sleep", sleep)
    monkeypatch.setattr(library_sync.random, "uniform", lambda a, b: b)  # the most jitter there is
    now = [3600.0 * 10]

    def tick() -> float:
        now[0] += 3600.0
        return now[0]

    sync = make_sync(store, embedder, site, every_s=3600.0, clock=tick)
    task = asyncio.create_task(sync.run())
    try:
        while len(site.fake.seen) < 2:
            await real_sleep(0.05)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert waits[:2] == [3600.0 * (1 + library_sync.JITTER)] * 2
    assert states(store)  # the first period's sync filled the library
    off = make_sync(store, embedder, site, every_s=0.0)
    await asyncio.wait_for(off.run(), 1)  # returns at once: no timer
