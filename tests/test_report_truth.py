"""The report tells the truth (issue 24, point 5): every shown source counts, long tables are cut on the
page and in Markdown but complete in CSV and JSON, off-topic questions have their own table and never
reach "questions to write", wordings of one question group together, a 👎 row shows its answer, each
question says when and where it was asked, the previous period is beside this one, a topic can be marked
written (the command, the page), and an empty report says where answers come from."""

from __future__ import annotations

import csv
import io
import json
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from bot.models import Answer, Source
from retrieval.embeddings import FastEmbedder
from service.admin import add_admin_routes, render_page
from service.feedback import FeedbackStore
from service.report import (
    SHOWN,
    TABLES,
    build_report,
    clusters,
    embed_questions,
    render,
    stored_report,
    table_csv,
)
from tests.conftest import need_corpus
from tests.test_admin import TOKEN, _get, serve, toy_embed
from tests.test_report import _runs_in_a_spreadsheet

DAY = 86400.0
NOW = time.time()
ORTHO = Source(1, "aisafety.info:6568", "What is the orthogonality thesis?", "https://aisafety.info/q/6568")
MESA = Source(2, "aisafety.info:8160", "What are mesa-optimizers?", "https://aisafety.info/q/8160")
ARTICLES = {s.id: (s.title, s.url) for s in (ORTHO, MESA)} | {
    "aisafety.info:1": ("Never shown", "https://aisafety.info/q/1")
}


def _put(
    store: FeedbackStore,
    question: str,
    answer: Answer,
    *,
    at: float = NOW - 60,
    community: str = "slack:T1",
    place_name: str = "",
    down: bool = False,
) -> int:
    answer_id = store.record_answer(
        platform="slack",
        community=community,
        place="slack:C1",
        asker="u",
        question=question,
        answer=answer,
        place_name=place_name,
    )
    with store._transaction() as db:
        store._execute(db, "UPDATE answers SET created = ? WHERE id = ?", (at, answer_id))
    if down:
        store.record_vote(answer_id, voter="v", vote="down")
    return answer_id


def _report(store: FeedbackStore, *, days: float = 7, community: str | None = "slack:T1") -> dict[str, Any]:
    return stored_report(
        store, embed=toy_embed, articles=ARTICLES, since_days=days, community=community, now=NOW
    )


def test_every_shown_source_counts_and_llm_citations_have_their_own_column(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "f.sqlite3")
    _put(store, "what is the orthogonality thesis", Answer("x [1]", (ORTHO,), "llm"))
    for n in range(3):  # without an LLM: the sources are shown, no answer cites them
        _put(store, f"orthogonality question {n}", Answer("", (ORTHO, MESA), "retrieval-only"))
    report = _report(store)
    store.close()
    assert [(a["id"], a["count"], a["llm_cited"]) for a in report["most_cited"]] == [
        (ORTHO.id, 4, 1),
        (MESA.id, 3, 0),
    ]
    assert [a["id"] for a in report["never_cited"]] == ["aisafety.info:1"]
    table = list(csv.reader(io.StringIO(table_csv(report, "most_cited"))))
    assert table[0] == ["count", "llm_cited", "id", "title", "url"] and table[1][:3] == ["4", "1", ORTHO.id]
    md = render(report, "md")
    assert "- 4× [What is the orthogonality thesis?](https://aisafety.info/q/6568) (1 cited)" in md
    page = render_page(report, 7)
    assert "No answer showed an article" not in page and "<td>4</td><td>1</td>" in page


