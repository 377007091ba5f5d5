"""A large library: the shared corpus's passages copied to about 100,000, on every kind of store.

    python benchmarks/bench_large.py [--shared ../shared] [--copies 64] [--rounds 3] [--json]
    (QDRANT_BIN: the Qdrant binary, `$(scripts/fetch-qdrant.sh)`, for the server and the three-node cluster)

The shared corpus is embedded once; copy 0 is the real library, copies 1..N-1 are new articles
("<id>~<copy>") written with the project's own payloads whose dense vectors are the real ones plus noise
(a cosine of about 0.8 to the original: distinct articles, not duplicates) and whose BM25 terms are the
real ones with a fifth dropped. Every copy goes through the stores' own `upsert`, as an ingest writes.

For the embedded store, a Qdrant server and a three-node cluster (3 shards with 2 copies each, and 1 shard
with a copy on every node), at the shared
corpus's size and at the full size, in this run:
- the core without the LLM (`AnswerCore.prepare`: query embedding, the four rankings, rescoring,
  abstention, payload lookup) against the query embedding alone: medians over the dev questions, as a
  ratio (the goal: within 2x at 100,000 passages on a server and a cluster);
- a burst of 50 questions at once: questions per second;
- the approximate search's recall against exact search: the share of the exact top-50 passages (the
  bot's candidate count) that the index returns, for the passage and the title vectors;
- an incremental ingest's first step, reading every article's state: from the first passages (now)
  against reading every passage (before), medians of 3;
- upsert throughput (points per second) while the copies are written.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import qdrant_edge as qe  # noqa: E402
from qdrant_client import models  # noqa: E402

from benchmarks.bench import MODEL, latency, make_core  # noqa: E402
from bot.evaluate import load_eval  # noqa: E402
from bot.models import Question  # noqa: E402
from retrieval.documents import Chunk, Document  # noqa: E402
from retrieval.edge_store import EdgeStore  # noqa: E402
from retrieval.embeddings import Embedded, FastEmbedder, SparseVec  # noqa: E402
from retrieval.index import DENSE, SPARSE, TITLE, Ranking, SearchPlan, VectorStore, article_states  # noqa: E402
from retrieval.ingest import ingest  # noqa: E402
from retrieval.search import CANDIDATES  # noqa: E402
from retrieval.store import QdrantStore  # noqa: E402

if TYPE_CHECKING:
    from tests.qdrant_server import QdrantServer

NOISE = 0.035  # per dimension, on 384-dimensional unit vectors: a cosine of about 0.8 to the original
RECALL_K = CANDIDATES


@dataclass
class Article:
    doc: Document
    chunks: list[Chunk]
    dense: list[np.ndarray]
    sparse: list[SparseVec]
    title: np.ndarray


def read_library(store: EdgeStore) -> list[Article]:
    """Every article of the embedded store with its stored vectors and payloads."""
    shard = store._live()
    rows: dict[str, list[Any]] = {}
    offset = None
    while True:
        records, offset = shard.scroll(
            qe.ScrollRequest(offset=offset, limit=1024, with_payload=True, with_vector=True)
        )
        for r in records:
            rows.setdefault(str(r.payload["article_id"]), []).append(r)
        if offset is None:
            break
    out = []
    for aid, records in rows.items():
        records.sort(key=lambda r: int(r.payload["chunk"]))
        first = records[0].payload
        doc = Document(
            id=aid,
            title=str(first["title"]),
            url=str(first["url"]),
            text="",
            source=str(first.get("source", "")),
            related=tuple(first.get("related") or ()),
        )
        out.append(
            Article(
                doc,
                [
                    Chunk(
                        aid,
                        int(r.payload["chunk"]),
                        str(r.payload["text"]),
                        str(r.payload.get("heading", "")),
                    )
                    for r in records
                ],
                [np.array(r.vector[DENSE], dtype=np.float32) for r in records],
                [SparseVec(list(r.vector[SPARSE].indices), list(r.vector[SPARSE].values)) for r in records],
                np.array(records[0].vector[TITLE], dtype=np.float32),
            )
        )
    return out


def copies(library: list[Article], n: int) -> Iterator[tuple[int, list[Article]]]:
    """Copy 0 (the library itself), then n - 1 perturbed copies, one list of articles at a time."""
    yield 0, library
    for j in range(1, n):
        rng = np.random.default_rng(j)
        pick = random.Random(j)

        out = []
        for a in library:
            aid = f"{a.doc.id}~{j}"
            kept = [thinned(s, pick) for s in a.sparse]
            out.append(
                Article(
                    Document(
                        id=aid, title=a.doc.title, url=f"{a.doc.url}#copy-{j}", text="", source=a.doc.source
                    ),
                    [Chunk(aid, c.index, c.text, c.heading) for c in a.chunks],
                    [noisy(v, rng) for v in a.dense],
                    kept,
                    noisy(a.title, rng),
                )
            )
        yield j, out


def noisy(v: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    w = v + rng.normal(0.0, NOISE, v.shape).astype(np.float32)
    return np.asarray(w / np.linalg.norm(w), dtype=np.float32)


def thinned(s: SparseVec, pick: random.Random) -> SparseVec:
    """The BM25 terms with about a fifth dropped (never all of them)."""
    keep = [k for k in range(len(s.indices)) if pick.random() > 0.2] or [0]
    return SparseVec([s.indices[k] for k in keep], [s.values[k] for k in keep])


def write(store: VectorStore, collection: str, articles: list[Article]) -> int:
    points = 0
    for a in articles:
        vectors = [Embedded(v.tolist(), s) for v, s in zip(a.dense, a.sparse, strict=True)]
        store.upsert(collection, a.doc, a.chunks, vectors, Embedded(a.title.tolist(), SparseVec([], [])))
        points += len(a.chunks)
    return points


def wait_green(url: str, collection: str, timeout_s: float = 900.0) -> float:
    """Until the server has built its indexes for the collection (status green); the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        with urllib.request.urlopen(f"{url}/collections/{collection}", timeout=5) as r:
            if json.load(r)["result"]["status"] == "green":
                return time.monotonic() - started
        time.sleep(0.5)
    raise RuntimeError(f"{collection} at {url} was not indexed after {timeout_s} s")


