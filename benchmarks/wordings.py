"""How the report tells wordings of one question apart from different questions (`service.wordings`):
SHARED_WORDS, SAME_QUESTION and CONTRAST_SEEN, chosen on benchmarks/data/wording_pairs.jsonl (pairs
written for this project: `rewording` pairs are one question in other words, `near_topic` pairs are
different questions on a near topic, `described` pairs name a term in one wording and describe it in
the other).

    python benchmarks/wordings.py [--shared ../shared] [--store PATH]

The library's vocabulary (`retrieval.vocabulary`) is read from the shared corpus's passages, cut as the
ingest cuts them (or, with --store, from an embedded store that holds them, as the running bot reads it).

Prints, in 5 folds by topic: the constants chosen on four fifths of the topics (every question of them
grouped at once, as the report groups; the most same pairs grouped less twice the different pairs
grouped, with at most 5% of different pairs grouped) and the held-out fifth grouped with them by
`Wordings.groups`. Then the constants chosen on every topic (the ones `service/wordings.py` should
hold), and the report's own grouping with the constants it holds. The same without a vocabulary (every
word weighing the same, as when the index cannot be read: SHARED_WORDS_PLAIN and SAME_QUESTION_PLAIN).
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

from retrieval.vocabulary import EMPTY, Vocabulary  # noqa: E402
from service import report, wordings  # noqa: E402

PAIRS = ROOT / "benchmarks" / "data" / "wording_pairs.jsonl"
WEIGHTS = [0.4, 0.5, 0.6, 0.7, 0.8, 1.0]
SEEN = [2, 3, 5]
THRESHOLDS = [round(0.6 + 0.01 * i, 2) for i in range(61)]
MAX_WRONG = 0.05
WRONG_COST = 2.0  # a different question hidden in another's row costs more than a row shown twice
SOURCES = ("aisafety.info.jsonl", "ai-safety-atlas.jsonl", "distill.jsonl")


def load(path: Path = PAIRS) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def corpus_vocabulary(shared: Path) -> Vocabulary:
    """The vocabulary of the shared corpus's passages, cut as `aisafety-bot ingest` cuts them."""
    from retrieval.chunking import chunk_document
    from retrieval.ingest import IngestReport, load_documents

    docs = load_documents([str(shared / "corpus" / f) for f in SOURCES], IngestReport())
    return Vocabulary.from_texts(c.text for d in docs for c in chunk_document(d))


def store_vocabulary(path: str) -> Vocabulary:
    from retrieval.edge_store import EdgeStore

    store = EdgeStore(alias="aisafety_articles", path=path)
    try:
        return store.vocabulary()
    finally:
        store.close()


def measure(where: dict[str, int], pairs: list[dict[str, Any]]) -> tuple[float, float]:
    """The share of same pairs in one group, and of different pairs in one group."""
    same = [where[p["a"]] == where[p["b"]] for p in pairs if p["same"]]
    wrong = [where[p["a"]] == where[p["b"]] for p in pairs if not p["same"]]
    return float(np.mean(same)), float(np.mean(wrong))


def labels(texts: list[str], groups: list[list[int]]) -> dict[str, int]:
    return {texts[n]: k for k, group in enumerate(groups) for n in group}


def choose(
    vectors: dict[str, np.ndarray], vocabulary: Vocabulary, pairs: list[dict[str, Any]]
) -> tuple[float, int, float, float, float]:
    """(SHARED_WORDS, CONTRAST_SEEN, SAME_QUESTION, grouped, wrong) best on `pairs`' questions."""
    texts = sorted({q for p in pairs for q in (p["a"], p["b"])})
    best: tuple[float, int, float, float, float] | None = None
    for weight in WEIGHTS:
        for seen in SEEN:
            w = wordings.Wordings(vectors, vocabulary, shared_words=weight, contrast_seen=seen)
            part = list(range(len(texts)))
            merges = w.merges(texts, part, floor=THRESHOLDS[0])
            for t in THRESHOLDS:
                grouped, wrong = measure(labels(texts, wordings.cut(part, merges, t)), pairs)
                value = grouped - WRONG_COST * wrong
                if wrong <= MAX_WRONG and (best is None or value > best[3] - WRONG_COST * best[4]):
                    best = (weight, seen, t, grouped, wrong)
    assert best is not None
    return best