def test_the_page_and_markdown_show_twenty_rows_and_the_csv_and_json_every_row(tmp_path: Path) -> None:
    articles = {f"x:{n:02d}": (f"Article {n}", f"https://example.org/{n}") for n in range(45)}
    store = FeedbackStore(tmp_path / "f.sqlite3")
    words = [f"zq{n}x" for n in range(30)]  # 30 questions with nothing in common
    for w in words:
        _put(store, f"{w} {w}{w}", Answer("no", (), "abstain"))
    report = stored_report(
        store, embed=toy_embed, articles=articles, since_days=7, community="slack:T1", now=NOW
    )
    store.close()
    assert len(report["abstained"]) == 30 and len(report["never_cited"]) == 45  # JSON: complete
    assert len(json.loads(render(report, "json"))["never_cited"]) == 45
    md = render(report, "md")
    assert md.count("https://example.org/") == SHOWN
    assert (
        "- …and 25 more: `aisafety-bot report --since 7 --community slack:T1 --table never_cited` (CSV)" in md
    )
    assert (
        "- …and 10 more: `aisafety-bot report --since 7 --community slack:T1 --table abstained` (CSV)" in md
    )
    for table, rows in (("never_cited", 45), ("abstained", 30), ("most_asked", 30)):
        assert len(list(csv.reader(io.StringIO(table_csv(report, table))))) == rows + 1, table
    page = render_page(report, 7)
    never = page[page.index('id="never_cited"') :]
    never = never[: never.index("</section>")]
    assert never.count("https://example.org/") == SHOWN
    assert (
        '<p class="more">25 more in the <a href="/admin/csv/never_cited.csv?days=7&amp;community=slack:T1" '
        "download>CSV</a>.</p>" in never
    )


def test_off_topic_questions_have_their_table_and_close_calls_are_questions_to_write(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "f.sqlite3")
    _put(store, "what's the best pizza topping", Answer("no", (), "abstain", offtopic=True))
    _put(
        store,
        "write me a poem about cats",
        Answer("no", (), "abstain", coverage="not_covered", offtopic=True),
    )
    _put(store, "how do quantilizers limit optimisation", Answer("no", (), "abstain", coverage="not_covered"))
    _put(store, "what is gradient hacking", Answer("close [1]", (MESA,), "llm", coverage="close"))
    _put(store, "is mesa optimization real", Answer("y [1]", (MESA,), "llm"), down=True)
    report = _report(store)
    store.close()
    off = {g["question"] for g in report["offtopic"]}
    assert off == {"what's the best pizza topping", "write me a poem about cats"}
    for table in ("to_write", "abstained"):
        assert not off & {g["question"] for g in report[table]}, table
    kinds = {g["question"]: (g["abstained"], g["close"], g["downvoted"]) for g in report["to_write"]}
    assert kinds == {
        "how do quantilizers limit optimisation": (1, 0, 0),
        "what is gradient hacking": (0, 1, 0),
        "is mesa optimization real": (0, 0, 1),
    }
    assert report["off_topic"] == 2 and report["close_calls"] == 1
    md = render(report, "md")
    assert "## Off-topic" in md and "1 close call" in md
    page = render_page(report, 7)
    assert 'id="offtopic"' in page and "close calls" in page
    assert "/admin/csv/offtopic.csv" in page and "offtopic" in TABLES
    # The close call's row in "to write", its count under "close calls" (not covered, close calls, voted down).
    to_write = page.split('<section id="to_write">', 1)[1].split("</section>", 1)[0]
    assert "<th>close calls</th>" in to_write
    assert re.search(r"<td>0</td><td>1</td><td>0</td><td>what is gradient hacking", to_write), to_write


def test_a_voted_down_answer_shows_its_text_and_each_question_when_and_where(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "f.sqlite3")
    at = NOW - 3 * DAY
    _put(
        store,
        "whats a mesa optimizer",
        Answer("A <b>learned</b> optimizer [1].", (MESA,), "llm", coverage="close"),
        at=at,
        place_name="ai-safety",
        down=True,
    )
    report = _report(store)
    store.close()
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(at))
    (d,) = report["downvoted"]
    assert (d["answer"], d["where"], d["asked"]) == ("A <b>learned</b> optimizer [1].", "#ai-safety", at)
    assert report["most_asked"][0]["where"] == ["#ai-safety"] and report["most_asked"][0]["asked"] == at
    md = render(report, "md")
    assert f"(asked {when} in \\#ai-safety, close call; sources: [What are mesa-optimizers?]" in md
    assert "  - answer: A \\<\u200bb\\>learned\\<\u200b/b\\> optimizer \\[1\\]." in md
    page = render_page(report, 7)
    assert '<div class="answer">A &lt;b&gt;learned&lt;/b&gt; optimizer [1].</div>' in page
    assert f"<td>{when}</td><td>#ai-safety</td>" in page
    row = next(iter(csv.DictReader(io.StringIO(table_csv(report, "downvoted")))))
    assert row["answer"].startswith("A <b>") and row["where"] == "#ai-safety" and row["coverage"] == "close"


