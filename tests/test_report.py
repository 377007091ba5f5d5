from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path

from bot.models import Answer, Source
from retrieval.embeddings import FastEmbedder
from service.feedback import FeedbackStore
from service.report import TABLES, build_report, render, table_csv

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
            platform="discord",
            community="discord:1",
            place="c",
            asker="u",
            question=q,
            answer=Answer("Indep [1].", (ORTHO,), "llm"),
        )
    bad = store.record_answer(
        platform="slack",
        community="slack:1",
        place="c",
        asker="u",
        question="what is a mesa optimizer",
        answer=Answer("Inner [1].", (MESA,), "llm"),
    )
    store.record_vote(bad, voter="u1", vote="down")
    for q in ("best pancake recipe?", "how do I make pancakes"):
        store.record_answer(
            platform="slack",
            community="slack:1",
            place="c",
            asker="u",
            question=q,
            answer=Answer("no", (), "abstain"),
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
        "to_write",
        "most_cited",
        "never_cited",
    }


DAY = 86400.0
NOW = time.time() // DAY * DAY + 3600  # 01:00 UTC today
TODAY, YESTERDAY = (time.strftime("%Y-%m-%d", time.gmtime(NOW - d * DAY)) for d in (0, 1))


def _history(tmp_path: Path, *, store_questions: bool = True) -> FeedbackStore:
    """Answers over three days: two llm today, one abstain and one error yesterday, one older than the
    period; a 👎 on a mesa-optimizer answer and two questions the library did not cover."""
    store = FeedbackStore(tmp_path / "f.sqlite3", store_questions=store_questions)
    script = [
        (NOW - 60, "what is the orthogonality thesis?", Answer("Indep [1].", (ORTHO,), "llm")),
        (NOW - 120, "whats a mesa optimizer", Answer("Inner [1].", (MESA,), "llm")),
        (NOW - DAY, "how do I bake sourdough bread", Answer("no", (), "abstain")),
        (NOW - DAY - 5, "what is the orthogonality thesis", Answer("", (ORTHO,), "error")),
        (NOW - 9 * DAY, "what is the orthogonality thesis??", Answer("Indep [1].", (ORTHO,), "llm")),
    ]
    ids = []
    for at, q, a in script:
        ids.append(
            store.record_answer(
                platform="slack", community="slack:1", place="c", asker="u", question=q, answer=a
            )
        )
        with store._transaction() as db:
            store._execute(db, "UPDATE answers SET created = ? WHERE id = ?", (at, ids[-1]))
    store.record_vote(ids[1], voter="u1", vote="down")
    return store


def test_the_report_counts_each_day_by_outcome_and_lists_the_topics_to_write(
    tmp_path: Path, embedder: FastEmbedder
) -> None:
    store = _history(tmp_path)
    rows = [r for r in store.since(30) if r.created >= NOW - 7 * DAY]
    store.close()
    report = build_report(
        rows, embed=embedder.embed_dense_only, articles=ARTICLES, since_days=7, now=NOW, community="slack:1"
    )
    days = {d["day"]: d for d in report["by_day"]}
    assert len(days) == 7 and days[TODAY] == {
        "day": TODAY,
        "llm": 2,
        "retrieval-only": 0,
        "abstain": 0,
        "error": 0,
    }
    assert days[YESTERDAY]["abstain"] == 1 and days[YESTERDAY]["error"] == 1
    assert sum(d["llm"] for d in report["by_day"]) == 2
    assert [(g["question"], g["abstained"], g["downvoted"]) for g in report["to_write"]] == [
        ("how do I bake sourdough bread", 1, 0),
        ("whats a mesa optimizer", 0, 1),
    ]
    table = list(csv.reader(io.StringIO(table_csv(report, "to_write"))))
    assert table[0][:6] == ["count", "not_covered", "close_calls", "downvoted", "question", "examples"]
    assert len(table) == 3
    for name in TABLES:  # every table downloads with its header
        assert table_csv(report, name).splitlines()[0] == ",".join(TABLES[name][0])


