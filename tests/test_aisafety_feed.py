"""aisafety.info's own feed (`retrieval/aisafety_info.py`), read from a fake site on 127.0.0.1
(`tests/fake_aisafety.py`) and from a saved copy: published answers become articles with the site's own
addresses, everything else is skipped and counted, and a broken download gives nothing but a clear error."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from retrieval import aisafety_info
from retrieval.aisafety_info import (
    DEFAULT_BASE,
    FeedAnswer,
    alternate_titles,
    canonical_slug,
    fetch_feed,
    question_url,
    read_feed,
)
from retrieval.documents import Document, SkippedRecord
from retrieval.ingest import IngestReport, load_documents
from retrieval.sources import SourceError, read_ard_jsonl, read_source
from tests.fake_aisafety import FEED_PATH, FakeAisafety, question

LONG = "An answer long enough to ground a reply: it has well over eight words in it."


def _docs(items: Sequence[object]) -> list[Document]:
    return [i[1] for i in items if isinstance(i, tuple)]


def _skipped(items: Sequence[object]) -> dict[int, str]:
    return {i.line: i.reason for i in items if isinstance(i, SkippedRecord)}


# The site's rule (routesMapper.ts): spaces (U+0020 only) -> "-", then ?!,;:()[]{}'" removed; the
# address then percent-encodes the slug as one path segment.
TRICKY = [
    ("What's the orthogonality thesis?", "Whats-the-orthogonality-thesis", "Whats-the-orthogonality-thesis"),
    (
        "Can AI be safe (and useful)?: a [draft] {note}; really!",
        "Can-AI-be-safe-and-useful-a-draft-note-really",
        "Can-AI-be-safe-and-useful-a-draft-note-really",
    ),
    ('Is "alignment" hard, or not?', "Is-alignment-hard-or-not", "Is-alignment-hard-or-not"),
    ("Why can’t we just… stop?", "Why-can’t-we-just…-stop", "Why-can%E2%80%99t-we-just%E2%80%A6-stop"),
    ("What is AI/ML alignment?", "What-is-AI/ML-alignment", "What-is-AI%2FML-alignment"),
    (
        "Is 90% of #AI & stuff = risky + bad?",
        "Is-90%-of-#AI-&-stuff-=-risky-+-bad",
        "Is-90%25-of-%23AI-%26-stuff-%3D-risky-%2B-bad",
    ),
    ("Two  spaces and a trailing one ", "Two--spaces-and-a-trailing-one-", "Two--spaces-and-a-trailing-one-"),
    ("AI\u00a0risk", "AI\u00a0risk", "AI%C2%A0risk"),  # JS replaceAll(' ') leaves a no-break space alone
    ("Qu'est-ce que l'IA générale ?", "Quest-ce-que-lIA-générale-", "Quest-ce-que-lIA-g%C3%A9n%C3%A9rale-"),
    ("v2.0 <b>tags</b>|pipes", "v2.0-<b>tags</b>|pipes", "v2.0-%3Cb%3Etags%3C%2Fb%3E%7Cpipes"),
]


@pytest.mark.parametrize(("title", "slug", "encoded"), TRICKY)
def test_slug_and_address_follow_the_sites_rule(title: str, slug: str, encoded: str) -> None:
    assert canonical_slug(title) == slug
    assert question_url("8A7Q", title) == f"https://aisafety.info/questions/8A7Q/{encoded}"
    assert (
        question_url("8A7Q", title, "http://127.0.0.1:9/") == f"http://127.0.0.1:9/questions/8A7Q/{encoded}"
    )


def test_a_title_that_is_a_dot_segment_gets_no_slug() -> None:
    """`/questions/1/..` would take a browser to `/questions/`: the page is found by its id alone."""
    assert question_url("1", "..?") == "https://aisafety.info/questions/1/"
    assert question_url("1", "") == "https://aisafety.info/questions/1/"


def test_live_answers_become_documents_with_the_sites_addresses() -> None:
    markdown = (
        "The [orthogonality thesis](https://www.lesswrong.com/tag/orthogonality-thesis) says that "
        "intelligence and goals can vary independently.\r\n\r\n\r\nSee also **this**."
    )
    questions = [
        question(
            "6568",
            "What is the orthogonality thesis?",
            markdown,
            related=[("Unlisted one", "9999"), ("Why is AGI dangerous?", "2400"), ("Itself", "6568")],
            tags=["Orthogonality", "Goals", ""],
        ),
        question(
            "2400", "Why is AGI dangerous?", LONG, related=[("What is the orthogonality thesis?", "6568")]
        ),
        question("9999", "Unlisted one", LONG, status="Unlisted"),
    ] + [question(f"T{n}", title, LONG) for n, (title, _, _) in enumerate(TRICKY)]
    with FakeAisafety(questions) as fake:
        items = list(read_source("aisafety.info", aisafety_info_url=fake.base))
    docs = {d.id: d for d in _docs(items)}
    assert list(docs)[:2] == ["aisafety.info:6568", "aisafety.info:2400"]
    assert len(docs) == 2 + len(TRICKY)
    doc = docs["aisafety.info:6568"]
    assert doc.title == "What is the orthogonality thesis?"
    assert doc.url == f"{fake.base}/questions/6568/What-is-the-orthogonality-thesis"
    assert doc.source == "aisafety.info"  # the written-answer logic (rescoring.written_answer) keys on it
    assert doc.text == (
        "The orthogonality thesis says that intelligence and goals can vary independently.\n\nSee also **this**."
    )
    # Related answers: only published ones, not the article itself, in the editors' order.
    assert doc.related == ("aisafety.info:2400",)
    assert docs["aisafety.info:2400"].related == ("aisafety.info:6568",)
    for n, (_, _, encoded) in enumerate(TRICKY):
        assert docs[f"aisafety.info:T{n}"].url == f"{fake.base}/questions/T{n}/{encoded}"
    assert _skipped(items) == {3: "status 'Unlisted', not 'Live on site'"}


def test_unpublished_answers_are_skipped_and_counted() -> None:
    statuses = [
        "Unlisted",
        "In progress",
        "Withdrawn",
        "Marked for deletion",
        "Bulletpoint sketch",
        "live on site",
    ]
    questions = [question("1", "Live", LONG)] + [
        question(str(n), f"Q{n}", LONG, status=s) for n, s in enumerate(statuses, start=2)
    ]
    questions.append(question("99", "No status at all", LONG, status=None))
    with FakeAisafety(questions) as fake:
        items = read_feed(fake.base)
    assert [d.id for d in _docs(items)] == ["aisafety.info:1"]
    skipped = _skipped(items)
    assert len(skipped) == len(statuses) + 1
    assert skipped[2] == "status 'Unlisted', not 'Live on site'"
    assert skipped[7] == "status 'live on site', not 'Live on site'"  # the site compares exactly, so do we
    assert skipped[8] == "status none, not 'Live on site'"


def test_a_broken_record_is_skipped_and_counted_never_the_whole_feed() -> None:
    no_pageid = question("", "No pageid", LONG)
    del no_pageid["pageid"]
    questions: list[object] = [
        question("1", "Good one", LONG),
        no_pageid,  # 2
        question("   ", "Blank pageid", LONG),  # 3
        question("4", "", LONG),  # 4: no title
        {**question("5", "Title is a number", LONG), "title": 5},  # 5
        {**question("6", "Markdown is a number", LONG), "markdown": 42},  # 6
        {**question("7", "Markdown is a list", LONG), "markdown": ["a", "b"]},  # 7
        question("8", "Markdown is null", None),  # 8
        question("9", "Markdown is blank", "  \n "),  # 9
        "not an object",  # 10
        None,  # 11
        {**question("12", "Pageid as a number", LONG), "pageid": 12},  # 12: read as "12"
        {**question("13", "Odd extras", LONG), "relatedQuestions": "x", "tags": "y", "updatedAt": 3},
        {**question("14", "Boolean pageid", LONG), "pageid": True},  # 14
    ]
    with FakeAisafety(questions) as fake:
        answers = fetch_feed(fake.base)
    docs = [a[1].document.id for a in answers if isinstance(a, tuple)]
    assert docs == ["aisafety.info:1", "aisafety.info:12", "aisafety.info:13"]
    odd = next(a[1] for a in answers if isinstance(a, tuple) and a[0] == 13)
    assert odd.document.related == () and odd.document.tags == () and odd.updated_at == ""
    assert _skipped(answers) == {
        2: "no pageid",
        3: "no pageid",
        4: "no title (pageid '4')",
        5: "no title (pageid '5')",
        6: "markdown is a JSON int, not text (pageid '6')",
        7: "markdown is a JSON list, not text (pageid '7')",
        8: "markdown is missing, not text (pageid '8')",
        9: "no text (pageid '9')",
        10: "not a JSON object",
        11: "not a JSON object",
        14: "no pageid",
    }


def test_a_saved_copy_of_the_feed_is_read_the_same_way(tmp_path: Path) -> None:
    questions = [
        question("6568", "What is the orthogonality thesis?", LONG, related=[("Why?", "2400")]),
        question("2400", "Why is AGI dangerous?", LONG),
        question("9999", "Unlisted one", LONG, status="Unlisted"),
    ]
    with FakeAisafety(questions) as fake:
        live = read_feed(fake.base)
        saved = tmp_path / "allQuestionsOnSite.json"
        saved.write_bytes(fake.feed_body())  # exactly what the site sent
    from_file = list(read_source(str(saved)))
    # The same records and reasons; links to the real site unless told otherwise.
    assert _skipped(from_file) == _skipped(live) == {3: "status 'Unlisted', not 'Live on site'"}
    assert [(d.id, d.title, d.text, d.related) for d in _docs(from_file)] == [
        (d.id, d.title, d.text, d.related) for d in _docs(live)
    ]
    assert _docs(from_file)[0].url == f"{DEFAULT_BASE}/questions/6568/What-is-the-orthogonality-thesis"
    mirrored = _docs(list(read_source(str(saved), aisafety_info_url="https://mirror.example.org/")))
    assert mirrored[0].url == "https://mirror.example.org/questions/6568/What-is-the-orthogonality-thesis"

    # A hand-made, pretty-printed copy with a byte-order mark: only `data` is needed.
    pretty = tmp_path / "feed.json"
    pretty.write_text(
        "\ufeff" + json.dumps({"data": questions}, indent=2, ensure_ascii=False), encoding="utf-8"
    )
    assert [d.id for d in _docs(list(read_source(str(pretty))))] == [
        "aisafety.info:6568",
        "aisafety.info:2400",
    ]


def test_a_saved_feed_goes_through_the_ingests_checks(tmp_path: Path) -> None:
    """Stubs and repeated ids are skipped and counted by `load_documents`, as for every source."""
    questions = [
        question("1", "A real answer", LONG),
        question("2", "A stub", "See [the tag page](https://www.lesswrong.com/tag/x)."),
        question("1", "The same pageid again", LONG),
        question("3", "Unlisted", LONG, status="Unlisted"),
    ]
    saved = tmp_path / "feed.json"
    saved.write_text(json.dumps({"timestamp": "2025-01-01T00:00:00.000Z", "data": questions}))
    report = IngestReport()
    docs = load_documents([str(saved)], report)
    assert [d.id for d in docs] == ["aisafety.info:1"]
    assert report.skipped == 3
    reasons = {r.line: r.reason for r in report.skipped_records}
    assert reasons[2].startswith("a stub") and reasons[3].startswith("duplicate id 'aisafety.info:1'")
    assert reasons[4] == "status 'Unlisted', not 'Live on site'"


def test_a_json_file_of_dataset_records_is_still_read_as_jsonl(tmp_path: Path) -> None:
    row = {"id": "x:1", "title": "T", "url": "https://e.org/1", "source": "x", "text": LONG}
    path = tmp_path / "records.json"
    path.write_text(json.dumps(row) + "\n" + json.dumps({**row, "id": "x:2"}) + "\n")
    assert not aisafety_info.is_saved_feed(path)
    assert [d.id for d in _docs(list(read_source(str(path))))] == ["x:1", "x:2"]
    assert _docs(list(read_ard_jsonl(path.read_text().splitlines(), origin="x")))[0].id == "x:1"


def test_the_request_names_the_project_and_never_asks_for_a_reload() -> None:
    with FakeAisafety([question("1", "Q", LONG)]) as fake:
        read_feed(fake.base + "/")
    assert len(fake.seen) == 1
    assert fake.seen[0].path == FEED_PATH  # no `?reload`, no query at all
    assert fake.seen[0].headers["user-agent"] == f"aisafety-bot/{metadata.version('aisafety-bot')}"
    assert fake.seen[0].headers["accept"] == "application/json"


@pytest.mark.parametrize(
    ("fake", "limits", "message"),
    [
        (FakeAisafety(status=500), {}, r": HTTP 500 Internal Server Error$"),
        (FakeAisafety(status=503, retry_after="30"), {}, r": HTTP 503 Service Unavailable$"),
        (FakeAisafety(status=404), {}, r": HTTP 404 Not Found$"),
        (
            FakeAisafety(status=429, retry_after="120"),
            {},
            r": HTTP 429 Too Many Requests \(Retry-After: 120\)$",
        ),
        (FakeAisafety(status=429), {}, r": HTTP 429 Too Many Requests \(Retry-After: not given\)$"),
        (
            FakeAisafety(body=b"<!DOCTYPE html>\n<html><body>Just a moment...</body></html>"),
            {},
            r"allQuestionsOnSite is not JSON \(Expecting value: line 1 column 1 \(char 0\)\); "
            r"it begins '<!DOCTYPE html> <html><body>Just a moment...</body></html>'$",
        ),
        (FakeAisafety(body=b'{"data": [{"title": "cut off'), {}, r"is not JSON \(Unterminated string"),
        (FakeAisafety(body=b"\xff\xfe\xfa not utf-8"), {}, r"is not JSON"),
        (
            FakeAisafety(body=b'{"data": {"1": {}}, "timestamp": "x"}'),
            {},
            r"is not an aisafety.info feed: its 'data' is a JSON dict, not a list$",
        ),
        (FakeAisafety(body=b'{"items": []}'), {}, r"its 'data' is missing, not a list$"),
        (FakeAisafety(body=b"[1, 2]"), {}, r"is not an aisafety.info feed: a JSON list, not an object$"),
        (
            FakeAisafety([question(str(n), "Q", LONG) for n in range(50)]),
            {"max_bytes": 2000},
            r": it is [\d,]+ bytes, over the limit of 2,000$",
        ),
        (
            FakeAisafety([question(str(n), "Q", LONG) for n in range(50)], chunked=True),
            {"max_bytes": 2000},
            r": it is over the limit of 2,000 bytes$",
        ),
        (FakeAisafety(delay_s=5), {"timeout_s": 0.3}, r": no complete answer within 0.3 s$"),
        (
            FakeAisafety([question("1", "Q", LONG)], trickle_s=0.02),
            {"timeout_s": 0.5},
            r": no complete answer within 0.5 s$",
        ),
    ],
    ids=[
        "500",
        "503",
        "404",
        "429",
        "429-bare",
        "html",
        "truncated",
        "not-utf8",
        "data-dict",
        "no-data",
        "list",
        "too-large",
        "too-large-chunked",
        "slow",
        "trickle",
    ],
)
def test_a_failed_download_gives_one_clear_line_and_nothing_else(
    fake: FakeAisafety, limits: dict[str, Any], message: str
) -> None:
    got: list[object] = []
    with fake:
        started = time.monotonic()
        with pytest.raises(SourceError, match=message) as caught:
            for item in (
                read_source("aisafety.info", aisafety_info_url=fake.base)
                if not limits
                else read_feed(fake.base, **limits)
            ):
                got.append(item)
        elapsed = time.monotonic() - started
    assert got == []  # no partial result
    text = str(caught.value)
    assert "\n" not in text and len(text) < 400
    assert text.startswith(
        f"cannot read the aisafety.info feed at {fake.base}{FEED_PATH}"
    ) or text.startswith(f"{fake.base}{FEED_PATH} is not")
    assert elapsed < 3  # a time-out is the reader's own, not the server's


def test_the_time_limit_covers_the_whole_download_not_each_read() -> None:
    """A server that is slow to answer, then stalls mid-body, is cut off when the whole download's time
    is up, not after another full time-out for the stalled read."""
    with FakeAisafety([question("1", "Q", LONG)], delay_s=0.7, stall_after=20) as fake:
        started = time.monotonic()
        with pytest.raises(SourceError, match=r"no complete answer within 1 s$"):
            read_feed(fake.base, timeout_s=1.0)
        elapsed = time.monotonic() - started
    assert 0.9 < elapsed < 1.4


def test_an_unreachable_site_says_what_to_do_offline() -> None:
    with FakeAisafety() as fake:
        base = fake.base
    with pytest.raises(SourceError, match=r"^cannot read the aisafety.info feed at .*saved copy of the feed"):
        read_feed(base, timeout_s=2)


@pytest.mark.parametrize(
    "base", ["ftp://aisafety.info", "aisafety.info", "https://aisafety.info/?reload", ""]
)
def test_a_base_url_must_be_a_plain_web_address(base: str) -> None:
    with pytest.raises(SourceError, match="is not an http\\(s\\) base URL"):
        read_feed(base)


def test_a_saved_feed_that_cannot_be_read_is_an_error(tmp_path: Path) -> None:
    broken = tmp_path / "feed.json"
    broken.write_text('{"data": [ {"title": ')
    with pytest.raises(SourceError, match=r"feed.json is not JSON"):
        list(read_source(str(broken)))
    with pytest.raises(SourceError, match="cannot read"):
        aisafety_info.read_saved_feed(tmp_path / "missing.json")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            "- How does AI alignment work?\n* what is alignment\n\n1. Why align AI?\n2) AI alignment, explained\n",
            ("How does AI alignment work?", "what is alignment", "Why align AI?", "AI alignment, explained"),
        ),
        ("What is AI alignment?\nwhat  is AI   ALIGNMENT?\nWhat is AI alignment", ("What is AI alignment",)),
        (
            "  • Bullet\r\n+ Plus\n   \n-\n*\n3.\nWhat's  alignment,  really?",
            ("Bullet", "Plus", "What's alignment, really?"),
        ),
        ("Same line\nsame LINE", ("Same line",)),
        ("-1 is a number, 2024 is a year", ("-1 is a number, 2024 is a year",)),
        ("", ()),
        (None, ()),
        (["a list"], ()),
    ],
)
def test_alternate_phrasings_are_split_into_other_titles(raw: object, expected: tuple[str, ...]) -> None:
    assert alternate_titles(raw, "What is AI alignment?") == expected


def test_alternate_phrasings_and_tags_travel_with_the_answer() -> None:
    questions = [
        question(
            "8486",
            "What is AI alignment?",
            LONG,
            alternate_phrasings="- What does 'aligned AI' mean?\n- what is ai alignment?\n- Define alignment",
            tags=["Alignment", "Definitions"],
            updated_at="2025-02-03T04:05:06.000Z",
        )
    ]
    with FakeAisafety(questions) as fake:
        [(number, answer)] = fetch_feed(fake.base)  # type: ignore[misc]
    assert number == 1 and isinstance(answer, FeedAnswer)
    assert answer.document.alt_titles == ("What does 'aligned AI' mean?", "Define alignment")
    assert answer.document.tags == ("Alignment", "Definitions")
    assert answer.updated_at == "2025-02-03T04:05:06.000Z"
    assert answer.document.id == "aisafety.info:8486"


def test_the_cli_ingests_the_feed_at_aisafety_info_url_and_links_to_it(
    tmp_path: Path, model_env: dict[str, str]
) -> None:
    from tests.conftest import cli, home_env

    text = (
        "The orthogonality thesis says that an agent's intelligence and its final goals can vary "
        "independently: a very capable system could pursue almost any goal at all."
    )
    with FakeAisafety(
        questions=[
            question("6568", "What is the orthogonality thesis?", text),
            question("7777", "A draft nobody should see yet", text, status="Unlisted"),
        ]
    ) as fake:
        env = home_env(tmp_path, SOURCES="aisafety.info", AISAFETY_INFO_URL=fake.base, **model_env)
        done = cli(env, "ingest", "--json")
        assert done.returncode == 0, done.stderr
        summary = json.loads(done.stdout)
        assert (summary["added"], summary["skipped"]) == (1, 1)
        assert "Unlisted" in done.stderr  # each skipped record once, with its reason
        found = cli(env, "search", "are intelligence and goals independent?", "--json")
        assert found.returncode == 0, found.stderr
        hits = json.loads(found.stdout)
        assert hits[0]["id"] == "aisafety.info:6568"
        assert hits[0]["url"] == f"{fake.base}/questions/6568/What-is-the-orthogonality-thesis"
        assert [s.path for s in fake.seen] == [FEED_PATH]  # one download, no query string
    bad = cli(home_env(tmp_path, AISAFETY_INFO_URL="aisafety.info"), "ingest")
    assert bad.returncode == 2 and "AISAFETY_INFO_URL: must start with http:// or https://" in bad.stderr


def test_the_cli_refuses_a_mass_removal_unless_allowed(tmp_path: Path, model_env: dict[str, str]) -> None:
    """The feed suddenly lists one answer of four: `ingest` changes nothing and says how to go on;
    `--allow-large-removal` lifts the guard once, and the change log records what left."""
    from service.feedback import FeedbackStore
    from tests.conftest import cli, home_env

    answers = [question(str(n), f"Question number {n}?", LONG) for n in range(4)]
    with FakeAisafety(answers) as fake:
        env = home_env(tmp_path, SOURCES="aisafety.info", AISAFETY_INFO_URL=fake.base, **model_env)
        assert cli(env, "ingest").returncode == 0
        fake.questions = answers[:1]
        refused = cli(env, "ingest", "--json")
        assert refused.returncode == 1 and refused.stdout == ""
        assert "remove 3 of the library's 4 aisafety.info articles" in refused.stderr
        assert "--allow-large-removal" in refused.stderr and "Traceback" not in refused.stderr
        allowed = cli(env, "ingest", "--json", "--allow-large-removal")
        assert allowed.returncode == 0, allowed.stderr
        assert json.loads(allowed.stdout)["deleted"] == 3
    log = FeedbackStore(tmp_path / "feedback.sqlite3")
    try:
        removed = [c for c in log.library_changes(0, 2e9) if c["change"] == "removed"]
        assert sorted(c["id"] for c in removed) == ["aisafety.info:1", "aisafety.info:2", "aisafety.info:3"]
    finally:
        log.close()
