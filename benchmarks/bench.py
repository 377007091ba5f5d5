"""Retrieval quality and speed, measured in one run on the shared corpus.

    make bench                  # or: python benchmarks/bench.py [--shared ../shared] [--json]

Prints: hit rate@5, hit@1, MRR and abstention on eval/dev.jsonl, the follow-ups and the project's own
sets (benchmarks/data: on-topic, jargon, off-topic by kind), each through the bot's pipeline (rescored,
calibrated abstention), the previous one (plain RRF), the plain dense pipeline and BM25 alone; median and p95 latency of the core without the LLM (query embedding + search + prompt)
against the query embedding alone, on the embedded store and on a Qdrant server (QDRANT_BIN); ingest
throughput against raw fastembed throughput on the same passages; an unchanged re-ingest against a
full one; peak RSS. Times are medians or ratios within this run, never single absolute timings.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchmarks.common import pct  # noqa: E402
from bot.core import AnswerCore  # noqa: E402
from bot.evaluate import evaluate, load_eval  # noqa: E402
from bot.models import Question  # noqa: E402
from retrieval.chunking import chunk_document  # noqa: E402
from retrieval.edge_store import EdgeStore  # noqa: E402
from retrieval.embeddings import Embedded, FastEmbedder  # noqa: E402
from retrieval.index import VectorStore  # noqa: E402
from retrieval.ingest import IngestReport, ingest, load_documents  # noqa: E402
from retrieval.search import HybridRetriever  # noqa: E402

MODEL = "sentence-transformers/all-MiniLM-L6-v2"


class Memo:
    """Embeds each text once, so the server store can be filled without paying for the model again."""

    def __init__(self, inner: FastEmbedder):
        self.inner = inner
        self.dim = inner.dim
        self.cache: dict[str, Embedded] = {}

    def embed_passages(self, texts: Sequence[str]) -> list[Embedded]:
        missing = [t for t in texts if t not in self.cache]
        if missing:
            self.cache.update(zip(missing, self.inner.embed_passages(missing), strict=True))
        return [self.cache[t] for t in texts]

    def embed_queries(self, texts: Sequence[str]) -> list[Embedded]:
        return self.inner.embed_queries(texts)


async def latency(
    core: AnswerCore, embedder: FastEmbedder, questions: list[str], rounds: int
) -> dict[str, float]:
    embed_ms: list[float] = []
    core_ms: list[float] = []
    for _ in range(rounds):
        for q in questions:
            t = time.perf_counter()
            await asyncio.to_thread(embedder.embed_query, q)
            embed_ms.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            await core.prepare(Question(q))
            core_ms.append((time.perf_counter() - t) * 1000)
    embed_median = statistics.median(embed_ms)
    return {
        "embed_median_ms": round(embed_median, 2),
        "core_median_ms": round(statistics.median(core_ms), 2),
        "core_p95_ms": round(pct(core_ms, 0.95), 2),
        "core_over_embed": round(statistics.median(core_ms) / embed_median, 2),
    }


def make_core(store: VectorStore, embedder: FastEmbedder, mode: str = "hybrid") -> AnswerCore:
    """The core without a model; every pipeline but the bot's abstains below a dense cosine of 0.25."""
    abstain_below = None if mode == "hybrid" else 0.25
    retriever = HybridRetriever(store=store, embedder=embedder, mode=mode)  # type: ignore[arg-type]
    return AnswerCore(retriever=retriever, llm=None, abstain_below=abstain_below)