def test_without_stored_questions_the_report_keeps_counts_and_sources_only(
    tmp_path: Path, embedder: FastEmbedder
) -> None:
    store = _history(tmp_path, store_questions=False)
    rows = store.since(30)
    store.close()
    report = build_report(
        rows,
        embed=embedder.embed_dense_only,
        articles=ARTICLES,
        since_days=30,
        questions_stored=False,
        now=NOW,
        community="slack:1",
    )
    assert report["answers"] == 5 and report["by_outcome"] == {"llm": 3, "abstain": 1, "error": 1}
    assert report["most_asked"] == report["abstained"] == report["to_write"] == []
    assert report["downvoted"] == [
        {
            "question": "",
            "answer": "",
            "down": 1,
            "up": 0,
            "sources": [dict(n=1, id=MESA.id, title=MESA.title, url=MESA.url)],
            "asked": NOW - 120,
            "where": "",
            "coverage": "covered",
        }
    ]
    assert report["most_cited"][0]["id"] == ORTHO.id


def test_a_question_that_looks_like_a_formula_stays_text_in_the_csv(embedder: FastEmbedder) -> None:
    from service.feedback import FeedbackRow

    row = FeedbackRow(
        1,
        "slack",
        "c",
        "u",
        '=HYPERLINK("http://evil.example","click")',
        "",
        "abstain",
        [],
        0,
        0,
        NOW,
        "slack:1",
    )
    report = build_report(
        [row], embed=embedder.embed_dense_only, articles={}, since_days=1, now=NOW, community="slack:1"
    )
    cells = list(csv.reader(io.StringIO(table_csv(report, "abstained"))))[1]
    assert cells[1].startswith("'=HYPERLINK")


def test_an_unknown_report_table_gets_one_line_that_names_the_tables(tmp_path: Path) -> None:
    from tests.conftest import cli, home_env

    done = cli(home_env(tmp_path), "report", "--table", "nope")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "there is no report table 'nope': use one of by_day, most_asked" in done.stderr


def _library_store(tmp_path: Path) -> FeedbackStore:
    """A library synced twice: a week ago (two changes, one with a hostile title and address) and today;
    one change older than the week."""
    from retrieval.documents import ArticleChange

    store = FeedbackStore(tmp_path / "f.sqlite3")
    store.record_library_sync(
        "changed",
        [ArticleChange("atlas:1", "Old news", "https://ai-safety-atlas.com/1", "changed")],
        articles=2,
        when=NOW - 30 * DAY,
    )
    store.record_library_sync(
        "changed",
        [
            ArticleChange(
                "aisafety.info:1",
                "=Bad [title](https://evil.example) *x*",
                "https://aisafety.info/questions/1/a)b c",
                "added",
            ),
            ArticleChange("x:2", "Not a web page", "javascript:alert(1)", "removed"),
        ],
        articles=3,
        when=NOW - 6 * DAY,
    )
    store.record_library_sync("unchanged", articles=3, when=NOW - 60)
    return store


def test_the_library_section_in_every_format(tmp_path: Path) -> None:
    from service.report import library_section
    from tests.test_admin import toy_embed

    store = _library_store(tmp_path)
    library = library_section(store, 7, 3, now=NOW)
    assert library["articles"] == 3 and library["last_sync"] == NOW - 60
    assert [(c["id"], c["change"]) for c in library["changes"]] == [
        ("aisafety.info:1", "added"),
        ("x:2", "removed"),
    ]
    report = build_report(
        store.since(7),
        embed=toy_embed,
        articles={},
        since_days=7,
        now=NOW,
        community="slack:1",
        library=library,
    )
    store.close()
    assert json.loads(render(report, "json"))["library"] == library

    md = render(report, "md")
    assert "## The library" in md
    assert f"3 articles; last synced: {time.strftime('%Y-%m-%d %H:%M', time.gmtime(NOW - 60))} UTC." in md
    # A title and an address from the library cannot make a link of their own or end the link early.
    assert (
        "added: [=Bad \\[title\\]\\(https://evil.example\\) \\*x\\*](https://aisafety.info/questions/1/a%29b%20c)"
        in md
    )
    assert "removed: Not a web page\n" in md and "javascript:" not in md

    rows = list(csv.DictReader(io.StringIO(render(report, "csv"))))
    assert [(r["section"], r["id"], r["change"]) for r in rows] == [
        ("library", "aisafety.info:1", "added"),
        ("library", "x:2", "removed"),
    ]
    assert rows[0]["question_or_title"].startswith("'=Bad")  # text, never a formula
    assert rows[0]["time"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(NOW - 6 * DAY))
    table = list(csv.reader(io.StringIO(table_csv(report, "library"))))
    assert table[0] == ["time", "change", "id", "title", "url"] and len(table) == 3
    assert table[2][1:] == ["removed", "x:2", "Not a web page", "javascript:alert(1)"]


