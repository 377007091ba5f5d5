"""Fit the rescoring weights, the abstention model and the written-answer threshold on the project's own
questions (benchmarks/data), with cross-validation, and write them to retrieval/calibration.json.

    python benchmarks/calibrate.py [--shared ../shared] [--store PATH] [--dry-run]

It searches the shared corpus (ingested into a fresh embedded store, or the one at --store) with the
real search code, so the fitted models see exactly the evidence the bot sees. The eval files in
../shared/eval are never read here: they are the check (`make bench`), not the training data.
Prints 5-fold cross-validated figures for each model.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bot.core import READ_NEXT  # noqa: E402
from bot.evaluate import EvalItem, load_eval  # noqa: E402
from bot.gate import searchable  # noqa: E402
from retrieval import rescoring  # noqa: E402
from retrieval.edge_store import EdgeStore  # noqa: E402
from retrieval.embeddings import FastEmbedder  # noqa: E402
from retrieval.index import complete  # noqa: E402
from retrieval.ingest import ingest  # noqa: E402
from retrieval.query import embed_questions  # noqa: E402
from retrieval.rescoring import RANK_FEATURES, TOPIC_FEATURES, Candidate, Hit  # noqa: E402
from retrieval.search import CANDIDATES  # noqa: E402

DATA = ROOT / "benchmarks" / "data"
MODEL = "sentence-transformers/all-MiniLM-L6-v2"
FOLDS = 5
TOP_K = 5
# The abstention model's three thresholds, read off out-of-fold probabilities (see `choose_thresholds`):
# - "covered" (at or above: the articles answer it): the highest that keeps the answerable questions
#   below it within MAX_FALSE_ABSTAIN, as sure as the single threshold used to be;
# - "close" (at or above, below "covered": a close call, answered with the closest articles and a plain
#   word on what they do not cover): the lowest that still refuses MIN_OFFTOPIC_REFUSED of the off-topic
#   prompts (a point above the 95% goal, so that unseen folds keep it), never above "covered";
# - "far" (below: far off-topic, no nearest articles listed): the highest at which the answerable
#   questions below it stay within MAX_FAR_ANSWERABLE, never above "close".
MAX_FALSE_ABSTAIN = 0.01
MIN_OFFTOPIC_REFUSED = 0.96
MAX_FAR_ANSWERABLE = 0.0
# The written-answer threshold keeps the cross-validated precision (the lead article is one that answers
# the question) at or above this.
MIN_WRITTEN_PRECISION = 0.95
# Penalties on the ranking weights tried, the best chosen by cross-validation.
L2_CHOICES = (0.01, 0.03, 0.1, 0.3)


def folds(n: int, seed: int) -> list[int]:
    order = list(range(n))
    random.Random(seed).shuffle(order)
    fold = [0] * n
    for j, i in enumerate(order):
        fold[i] = j % FOLDS
    return fold


def standardise(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return x.mean(0), x.std(0) + 1e-9


# -- the ranking model: a listwise softmax over each question's candidates -------------------------------


def rank_data(
    rows: Sequence[tuple[EvalItem, dict[str, list[Hit]]]],
) -> list[tuple[EvalItem, list[Candidate], np.ndarray]]:
    return [(item, *rescoring.evidence(rankings)) for item, rankings in rows]


def fit_ranking(
    data: Sequence[tuple[EvalItem, list[Candidate], np.ndarray]], l2: float = 0.1
) -> dict[str, Any]:
    """The weights that minimise the mean listwise softmax loss (minus the log of a question's probability
    mass on the articles that answer it) plus an L2 penalty, by Newton's method with a backtracking line
    search. The loss is convex, so the fit is the one minimum whatever the start: two ingests of the same
    corpus give the same weights (plain gradient descent stopped early gave different ones)."""
    mean, scale = standardise(np.vstack([x for _, _, x in data]))
    rows = [(item, found, x) for item, found, x in data if any(c.article_id in item.relevant for c in found)]
    width = max((len(found) for _, found, _ in rows), default=1)
    n, dim = max(len(rows), 1), len(RANK_FEATURES)
    z = np.zeros((len(rows), width, dim))
    live = np.zeros((len(rows), width), dtype=bool)
    target = np.zeros((len(rows), width))
    for q, (item, found, x) in enumerate(rows):
        z[q, : len(found)] = (x - mean) / scale
        live[q, : len(found)] = True
        target[q, : len(found)] = [c.article_id in item.relevant for c in found]
    target /= np.maximum(target.sum(1, keepdims=True), 1)

    def loss(w: np.ndarray) -> float:
        s = np.where(live, z @ w, -np.inf)
        top = s.max(1)
        log_total = top + np.log(np.exp(s - top[:, None]).sum(1))
        return float((log_total - (target * np.where(live, s, 0.0)).sum(1)).mean() + 0.5 * l2 * w @ w)

    w = np.zeros(dim)
    current = loss(w)
    for _ in range(100):
        s = np.where(live, z @ w, -np.inf)
        p = np.exp(s - s.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        grad = np.einsum("qnf,qn->f", z, p - target) / n + l2 * w
        mean_z = np.einsum("qnf,qn->qf", z, p)
        hessian = (np.einsum("qnf,qn,qng->fg", z, p, z) - mean_z.T @ mean_z) / n + l2 * np.eye(dim)
        step = np.linalg.solve(hessian, grad)
        t = 1.0
        while loss(w - t * step) > current - 1e-4 * t * grad @ step and t > 1e-6:
            t /= 2
        w = w - t * step
        new = loss(w)
        if current - new < 1e-12:
            break
        current = new
    return {
        "features": list(RANK_FEATURES),
        "mean": mean.tolist(),
        "scale": scale.tolist(),
        "weights": w.tolist(),
        "l2": l2,
    }


def cv_ranking(
    data: Sequence[tuple[EvalItem, list[Candidate], np.ndarray]],
    rankings: Sequence[dict[str, list[Hit]]],
    l2: float,
    seed: int = 0,
) -> list[list[str]]:
    """Each question's order of articles from the model fitted on the other folds."""
    fold = folds(len(data), seed)
    order: list[list[str]] = [[] for _ in data]
    for k in range(FOLDS):
        model = fit_ranking([d for d, f in zip(data, fold, strict=True) if f != k], l2)
        for i, f in enumerate(fold):
            if f == k:
                order[i] = [p.article_id for p in rescoring.passages(rankings[i], model=model)]
    return order