def test_without_stored_questions_no_channel_name_or_answer_is_kept(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "f.sqlite3", store_questions=False)
    _put(
        store,
        "secret question",
        Answer("secret answer", (MESA,), "llm"),
        place_name="private-room",
        down=True,
    )
    (row,) = store.since(1)
    store.close()
    assert (row.question, row.answer, row.place_name, row.place) == ("", "", "", "")


def test_member_text_in_the_new_columns_stays_text_in_csv(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "f.sqlite3")
    _put(store, "@SUM(A1) why", Answer('=HYPERLINK("http://x")', (), "abstain"), place_name="=cmd", down=True)
    report = _report(store)
    store.close()
    cells = [
        c
        for t in ("downvoted", "to_write", "abstained")
        for r in csv.reader(io.StringIO(table_csv(report, t)))
        for c in r
    ]
    cells += [c for r in csv.reader(io.StringIO(render(report, "csv"))) for c in r]
    assert any("HYPERLINK" in c for c in cells) and any("cmd" in c for c in cells)
    assert not [c for c in cells if _runs_in_a_spreadsheet(c)]


def test_the_previous_period_is_beside_this_one(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "f.sqlite3")
    for n in range(3):  # this week: the same question three times, twice not covered
        _put(store, "what is a quantilizer", Answer("no", (), "abstain" if n else "llm"), at=NOW - DAY - n)
    for n in range(2):  # the week before: twice
        _put(store, "what is a quantilizer", Answer("no", (), "abstain"), at=NOW - 8 * DAY - n)
    _put(store, "much older", Answer("no", (), "abstain"), at=NOW - 20 * DAY)
    report = _report(store)
    store.close()
    assert report["answers"] == 3 and report["previous"]["answers"] == 2
    assert report["previous"]["by_outcome"] == {"abstain": 2}
    assert (report["most_asked"][0]["count"], report["most_asked"][0]["previous"]) == (3, 2)
    assert (report["to_write"][0]["count"], report["to_write"][0]["previous"]) == (2, 2)
    md = render(report, "md")
    assert "3 (prev 2) answers: 1 (prev 0) llm" in md and "2 (prev 2) abstain" in md
    assert "- 3× (prev 2) what is a quantilizer" in md
    page = render_page(report, 7)
    assert '3 <span class="prev">(prev 2)</span> answers in the last 7 days' in page
    assert '<span>2</span> not covered <span class="prev">(prev 2)</span>' in page
    # Most asked and to write: the previous period's count, the UTC time and the place on each row.
    for section, count in (("most_asked", 3), ("to_write", 2)):
        body = page.split(f'<section id="{section}">', 1)[1].split("</section>", 1)[0]
        row = (
            rf'<td>{count} <span class="prev">\(prev 2\)</span></td>.*what is a quantilizer.*'
            r"<td>\d{4}-\d\d-\d\d \d\d:\d\d UTC</td><td>slack:C1</td>"
        )
        assert re.search(row, body), body


