"""How the report's "questions to write" clusters are cut: the cosine threshold, chosen on the project's
own questions (benchmarks/data: on-topic and jargon), where two questions are on the same topic when
they share an article that answers them.

    python benchmarks/topics.py [--shared ../shared]

Prints, for each threshold, the pairwise precision, recall and F1 of the report's greedy clustering
(`service.report.group_questions`) against those topics, and the F1 of each threshold in 5 folds (chosen on
four fifths, scored on the rest).
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bot.evaluate import EvalItem, load_eval  # noqa: E402
from retrieval.embeddings import FastEmbedder  # noqa: E402
from service.report import SAME_TOPIC, embed_questions, group_questions  # noqa: E402

DATA = ROOT / "benchmarks" / "data"
THRESHOLDS = [round(0.40 + 0.05 * i, 2) for i in range(10)]


def scores(items: list[EvalItem], vectors: dict, threshold: float) -> tuple[float, float, float]:
    clusters = group_questions([i.question for i in items], vectors, topic=threshold, members=True)
    where = {q: n for n, g in enumerate(clusters) for q in g["members"]}
    tp = fp = fn = 0
    for a, b in itertools.combinations(items, 2):
        same = bool(a.relevant & b.relevant)
        together = where.get(a.question) == where.get(b.question)
        tp += same and together
        fp += together and not same
        fn += same and not together
    p = tp / max(tp + fp, 1)
    r = tp / max(tp + fn, 1)
    return p, r, 2 * p * r / max(p + r, 1e-9)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shared", default=str(ROOT.parent / "shared"))
    args = parser.parse_args()
    embedder = FastEmbedder(
        model_name="sentence-transformers/all-MiniLM-L6-v2",
        model_path=str(Path(args.shared) / "models" / "all-MiniLM-L6-v2"),
    )
    items = [i for i in load_eval(DATA / "ontopic.jsonl") + load_eval(DATA / "jargon.jsonl") if i.relevant]
    vectors = embed_questions([i.question for i in items], embedder.embed_dense_only)
    for t in THRESHOLDS:
        p, r, f = scores(items, vectors, t)
        print(f"threshold {t:.2f}: precision {p:.3f} recall {r:.3f} F1 {f:.3f}")
    folds = [items[k::5] for k in range(5)]
    chosen = []
    for k in range(5):
        train = [i for n, f in enumerate(folds) if n != k for i in f]
        best = max(THRESHOLDS, key=lambda t: scores(train, vectors, t)[2])
        chosen.append((best, round(scores(folds[k], vectors, best)[2], 3)))
    print(f"5-fold: chosen threshold and held-out F1 {chosen}; the report uses {SAME_TOPIC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