def ranking_metrics(order: Sequence[Sequence[str]], items: Sequence[EvalItem]) -> dict[str, float]:
    h1 = h5 = rr = 0.0
    for ids, item in zip(order, items, strict=True):
        for i, aid in enumerate(ids[:TOP_K]):
            if aid in item.relevant:
                h5 += 1
                h1 += i == 0
                rr += 1 / (i + 1)
                break
    n = max(len(items), 1)
    return {"hit_rate": round(h5 / n, 3), "hit_at_1": round(h1 / n, 3), "mrr": round(rr / n, 3)}


# -- the abstention model: logistic regression over the best scores among the articles found -------------


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 0.01) -> dict[str, Any]:
    mean, scale = standardise(x)
    z = (x - mean) / scale
    w = np.zeros(x.shape[1])
    b = 0.0
    weight = np.where(y == 1, 0.5 / y.mean(), 0.5 / (1 - y.mean()))  # both classes count the same
    for _ in range(3000):
        p = 1 / (1 + np.exp(-(z @ w + b)))
        g = (p - y) * weight
        w -= 0.5 * (z.T @ g / len(y) + l2 * w)
        b -= 0.5 * g.mean()
    return {
        "features": list(TOPIC_FEATURES),
        "mean": mean.tolist(),
        "scale": scale.tolist(),
        "weights": w.tolist(),
        "bias": float(b),
    }


def probability(model: dict[str, Any], x: np.ndarray) -> np.ndarray:
    z = (x - np.array(model["mean"])) / np.array(model["scale"])
    return 1 / (1 + np.exp(-(z @ np.array(model["weights"]) + model["bias"])))


GRID = np.round(np.arange(0.01, 0.951, 0.01), 2)