def test_a_topic_marked_written_leaves_until_it_is_asked_again(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "f.sqlite3")
    _put(store, "why can't we just turn the AI off", Answer("no", (), "abstain"), at=NOW - 3 * DAY)
    _put(store, "why cant we just turn the AI off?", Answer("no", (), "abstain"), at=NOW - 2 * DAY)
    _put(store, "what is a quantilizer", Answer("no", (), "abstain"), at=NOW - 2 * DAY)
    # The same question in another community is that community's to write.
    _put(store, "why can't we just turn the AI off", Answer("no", (), "abstain"), community="discord:9")
    store.mark_written("slack:T1", "Why can't we just turn the AI off?", at=NOW - DAY)
    report = _report(store)
    assert [g["question"] for g in report["to_write"]] == ["what is a quantilizer"]
    assert [w["question"] for w in report["written"]] == ["Why can't we just turn the AI off?"]
    assert "## Topics marked written" in render(report, "md")
    assert [g["question"] for g in _report(store, community="discord:9")["to_write"]] == [
        "why can't we just turn the AI off"
    ]
    assert _report(store, community="discord:9")["written"] == []
    # Asked again after the mark: back, saying when it was marked.
    _put(store, "why can't we just turn the AI off", Answer("no", (), "abstain"), at=NOW - 60)
    again = {g["question"]: g for g in _report(store)["to_write"]}
    assert again["why can't we just turn the AI off"]["count"] == 1
    assert again["why can't we just turn the AI off"]["written"] == NOW - DAY
    # Marks are kept as long as questions are.
    with store._transaction() as db:
        store._execute(db, "UPDATE written_topics SET created = ?", (time.time() - 40 * DAY,))
    store.purge(30)
    assert store.written_topics() == []
    store.close()


def test_a_mark_covers_the_rewordings_of_its_topic_by_meaning(tmp_path: Path, embedder: FastEmbedder) -> None:
    """With the real embedding model: a topic marked written takes the other wordings of its question
    out of "to write" with it, not a different question."""
    store = FeedbackStore(tmp_path / "f.sqlite3")
    rewordings = [
        "why can't we just switch the AI off?",
        "Why can't we simply turn an AI off?",
        "why cant we just turn off the AI",
    ]
    others = ["what is a quantilizer", "who funds AI safety research?"]
    for q in rewordings + others:
        _put(store, q, Answer("no", (), "abstain"), at=NOW - 2 * DAY)
    store.mark_written("slack:T1", "Why can't we just turn the AI off?", at=NOW - DAY)
    report = stored_report(
        store, embed=embedder.embed_dense_only, articles=ARTICLES, since_days=7, community="slack:T1", now=NOW
    )
    store.close()
    to_write = sorted(q for g in report["to_write"] for q in [g["question"], *g["variants"]])
    assert to_write == sorted(others), to_write
    assert sum(g["count"] for g in report["to_write"]) == len(others)


async def _site(store: FeedbackStore) -> AsyncIterator[str]:
    async def report(days: float, community: str | None) -> dict[str, Any]:
        return stored_report(store, embed=toy_embed, articles=ARTICLES, since_days=days, community=community)

    async def mark(community: str, question: str) -> None:
        store.mark_written(community, question)

    app = web.Application()
    add_admin_routes(app, token=TOKEN, report=report, mark_written=mark)
    async for url in serve(app):
        yield url


async def test_a_moderator_marks_a_topic_written_on_the_page(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "f.sqlite3")
    _put(store, "what is a quantilizer", Answer("no", (), "abstain"), at=time.time() - 60)
    async for url in _site(store):
        auth = {"Authorization": f"Bearer {TOKEN}"}
        status, page, _ = await _get(f"{url}/admin/?days=7&community=slack:T1", headers=auth)
        form = re.search(
            r'<form method="post" action="(/admin/written\?[^"]+)" class="mark">(.*?)</form>', page
        )
        assert status == 200 and form is not None
        action = form.group(1).replace("&amp;", "&")
        assert 'name="community" value="slack:T1"' in form.group(2)
        data = {"community": "slack:T1", "question": "what is a quantilizer"}
        async with aiohttp.ClientSession() as http:
            for headers, expected in (
                ({"Origin": url}, 401),  # not signed in
                ({**auth, "Origin": "https://evil.example"}, 403),
                ({**auth}, 403),  # no Origin or Referer
            ):
                async with http.post(url + action, data=data, headers=headers, allow_redirects=False) as r:
                    assert r.status == expected, headers
            assert store.written_topics() == []
            bad = {"community": "discord:9", "question": "x"}  # not the community shown
            async with http.post(url + action, data=bad, headers={**auth, "Origin": url}) as r:
                assert r.status == 400
            async with http.post(
                url + action, data=data, headers={**auth, "Origin": url}, allow_redirects=False
            ) as r:
                assert r.status == 303
                assert r.headers["Location"] == "/admin/?days=7&community=slack%3AT1&written=1"
        assert [(w["community"], w["question"]) for w in store.written_topics()] == [
            ("slack:T1", "what is a quantilizer")
        ]
        status, page, _ = await _get(f"{url}/admin/?days=7&community=slack:T1&written=1", headers=auth)
        to_write = page[page.index('id="to_write"') :]
        assert "quantilizer" not in to_write[: to_write.index("</section>")]
        assert "The topic was marked written" in page
    store.close()


