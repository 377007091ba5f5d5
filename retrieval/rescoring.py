"""The second stage of a search: every candidate article rescored from the evidence of all rankings.

A store answers one batched request with four rankings of passages (the passage's dense cosine, the
article title's, the article lead's, BM25), each hit naming only its article and passage number. Plain
reciprocal-rank fusion keeps only each passage's rank in each. Here every candidate article gets
features from all of them: its reciprocal rank and raw score in each ranking (BM25 relative to the
best) and how many of its passages each of the passage rankings found (agreement between an article's
passages). A linear model over these and their pairwise products, fitted on the project's own questions
with cross-validation (`benchmarks/calibrate.py`, weights in `calibration.json`), scores them.

The same evidence decides whether the library covers a question at all: a logistic model over the best
dense, title, lead and BM25 scores among the articles found (`on_topic`), calibrated on the project's
own on-topic, jargon and off-topic sets (and near misses), read with three thresholds (`judge`):
covered, a close call, not covered, and, well below, far off-topic.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from retrieval.documents import Passage

DENSE = "dense"
TITLE = "title"
LEAD = "lead"
SPARSE = "bm25"
RANKINGS = (DENSE, TITLE, LEAD, SPARSE)
SearchMode = Literal["hybrid", "rrf", "dense", "sparse"]

# Reciprocal-rank constant: small, so an article ranked first by one signal stands out.
RRF_K = 5
# The rank given to an article a ranking did not return.
ABSENT_RANK = 50
CALIBRATION = Path(__file__).with_name("calibration.json")

RANK_FEATURES = (
    "dense_rr",
    "dense",
    "dense_passages",
    "title_rr",
    "title",
    "lead_rr",
    "lead",
    "bm25_rr",
    "bm25",
    "bm25_passages",
    # Agreement between the rankings: the products of the four raw scores, two at a time (an article
    # close to the question on two counts beats one that is very close on one). In 5-fold CV on the
    # project's questions, over four fold seeds: hit@1 +0.008 to +0.016, MRR +0.007 to +0.009.
    "dense*title",
    "dense*lead",
    "dense*bm25",
    "title*lead",
    "title*bm25",
    "lead*bm25",
)
TOPIC_FEATURES = ("dense", "title", "lead", "bm25", "offtopic")
OFFTOPIC_EXAMPLES = Path(__file__).with_name("offtopic_examples.txt")


@dataclass(frozen=True)
class Hit:
    """One point a ranking returned: its score there and its stored payload."""

    score: float
    payload: Mapping[str, Any]

    @property
    def article_id(self) -> str:
        return str(self.payload.get("article_id", ""))


@dataclass
class Candidate:
    """An article some ranking found: its best passage's number and its evidence from every ranking."""

    article_id: str
    chunk: int
    rank: dict[str, int]
    score: dict[str, float]
    passages: dict[str, int]


def feature_matrix(
    found: Sequence[Candidate], best_bm25: float, floor: Mapping[str, float] | None = None
) -> Any:
    """The model's inputs, a row per candidate in RANK_FEATURES' order (a numpy array). A ranking that did
    not return an article gives it that ranking's floor (its lowest returned score, the most the article
    can have scored there) instead of a false 0; BM25 scores are relative to the best."""
    import numpy as np  # loaded with the embedding model anyway; not at import time

    if not found:
        return np.zeros((0, len(RANK_FEATURES)))
    floor = floor or {}
    ranks = np.array([[c.rank.get(r, ABSENT_RANK) for r in RANKINGS] for c in found], dtype=float)
    raws = np.array([[c.score.get(r, floor.get(r, 0.0)) for r in RANKINGS] for c in found], dtype=float)
    if best_bm25 > 0:
        raws[:, 3] /= best_bm25
    counts = np.log1p(
        np.array([[c.passages.get(DENSE, 0), c.passages.get(SPARSE, 0)] for c in found], dtype=float)
    )
    rr = 1.0 / (RRF_K + 1 + ranks)
    first, second = np.triu_indices(4, k=1)  # dense*title, dense*lead, dense*bm25, title*lead, ...
    columns = [rr[:, 0], raws[:, 0], counts[:, 0], rr[:, 1], raws[:, 1], rr[:, 2], raws[:, 2], rr[:, 3]]
    columns += [raws[:, 3], counts[:, 1]]
    return np.column_stack([*columns, raws[:, first] * raws[:, second]])


