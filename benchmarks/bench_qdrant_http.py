"""A Qdrant server reached by address and by name: the store's requests against qdrant-client's defaults.

    python benchmarks/bench_qdrant_http.py [--shared ../shared] [--rounds 3]
    (QDRANT_BIN: the Qdrant binary, `$(scripts/fetch-qdrant.sh)`)

qdrant-client keeps its HTTP connections open to every host but "localhost" and "127.0.0.1", and asks for
compressed answers. Qdrant then sends a search's answer gzip-compressed in chunks, and on a kept-open
connection the last chunk waits for the client's delayed acknowledgement (about 40 ms on Linux). The
store asks for uncompressed answers instead (`retrieval/store.py`). This measures, in one run, one
question's search and payload lookup (the two requests the bot makes per question) through:
- "defaults": qdrant-client as it comes (`query_batch_points` and `retrieve`);
- "store": `QdrantStore`, as the bot searches;
each against 127.0.0.1 and against `127.1`, the same address under another name (as `http://qdrant:6333`
is in a compose file). Medians in ms over the dev questions x rounds, taken alternately.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from qdrant_client import QdrantClient  # noqa: E402

from benchmarks.bench import MODEL  # noqa: E402
from bot.evaluate import load_eval  # noqa: E402
from retrieval import rescoring  # noqa: E402
from retrieval.embeddings import Embedded, FastEmbedder  # noqa: E402
from retrieval.index import HIT_FIELDS, passage_points, ranked, search_plan  # noqa: E402
from retrieval.ingest import ingest  # noqa: E402
from retrieval.search import CANDIDATES  # noqa: E402
from retrieval.store import QdrantStore, query_requests  # noqa: E402


def with_defaults(client: QdrantClient, alias: str, query: Embedded) -> int:
    """The same two requests as the store's, through qdrant-client's defaults."""
    plan = search_plan(query, limit=CANDIDATES)
    assert plan is not None
    answers = client.query_batch_points(collection_name=alias, requests=query_requests(plan))
    rankings = ranked(plan, (((p.score, p.payload) for p in a.points) for a in answers))
    best = rescoring.passages(rankings)[:5]
    points = client.retrieve(
        collection_name=alias,
        ids=passage_points([(p.article_id, p.chunk) for p in best]),
        with_payload=HIT_FIELDS,
    )
    return len(points)


def main() -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", default=str(ROOT.parent / "shared"))
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    binary = os.environ.get("QDRANT_BIN") or str(ROOT / ".cache" / "qdrant" / "qdrant")
    if not Path(binary).exists():
        raise SystemExit(f"no Qdrant binary at {binary}: run scripts/fetch-qdrant.sh, or set QDRANT_BIN")
    shared = Path(args.shared)
    embedder = FastEmbedder(model_name=MODEL, model_path=str(shared / "models" / "all-MiniLM-L6-v2"))
    questions = [i.question for i in load_eval(shared / "eval" / "dev.jsonl")][:30]

    from tests.qdrant_server import QdrantServer

    server = QdrantServer(str(Path(binary).resolve()))
    server.start()
    try:
        port = server.url.rsplit(":", 1)[1]
        loader = QdrantStore(alias="http_bench", url=server.url)
        ingest(store=loader, embedder=embedder, sources=[str(shared / "corpus" / "aisafety.info.jsonl")])
        loader.close()
        queries = embedder.embed_queries(questions)
        ways: dict[str, Any] = {}
        for host in ("127.0.0.1", "127.1"):
            url = f"http://{host}:{port}"
            client = QdrantClient(url=url, check_compatibility=False)
            store = QdrantStore(alias="http_bench", url=url)
            ways[f"defaults, {host}"] = lambda q, c=client: with_defaults(c, "http_bench", q)
            ways[f"store, {host}"] = lambda q, s=store: len(s.search(q, limit=CANDIDATES, top=5))
        times: dict[str, list[float]] = {name: [] for name in ways}
        for way in ways.values():
            way(queries[0])  # connections and caches warm before timing
        for _ in range(args.rounds):
            for q in queries:
                for name, way in ways.items():
                    t = time.perf_counter()
                    assert way(q) == 5
                    times[name].append((time.perf_counter() - t) * 1000)
    finally:
        server.stop()
    return {name: round(statistics.median(ms), 2) for name, ms in times.items()}


if __name__ == "__main__":
    print(json.dumps(main(), indent=1))
