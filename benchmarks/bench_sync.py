"""The running bot's library sync (service/library_sync.py) against a fake aisafety.info feed made from the
shared corpus's aisafety.info file (tests/fake_aisafety.py `feed_from_ard`), in one run:

1. A sync when nothing changed, against a full ingest of `SOURCES=aisafety.info` into an empty embedded
   store: (a) the full ingest; (b) `LibrarySync.sync_now()` when the feed's `timestamp` is new but no
   answer changed (the feed is parsed and every article's hash compared); (c) the same when the
   `timestamp` is unchanged (the feed is downloaded, not parsed). Medians over the repeats; the goal:
   (b) within 5% of (a).
2. A burst of 20 questions at once through the conversation service and the real answer core (retrieval
   on the same store and embedding model as the sync, the fake Messages API with a fixed first-token
   delay: benchmarks/common.py), each timed from the question to its final answer: (i) with no sync
   running, (ii) with a sync re-embedding 20 edited articles started just before the burst. Rounds
   alternate (i) and (ii); the median of each round's p95, and (ii)/(i). The goal: within 1.5x.

    python benchmarks/bench_sync.py [--shared ../shared] [--repeats 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchmarks.bench import MODEL  # noqa: E402
from benchmarks.common import LLM_FIRST_TOKEN_S, LagProbe, fake_llm, pct  # noqa: E402
from bot.conversation import Conversation  # noqa: E402
from bot.core import AnswerCore  # noqa: E402
from bot.evaluate import load_eval  # noqa: E402
from bot.models import Answer, Question  # noqa: E402
from bot.platform import PlatformOptions  # noqa: E402
from bot.ratelimit import MemoryLeases  # noqa: E402
from retrieval import aisafety_info  # noqa: E402
from retrieval.documents import Passage  # noqa: E402
from retrieval.edge_store import EdgeStore  # noqa: E402
from retrieval.embeddings import Embedded, FastEmbedder  # noqa: E402
from retrieval.index import VectorStore  # noqa: E402
from retrieval.ingest import ingest  # noqa: E402
from retrieval.search import HybridRetriever  # noqa: E402
from service.anthropic_llm import AnthropicLLM  # noqa: E402
from service.feedback import FeedbackStore  # noqa: E402
from service.library_sync import SYNC_EMBED_BATCH, LibrarySync  # noqa: E402
from service.metrics import Metrics, freeze_startup_heap  # noqa: E402
from tests.fake_aisafety import FakeAisafety, feed_from_ard  # noqa: E402

BURST = 20  # questions at once
EDITED = 20  # articles a sync re-embeds during a burst


@dataclass(frozen=True)
class Call:
    kind: str  # "passages" (an ingest or sync), "queries" (questions' embedding), "search" (a store search)
    texts: int
    start: float
    end: float


class TimedEmbedder:
    """The bot's one embedding model, shared by the sync and the retriever as `aisafety-bot run` shares
    it, noting when each call ran (to tell whether a burst really met the sync's embedding)."""

    def __init__(self, inner: FastEmbedder):
        self.inner = inner
        self.dim = inner.dim
        self.calls: list[Call] = []
        self._lock = threading.Lock()

    def warm_up(self) -> None:
        self.inner.warm_up()
        self.dim = self.inner.dim

    def _note(self, kind: str, texts: int, start: float) -> None:
        with self._lock:
            self.calls.append(Call(kind, texts, start, time.perf_counter()))

    def embed_passages(self, texts: Sequence[str]) -> list[Embedded]:
        start = time.perf_counter()
        out = self.inner.embed_passages(texts)
        self._note("passages", len(texts), start)
        return out

    def embed_queries(self, texts: Sequence[str]) -> list[Embedded]:
        start = time.perf_counter()
        out = self.inner.embed_queries(texts)
        self._note("queries", len(texts), start)
        return out

    def between(self, kind: str, start: float, end: float) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.kind == kind and c.end > start and c.start < end]


