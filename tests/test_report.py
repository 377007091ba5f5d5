from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from bot.feedback import FeedbackStore
from bot.models import Answer, Source
from bot.report import build_report, render
from retrieval.embeddings import FastEmbedder

ORTHO = Source(
    1, "aisafety.info:6568", "What is the orthogonality thesis?", "https://aisafety.info/questions/6568/x"
)
MESA = Source(1, "aisafety.info:8160", "What are mesa-optimizers?", "https://aisafety.info/questions/8160/y")
ARTICLES = {s.id: (s.title, s.url) for s in (ORTHO, MESA)} | {
    "aisafety.info:1": ("Never used", "https://aisafety.info/q/1")
}


def test_report_on_a_scripted_history(tmp_path: Path, embedder: FastEmbedder) -> None:
    store = FeedbackStore(tmp_path / "f.sqlite3")
    for q in (
        "what is the orthogonality thesis?",
        "What's the orthogonality thesis?",
        "what is the orthogonality thesis",
    ):
        store.record_answer(
            platform="discord", place="c", asker="u", question=q, answer=Answer("Indep [1].", (ORTHO,), "llm")
        )
    bad = store.record_answer(
        platform="slack",
        place="c",
        asker="u",
        question="what is a mesa optimizer",
        answer=Answer("Inner [1].", (MESA,), "llm"),
    )
    store.record_vote(bad, voter="u1", vote="down")
    for q in ("best pancake recipe?", "how do I make pancakes"):
        store.record_answer(
            platform="slack", place="c", asker="u", question=q, answer=Answer("no", (), "abstain")
        )
    rows = store.since(30)
    store.close()

    report = build_report(rows, embed=embedder.embed_dense_only, articles=ARTICLES, since_days=30)
    assert report["answers"] == 6 and report["by_outcome"] == {"llm": 4, "abstain": 2}
    top = report["most_asked"][0]
    assert top["count"] == 3 and "orthogonality" in top["question"]
    assert sum(g["count"] for g in report["abstained"]) == 2 and all(
        "pancake" in g["question"] for g in report["abstained"]
    )
    assert (
        report["downvoted"][0]["question"] == "what is a mesa optimizer"
        and report["downvoted"][0]["sources"][0]["id"] == MESA.id
    )
    assert [(a["id"], a["count"]) for a in report["most_cited"]] == [(ORTHO.id, 3), (MESA.id, 1)]
    assert [a["id"] for a in report["never_cited"]] == ["aisafety.info:1"]

    md = render(report, "md")
    assert "## Most asked" in md and "- 3× " in md and "[Never used](https://aisafety.info/q/1)" in md
    assert json.loads(render(report, "json"))["most_cited"][0]["count"] == 3
    table = list(csv.DictReader(io.StringIO(render(report, "csv"))))
    assert {r["section"] for r in table} == {
        "most_asked",
        "abstained",
        "downvoted",
        "most_cited",
        "never_cited",
    }