def test_a_library_never_synced_and_a_report_without_the_library(tmp_path: Path) -> None:
    from service.report import library_section
    from tests.test_admin import toy_embed

    store = FeedbackStore(tmp_path / "f.sqlite3")
    library = library_section(store, 7, 0, now=NOW)
    store.close()
    assert library == {"articles": 0, "last_sync": None, "changes": []}
    with_it = build_report([], embed=toy_embed, articles={}, since_days=7, now=NOW, library=library)
    assert "0 articles; last synced: never." in render(with_it, "md")
    without = build_report([], embed=toy_embed, articles={}, since_days=7, now=NOW)
    assert "library" not in without and "## The library" not in render(without, "md")
    assert table_csv(without, "library").splitlines() == ["time,change,id,title,url"]


def test_a_members_question_in_the_markdown_report_is_text_not_a_link() -> None:
    from service.feedback import FeedbackRow
    from tests.test_admin import toy_embed

    row = FeedbackRow(
        1,
        "slack",
        "c",
        "u",
        "[free money](https://evil.example) <b>now</b>",
        "",
        "abstain",
        [],
        0,
        0,
        NOW,
        "slack:1",
    )
    md = render(build_report([row], embed=toy_embed, articles={}, since_days=1, now=NOW), "md")
    assert "\\[free money\\]\\(https://evil.example\\) \\<\u200bb\\>now\\<\u200b/b\\>" in md
    assert "[free money](" not in md and "](" not in md and "<b" not in md


# What members could ask to make a spreadsheet run something when a moderator opens the report's CSV.
FORMULAS = (
    '=HYPERLINK("http://x")',
    "+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(A1)",
    "\t=1+1 with a leading tab",
    "\r=1+1 with a leading carriage return",
    "  =1+1 after spaces",
    "＝1+1 in full width",
)


def _runs_in_a_spreadsheet(cell: str) -> bool:
    return cell[:1] in ("\t", "\r", "\n") or cell.lstrip(" \t\r\n").startswith(tuple("=+-@＝＋－＠"))


def test_every_csv_cell_that_could_be_a_formula_is_text() -> None:
    from service.report import csv_cell, write_csv

    for formula in FORMULAS:
        assert csv_cell(formula) == "'" + formula, formula
    assert [csv_cell(v) for v in ("what is AI safety?", "", 3, -2, "a=b", "'quoted")] == [
        "what is AI safety?",
        "",
        3,
        -2,
        "a=b",
        "'quoted",
    ]
    rows = list(csv.reader(io.StringIO(write_csv(["=header"], [[f] for f in FORMULAS]), newline="")))
    assert not [cell for row in rows for cell in row if _runs_in_a_spreadsheet(cell)]


def test_the_report_commands_csv_escapes_members_formulas(tmp_path: Path, model_env: dict[str, str]) -> None:
    """`aisafety-bot report --format csv` and `--table NAME`, as a moderator runs them."""
    from tests.conftest import cli, home_env

    store = FeedbackStore(tmp_path / "feedback.sqlite3")
    for question in FORMULAS:
        bad = store.record_answer(
            platform="slack",
            community="slack:T1",
            place="c",
            asker="u",
            question=question,
            answer=Answer("no", (), "abstain"),
        )
        store.record_vote(bad, voter="v", vote="down")
    store.close()
    env = home_env(tmp_path, **model_env)
    outputs = {"--format csv": cli(env, "report", "--format", "csv")}
    for table in ("most_asked", "abstained", "to_write", "downvoted"):
        outputs[table] = cli(env, "report", "--table", table)
    for name, done in outputs.items():
        assert done.returncode == 0, (name, done.stderr)
        cells = [cell for row in csv.reader(io.StringIO(done.stdout, newline="")) for cell in row]
        assert any("HYPERLINK" in c for c in cells) and any("calc" in c for c in cells), name
        assert [c for c in cells if _runs_in_a_spreadsheet(c)] == [], name
