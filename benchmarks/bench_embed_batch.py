"""Peak memory and time of embedding passages with ONNX batches of 32 and of 8, each in a fresh process
(the runtime keeps its memory pool at the largest batch it has run), alternating.

    python benchmarks/bench_embed_batch.py [--shared ../shared] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def one(shared: Path, batch: int) -> dict[str, float]:
    """In this process: embed the aisafety.info and Distill passages the way an ingest does."""
    import retrieval.embeddings as embeddings
    from retrieval.chunking import chunk_document
    from retrieval.ingest import IngestReport, load_documents

    embeddings.DENSE_BATCH = batch
    corpus = shared / "corpus"
    docs = load_documents(
        [str(corpus / "aisafety.info.jsonl"), str(corpus / "distill.jsonl")], IngestReport()
    )
    texts = [c.embed_text(d.title) for d in docs for c in chunk_document(d)]
    model = embeddings.FastEmbedder(
        model_name="sentence-transformers/all-MiniLM-L6-v2",
        model_path=str(shared / "models" / "all-MiniLM-L6-v2"),
    )
    model.warm_up()
    loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()
    for i in range(0, len(texts), 64):  # the ingest embeds a few articles per call
        model.embed_passages(texts[i : i + 64])
    return {
        "batch": batch,
        "texts": len(texts),
        "seconds": round(time.perf_counter() - started, 1),
        "peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "after_loading_mb": round(loaded),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.shared, args.one)))
        return
    runs = []
    for _ in range(args.rounds):
        for batch in (32, 8):
            out = subprocess.run(
                [sys.executable, __file__, "--shared", str(args.shared), "--one", str(batch)],
                capture_output=True,
                text=True,
                check=True,
            )
            runs.append(json.loads(out.stdout))
    print(json.dumps(runs, indent=2))


if __name__ == "__main__":
    main()