def test_one_communitys_off_topic_and_marks_never_reach_another(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "f.sqlite3")
    _put(store, "alphaword pizza", Answer("no", (), "abstain", offtopic=True), community="discord:1")
    _put(store, "betaword pizza", Answer("no", (), "abstain", offtopic=True), community="slack:T1")
    store.mark_written("discord:1", "gammaword topic")
    store.mark_written("slack:T1", "deltaword topic")
    for community, mine, theirs in (
        ("discord:1", "alphaword", "betaword"),
        ("slack:T1", "betaword", "alphaword"),
    ):
        report = _report(store, community=community)
        own_mark = "gammaword" if community == "discord:1" else "deltaword"
        other_mark = "deltaword" if community == "discord:1" else "gammaword"
        texts = [json.dumps(report), render(report, "md"), render(report, "csv"), render_page(report, 7)]
        texts += [table_csv(report, t) for t in TABLES]
        assert all(theirs not in t and other_mark not in t for t in texts)
        assert mine in table_csv(report, "offtopic") and own_mark in table_csv(report, "written")
    everyone = _report(store, community=None)
    rows = list(csv.reader(io.StringIO(table_csv(everyone, "written"))))
    assert rows[0] == ["community", "marked", "question"] and {r[0] for r in rows[1:]} == {
        "discord:1",
        "slack:T1",
    }
    store.close()


def test_an_empty_report_says_where_answers_come_from(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "f.sqlite3")
    report = _report(store, community=None)
    store.close()
    md = render(report, "md")
    assert "the terminal chat (`aisafety-bot chat`, or `run` without a platform) stores nothing" in md
    assert "Never shown" not in md and "## Most asked" not in md and "## The library" in md
    page = render_page(report, 7)
    assert "the terminal chat" in page and 'id="never_cited"' not in page and 'id="most_asked"' not in page


def test_the_report_command_marks_a_topic_and_an_empty_report_says_so(
    tmp_path: Path, model_env: dict[str, str]
) -> None:
    from tests.conftest import cli, home_env

    env = home_env(tmp_path, **model_env)
    done = cli(env, "report")
    assert done.returncode == 0, done.stderr
    assert "stores nothing" in done.stdout and "## Articles never cited" not in done.stdout
    done = cli(env, "report", "--mark-written", "why not turn it off")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "no community has stored answers yet; give the community with --community ID" in done.stderr
    done = cli(env, "report", "--mark-written", "why not turn it off", "--community", "slack:T1")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Marked written in slack:T1: 'why not turn it off'")
    store = FeedbackStore(tmp_path / "feedback.sqlite3")
    marks = store.written_topics()
    store.close()
    assert [(m["community"], m["question"]) for m in marks] == [("slack:T1", "why not turn it off")]


@pytest.fixture(scope="module")
def wording_pairs() -> tuple[Any, list[dict[str, Any]]]:
    """The shared corpus's vocabulary, cut as ingest cuts it (`benchmarks/wordings.py`), and the
    project's wording pairs (benchmarks/data/wording_pairs.jsonl) but the described ones."""
    shared = need_corpus().parent  # before the benchmark's import, which defaults HF_HUB_OFFLINE
    from benchmarks import wordings as bench

    pairs = [p for p in bench.load() if p["kind"] != "described"]
    return bench.corpus_vocabulary(shared), pairs