def candidates(rankings: Mapping[str, Sequence[Hit]]) -> list[Candidate]:
    """Every article in any ranking, in the order first seen (dense, then BM25, then title and lead),
    with its best passage: the first the dense ranking returned, else BM25's, else its lead."""
    found: dict[str, Candidate] = {}
    for name in (DENSE, SPARSE, TITLE, LEAD):
        seen: set[str] = set()
        for hit in rankings.get(name, ()):
            aid = hit.article_id
            c = found.get(aid)
            if c is None:
                c = found[aid] = Candidate(aid, int(hit.payload.get("chunk", 0)), {}, {}, {})
            c.passages[name] = c.passages.get(name, 0) + 1
            if aid not in seen:
                seen.add(aid)
                c.rank[name] = len(seen) - 1
                c.score[name] = hit.score
    return list(found.values())


def _scale(
    rankings: Mapping[str, Sequence[Hit]], found: Sequence[Candidate]
) -> tuple[float, dict[str, float]]:
    """The best BM25 score among the candidates and each ranking's floor (its lowest returned score)."""
    best_bm25 = max((c.score.get(SPARSE, 0.0) for c in found), default=0.0)
    return best_bm25, {name: min(h.score for h in hits) for name, hits in rankings.items() if hits}


def evidence(rankings: Mapping[str, Sequence[Hit]]) -> tuple[list[Candidate], Any]:
    """Every candidate article and the feature matrix of them all (`feature_matrix`, a row each)."""
    found = candidates(rankings)
    return found, feature_matrix(found, *_scale(rankings, found))


@lru_cache(maxsize=1)
def calibration() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(CALIBRATION.read_text(encoding="utf-8"))
    return data


def _linear(model: Mapping[str, Any], rows: Any) -> list[float]:
    """The model's score of each row of inputs."""
    import numpy as np

    z = (np.asarray(rows, dtype=float) - np.asarray(model["mean"])) / np.asarray(model["scale"])
    scores: list[float] = (z @ np.asarray(model["weights"]) + float(model.get("bias", 0.0))).tolist()
    return scores


def rescore(
    rankings: Mapping[str, Sequence[Hit]], model: Mapping[str, Any] | None = None
) -> list[tuple[float, Candidate]]:
    """The candidate articles with their scores, best first (ties in the order first seen)."""
    found, matrix = evidence(rankings)
    if not found:
        return []
    scores = _linear(model or calibration()["ranking"], matrix)
    scored = list(zip(scores, found, strict=True))
    scored.sort(key=lambda sc: -sc[0])
    return scored


def _rrf(rankings: Mapping[str, Sequence[Hit]]) -> list[tuple[float, Hit]]:
    """Plain reciprocal-rank fusion of the passages (the first stage's order, kept as a baseline)."""
    fused: dict[tuple[str, Any], list[Any]] = {}
    for hits in rankings.values():
        for r, hit in enumerate(hits):
            key = (hit.article_id, hit.payload.get("chunk"))
            entry = fused.setdefault(key, [0.0, hit])
            entry[0] += 1.0 / (RRF_K + 1 + r)
    return sorted(((float(s), h) for s, h in fused.values()), key=lambda sh: -sh[0])


def passages(
    rankings: Mapping[str, Sequence[Hit]],
    mode: SearchMode = "hybrid",
    *,
    model: Mapping[str, Any] | None = None,
    top: int | None = None,
) -> list[Passage]:
    """Distinct articles, best first (the first `top` of them; all when None), each as its best passage
    (article and number) with its raw score in every ranking."""
    order: list[tuple[float, str]]
    if mode == "hybrid":
        scored = rescore(rankings, model)
        found = {c.article_id: c for _, c in scored}
        order = [(s, c.article_id) for s, c in scored]
    else:
        found = {c.article_id: c for c in candidates(rankings)}
        if mode == "rrf":
            order = [(s, h.article_id) for s, h in _rrf(rankings)]
        else:
            name = DENSE if mode == "dense" else SPARSE
            order = [(h.score, h.article_id) for h in rankings.get(name, ())]
    out: list[Passage] = []
    taken: set[str] = set()
    for score, aid in order:
        if top is not None and len(out) >= top:
            break
        if aid in taken:
            continue
        taken.add(aid)
        out.append(_passage(found[aid], score))
    return out