def held_out(
    vectors: dict[str, np.ndarray], vocabulary: Vocabulary, pairs: list[dict[str, Any]], folds: int = 5
) -> list[tuple[float, int, float, float, float]]:
    """Per fold of topics: the constants chosen on the other folds, and the fold's grouped and wrong."""
    out = []
    for k in range(folds):
        train = [p for p in pairs if p["topic"] % folds != k]
        test = [p for p in pairs if p["topic"] % folds == k]
        weight, seen, t, _, _ = choose(vectors, vocabulary, train)
        w = wordings.Wordings(vectors, vocabulary, shared_words=weight, same_question=t, contrast_seen=seen)
        texts = sorted({q for p in test for q in (p["a"], p["b"])})
        grouped, wrong = measure(labels(texts, w.groups(texts)), test)
        out.append((weight, seen, t, grouped, wrong))
    return out


def report_grouping(
    vectors: dict[str, np.ndarray], vocabulary: Vocabulary, pairs: list[dict[str, Any]]
) -> tuple[float, float]:
    """The report's own grouping (`service.report.clusters`, the constants it holds), every question of
    `pairs` at once."""
    texts = sorted({q for p in pairs for q in (p["a"], p["b"])})
    return measure(labels(texts, report.clusters(texts, wordings.Wordings(vectors, vocabulary))), pairs)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shared", default=str(ROOT.parent / "shared"))
    parser.add_argument("--store", help="an embedded store holding the shared corpus (see above)")
    args = parser.parse_args()
    from retrieval.embeddings import FastEmbedder

    shared = Path(args.shared)
    embedder = FastEmbedder(
        model_name="sentence-transformers/all-MiniLM-L6-v2",
        model_path=str(shared / "models" / "all-MiniLM-L6-v2"),
    )
    vocabulary = store_vocabulary(args.store) if args.store else corpus_vocabulary(shared)
    print(
        f"library vocabulary: {vocabulary.passages} passages, {len(vocabulary.df)} stems, "
        f"{len(vocabulary.pairs)} pairs side by side, {len(vocabulary.names)} names"
    )
    pairs = load()
    vectors = report.embed_questions(
        [q for p in pairs for q in (p["a"], p["b"])], embedder.embed_dense_only
    ).vectors
    main_pairs = [p for p in pairs if p["kind"] != "described"]
    print(
        f"{sum(p['same'] for p in main_pairs)} same pairs, {sum(not p['same'] for p in main_pairs)} different"
    )
    held = held_out(vectors, vocabulary, main_pairs)
    print(
        "5 folds by topic (SHARED_WORDS, CONTRAST_SEEN, SAME_QUESTION chosen on the rest; held-out grouped, wrong):"
    )
    for h in held:
        print(f"  {h[0]} {h[1]} {h[2]}: {h[3]:.3f} {h[4]:.3f}")
    print(
        f"  mean held-out grouped {np.mean([h[3] for h in held]):.3f}, wrongly {np.mean([h[4] for h in held]):.3f}"
    )
    weight, seen, t, grouped, wrong = choose(vectors, vocabulary, main_pairs)
    print(
        f"chosen on every topic: SHARED_WORDS {weight}, CONTRAST_SEEN {seen}, SAME_QUESTION {t} "
        f"(grouped {grouped:.3f}, wrongly {wrong:.3f})"
    )
    print(
        f"service/wordings.py holds SHARED_WORDS {wordings.SHARED_WORDS}, CONTRAST_SEEN "
        f"{wordings.CONTRAST_SEEN}, SAME_QUESTION {wordings.SAME_QUESTION}:"
    )
    g, w = report_grouping(vectors, vocabulary, main_pairs)
    print(f"  the report, every question at once: grouped {g:.3f}, wrongly {w:.3f}")
    held = held_out(vectors, EMPTY, main_pairs)
    print(
        f"without the library's vocabulary, 5 folds by topic: held-out grouped {np.mean([h[3] for h in held]):.3f}, "
        f"wrongly {np.mean([h[4] for h in held]):.3f}"
    )
    weight, seen, t, grouped, wrong = choose(vectors, EMPTY, main_pairs)
    print(f"  chosen on every topic: SHARED_WORDS_PLAIN {weight}, SAME_QUESTION_PLAIN {t}")
    g, w = report_grouping(vectors, EMPTY, main_pairs)
    print(
        f"  the report with SHARED_WORDS_PLAIN {wordings.SHARED_WORDS_PLAIN}, SAME_QUESTION_PLAIN "
        f"{wordings.SAME_QUESTION_PLAIN}: grouped {g:.3f}, wrongly {w:.3f}"
    )
    described = [p for p in pairs if p["kind"] == "described"]
    both = wordings.Wordings(vectors, vocabulary)
    got = np.mean([both.same(p["a"], p["b"]) for p in described])
    print(f"  described pairs ({len(described)}), as single pairs: grouped {got:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