def test_wordings_of_one_question_group_together_and_different_questions_do_not(
    embedder: FastEmbedder, wording_pairs: tuple[Any, list[dict[str, Any]]]
) -> None:
    """Every question of the pairs grouped at once as the report does, with the shared corpus's
    vocabulary as the running bot reads it from its index: issue 24's bar (at least 90% of same pairs
    grouped, at most 5% of different ones). Held out by topic: the next test."""
    vocabulary, pairs = wording_pairs
    same = [p for p in pairs if p["same"]]
    different = [p for p in pairs if not p["same"]]
    assert len(same) >= 100 and len(different) >= 100
    questions = sorted({q for p in pairs for q in (p["a"], p["b"])})
    vectors = embed_questions(questions, embedder.embed_dense_only, vocabulary)
    where = {questions[n]: k for k, group in enumerate(clusters(questions, vectors)) for n in group}
    grouped = sum(where[p["a"]] == where[p["b"]] for p in same) / len(same)
    wrong = sum(where[p["a"]] == where[p["b"]] for p in different) / len(different)
    assert grouped >= 0.90 and wrong <= 0.05, (grouped, wrong)


def test_wordings_held_out_by_topic_meet_the_bar(
    embedder: FastEmbedder, wording_pairs: tuple[Any, list[dict[str, Any]]]
) -> None:
    """The same bar held out: the grouping's constants chosen on four fifths of the pairs' topics and the
    fifth grouped with them (`benchmarks/wordings.py`, nested by topic), averaged over the five folds."""
    import numpy as np

    from benchmarks import wordings as bench

    vocabulary, pairs = wording_pairs
    vectors = embed_questions([q for p in pairs for q in (p["a"], p["b"])], embedder.embed_dense_only).vectors
    held = bench.held_out(vectors, vocabulary, pairs)
    grouped, wrong = float(np.mean([h[3] for h in held])), float(np.mean([h[4] for h in held]))
    assert len(held) == 5 and grouped >= 0.90 and wrong <= 0.05, held


def test_build_report_refuses_another_communitys_previous_rows(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "f.sqlite3")
    _put(store, "q", Answer("no", (), "abstain"), community="discord:1")
    rows = store.since(1)
    store.close()
    with pytest.raises(ValueError):
        build_report([], embed=toy_embed, articles={}, since_days=1, community="slack:T1", previous=rows)


async def test_the_channel_name_is_stored_where_the_client_knows_it(tmp_path: Path) -> None:
    from types import SimpleNamespace

    import discord

    from adapters.discord.client import channel_name
    from adapters.slack.app import _channel_name
    from bot.models import Question

    general = SimpleNamespace(name="general", parent=None)
    assert channel_name(general) == "general"
    assert channel_name(SimpleNamespace(name="why can't we turn it off", parent=general)) == "general"
    assert channel_name(discord.DMChannel.__new__(discord.DMChannel)) == "" and channel_name(None) == ""
    assert _channel_name({"channel_name": "ai-safety"}) == "ai-safety"
    for private in ("directmessage", "mpdm-a--b-1", "privategroup", None):
        assert _channel_name({"channel_name": private}) == ""
    store = FeedbackStore(tmp_path / "f.sqlite3")
    question = Question("q", place="slack:C1", community="slack:T1", place_name="ai-safety")
    await store.save("slack", question, Answer("a", (), "llm"))
    (row,) = store.since(1)
    store.close()
    assert row.place_name == "ai-safety"


