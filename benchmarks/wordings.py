"""How the report tells wordings of one question apart from different questions: SHARED_WORDS and
SAME_QUESTION in service/report.py, chosen on benchmarks/data/wording_pairs.jsonl (pairs written for this
project: `rewording` pairs are one question in other words, `near_topic` pairs are different questions
on a near topic, `described` pairs name a term in one wording and describe it in the other).

    python benchmarks/wordings.py [--shared ../shared]

Prints the weight and threshold chosen on all rewording and near-topic pairs (the most pairs grouped
with at most 5% of different questions grouped), the same chosen in 5 folds by topic (fitted on four
fifths, scored on the rest), and the report's own grouping (`service.report.clusters`, every question
of the file at once) with the constants it uses.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from service import report  # noqa: E402

PAIRS = ROOT / "benchmarks" / "data" / "wording_pairs.jsonl"
WEIGHTS = [round(0.1 * i, 1) for i in range(11)]
THRESHOLDS = [round(0.5 + 0.01 * i, 2) for i in range(101)]
MAX_WRONG = 0.05


def load(path: Path = PAIRS) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def features(pairs: list[dict[str, Any]], vectors: dict[str, np.ndarray]) -> np.ndarray:
    """Each pair's cosine and share of content words in common."""
    out = []
    for p in pairs:
        wa, wb = report.content_words(p["a"]), report.content_words(p["b"])
        shared = len(wa & wb) / len(wa | wb) if wa | wb else 1.0
        out.append((float(vectors[p["a"]] @ vectors[p["b"]]), shared))
    return np.asarray(out)


def choose(x: np.ndarray, same: np.ndarray) -> tuple[float, float, float, float]:
    """(weight, threshold, grouped, wrong): the most same pairs grouped with at most MAX_WRONG wrong."""
    best = (0.0, 1.0, -1.0, 0.0)
    for w in WEIGHTS:
        score = x[:, 0] + w * x[:, 1]
        for t in THRESHOLDS:
            wrong = float(np.mean(score[~same] >= t))
            if wrong <= MAX_WRONG:
                grouped = float(np.mean(score[same] >= t))
                if grouped > best[2]:
                    best = (w, t, grouped, wrong)
                break
    return best


def grouping(pairs: list[dict[str, Any]], vectors: dict[str, np.ndarray]) -> tuple[float, float]:
    """The report's own grouping of every question of `pairs` at once: the share of same pairs put in
    one group, and of different pairs put in one group."""
    questions = sorted({q for p in pairs for q in (p["a"], p["b"])})
    where = {questions[n]: k for k, group in enumerate(report.clusters(questions, vectors)) for n in group}
    same = [where[p["a"]] == where[p["b"]] for p in pairs if p["same"]]
    wrong = [where[p["a"]] == where[p["b"]] for p in pairs if not p["same"]]
    return float(np.mean(same)), float(np.mean(wrong))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shared", default=str(ROOT.parent / "shared"))
    args = parser.parse_args()
    from retrieval.embeddings import FastEmbedder

    embedder = FastEmbedder(
        model_name="sentence-transformers/all-MiniLM-L6-v2",
        model_path=str(Path(args.shared) / "models" / "all-MiniLM-L6-v2"),
    )
    pairs = load()
    vectors = report.embed_questions([q for p in pairs for q in (p["a"], p["b"])], embedder.embed_dense_only)
    main_pairs = [p for p in pairs if p["kind"] != "described"]
    x, same = features(main_pairs, vectors), np.array([p["same"] for p in main_pairs])
    w, t, grouped, wrong = choose(x, same)
    print(f"all pairs: weight {w} threshold {t}: grouped {grouped:.3f}, wrongly grouped {wrong:.3f}")
    folds = np.array([p["topic"] % 5 for p in main_pairs])
    held = []
    for k in range(5):
        w_k, t_k, _, _ = choose(x[folds != k], same[folds != k])
        score = x[folds == k, 0] + w_k * x[folds == k, 1]
        s_k = same[folds == k]
        held.append((w_k, t_k, float(np.mean(score[s_k] >= t_k)), float(np.mean(score[~s_k] >= t_k))))
    print("5 folds by topic (weight, threshold, held-out grouped, held-out wrong):")
    for h in held:
        print(f"  {h[0]} {h[1]} {h[2]:.3f} {h[3]:.3f}")
    print(
        f"  mean held-out grouped {np.mean([h[2] for h in held]):.3f}, wrong {np.mean([h[3] for h in held]):.3f}"
    )
    g, wr = grouping(main_pairs, vectors)
    print(
        f"the report (SHARED_WORDS {report.SHARED_WORDS}, SAME_QUESTION {report.SAME_QUESTION}), every "
        f"question grouped at once: grouped {g:.3f}, wrongly grouped {wr:.3f}"
    )
    described = [p for p in pairs if p["kind"] == "described"]
    d = features(described, vectors)
    got = np.mean(d[:, 0] + report.SHARED_WORDS * d[:, 1] >= report.SAME_QUESTION)
    print(f"described pairs ({len(described)}): grouped {got:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