async def main() -> dict[str, object]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shared", default=str(ROOT.parent / "shared"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    shared = Path(args.shared)
    sources = [
        str(shared / "corpus" / f) for f in ("aisafety.info.jsonl", "ai-safety-atlas.jsonl", "distill.jsonl")
    ]
    dev = load_eval(shared / "eval" / "dev.jsonl")
    followups = load_eval(shared / "eval" / "followups.jsonl")
    results: dict[str, object] = {}

    embedder = FastEmbedder(model_name=MODEL, model_path=str(shared / "models" / "all-MiniLM-L6-v2"))
    embedder.warm_up()
    docs = load_documents(sources, IngestReport())
    texts = [c.embed_text(d.title) for d in docs for c in chunk_document(d)] + [d.title for d in docs]

    # Raw fastembed on exactly the passages the ingest embeds (dense only, its default batch size).
    t = time.perf_counter()
    embedder.embed_dense_only(texts)
    raw_s = time.perf_counter() - t

    tmp = tempfile.mkdtemp(prefix="bench-")
    store = EdgeStore(alias="bench", path=tmp)
    memo = Memo(embedder)
    t = time.perf_counter()
    report = ingest(store=store, embedder=memo, sources=sources)
    full_s = time.perf_counter() - t
    t = time.perf_counter()
    again = ingest(store=store, embedder=memo, sources=sources)
    unchanged_s = time.perf_counter() - t
    assert again.unchanged == len(docs) and again.chunks == 0
    results["ingest"] = {
        "articles": len(docs),
        "chunks": report.chunks,
        "embedded_texts": len(texts),
        "raw_fastembed_texts_per_s": round(len(texts) / raw_s, 1),
        "ingest_texts_per_s": round(len(texts) / full_s, 1),
        "ingest_over_raw": round(raw_s / full_s, 3),
        "full_s": round(full_s, 2),
        "unchanged_s": round(unchanged_s, 3),
        "unchanged_over_full": round(unchanged_s / full_s, 4),
    }

    # Every set through every pipeline, in this run: the bot ("hybrid": all four rankings rescored,
    # the calibrated abstention), the previous one ("rrf": plain reciprocal-rank fusion, abstaining below
    # a dense cosine of 0.25), the plain pipeline ("dense": dense search alone, the same threshold) and
    # BM25 alone. The own sets (benchmarks/data) are what the weights were fitted on with
    # cross-validation (benchmarks/calibrate.py prints the cross-validated figures); dev and the
    # follow-ups are the check.
    data = ROOT / "benchmarks" / "data"
    sets = {
        "dev": dev,
        "followups": followups,
        "ontopic": load_eval(data / "ontopic.jsonl"),
        "jargon": load_eval(data / "jargon.jsonl"),
        "offtopic": load_eval(data / "offtopic.jsonl"),
    }
    fields = ("hit_rate", "hit_at_1", "mrr", "abstained_offtopic", "false_abstain")
    quality: dict[str, object] = {}
    for name, items in sets.items():
        row: dict[str, object] = {}
        for mode in ("hybrid", "rrf", "dense", "sparse"):
            r = await evaluate(make_core(store, embedder, mode), items, k=5)
            row[mode] = {k: r[k] for k in fields if r[k] is not None}
            if name == "offtopic" and mode == "hybrid":
                row["hybrid_by_kind"] = {kind: v["abstained_offtopic"] for kind, v in r["by_kind"].items()}
        quality[name] = row
    results["quality_k5"] = quality

    questions = [i.question for i in dev]
    results["latency_embedded"] = await latency(make_core(store, embedder), embedder, questions, args.rounds)
    store.close()

    binary = os.environ.get("QDRANT_BIN")
    if binary and Path(binary).exists():
        sys.path.insert(0, str(ROOT / "tests"))
        from retrieval.store import QdrantStore
        from tests.qdrant_server import QdrantServer

        server = QdrantServer(str(Path(binary).resolve()))
        server.start()
        try:
            remote = QdrantStore(alias="bench", url=server.url)
            ingest(store=remote, embedder=memo, sources=sources)
            results["latency_server"] = await latency(
                make_core(remote, embedder), embedder, questions, args.rounds
            )
            remote.close()
        finally:
            server.stop()
    else:
        results["latency_server"] = "skipped: set QDRANT_BIN (make bench does)"

    results["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return results


if __name__ == "__main__":
    out = asyncio.run(main())
    print(json.dumps(out, indent=2))