@pytest_asyncio.fixture(scope="module")
async def asked_through_the_core(
    tmp_path_factory: pytest.TempPathFactory, embedder: FastEmbedder
) -> dict[str, Any]:
    """A sample of the project's sets asked through the real core (no language model) and stored in the
    real answers database: every 4th prompt of benchmarks/data/offtopic.jsonl, every 6th of
    ontopic.jsonl and jargon.jsonl and every 2nd near miss (nearmiss.jsonl), searched in a store of those
    questions' articles plus every 10th aisafety.info article as distractors. The whole sets on the whole
    corpus are measured by benchmarks/offtopic_table.py."""
    from bot.core import AnswerCore
    from bot.evaluate import load_eval
    from bot.models import Question
    from retrieval.edge_store import EdgeStore
    from retrieval.ingest import ingest
    from retrieval.search import HybridRetriever
    from tests.conftest import ROOT, corpus_rows, read_rows, write_jsonl

    tmp_path = tmp_path_factory.mktemp("offtopic-table")
    data = ROOT / "benchmarks" / "data"
    offtopic = [i.question for i in load_eval(data / "offtopic.jsonl")][::4]
    answerable = [
        i
        for i in (
            (load_eval(data / "ontopic.jsonl") + load_eval(data / "jargon.jsonl"))[::6]
            + load_eval(data / "nearmiss.jsonl")[::2]
        )
        if i.relevant and all(a.startswith(("aisafety.info:", "ai-safety-atlas:")) for a in i.relevant)
    ]
    distractors = [str(r["id"]) for r in read_rows("aisafety.info.jsonl")[::10]]
    ids = sorted({a for i in answerable for a in i.relevant} | set(distractors))
    source = write_jsonl(tmp_path / "articles.jsonl", corpus_rows(ids))
    store = EdgeStore(alias="offtopic", path=str(tmp_path / "qdrant"))
    feedback = FeedbackStore(tmp_path / "f.sqlite3")
    answers: dict[str, Answer] = {}
    try:
        ingest(store=store, embedder=embedder, sources=[str(source)])
        core = AnswerCore(retriever=HybridRetriever(store=store, embedder=embedder), llm=None)
        for q in [*offtopic, *(i.question for i in answerable)]:
            answers[q] = await core.answer(Question(q, community="slack:T1"))
            _put(feedback, q, answers[q])
    finally:
        store.close()
    rows = feedback.since(1)
    feedback.close()
    return {
        "offtopic": offtopic,
        "answerable": [i.question for i in answerable],
        "answers": answers,
        "rows": rows,
        "in_table": {r.question for r in rows if r.offtopic},
    }


async def test_off_topic_requests_asked_through_the_core_land_in_the_offtopic_table(
    asked_through_the_core: dict[str, Any], embedder: FastEmbedder
) -> None:
    """Issue 24: at least 90% of an off-topic set lands in the `offtopic` table (never in "questions to
    write"), and no answerable question of the sample does (of those that abstain: below)."""
    from service.report import to_write_candidate

    asked = asked_through_the_core
    offtopic, answerable, rows, in_table = (
        asked["offtopic"],
        asked["answerable"],
        asked["rows"],
        asked["in_table"],
    )
    assert len(offtopic) == 50 and len(answerable) >= 70, (len(offtopic), len(answerable))
    report = build_report(
        rows, embed=embedder.embed_dense_only, articles={}, since_days=1, community="slack:T1"
    )
    assert sum(g["count"] for g in report["offtopic"]) == len([r for r in rows if r.offtopic])
    to_write = {r.question for r in rows if to_write_candidate(r)}
    landed = sum(q in in_table for q in offtopic) / len(offtopic)
    assert landed >= 0.9, landed
    assert not in_table & to_write
    wrongly = [q for q in answerable if q in in_table]
    assert not wrongly, wrongly


async def test_answerable_questions_that_abstain_rarely_land_in_the_offtopic_table(
    asked_through_the_core: dict[str, Any],
) -> None:
    """Issue 24's second figure: of the answerable questions that abstain (not covered), at most 10% in
    the `offtopic` table; on this sample few abstain, so it means none."""
    asked = asked_through_the_core
    abstaining = [q for q in asked["answerable"] if asked["answers"][q].coverage == "not_covered"]
    if not abstaining:
        pytest.fail("no answerable question of the sample abstains: the figure would say nothing")
    far = [q for q in abstaining if q in asked["in_table"]]
    assert len(far) <= 0.1 * len(abstaining), (far, abstaining)
