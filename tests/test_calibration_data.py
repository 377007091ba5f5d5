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


def test_jargon_set_points_at_real_articles() -> None:
    items = load_eval(DATA / "jargon.jsonl")
    assert len(items) >= 30 and all(i.relevant for i in items)
    corpus = need_corpus()
    ids = {
        json.loads(line)["id"]
        for name in ("aisafety.info.jsonl", "ai-safety-atlas.jsonl", "distill.jsonl")
        for line in (corpus / name).read_text(encoding="utf-8").splitlines()
        if line.strip()
    }
    missing = sorted({a for i in items for a in i.relevant} - ids)
    assert missing == []