def choose_thresholds(p: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """The "covered", "close" and "far" thresholds (see MAX_FALSE_ABSTAIN above) for these probabilities
    of the answerable (y = 1) and off-topic (y = 0) questions."""
    answerable, offtopic = p[y == 1], p[y == 0]

    def below(group: np.ndarray, t: float) -> float:
        return float((group < t).mean()) if len(group) else 0.0

    covered = max((t for t in GRID if below(answerable, t) <= MAX_FALSE_ABSTAIN), default=GRID[0])
    close = min((t for t in GRID if below(offtopic, t) >= MIN_OFFTOPIC_REFUSED), default=covered)
    close = min(close, covered)
    far = max((t for t in GRID if t <= close and below(answerable, t) <= MAX_FAR_ANSWERABLE), default=0.0)
    return {"covered": float(covered), "close": float(close), "far": float(far)}


def out_of_fold(x: np.ndarray, y: np.ndarray, seed: int) -> np.ndarray:
    """Each question's probability from the model fitted on the other folds."""
    fold = np.array(folds(len(y), seed))
    p = np.zeros(len(y))
    for k in range(FOLDS):
        p[fold == k] = probability(fit_logistic(x[fold != k], y[fold != k]), x[fold == k])
    return p


def cv_abstention(
    x: np.ndarray, y: np.ndarray, choose_on: np.ndarray, seed: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Nested 5-fold cross-validation: each fold's thresholds are read off out-of-fold probabilities of
    the other four (as the final ones are off all five; only the questions `choose_on` marks count),
    then applied to the held-out fold. Returns the out-of-fold probabilities and each question's
    held-out decision (2 covered, 1 close, 0 not covered, -1 not covered and far off-topic)."""
    fold = np.array(folds(len(y), seed))
    p = np.zeros(len(y))
    decided = np.zeros(len(y), dtype=int)
    for k in range(FOLDS):
        train, test = fold != k, fold == k
        inner = out_of_fold(x[train], y[train], seed + 1)
        t = choose_thresholds(inner[choose_on[train]], y[train][choose_on[train]])
        p[test] = probability(fit_logistic(x[train], y[train]), x[test])
        decided[test] = np.select(
            [p[test] >= t["covered"], p[test] >= t["close"], p[test] >= t["far"]], [2, 1, 0], -1
        )
    return p, decided


def coverage_rates(decided: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """How the answerable (y = 1) and the off-topic (y = 0) questions fare: not covered (an abstention),
    a close call, and (off-topic) far off-topic; the names `aisafety-bot eval --json` uses."""

    def share(values: tuple[int, ...], label: int) -> float:
        group = decided[y == label]
        return round(float(np.isin(group, values).mean()), 3) if len(group) else 0.0

    return {
        "false_abstain": share((0, -1), 1),
        "close_answerable": share((1,), 1),
        "abstained_offtopic": share((0, -1), 0),
        "close_offtopic": share((1,), 0),
        "far_offtopic": share((-1,), 0),
    }


# -- the written-answer threshold ---------------------------------------------------------------------


def choose_written(x: np.ndarray, good: np.ndarray) -> float:
    """The lowest title cosine at which leading with the top article is right MIN_WRITTEN_PRECISION of
    the time (over the questions at or above it)."""
    for t in np.arange(0.30, 0.951, 0.01):
        above = x >= t
        if above.sum() and good[above].mean() >= MIN_WRITTEN_PRECISION:
            return round(float(t), 2)
    return 0.95


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", default=str(ROOT.parent / "shared"))
    parser.add_argument("--store", help="an embedded store (QDRANT_PATH) already holding the shared corpus")
    parser.add_argument("--dry-run", action="store_true", help="print the figures, write nothing")
    args = parser.parse_args()
    shared = Path(args.shared)
    embedder = FastEmbedder(model_name=MODEL, model_path=str(shared / "models" / "all-MiniLM-L6-v2"))
    if args.store:
        store = EdgeStore(alias="aisafety_articles", path=args.store)
    else:
        store = EdgeStore(alias="calibrate", path=tempfile.mkdtemp(prefix="calibrate-"))
        sources = [
            str(shared / "corpus" / f)
            for f in ("aisafety.info.jsonl", "ai-safety-atlas.jsonl", "distill.jsonl")
        ]
        ingest(store=store, embedder=embedder, sources=sources)

    answerable = load_eval(DATA / "ontopic.jsonl") + load_eval(DATA / "jargon.jsonl")
    offtopic = load_eval(DATA / "offtopic.jsonl")
    # Near misses: terse, slangy or indirect questions the library answers, the kind a single threshold
    # turned away. The abstention model learns from them too; the thresholds are chosen on the sets above.
    nearmiss = load_eval(DATA / "nearmiss.jsonl")
    items = answerable + offtopic + nearmiss
    vectors = embed_questions(embedder, [searchable(i.question) or i.question for i in items])
    rankings = [store.rankings(v, limit=CANDIDATES) for v in vectors]
    out: dict[str, Any] = {"model": MODEL}

    # Ranking: 5-fold cross-validation on the answerable questions, then one fit on all of them.
    data = rank_data(list(zip(answerable, rankings[: len(answerable)], strict=True)))
    # The weights' penalty: the one with the best cross-validated MRR (over two fold seeds).
    orders = {(l2, s): cv_ranking(data, rankings, l2, s) for l2 in L2_CHOICES for s in (0, 1)}
    by_l2 = {
        l2: float(np.mean([ranking_metrics(orders[l2, s], answerable)["mrr"] for s in (0, 1)]))
        for l2 in L2_CHOICES
    }
    l2 = max(L2_CHOICES, key=lambda c: (by_l2[c], c))
    print(f"ranking: cross-validated MRR by penalty {by_l2}; chose {l2}")
    cv_order = orders[l2, 0]
    rrf_order = [[p.article_id for p in rescoring.passages(r, "rrf")] for r in rankings[: len(answerable)]]
    out["ranking"] = fit_ranking(data, l2)
    cv = {"rescored": ranking_metrics(cv_order, answerable), "rrf": ranking_metrics(rrf_order, answerable)}
    print(f"ranking, {len(answerable)} questions, {FOLDS}-fold CV: {cv}")

    # Abstention: the same evidence the core reads, the top articles of the fitted ranking.
    examples = rescoring.OfftopicExamples(
        [e.dense for e in embedder.embed_queries(rescoring.offtopic_examples())]
    )
    # What the bot's search returns: the best articles with their payloads (`complete`), so that each
    # carries its source for the written-answer threshold below.
    found = [
        examples.mark(
            complete(rescoring.passages(r, model=out["ranking"])[: TOP_K + READ_NEXT], store.payloads),
            v.dense,
        )
        for r, v in zip(rankings, vectors, strict=True)
    ]
    x = np.array([rescoring.topic_features(f) for f in found])
    y = np.array([1.0 if i.relevant else 0.0 for i in items])
    base = np.arange(len(items)) < len(answerable) + len(offtopic)  # the goal's sets: no near misses
    p, decided = cv_abstention(x, y, base)
    abstain = fit_logistic(x, y)
    # The thresholds are read off the out-of-fold probabilities: in-sample ones flatter the fit.
    abstain.update(choose_thresholds(p[base], y[base]))
    out["abstention"] = abstain
    mean_rates = coverage_rates(decided[base], y[base])
    print(
        f"abstention, {len(answerable)} answerable + {len(offtopic)} off-topic + {len(nearmiss)} near misses:"
        f" thresholds covered {abstain['covered']}, close {abstain['close']}, far {abstain['far']}\n"
        f"  {FOLDS}-fold CV (nested), on-topic + jargon + off-topic: {mean_rates}\n"
        f"  {FOLDS}-fold CV (nested), near misses: {coverage_rates(decided[~base], y[~base])}"
    )

    # Written answer first: the top article's title cosine, where that article is from aisafety.info.
    # (On the on-topic, jargon and off-topic sets only, as before the near misses came.)
    top = [
        (f[0], i)
        for f, i, b in zip(found, items, base, strict=True)
        if b and f and f[0].source == "aisafety.info"
    ]
    tx = np.array([t.title_score for t, _ in top])
    good = np.array([t.article_id in i.relevant for t, i in top])
    fold = folds(len(top), seed=2)
    correct = shown = 0
    for k in range(FOLDS):
        train = np.array(fold) != k
        t = choose_written(tx[train], good[train])
        test = (~train) & (tx >= t)
        correct += int(good[test].sum())
        shown += int(test.sum())
    out["written_answer"] = {"title_cosine": choose_written(tx, good)}
    print(
        f"written answer first: threshold {out['written_answer']['title_cosine']}; {FOLDS}-fold CV: led with on "
        f"{shown} of {len(top)} questions, right {correct / max(shown, 1):.3f}"
    )
    out["cross_validation"] = {
        "ranking": cv,
        "abstention": mean_rates,
        "written_answer_precision": round(correct / max(shown, 1), 3),
    }
    store.close()
    if not args.dry_run:
        rescoring.CALIBRATION.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {rescoring.CALIBRATION.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
