"""The second stage of a search and the calibrated decisions read from it (retrieval/rescoring.py)."""

from __future__ import annotations

import json
import math

import pytest

from retrieval import rescoring
from retrieval.documents import Passage
from retrieval.rescoring import ABSENT_RANK, RANK_FEATURES, TOPIC_FEATURES, Hit


def _hit(article: str, score: float, chunk: int = 0, source: str = "aisafety.info") -> Hit:
    return Hit(
        score,
        {
            "article_id": article,
            "chunk": chunk,
            "title": article.upper(),
            "url": f"https://e.org/{article}",
            "text": f"text {chunk}",
            "source": source,
        },
    )


RANKINGS = {
    "dense": [_hit("a", 0.62, 3), _hit("b", 0.60, 1), _hit("a", 0.55, 4)],
    "title": [_hit("b", 0.81), _hit("a", 0.40)],
    "lead": [_hit("b", 0.50)],
    "bm25": [_hit("c", 9.0, 2), _hit("b", 4.5, 1)],
}


def test_every_candidate_carries_its_evidence_from_every_ranking() -> None:
    found = {c.article_id: c for c in rescoring.candidates(RANKINGS)}
    assert set(found) == {"a", "b", "c"}
    a, b, c = found["a"], found["b"], found["c"]
    assert a.chunk == 3  # the best passage: the dense ranking's first of the article
    assert c.chunk == 2  # only BM25 found it
    assert a.passages == {"dense": 2, "title": 1} and b.passages["bm25"] == 1
    assert b.rank == {"dense": 1, "title": 0, "lead": 0, "bm25": 1}
    features = dict(zip(RANK_FEATURES, rescoring.feature_matrix([c], best_bm25=9.0)[0], strict=True))
    assert features["dense_rr"] == 1 / (rescoring.RRF_K + 1 + ABSENT_RANK) and features["dense"] == 0.0
    assert features["bm25"] == 1.0 and features["bm25_rr"] == 1 / (rescoring.RRF_K + 1)
    assert features["bm25_passages"] == math.log1p(1)


def test_a_ranking_that_missed_an_article_gives_it_its_floor_not_zero() -> None:
    # c was not among the dense or title hits: it scored at most their lowest, not 0 (a 0 would rank a
    # near miss below articles that a ranking never considered).
    found, matrix = rescoring.evidence(RANKINGS)
    rows = {
        c.article_id: dict(zip(RANK_FEATURES, x, strict=True))
        for c, x in zip(found, matrix.tolist(), strict=True)
    }
    assert rows["c"]["dense"] == 0.55 and rows["c"]["title"] == 0.40 and rows["c"]["lead"] == 0.50
    assert rows["a"]["lead"] == 0.50 and rows["a"]["bm25"] == 4.5 / 9.0
    assert rows["b"]["dense"] == 0.60 and rows["c"]["dense_rr"] == 1 / (rescoring.RRF_K + 1 + ABSENT_RANK)
    # The rankings' agreement: products of the raw scores (BM25 relative to the best).
    assert rows["b"]["dense*title"] == pytest.approx(0.60 * 0.81) and rows["b"][
        "title*bm25"
    ] == pytest.approx(0.81 * 0.5)
    assert rows["c"]["dense*bm25"] == pytest.approx(0.55 * 1.0)


def test_the_model_orders_the_articles_and_each_passage_keeps_its_raw_scores() -> None:
    only_title = {
        "features": list(RANK_FEATURES),
        "mean": [0.0] * len(RANK_FEATURES),
        "scale": [1.0] * len(RANK_FEATURES),
        "weights": [0.0] * len(RANK_FEATURES),
    }
    only_title["weights"][RANK_FEATURES.index("title")] = 1.0
    ranked = rescoring.passages(RANKINGS, model=only_title)
    assert [p.article_id for p in ranked] == ["b", "a", "c"]
    b = ranked[0]
    assert (b.dense_score, b.title_score, b.lead_score, b.bm25_score) == (0.60, 0.81, 0.50, 4.5)
    assert [p.article_id for p in rescoring.passages(RANKINGS, "dense")] == ["a", "b"]
    assert [p.article_id for p in rescoring.passages(RANKINGS, "sparse")] == ["c", "b"]
    assert rescoring.passages(RANKINGS, "rrf")[0].article_id == "b"  # first in two rankings
    # Only the articles asked for are built, the same as the head of the whole list.
    assert [p.article_id for p in rescoring.passages(RANKINGS, model=only_title, top=2)] == ["b", "a"]
    assert rescoring.passages(RANKINGS, "dense", top=0) == []
    assert rescoring.passages({}, top=5) == [] and rescoring.rescore({}) == []