def wait_idle(servers: list[QdrantServer], timeout_s: float = 900.0) -> float:
    """Until the Qdrant processes have finished their background work (optimising, copying shards to
    other nodes: a node reports green for its own shards while the others still work): two seconds in
    which they used less than a tenth of a core together. The seconds it took (0 without /proc)."""
    started = time.monotonic()

    def cpu_s() -> float:
        return sum(server.cpu_s for server in servers)

    if not Path("/proc/self/stat").exists():
        return 0.0
    while time.monotonic() - started < timeout_s:
        before = cpu_s()
        time.sleep(2)
        if cpu_s() - before < 0.2:
            return time.monotonic() - started
    raise RuntimeError(f"the Qdrant processes were still busy after {timeout_s} s")


def recall(store: VectorStore, queries: list[Embedded]) -> dict[str, float]:
    """For each dense ranking, with the search breadth the bot asks for: the share of the exact top-k
    passages that the approximate search returns ("passages"), and the share of the distinct articles
    among them (a copy counted as its original: "articles"), which is what the answer depends on when 64
    near-copies of each passage tie within noise."""
    out: dict[str, float] = {}
    for using in (DENSE, TITLE):
        points, articles = [], []
        for q in queries:
            approx, exact = (top_ids(store, q.dense, using, exact=e) for e in (False, True))
            points.append(len(set(approx) & set(exact)) / max(len(exact), 1))
            wanted = {original(a) for _, a in exact}
            articles.append(len({original(a) for _, a in approx} & wanted) / max(len(wanted), 1))
        out[f"{using}_passages"] = round(statistics.mean(points), 4)
        out[f"{using}_articles"] = round(statistics.mean(articles), 4)
    return out


def original(article_id: str) -> str:
    return article_id.split("~")[0]


def top_ids(store: VectorStore, vector: list[float], using: str, *, exact: bool) -> list[tuple[str, str]]:
    """(point id, article id) of the top `RECALL_K`, exact or as the bot searches (`SearchPlan.breadth`)."""
    ef = SearchPlan((), RECALL_K).breadth(Ranking(using, dense=vector))
    if isinstance(store, EdgeStore):
        with store._lock:
            points = store._live().query(
                qe.QueryRequest(
                    limit=RECALL_K,
                    query=qe.Query.Nearest(vector, using=using),
                    params=qe.SearchParams(exact=True) if exact else qe.SearchParams(hnsw_ef=ef),
                    with_payload=["article_id"],
                )
            )
        return [(str(p.id), str(p.payload["article_id"])) for p in points]
    assert isinstance(store, QdrantStore)
    answer = store._client.query_points(
        collection_name=store.alias,
        query=vector,
        using=using,
        limit=RECALL_K,
        search_params=models.SearchParams(exact=True) if exact else models.SearchParams(hnsw_ef=ef),
        with_payload=["article_id"],
    )
    return [(str(p.id), str((p.payload or {})["article_id"])) for p in answer.points]


def state_reading(store: VectorStore, collection: str) -> dict[str, float]:
    """Reading every article's state: from first passages (what an ingest does now) vs every passage."""
    scroll: Callable[[bool], Any] = (
        (lambda first: store._scroll(collection, ["article_id", "hash", "chunk", "chunks"], first_only=first))
        if isinstance(store, EdgeStore)
        else (lambda first: store._scroll(collection, first_only=first))  # type: ignore[attr-defined]
    )
    timings: dict[str, list[float]] = {"first_passages_s": [], "every_passage_s": []}
    articles = 0
    for _ in range(3):
        t = time.perf_counter()
        articles = len(article_states(scroll))
        timings["first_passages_s"].append(time.perf_counter() - t)
        t = time.perf_counter()
        sum(1 for _ in scroll(False))
        timings["every_passage_s"].append(time.perf_counter() - t)
    out = {k: round(statistics.median(v), 3) for k, v in timings.items()}
    out["ratio"] = round(out["first_passages_s"] / out["every_passage_s"], 3)
    out["articles"] = articles
    return out