class TimedSearches:
    """The retriever's view of the store, noting each search's time (the sync writes to the store
    itself): with the query embeddings, what the retrieval thread spent its time on."""

    def __init__(self, store: EdgeStore, embedder: TimedEmbedder):
        self.store = store
        self.embedder = embedder

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def search(self, query: Embedded, **kw: Any) -> list[Passage]:
        start = time.perf_counter()
        out = self.store.search(query, **kw)
        self.embedder._note("search", 1, start)
        return out


class Recorder:
    """A platform's reply that only notes when the final answer is posted."""

    def __init__(self) -> None:
        self.final_at: float | None = None
        self.answer: Answer | None = None

    async def start(self) -> None:
        pass

    async def preview(self, text: str) -> None:
        pass

    async def final(self, answer: Answer, answer_id: int | None) -> None:
        self.final_at = time.monotonic()
        self.answer = answer

    async def apologise(self, answer: Answer | None) -> None:
        self.final_at = time.monotonic()
        self.answer = None

    async def say(self, text: str) -> None:
        self.final_at = time.monotonic()


class Site:
    """The fake site serving the shared corpus as its feed; `publish` moves its `timestamp` on."""

    def __init__(self, fake: FakeAisafety):
        self.fake = fake
        self.original = [dict(q) for q in fake.questions]
        self.version = 0

    def publish(self, edited: Sequence[int] = (), note: str = "") -> None:
        self.version += 1
        questions = [dict(q) for q in self.original]
        for i in edited:
            markdown = f"{questions[i]['markdown']}\n\n{note}"
            questions[i].update(markdown=markdown, text=f"<p>{markdown}</p>\n")
        self.fake.questions = questions
        self.fake.timestamp = f"2026-01-01T00:{self.version // 60:02d}:{self.version % 60:02d}.000Z"


def full_ingest(embedder: TimedEmbedder, base: str, root: Path) -> tuple[EdgeStore, float, int]:
    store = EdgeStore(alias="articles", path=tempfile.mkdtemp(prefix="store-", dir=root))
    started = time.perf_counter()
    report = ingest(store=store, embedder=embedder, sources=[aisafety_info.SOURCE], aisafety_info_url=base)
    return store, time.perf_counter() - started, report.chunks


async def timed_sync(sync: LibrarySync, expect: str) -> float:
    started = time.perf_counter()
    result = await sync.sync_now()
    elapsed = time.perf_counter() - started
    assert result.outcome == expect, (result.outcome, result.reason)
    return elapsed


async def burst(conversation: Conversation, questions: Sequence[str]) -> list[tuple[float, Answer | None]]:
    """Every question at once; each one's seconds from the question to its final answer."""

    async def one(i: int, text: str) -> tuple[float, Answer | None]:
        reply = Recorder()
        started = time.monotonic()
        await conversation.answer(Question(text, asker=f"U{i:04d}"), reply, started=started)
        assert reply.final_at is not None
        return reply.final_at - started, reply.answer

    return await asyncio.gather(*(one(i, q) for i, q in enumerate(questions)))


def med(values: Sequence[float], digits: int = 3) -> float:
    return round(statistics.median(values), digits)