def _passage(c: Candidate, score: float) -> Passage:
    """The article's scores; its title, url and text come from one lookup afterwards (`index.complete`)."""
    return Passage(
        article_id=c.article_id,
        title="",
        url="",
        text="",
        score=score,
        dense_score=c.score.get(DENSE, 0.0),
        chunk=c.chunk,
        title_score=c.score.get(TITLE, 0.0),
        lead_score=c.score.get(LEAD, 0.0),
        bm25_score=c.score.get(SPARSE, 0.0),
    )


def topic_features(found: Iterable[Passage]) -> list[float]:
    """The best dense, title and lead cosines and the best BM25 score (log) among the articles found,
    and the question's cosine to the nearest of the requests the library is not for."""
    found = list(found)
    best = [
        max((getattr(p, f) for p in found), default=0.0) for f in ("dense_score", "title_score", "lead_score")
    ]
    return [
        *best,
        math.log1p(max((p.bm25_score for p in found), default=0.0)),
        max((p.offtopic_cosine for p in found), default=0.0),
    ]


def offtopic_examples() -> list[str]:
    lines = OFFTOPIC_EXAMPLES.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


class OfftopicExamples:
    """The requests the library is not for, embedded once; `nearest` is a question's cosine to the
    closest of them (the vectors are normalised, so a dot product)."""

    def __init__(self, vectors: Sequence[Sequence[float]]):
        import numpy as np  # loaded with the embedding model anyway; not at import time

        self._matrix = np.asarray(vectors, dtype=np.float32)

    def nearest(self, vector: Sequence[float]) -> float:
        import numpy as np

        return float(np.max(self._matrix @ np.asarray(vector, dtype=np.float32)))

    def mark(self, found: Sequence[Passage], vector: Sequence[float]) -> list[Passage]:
        cosine = self.nearest(vector)
        return [replace(p, offtopic_cosine=cosine) for p in found]


def on_topic(found: Sequence[Passage], model: Mapping[str, Any] | None = None) -> float:
    """How likely the library covers the question these articles were found for (0-1, calibrated)."""
    model = model or calibration()["abstention"]
    z = _linear(model, [topic_features(found)])[0]
    return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))


# How well the library covers a question: its articles answer it, come close (the nearest articles may
# help, and the answer says what they do not cover), or do not cover it (`bot.models` uses it too).
Coverage = Literal["covered", "close", "not_covered"]


@dataclass(frozen=True)
class Topic:
    """The abstention model's reading of a question, from the articles found for it.

    - `covered`: `probability` at or above the calibrated "covered" threshold: the articles answer it.
    - `close`: between the "close" and "covered" thresholds: a close call. The articles come near and
      may help; the reply says plainly what they do not cover.
    - `not_covered`: below "close": the library does not cover it.
    `far` (only ever with `not_covered`): below the "far" threshold too, well below the close band: far
    from every article, an off-topic request rather than a topic the library lacks, so no nearest
    articles are worth listing and it is no candidate for a new article."""

    coverage: Coverage
    probability: float
    far: bool = False


def judge(found: Sequence[Passage], model: Mapping[str, Any] | None = None) -> Topic:
    """Covered, a close call or not covered, from the calibrated thresholds of the abstention model."""
    model = model or calibration()["abstention"]
    if not found:
        return Topic("not_covered", 0.0, far=True)
    p = on_topic(found, model)
    if p >= float(model["covered"]):
        return Topic("covered", p)
    if p >= float(model["close"]):
        return Topic("close", p)
    return Topic("not_covered", p, far=p < float(model["far"]))


def written_answer(found: Sequence[Passage], source: str = "aisafety.info") -> Passage | None:
    """The best article when the question is essentially its title (an aisafety.info question, whose
    answer the site's editors wrote): its title cosine at or above the calibrated threshold."""
    if not found or found[0].source != source:
        return None
    threshold = float(calibration()["written_answer"]["title_cosine"])
    return found[0] if found[0].title_score >= threshold else None
