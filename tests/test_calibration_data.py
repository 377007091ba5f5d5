"""The project's own evaluation sets are well formed, large and varied enough to calibrate on."""

from __future__ import annotations

import json
from collections import Counter

from bot.evaluate import load_eval
from tests.conftest import ROOT, need_corpus

DATA = ROOT / "benchmarks" / "data"


def test_offtopic_set() -> None:
    items = load_eval(DATA / "offtopic.jsonl")
    assert len(items) >= 200 and all(not i.relevant for i in items)
    kinds = Counter(i.kind for i in items)
    assert len(kinds) >= 10 and kinds["injection"] >= 20 and min(kinds.values()) >= 5
    assert len({i.question.lower() for i in items}) == len(items)  # no duplicates


def test_ontopic_set_is_varied_and_apart_from_the_eval_files() -> None:
    items = load_eval(DATA / "ontopic.jsonl")
    assert len(items) >= 200 and all(i.relevant for i in items)
    kinds = Counter(i.kind for i in items)
    assert {"paraphrase", "skeptic", "howto", "concept"} <= set(kinds) and min(kinds.values()) >= 20
    assert len({i.question.lower() for i in items}) == len(items)
    assert sum(len(i.question.split()) >= 12 for i in items) >= 40  # chatty ones too, not only titles
    # Written for the project: no question copies one of the library's titles or of the check sets.
    own = {i.question.lower().strip(" ?") for i in items}
    corpus = need_corpus()
    titles = {
        json.loads(line)["title"].lower().strip(" ?")
        for line in (corpus / "aisafety.info.jsonl").read_text(encoding="utf-8").splitlines()
        if line.strip()
    }
    dev = {i.question.lower().strip(" ?") for i in load_eval(corpus.parent / "eval" / "dev.jsonl")}
    assert own.isdisjoint(titles) and own.isdisjoint(dev)


def test_answerable_sets_point_at_real_articles() -> None:
    items = load_eval(DATA / "jargon.jsonl") + load_eval(DATA / "ontopic.jsonl")
    assert all(i.relevant for i in items)
    corpus = need_corpus()
    ids = {
        json.loads(line)["id"]
        for name in ("aisafety.info.jsonl", "ai-safety-atlas.jsonl", "distill.jsonl")
        for line in (corpus / name).read_text(encoding="utf-8").splitlines()
        if line.strip()
    }
    missing = sorted({a for i in items for a in i.relevant} - ids)
    assert missing == []
