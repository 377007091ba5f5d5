"""How long the report takes to build as a community's history grows: `service.report.build_report` over
N answers whose questions are drawn (with repeats, seeded) from every question the project wrote
(benchmarks/data: on-topic, jargon, near misses, off-topic and the wording pairs), half of them not
covered. Embeddings are computed once before timing (the real MiniLM model), so the figure is the
grouping and tables, not the model. With the shared corpus's vocabulary, as the running bot reads it.

    python benchmarks/bench_report.py [--shared ../shared] [--answers 1000 3000] [--repeat 5]

Prints the median build time of each size over `--repeat` builds.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from service.feedback import FeedbackRow  # noqa: E402
from service.report import build_report  # noqa: E402

DATA = ROOT / "benchmarks" / "data"


def questions() -> list[str]:
    out: list[str] = []
    for name in ("ontopic", "jargon", "nearmiss", "offtopic"):
        out += [
            json.loads(line)["q"] for line in (DATA / f"{name}.jsonl").read_text("utf-8").splitlines() if line
        ]
    for line in (DATA / "wording_pairs.jsonl").read_text("utf-8").splitlines():
        if line:
            pair = json.loads(line)
            out += [pair["a"], pair["b"]]
    return sorted(set(out))


def history(n: int, pool: list[str], seed: int = 1) -> list[FeedbackRow]:
    rng = random.Random(seed)
    return [
        FeedbackRow(
            answer_id=i,
            platform="discord",
            place="c",
            asker=f"u{i % 50}",
            question=rng.choice(pool),
            answer="a",
            mode=rng.choice(["abstain", "llm"]),
            sources=[],
            up=0,
            down=0,
            created=1000.0 + i,
            community="discord:1",
        )
        for i in range(n)
    ]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shared", default=str(ROOT.parent / "shared"))
    parser.add_argument("--answers", type=int, nargs="+", default=[1000, 3000])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    from retrieval.embeddings import FastEmbedder

    shared = Path(args.shared)
    embedder = FastEmbedder(
        model_name="sentence-transformers/all-MiniLM-L6-v2",
        model_path=str(shared / "models" / "all-MiniLM-L6-v2"),
    )
    pool = questions()
    cache: dict[str, list[float]] = {}

    def embed(texts: Sequence[str]) -> list[list[float]]:
        missing = [t for t in texts if t not in cache]
        if missing:
            cache.update(zip(missing, embedder.embed_dense_only(missing), strict=True))
        return [cache[t] for t in texts]

    kwargs: dict[str, Any] = {}
    try:  # the vocabulary exists from the commit that brought it; older commits group without one
        from benchmarks.wordings import corpus_vocabulary

        kwargs["vocabulary"] = corpus_vocabulary(shared)
    except ImportError:
        pass
    print(f"{len(pool)} distinct questions; vocabulary: {'yes' if kwargs else 'no'}")
    for n in args.answers:
        rows = history(n, pool)
        build_report(rows, embed=embed, articles={}, since_days=1, now=1e6, **kwargs)  # embeddings cached
        times = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            build_report(rows, embed=embed, articles={}, since_days=1, now=1e6, **kwargs)
            times.append(time.perf_counter() - started)
        distinct = len({r.question for r in rows})
        print(f"{n} answers ({distinct} distinct questions): median {statistics.median(times):.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
