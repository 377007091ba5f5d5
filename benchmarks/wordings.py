"""How the report tells wordings of one question apart from different questions: SHARED_WORDS and
SAME_QUESTION in service/report.py, chosen on benchmarks/data/wording_pairs.jsonl (pairs written for this
project: `rewording` pairs are one question in other words, `near_topic` pairs are different questions
on a near topic, `described` pairs name a term in one wording and describe it in the other).

    python benchmarks/wordings.py [--shared ../shared] [--store PATH]

Prints the weight and threshold chosen on all rewording and near-topic pairs (the most pairs grouped
with at most 5% of different questions grouped), the same chosen in 5 folds by topic (fitted on four
fifths, scored on the rest), and the report's own grouping (`service.report.clusters`, every question
of the file at once) with the constants it uses.

With --store (an embedded store holding the shared corpus, e.g. a copy of one built by `aisafety-bot
ingest`), it also asks whether the articles each question finds help: every question is searched as the
bot searches it (`AnswerCore.prepare`, no language model) and two questions' agreement is the average
overlap of their first 1, 2 and 3 articles found; the cosine + SHARED_WORDS rule with that agreement
added (its weight and the threshold chosen in the same folds by topic) is compared with the rule alone.
On the project's pairs it does not help (BENCHMARKS.md, issue 24): one article often answers both of
two near-topic questions, so the report does not use it.
"""

from __future__ import annotations

import argparse
import asyncio
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
FOUND_WEIGHTS = [round(0.05 * i, 2) for i in range(11)]  # weights tried for the articles' agreement


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


def agreement(a: list[str], b: list[str], depth: int = 3) -> float:
    """How much two ranked lists of articles agree: the mean share in common of their first 1..depth."""
    return float(np.mean([len(set(a[:d]) & set(b[:d])) / d for d in range(1, depth + 1)]))


async def found_articles(questions: list[str], store_path: str, embedder: Any) -> dict[str, list[str]]:
    """Each question's articles in the order the bot's search finds them (no language model)."""
    from bot.core import AnswerCore
    from bot.models import Question
    from retrieval.edge_store import EdgeStore
    from retrieval.search import HybridRetriever

    store = EdgeStore(alias="aisafety_articles", path=store_path)
    try:
        core = AnswerCore(retriever=HybridRetriever(store=store, embedder=embedder), llm=None)
        out = {}
        for q in questions:
            prepared = await core.prepare(Question(q))
            ids = [p.article_id for p in prepared.passages + prepared.spare]
            out[q] = list(dict.fromkeys(ids))
        return out
    finally:
        store.close()


def choose(
    x: np.ndarray, same: np.ndarray, found_weights: list[float] | None = None
) -> tuple[float, float, float, float, float]:
    """(weight, threshold, grouped, wrong, found weight): the most same pairs grouped with at most
    MAX_WRONG wrong; with `found_weights`, x's third column (the articles' agreement) weighted too."""
    best = (0.0, 1.0, -1.0, 0.0, 0.0)
    for w, v in [(w, v) for w in WEIGHTS for v in (found_weights or [0.0])]:
        score = x[:, 0] + w * x[:, 1] + (v * x[:, 2] if v else 0.0)
        for t in THRESHOLDS:
            wrong = float(np.mean(score[~same] >= t))
            if wrong <= MAX_WRONG:
                grouped = float(np.mean(score[same] >= t))
                if grouped > best[2]:
                    best = (w, t, grouped, wrong, v)
                break
    return best


def cross_validate(
    x: np.ndarray, same: np.ndarray, folds: np.ndarray, found_weights: list[float] | None = None
) -> list[tuple[float, float, float, float, float]]:
    """Per fold: (weight, threshold, held-out grouped, held-out wrong, found weight), chosen on the rest."""
    held = []
    for k in range(5):
        w, t, _, _, v = choose(x[folds != k], same[folds != k], found_weights)
        xk = x[folds == k]
        score = xk[:, 0] + w * xk[:, 1] + (v * xk[:, 2] if v else 0.0)
        s_k = same[folds == k]
        held.append((w, t, float(np.mean(score[s_k] >= t)), float(np.mean(score[~s_k] >= t)), v))
    return held


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
    parser.add_argument("--store", help="an embedded store holding the shared corpus (see above)")
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
    w, t, grouped, wrong, _ = choose(x, same)
    print(f"all pairs: weight {w} threshold {t}: grouped {grouped:.3f}, wrongly grouped {wrong:.3f}")
    folds = np.array([p["topic"] % 5 for p in main_pairs])
    held = cross_validate(x, same, folds)
    print("5 folds by topic (weight, threshold, held-out grouped, held-out wrong):")
    for h in held:
        print(f"  {h[0]} {h[1]} {h[2]:.3f} {h[3]:.3f}")
    print(
        f"  mean held-out grouped {np.mean([h[2] for h in held]):.3f}, wrong {np.mean([h[3] for h in held]):.3f}"
    )
    if args.store:
        found = asyncio.run(
            found_articles(sorted({q for p in pairs for q in (p["a"], p["b"])}), args.store, embedder)
        )
        agree = np.array([agreement(found[p["a"]], found[p["b"]]) for p in main_pairs])
        print(
            f"articles found: same first article for {np.mean([found[p['a']][:1] == found[p['b']][:1] for p in main_pairs if p['same']]):.3f} "
            f"of rewordings and {np.mean([found[p['a']][:1] == found[p['b']][:1] for p in main_pairs if not p['same']]):.3f} "
            f"of near-topic pairs; mean agreement {agree[same].mean():.3f} and {agree[~same].mean():.3f}"
        )
        held = cross_validate(np.column_stack([x, agree]), same, folds, FOUND_WEIGHTS)
        print(
            "with the articles' agreement, 5 folds by topic (weight, found weight, threshold, grouped, wrong):"
        )
        for h in held:
            print(f"  {h[0]} {h[4]} {h[1]} {h[2]:.3f} {h[3]:.3f}")
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