async def burst(store: VectorStore, embedder: FastEmbedder, questions: list[str]) -> float:
    core = make_core(store, embedder)
    await core.prepare(Question(questions[0]))
    asked = (questions * 50)[:50]
    t = time.perf_counter()
    await asyncio.gather(*(core.prepare(Question(q)) for q in asked))
    return round(len(asked) / (time.perf_counter() - t), 1)


async def measure(
    store: VectorStore, embedder: FastEmbedder, questions: list[str], rounds: int
) -> dict[str, Any]:
    queries = embedder.embed_queries(questions)
    result: dict[str, Any] = {"passages": store.count()}
    result["latency"] = await latency(make_core(store, embedder), embedder, questions, rounds)
    result["burst_questions_per_s"] = await burst(store, embedder, questions)
    result["recall_at_50"] = recall(store, queries)
    result["article_states"] = state_reading(store, str(store.live_collection()))
    return result


async def main() -> dict[str, Any]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shared", default=str(ROOT.parent / "shared"))
    parser.add_argument("--copies", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--no-cluster", action="store_true")
    args = parser.parse_args()
    shared = Path(args.shared)
    embedder = FastEmbedder(model_name=MODEL, model_path=str(shared / "models" / "all-MiniLM-L6-v2"))
    embedder.warm_up()
    base = EdgeStore(alias="base", path=tempfile.mkdtemp(prefix="bench-large-"))
    ingest(
        store=base,
        embedder=embedder,
        sources=[
            str(shared / "corpus" / f)
            for f in ("aisafety.info.jsonl", "ai-safety-atlas.jsonl", "distill.jsonl")
        ],
    )
    library = read_library(base)
    base.close()
    questions = [i.question for i in load_eval(shared / "eval" / "dev.jsonl")][:30]

    from tests.qdrant_server import QdrantServer, start_cluster

    binary = os.environ.get("QDRANT_BIN")
    servers: list[QdrantServer] = []
    stores: dict[str, VectorStore] = {
        "embedded": EdgeStore(alias="large", path=tempfile.mkdtemp(prefix="bench-large-"))
    }
    urls: dict[str, str] = {}
    if binary:
        single = QdrantServer(str(Path(binary).resolve()))
        single.start()
        servers.append(single)
        stores["server"] = QdrantStore(alias="large", url=single.url, timeout_s=120)
        urls["server"] = single.url
        if not args.no_cluster:
            cluster = start_cluster(str(Path(binary).resolve()))
            servers += cluster
            # Two layouts on the same three nodes: the library split in three shards with two copies
            # each (every search asks all three nodes), and one shard copied to every node (every
            # search is answered by the node asked).
            for name, shards, copies_ in (("cluster", 3, 2), ("cluster_1_shard", 1, 3)):
                stores[name] = QdrantStore(
                    alias=f"large_{name}",
                    url=cluster[0].url,
                    timeout_s=120,
                    shards=shards,
                    replication=copies_,
                    write_consistency=1,
                )
                urls[name] = cluster[0].url
    results: dict[str, Any] = {"copies": args.copies, "noise_per_dimension": NOISE}
    try:
        collections = {name: s.new_collection(embedder.dim) for name, s in stores.items()}
        write_s = {name: 0.0 for name in stores}
        points = 0
        for j, articles in copies(library, args.copies):
            for name, store in stores.items():
                t = time.perf_counter()
                n = write(store, collections[name], articles)
                if j == 0:
                    store.switch_alias(collections[name])  # flushes; the embedded store builds its index
                write_s[name] += time.perf_counter() - t
            points += n
            if j == 0:
                for name in urls:
                    wait_green(urls[name], collections[name])
                wait_idle(servers)
                for name, store in stores.items():
                    results[f"{name}_corpus"] = await measure(store, embedder, questions, args.rounds)
                    print(f"{name} at {points} passages: {results[f'{name}_corpus']}", file=sys.stderr)
        # Every store indexed before any is measured: a server still optimising would slow the others.
        index_s: dict[str, float] = {}
        for name, store in stores.items():
            t = time.perf_counter()
            store.flush()  # the embedded store builds its index here
            index_s[name] = time.perf_counter() - t
            if name in urls:
                index_s[name] += wait_green(urls[name], collections[name])
        index_s["all_servers_idle"] = wait_idle(servers)
        for name, store in stores.items():
            results[f"{name}_large"] = await measure(store, embedder, questions, args.rounds)
            results[f"{name}_large"]["upsert_points_per_s"] = round(points / write_s[name], 1)
            results[f"{name}_large"]["index_build_s"] = round(index_s[name], 1)
            results[f"{name}_large"]["then_idle_s"] = round(index_s["all_servers_idle"], 1)
            print(f"{name} at {points} passages: {results[f'{name}_large']}", file=sys.stderr)
    finally:
        for store in stores.values():
            store.close()
        for server in servers:
            server.stop()
    return results


if __name__ == "__main__":
    out = asyncio.run(main())
    print(json.dumps(out, indent=1))