def test_the_feature_matrix_is_every_candidate_s_features() -> None:
    found = rescoring.candidates(RANKINGS)
    floor = {"dense": 0.55, "title": 0.40, "lead": 0.50, "bm25": 4.5}
    matrix = rescoring.feature_matrix(found, 9.0, floor)
    assert matrix.shape == (3, len(RANK_FEATURES))
    for row, c in zip(matrix.tolist(), found, strict=True):
        by_name = dict(zip(RANK_FEATURES, row, strict=True))
        raw = {r: c.score.get(r, floor[r]) for r in ("dense", "title", "lead", "bm25")}
        raw["bm25"] /= 9.0
        assert by_name["dense*bm25"] == pytest.approx(raw["dense"] * raw["bm25"])
        assert by_name["title*lead"] == pytest.approx(raw["title"] * raw["lead"])
        assert by_name["lead_rr"] == pytest.approx(
            1 / (rescoring.RRF_K + 1 + c.rank.get("lead", ABSENT_RANK))
        )
        assert by_name["bm25_passages"] == pytest.approx(math.log1p(c.passages.get("bm25", 0)))
    assert rescoring.feature_matrix([], 0.0).shape == (0, len(RANK_FEATURES))


def _passage(dense: float, title: float, lead: float, bm25: float, source: str = "aisafety.info") -> Passage:
    return Passage(
        "x",
        "X",
        "https://e.org/x",
        "t",
        0.0,
        dense,
        source,
        title_score=title,
        lead_score=lead,
        bm25_score=bm25,
    )


def test_the_topic_decision_rises_with_the_evidence_and_needs_some() -> None:
    weak = [_passage(0.2, 0.15, 0.2, 2.0)]
    strong = [_passage(0.7, 0.8, 0.6, 20.0)]
    assert rescoring.on_topic(weak) < rescoring.on_topic(strong)
    assert rescoring.judge(weak).coverage != "covered" and rescoring.judge(strong).coverage == "covered"
    assert rescoring.judge([]).coverage != "covered"
    assert rescoring.topic_features(weak + strong) == [0.7, 0.8, 0.6, math.log1p(20.0), 0.0]


def test_a_written_answer_leads_only_for_an_aisafety_info_question_matched_by_its_title() -> None:
    threshold = rescoring.calibration()["written_answer"]["title_cosine"]
    assert rescoring.written_answer([_passage(0.7, threshold + 0.01, 0.6, 9.0)]) is not None
    assert rescoring.written_answer([_passage(0.7, threshold - 0.01, 0.6, 9.0)]) is None
    assert rescoring.written_answer([_passage(0.7, 0.99, 0.6, 9.0, source="ai-safety-atlas")]) is None
    assert rescoring.written_answer([]) is None


def test_the_calibration_file_matches_the_features_the_code_computes() -> None:
    data = json.loads(rescoring.CALIBRATION.read_text(encoding="utf-8"))
    assert data["ranking"]["features"] == list(RANK_FEATURES)
    assert data["abstention"]["features"] == list(TOPIC_FEATURES)
    for model in (data["ranking"], data["abstention"]):
        assert len(model["mean"]) == len(model["scale"]) == len(model["weights"]) == len(model["features"])
    a = data["abstention"]
    assert 0 <= a["far"] <= a["close"] <= a["covered"] < 1 and 0 < data["written_answer"]["title_cosine"] <= 1


def test_results_get_their_passages_payload_from_one_lookup() -> None:
    from retrieval.index import complete

    asked: list[list[tuple[str, int]]] = []

    def payloads(keys: list[tuple[str, int]]) -> dict[tuple[str, int], dict[str, object]]:
        asked.append(list(keys))
        return {
            (a, c): {"title": a.upper(), "url": f"https://e.org/{a}", "text": f"passage {c} of {a}"}
            for a, c in keys
        }

    found = [Passage("y", "", "", "", 0.7, 0.5, chunk=4), Passage("z", "", "", "", 0.6, 0.4)]
    filled = complete(found, payloads)
    assert [(p.title, p.url, p.text) for p in filled] == [
        ("Y", "https://e.org/y", "passage 4 of y"),
        ("Z", "https://e.org/z", "passage 0 of z"),
    ]
    assert asked == [[("y", 4), ("z", 0)]] and [p.score for p in filled] == [0.7, 0.6]
    assert complete([], payloads) == [] and len(asked) == 1  # nothing found: no lookup


def test_the_nearest_request_the_library_is_not_for_is_measured_on_every_result() -> None:
    examples = rescoring.OfftopicExamples([[1.0, 0.0], [0.0, 1.0]])
    assert examples.nearest([0.6, 0.8]) == pytest.approx(0.8)
    marked = examples.mark([_passage(0.5, 0.5, 0.5, 3.0)] * 2, [1.0, 0.0])
    assert [p.offtopic_cosine for p in marked] == [1.0, 1.0]
    assert rescoring.topic_features(marked)[-1] == 1.0
    texts = rescoring.offtopic_examples()
    assert len(texts) >= 100 and not any(t.startswith("#") for t in texts)
    # Written apart from the evaluation set, so that set measures them fairly.
    from tests.conftest import ROOT

    evaluation = {
        json.loads(line)["q"].lower()
        for line in (ROOT / "benchmarks" / "data" / "offtopic.jsonl").read_text(encoding="utf-8").splitlines()
    }
    assert not evaluation & {t.lower() for t in texts}