async def main() -> dict[str, Any]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    shared: Path = args.shared
    rows = [json.loads(line) for line in (shared / "corpus" / "aisafety.info.jsonl").open(encoding="utf-8")]
    items = [i for i in load_eval(shared / "eval" / "dev.jsonl") if i.relevant and i.kind != "offtopic"]
    questions = [i.question for i in items[:BURST]]
    results: dict[str, Any] = {"feed_answers": len(rows), "repeats": args.repeats}

    embedder = TimedEmbedder(
        FastEmbedder(model_name=MODEL, model_path=str(shared / "models" / "all-MiniLM-L6-v2"))
    )
    embedder.warm_up()
    embedder.embed_passages(["warm-up passage"] * SYNC_EMBED_BATCH)
    scratch = tempfile.TemporaryDirectory(prefix="bench-sync-")
    home = Path(scratch.name)
    fake = FakeAisafety(feed_from_ard(rows)).start()
    site = Site(fake)
    site.publish()
    llm_server = await fake_llm()
    feedback = FeedbackStore(home / "answers.sqlite3")
    try:
        # 1. Unchanged syncs against a full ingest. The first full ingest's store is the bot's library.
        store, first_s, chunks = full_ingest(embedder, fake.base, home)
        full_s = [first_s]
        sync = LibrarySync(
            store=store,
            embedder=embedder,
            sources=[aisafety_info.SOURCE],
            aisafety_info_url=fake.base,
            every_s=3600.0,
            max_remove=0.25,
            leases=MemoryLeases(),
            feedback=feedback,
            metrics=Metrics(),
        )
        await timed_sync(sync, "unchanged")  # the first sync since start reads the feed whole
        parsed_s: list[float] = []
        skipped_s: list[float] = []
        for r in range(args.repeats):
            if r:
                other, seconds, _ = full_ingest(embedder, fake.base, home)
                other.close()
                full_s.append(seconds)
            site.publish()  # a new timestamp, the same answers
            parsed_s.append(await timed_sync(sync, "unchanged"))
            skipped_s.append(await timed_sync(sync, "unchanged"))
        a, b, c = statistics.median(full_s), statistics.median(parsed_s), statistics.median(skipped_s)
        results["unchanged_sync"] = {
            "passages": chunks,
            "full_ingest_s": med(full_s, 2),
            "sync_new_timestamp_s": med(parsed_s),
            "sync_same_timestamp_s": med(skipped_s, 4),
            "new_timestamp_over_full": round(b / a, 4),
            "same_timestamp_over_full": round(c / a, 5),
            "full_ingest_runs_s": [round(x, 2) for x in full_s],
        }

        # 2. A burst of questions, alone and during a sync re-embedding EDITED articles.
        llm = AnthropicLLM(
            api_key="k", model="claude-test", base_url=llm_server.url, timeout_s=30, max_retries=0
        )
        searches = cast(VectorStore, TimedSearches(store, embedder))
        core = AnswerCore(retriever=HybridRetriever(store=searches, embedder=embedder), llm=llm)
        conversation = Conversation.in_process(
            "bench",
            core=core,
            store=FeedbackStore(":memory:"),
            options=PlatformOptions(rate_limit_per_minute=0),
            usage="usage",
        )
        edited = [round(n * len(rows) / EDITED) for n in range(EDITED)]
        await burst(conversation, questions)  # warm: the client's connections, the off-topic examples
        freeze_startup_heap()  # as `aisafety-bot run` does once started
        p95: dict[str, list[float]] = {"alone": [], "during_sync": []}
        p50: dict[str, list[float]] = {"alone": [], "during_sync": []}
        retrieval: dict[str, list[float]] = {"alone": [], "during_sync": []}
        loop_lag: dict[str, list[float]] = {"alone": [], "during_sync": []}
        modes: dict[str, int] = {}
        overlap: list[float] = []
        sync_s: list[float] = []
        sync_passages: list[int] = []
        queries_ms: dict[str, list[float]] = {"alone": [], "during_sync": []}
        search_ms: dict[str, list[float]] = {"alone": [], "during_sync": []}
        thread_ms: dict[str, list[float]] = {"alone": [], "during_sync": []}
        for r in range(args.repeats):
            for kind in ("alone", "during_sync") if r % 2 == 0 else ("during_sync", "alone"):
                task: asyncio.Task[Any] | None = None
                if kind == "during_sync":
                    site.publish(edited, f"Revised in round {r}: a new paragraph on scalable oversight.")
                    sync_started = time.perf_counter()
                    task = asyncio.create_task(sync.sync_now())
                started = time.perf_counter()
                with LagProbe() as probe:
                    answers = await burst(conversation, questions)
                ended = time.perf_counter()
                await probe.done()
                times = [t for t, _ in answers]
                p95[kind].append(pct(times, 0.95) * 1000)
                p50[kind].append(statistics.median(times) * 1000)
                retrieval[kind].extend(a.timings["retrieval"] * 1000 for _, a in answers if a is not None)
                loop_lag[kind].append(max(probe.lags_ms))
                embeds = embedder.between("queries", started, ended)
                searched = embedder.between("search", started, ended)
                queries_ms[kind].extend((q.end - q.start) * 1000 for q in embeds)
                search_ms[kind].extend((q.end - q.start) * 1000 for q in searched)
                thread_ms[kind].append(sum(q.end - q.start for q in embeds + searched) * 1000)
                for _, ans in answers:
                    mode = ans.mode if ans is not None else "apology"
                    modes[mode] = modes.get(mode, 0) + 1
                if task is not None:
                    embedding = embedder.between("passages", started, ended)
                    busy = sum(min(ended, e.end) - max(started, e.start) for e in embedding)
                    overlap.append(busy / (ended - started))
                    result = await task
                    assert result.outcome == "changed" and result.changed == EDITED, result.to_json()
                    sync_s.append(time.perf_counter() - sync_started)
                    sync_passages.append(
                        sum(e.texts for e in embedder.between("passages", sync_started, time.perf_counter()))
                    )
        alone, during = statistics.median(p95["alone"]), statistics.median(p95["during_sync"])
        results["burst"] = {
            "questions": BURST,
            "llm_first_token_ms": LLM_FIRST_TOKEN_S * 1000,
            "answers_by_mode": modes,
            "p95_alone_ms": round(alone, 1),
            "p95_during_sync_ms": round(during, 1),
            "during_over_alone": round(during / alone, 3),
            "p95_alone_rounds_ms": [round(x) for x in p95["alone"]],
            "p95_during_sync_rounds_ms": [round(x) for x in p95["during_sync"]],
            "p50_alone_ms": med(p50["alone"], 1),
            "p50_during_sync_ms": med(p50["during_sync"], 1),
            "retrieval_median_alone_ms": med(retrieval["alone"], 1),
            "retrieval_median_during_sync_ms": med(retrieval["during_sync"], 1),
            "retrieval_p95_alone_ms": round(pct(retrieval["alone"], 0.95), 1),
            "retrieval_p95_during_sync_ms": round(pct(retrieval["during_sync"], 0.95), 1),
            "query_embedding_call_median_alone_ms": med(queries_ms["alone"], 1),
            "query_embedding_call_median_during_sync_ms": med(queries_ms["during_sync"], 1),
            "search_call_median_alone_ms": med(search_ms["alone"], 1),
            "search_call_median_during_sync_ms": med(search_ms["during_sync"], 1),
            "retrieval_thread_busy_alone_ms": med(thread_ms["alone"], 1),
            "retrieval_thread_busy_during_sync_ms": med(thread_ms["during_sync"], 1),
            "event_loop_lag_max_alone_ms": med(loop_lag["alone"], 1),
            "event_loop_lag_max_during_sync_ms": med(loop_lag["during_sync"], 1),
            "burst_window_with_sync_embedding_share": med(overlap, 2),
            "sync_s": med(sync_s, 2),
            "sync_passages_embedded": int(statistics.median(sync_passages)),
        }
        sync.close()
        await core.aclose()
        store.close()
    finally:
        fake.stop()
        await llm_server.stop()
        feedback.close()
        scratch.cleanup()
    return results


def table(results: dict[str, Any]) -> str:
    u, b = results["unchanged_sync"], results["burst"]
    rows = [
        ("(a) full ingest, empty store", f"{u['full_ingest_s']:.2f} s", ""),
        (
            "(b) sync, new timestamp, nothing changed",
            f"{u['sync_new_timestamp_s'] * 1000:.0f} ms",
            f"{u['new_timestamp_over_full']:.2%} of (a) (goal <= 5%)",
        ),
        (
            "(c) sync, same timestamp",
            f"{u['sync_same_timestamp_s'] * 1000:.1f} ms",
            f"{u['same_timestamp_over_full']:.3%} of (a)",
        ),
        (f"(i) burst of {b['questions']}, p95, no sync", f"{b['p95_alone_ms']:.0f} ms", ""),
        (
            f"(ii) the same during a sync of {EDITED} articles",
            f"{b['p95_during_sync_ms']:.0f} ms",
            f"{b['during_over_alone']:.2f}x (i) (goal <= 1.5x)",
        ),
    ]
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"{name:<{width}}  {fig:>9}  {note}" for name, fig, note in rows)


if __name__ == "__main__":
    out = asyncio.run(main())
    print(table(out))
    print(json.dumps(out))
