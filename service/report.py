"""What the community asks: the report article writers use to decide what to write next."""

from __future__ import annotations

import csv
import io
import json
import math
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

from retrieval.vocabulary import Vocabulary
from service.feedback import FeedbackRow, FeedbackStore
from service.wordings import Wordings, embed_questions

# Cosine to a cluster's first question above which a question joins it, for "questions to write": one
# topic asked in different words (chosen on the project's own questions, see benchmarks/topics.py).
# Wordings of one question (`service.wordings`) always share a topic too.
SAME_TOPIC = 0.7
OUTCOMES = ("llm", "retrieval-only", "abstain", "error")
DAY = 86400
SHOWN = 20  # rows of each table on the page and in Markdown; CSV and JSON have every row
Embed = Callable[[Sequence[str]], list[list[float]]]


def clusters(questions: Sequence[str], vectors: Wordings, *, topic: float | None = None) -> list[list[int]]:
    """The questions' positions grouped: wordings of one question together (`Wordings.groups`), and with
    `topic`, groups whose first questions' vectors are at least that close by cosine together too, in
    order (each joins the first such group). Blank questions are left out."""
    positions: dict[str, list[int]] = {}
    for n, text in enumerate(questions):
        if text in vectors:
            positions.setdefault(text, []).append(n)
    texts = list(positions)
    heads: list[str] = []
    merged: list[list[str]] = []
    for group in vectors.groups(texts):
        head = texts[group[0]]
        k = None
        if topic is not None:  # without a topic, no group heads are compared at all
            k = next(
                (n for n, other in enumerate(heads) if float(vectors[other] @ vectors[head]) >= topic), None
            )
        if k is None:
            heads.append(head)
            merged.append([texts[g] for g in group])
        else:
            merged[k] += [texts[g] for g in group]
    return [sorted(n for t in group for n in positions[t]) for group in merged]


def group_questions(
    questions: Sequence[str],
    vectors: Wordings,
    *,
    topic: float | None = None,
    members: bool = False,
) -> list[dict[str, Any]]:
    """Wordings of one question grouped (`clusters`; with `topic`, questions of one topic), most asked
    first. With `members`, each group also lists every question in it."""
    out = []
    for group in clusters(questions, vectors, topic=topic):
        m = [questions[n] for n in group]
        out.append(
            {"question": Counter(m).most_common(1)[0][0], "count": len(m), "variants": sorted(set(m))[:5]}
            | ({"members": m} if members else {})
        )
    return sorted(out, key=lambda g: (-g["count"], g["question"]))


def where(row: FeedbackRow) -> str:
    """Where a question was asked: the channel's name when the client knew it, else its id."""
    if row.place_name:
        return row.place_name if row.place_name.startswith("#") else f"#{row.place_name}"
    return row.place or row.platform


def group_rows(
    rows: Sequence[FeedbackRow],
    vectors: Wordings,
    *,
    previous: Sequence[FeedbackRow] | None = None,
    topic: float | None = None,
    counts: Callable[[list[FeedbackRow]], dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """The period's questions grouped by wording (and with `topic`, by topic: `clusters`), most asked
    first: each group with its most common wording, the other wordings, when it was last asked and
    where, and what `counts` says of its rows; with `previous` (the period before), how many of the
    previous period's questions were the same question."""
    before = list(previous or [])
    every = [*rows, *before]
    out = []
    for group in clusters([r.question for r in every], vectors, topic=topic):
        now = [every[n] for n in group if n < len(rows)]
        if not now:
            continue  # asked only in the previous period
        texts = [r.question for r in now]
        top = Counter(texts).most_common(1)[0][0]
        places = Counter(where(r) for r in now)
        item: dict[str, Any] = {
            "question": top,
            "count": len(now),
            **(counts(now) if counts is not None else {}),
            "variants": sorted(set(texts) - {top})[:5],
            "asked": max(r.created for r in now),
            "where": [w for w, _ in places.most_common(3)],
        }
        if previous is not None:
            item["previous"] = len(group) - len(now)
        out.append(item)
    return sorted(out, key=lambda g: (-g["count"], g["question"]))


def to_write_candidate(row: FeedbackRow) -> bool:
    """A question an article could be written for: on topic, and the library did not cover it, only came
    close, or its answer got a 👎."""
    if row.offtopic:
        return False
    return row.mode == "abstain" or row.coverage in ("close", "not_covered") or row.down > 0


def _unwritten(
    rows: Sequence[FeedbackRow], marks: Sequence[dict[str, Any]], vectors: Wordings
) -> tuple[list[FeedbackRow], dict[int, float]]:
    """The rows no topic marked written covers (a mark covers the questions of its topic asked before
    it), and for each row asked again after a mark on its topic, that mark's time (by answer id)."""
    kept: list[FeedbackRow] = []
    again: dict[int, float] = {}
    for r in rows:
        vec = vectors.get(r.question)
        near = [
            float(m["created"])
            for m in marks
            if vec is not None
            and m["question"] in vectors
            and (float(vectors[m["question"]] @ vec) >= SAME_TOPIC or vectors.same(m["question"], r.question))
        ]
        if any(when > r.created for when in near):
            continue
        kept.append(r)
        if near:
            again[r.answer_id] = max(near)
    return kept, again


def topic_rows(
    rows: Sequence[FeedbackRow],
    vectors: Wordings,
    *,
    marks: Sequence[dict[str, Any]] = (),
    previous: Sequence[FeedbackRow] | None = None,
) -> list[dict[str, Any]]:
    """The questions to write for (`to_write_candidate`), clustered by topic, with counts of each kind,
    less those a topic marked written covers. A topic asked again after its mark says when it was
    marked."""
    mine, again = _unwritten([r for r in rows if to_write_candidate(r)], marks, vectors)
    before = (
        None
        if previous is None
        else _unwritten([r for r in previous if to_write_candidate(r)], marks, vectors)[0]
    )

    def counts(now: list[FeedbackRow]) -> dict[str, Any]:
        marked = [again[r.answer_id] for r in now if r.answer_id in again]
        return {
            "abstained": sum(
                r.coverage != "close" and (r.mode == "abstain" or r.coverage == "not_covered") for r in now
            ),
            "close": sum(r.coverage == "close" for r in now),
            "downvoted": sum(r.down > 0 for r in now),
            "written": max(marked) if marked else None,
        }

    return group_rows(mine, vectors, previous=before, topic=SAME_TOPIC, counts=counts)


def build_report(
    rows: Sequence[FeedbackRow],
    *,
    embed: Embed,
    articles: dict[str, tuple[str, str]],
    since_days: float,
    questions_stored: bool = True,
    now: float | None = None,
    community: str | None = None,
    library: dict[str, Any] | None = None,
    previous: Sequence[FeedbackRow] | None = None,
    written: Sequence[dict[str, Any]] = (),
    vocabulary: Vocabulary | None = None,
) -> dict[str, Any]:
    """What the community asked in the last `since_days` days. Without stored questions
    (`STORE_QUESTIONS=false`) only counts and sources: the question sections are empty.

    `community`: the one community `rows` were read for (its moderators' view); None for the operator's
    view of every community, where questions are grouped within their own community and each group,
    answer and topic names it. `library`: the library's state and changes (`library_section`), the same
    in every view. `previous`: the answers of the period before (as long), whose counts are shown beside
    this period's. `written`: the topics moderators marked written (`FeedbackStore.written_topics`).
    `vocabulary`: the library's (`retrieval.vocabulary`), which tells wordings of one question from
    different questions better; without it every word counts the same. Every table is complete: the
    page and Markdown show its first SHOWN rows."""
    for given in (rows, previous or []):
        if community is not None and any(r.community != community for r in given):
            raise ValueError(f"a report of {community} was given another community's answers")
    marks = [m for m in written if community is None or m["community"] == community]
    before = list(previous or [])
    texts = [r.question for r in [*rows, *before]] + [m["question"] for m in marks]
    vectors = embed_questions(texts if questions_stored else [], embed, vocabulary)
    shown = Counter(str(s["id"]) for r in rows for s in r.sources)
    cited = Counter(str(s["id"]) for r in rows for s in r.sources if r.mode == "llm")
    most_asked: list[dict[str, Any]] = []
    abstained: list[dict[str, Any]] = []
    offtopic: list[dict[str, Any]] = []
    to_write: list[dict[str, Any]] = []
    for name in sorted({r.community for r in rows}):
        mine = [r for r in rows if r.community == name] if questions_stored else []
        prev = None if previous is None else [r for r in before if r.community == name]
        tag = {} if community is not None else {"community": name}

        def only(keep: Callable[[FeedbackRow], bool], given: list[FeedbackRow] | None) -> Any:
            return None if given is None else [r for r in given if keep(r)]

        def not_covered(r: FeedbackRow) -> bool:
            return r.mode == "abstain" and not r.offtopic

        def off(r: FeedbackRow) -> bool:
            return r.offtopic

        most_asked += [g | tag for g in group_rows(mine, vectors, previous=prev)]
        abstained += [
            g | tag for g in group_rows(only(not_covered, mine), vectors, previous=only(not_covered, prev))
        ]
        offtopic += [g | tag for g in group_rows(only(off, mine), vectors, previous=only(off, prev))]
        own_marks = [m for m in marks if m["community"] == name]
        to_write += [g | tag for g in topic_rows(mine, vectors, marks=own_marks, previous=prev)]
    report: dict[str, Any] = {
        "community": community,
        "since_days": since_days,
        "questions_stored": questions_stored,
        **_counts(rows),
        "by_day": by_day(rows, since_days, now=now),
        "most_asked": _most(most_asked),
        "abstained": _most(abstained),
        "offtopic": _most(offtopic),
        "downvoted": [
            {
                "question": r.question if questions_stored else "",
                "answer": r.answer if questions_stored else "",
                "down": r.down,
                "up": r.up,
                "sources": r.sources,
                "asked": r.created,
                "where": where(r) if questions_stored else "",
                "coverage": r.coverage,
            }
            | ({} if community is not None else {"community": r.community})
            for r in sorted(rows, key=lambda r: (-r.down, -r.created))
            if r.down > 0
        ],
        "to_write": _most(to_write),
        "written": [
            {"question": m["question"], "marked": float(m["created"])}
            | ({} if community is not None else {"community": m["community"]})
            for m in marks
        ]
        if questions_stored
        else [],
        "most_cited": [
            {
                "id": aid,
                "count": n,
                "llm_cited": cited.get(aid, 0),
                "title": articles.get(aid, ("", ""))[0],
                "url": articles.get(aid, ("", ""))[1],
            }
            for aid, n in sorted(shown.items(), key=lambda kv: (-kv[1], -cited.get(kv[0], 0), kv[0]))
        ],
        "never_cited": [
            {"id": aid, "title": title, "url": url}
            for aid, (title, url) in sorted(articles.items())
            if aid not in shown
        ],
    }
    if previous is not None:
        report["previous"] = _counts(before)
    return report if library is None else report | {"library": library}


def _counts(rows: Sequence[FeedbackRow]) -> dict[str, Any]:
    """The outcome summary of a period: answers, by outcome, close calls and off-topic requests."""
    return {
        "answers": len(rows),
        "by_outcome": dict(Counter(r.mode for r in rows)),
        "close_calls": sum(r.coverage == "close" for r in rows),
        "off_topic": sum(r.offtopic for r in rows),
    }


def library_section(
    feedback: FeedbackStore, since_days: float, articles: int, now: float | None = None
) -> dict[str, Any]:
    """The library for the report: how many articles it has, when it was last synced, and what changed
    in the period. No member data: it is the same in every community's view."""
    now = time.time() if now is None else now
    return {
        "articles": articles,
        "last_sync": feedback.last_library_sync(),
        "changes": feedback.library_changes(now - since_days * DAY, now),
    }


def stored_report(
    feedback: FeedbackStore,
    *,
    embed: Embed,
    articles: dict[str, tuple[str, str]],
    since_days: float,
    questions_stored: bool = True,
    community: str | None = None,
    now: float | None = None,
    vocabulary: Vocabulary | None = None,
) -> dict[str, Any]:
    """The report of the last `since_days` days as the answers database has it: the period's answers,
    the period before's for comparison, the topics marked written and the library's log."""
    now = time.time() if now is None else now
    start = now - since_days * DAY
    # This period and the one before it, in one query (oldest first, so each part keeps its order).
    both = feedback.between(start - since_days * DAY, now + 1, community=community)
    return build_report(
        [r for r in both if r.created >= start],
        embed=embed,
        articles=articles,
        since_days=since_days,
        questions_stored=questions_stored,
        now=now,
        community=community,
        library=library_section(feedback, since_days, len(articles), now=now),
        previous=[r for r in both if r.created < start],
        written=feedback.written_topics(community=community),
        vocabulary=vocabulary,
    )


def _most(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Groups of every community together, most asked first (as `group_questions` orders one community's)."""
    return sorted(groups, key=lambda g: (-g["count"], g["question"], g.get("community", "")))


def by_day(
    rows: Sequence[FeedbackRow], since_days: float, *, now: float | None = None
) -> list[dict[str, Any]]:
    """Answers per UTC day by outcome, every day of the period (at most a year) included."""
    now = time.time() if now is None else now
    days = max(1, min(math.ceil(since_days), 366))
    today = int(now // DAY)
    counts = {d: Counter[str]() for d in range(today - days + 1, today + 1)}
    for r in rows:
        day = int(r.created // DAY)
        if day in counts:
            counts[day][r.mode] += 1
    return [
        {"day": time.strftime("%Y-%m-%d", time.gmtime(d * DAY)), **{o: c.get(o, 0) for o in OUTCOMES}}
        for d, c in counts.items()
    ]


def _in(item: dict[str, Any]) -> str:
    """Where a question was asked, in the operator's view of every community."""
    return f" [{item['community']}]" if "community" in item else ""


# Characters that could start Markdown in text shown as typed (a link, emphasis, code, raw HTML).
_MARKDOWN = re.compile(r"([\\`*_{}\[\]<>()#!|~&])")
# Characters that would end a Markdown link's address early or break it across lines.
_URL_BREAKS = {ord(c): f"%{ord(c):02X}" for c in " ()<>[]\\\"'\t\r\n"}


def _md_text(text: str) -> str:
    """Text from members or the articles, shown as typed in Markdown: nothing in it becomes a link."""
    # A zero-width space after `<` too: no `<http`, `<@` or `<#` is left even for a reader that does not
    # honour the backslash.
    return _MARKDOWN.sub(r"\\\1", " ".join(str(text).split())).replace("\\<", "\\<\u200b")


def _md_link(title: str, url: str) -> str:
    """An article's link in Markdown, escaped; only a web address is linked."""
    if urlsplit(url).scheme.lower() not in ("http", "https"):
        return _md_text(title or url)
    return f"[{_md_text(title or url)}]({url.translate(_URL_BREAKS)})"


def utc(when: float | None) -> str:
    """A time as the report shows it; "never" for no time."""
    return "never" if when is None else time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(when))


# What a report with no answers says: where answers come from.
NO_ANSWERS = (
    "No answers are stored for this period. The bot stores the answers it gives on Discord and Slack "
    "(`aisafety-bot run` with a platform's token); the terminal chat (`aisafety-bot chat`, or `run` "
    "without a platform) stores nothing."
)
CLOSE_CALL = "close call"  # coverage `close` as the report names it


def previously(report: dict[str, Any], item: dict[str, Any] | None = None, key: str = "") -> str:
    """ " (prev N)" beside a count when the report compares with the previous period, else "". With
    `item`, its own `previous`; with `key`, the previous period's summary count of that name."""
    if "previous" not in report:
        return ""
    if item is not None:
        return f" (prev {item.get('previous', 0)})" if "previous" in item else ""
    prev = report["previous"]
    value = prev.get(key, 0) if key in prev else prev["by_outcome"].get(key, 0)
    return f" (prev {value})"


def summary(report: dict[str, Any]) -> str:
    """The outcome summary, with the previous period's counts beside when the report has them."""
    counts = report["by_outcome"]
    parts = [
        f"{counts.get(o, 0)}{previously(report, key=o)} {o}"
        for o in OUTCOMES
        if counts.get(o, 0) or "previous" in report
    ]
    prev_answers = f" (prev {report['previous']['answers']})" if "previous" in report else ""
    extra = [
        f"{report.get('close_calls', 0)}{previously(report, key='close_calls')} {CLOSE_CALL}s",
        f"{report.get('off_topic', 0)}{previously(report, key='off_topic')} off-topic",
    ]
    return f"{report['answers']}{prev_answers} answers: " + ", ".join(parts + extra)


def _when_where(item: dict[str, Any], what: str = "last asked") -> str:
    places = item.get("where") or []
    if isinstance(places, str):
        places = [places] if places else []
    at = f" in {', '.join(_md_text(w) for w in places)}" if places else ""
    return f"{what} {utc(item['asked'])}{at}" if item.get("asked") else ""


def _more(report: dict[str, Any], table: str, items: Sequence[Any]) -> list[str]:
    """The line under a table cut at SHOWN rows: how many more, and the command that gives them all."""
    if len(items) <= SHOWN:
        return []
    community = report.get("community")
    scope = f" --community {community}" if community else ""
    return [
        f"- …and {len(items) - SHOWN} more: `aisafety-bot report --since {report['since_days']:g}{scope} "
        f"--table {table}` (CSV)"
    ]


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def to_markdown(report: dict[str, Any]) -> str:
    community = report.get("community")
    lines = [f"# What {community or 'every community'} asked (last {report['since_days']:g} days)", ""]
    library = report.get("library")
    empty = report["answers"] == 0 and not report.get("previous", {}).get("answers")
    if empty:
        lines += [NO_ANSWERS, ""]
    else:
        lines += [summary(report), ""]

        def grouped(title: str, table: str) -> None:
            nonlocal lines
            items = report[table]
            lines += [f"## {title}"]
            lines += [
                f"- {g['count']}×{previously(report, g)} {_md_text(g['question'])}{_in(g)}"
                + (f" ({_when_where(g)})" if g.get("asked") else "")
                for g in items[:SHOWN]
            ]
            lines += [*_more(report, table, items), ""]

        grouped("Most asked", "most_asked")
        grouped("Questions the articles did not cover (the bot abstained)", "abstained")
        grouped("Off-topic (declined, or far from every article: not for the library)", "offtopic")
        lines += ["## Answers that got 👎"]
        for d in report["downvoted"][:SHOWN]:
            sources = ", ".join(_md_link(s["title"], s["url"]) for s in d["sources"]) or "no sources"
            close = f", {CLOSE_CALL}" if d.get("coverage") == "close" else ""
            lines.append(
                f"- 👎 {d['down']} 👍 {d['up']}: {_md_text(d['question'])}{_in(d)} "
                f"({_when_where(d, 'asked')}{close}; sources: {sources})"
            )
            if d.get("answer"):
                lines.append(f"  - answer: {_md_text(_short(d['answer']))}")
        lines += _more(report, "downvoted", report["downvoted"])
        lines += ["", "## Questions to write (not covered, close calls or 👎, by topic)"]
        for g in report["to_write"][:SHOWN]:
            others = (
                f"; other wordings: {' | '.join(_md_text(v) for v in g['variants'])}" if g["variants"] else ""
            )
            again = f"; marked written {utc(g['written'])}, asked again since" if g.get("written") else ""
            lines.append(
                f"- {g['count']}×{previously(report, g)} {_md_text(g['question'])}{_in(g)} "
                f"({g['abstained']} not covered, {g.get('close', 0)} {CLOSE_CALL}s, {g['downvoted']} 👎; "
                f"{_when_where(g)}{others}{again})"
            )
        lines += _more(report, "to_write", report["to_write"])
        if report.get("written"):
            lines += ["", "## Topics marked written"]
            lines += [
                f"- {utc(w['marked'])}: {_md_text(w['question'])}{_in(w)}" for w in report["written"][:SHOWN]
            ]
            lines += _more(report, "written", report["written"])
        lines += ["", "## Articles cited most (every source shown; in brackets, cited by an LLM answer)"]
        lines += [
            f"- {a['count']}× {_md_link(a['title'], a['url'])} ({a['llm_cited']} cited)"
            for a in report["most_cited"][:SHOWN]
        ]
        lines += _more(report, "most_cited", report["most_cited"])
        lines += ["", f"## Articles never cited (never shown as a source: {len(report['never_cited'])})"]
        lines += [f"- {_md_link(a['title'], a['url'])}" for a in report["never_cited"][:SHOWN]]
        lines += _more(report, "never_cited", report["never_cited"])
    if library is not None:
        changes = library["changes"]
        lines += [
            "",
            "## The library",
            "",
            f"{library['articles']} articles; last synced: {utc(library['last_sync'])}.",
            "",
            f"### Changes in the period ({len(changes)})",
            *[f"- {utc(c['time'])} {c['change']}: {_md_link(c['title'], c['url'])}" for c in changes[:SHOWN]],
            *_more(report, "library", changes),
        ]
    return "\n".join(lines).replace("\n\n\n", "\n\n") + "\n"


def to_csv(report: dict[str, Any]) -> str:
    """Every section in one CSV: a row per question group, answer voted down, article and library change;
    every row, never cut."""
    header = [
        "section",
        "count",
        "question_or_title",
        "id",
        "url",
        "community",
        "change",
        "time",
        "previous",
        "llm_cited",
        "where",
        "answer",
    ]
    rows: list[list[Any]] = []

    def put(*cells: Any, **more: Any) -> None:
        row = [*cells] + [""] * (len(header) - len(cells))
        for k, v in more.items():
            row[header.index(k)] = v
        rows.append(row)

    for section in ("most_asked", "abstained", "offtopic", "to_write"):
        for g in report[section]:
            put(
                section,
                g["count"],
                g["question"],
                "",
                "",
                g.get("community", ""),
                "",
                _iso(g.get("asked")),
                previous=g.get("previous", ""),
                where=" | ".join(g.get("where", [])),
            )
    for d in report["downvoted"]:
        ids = ";".join(str(s["id"]) for s in d["sources"])
        put(
            "downvoted",
            d["down"],
            d["question"],
            ids,
            "",
            d.get("community", ""),
            "",
            _iso(d.get("asked")),
            where=d.get("where", ""),
            answer=d.get("answer", ""),
        )
    for w in report.get("written", []):
        put("written", "", w["question"], "", "", w.get("community", ""), "", _iso(w["marked"]))
    for a in report["most_cited"]:
        put("most_cited", a["count"], a["title"], a["id"], a["url"], llm_cited=a["llm_cited"])
    for a in report["never_cited"]:
        put("never_cited", 0, a["title"], a["id"], a["url"], llm_cited=0)
    for c in _library_changes(report):
        put("library", "", c["title"], c["id"], c["url"], "", c["change"], _iso(c["time"]))
    return write_csv(header, rows)


def _library_changes(report: dict[str, Any]) -> list[dict[str, Any]]:
    library = report.get("library")
    return [] if library is None else list(library["changes"])


def _iso(when: float | None) -> str:
    return "" if not when else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))


def _sources(sources: Sequence[dict[str, Any]]) -> str:
    return "; ".join(f"{s.get('title', '')} <{s.get('url', '')}>" for s in sources)


def _grouped(groups: Sequence[dict[str, Any]]) -> list[list[Any]]:
    return [
        [
            g["count"],
            g["question"],
            " | ".join(g["variants"]),
            g.get("previous", ""),
            _iso(g.get("asked")),
            " | ".join(g.get("where", [])),
        ]
        for g in groups
    ]


GROUPED = ["count", "question", "variants", "previous", "last_asked", "where"]
# Each table of the report as CSV: its header and its rows (every row, never cut).
TABLES: dict[str, tuple[list[str], Callable[[dict[str, Any]], list[list[Any]]]]] = {
    "by_day": (["day", *OUTCOMES], lambda r: [[d["day"], *(d[o] for o in OUTCOMES)] for d in r["by_day"]]),
    "most_asked": (GROUPED, lambda r: _grouped(r["most_asked"])),
    "abstained": (GROUPED, lambda r: _grouped(r["abstained"])),
    "offtopic": (GROUPED, lambda r: _grouped(r["offtopic"])),
    "to_write": (
        [
            "count",
            "not_covered",
            "close_calls",
            "downvoted",
            "question",
            "examples",
            "previous",
            "last_asked",
            "where",
            "marked_written",
        ],
        lambda r: [
            [
                g["count"],
                g["abstained"],
                g.get("close", 0),
                g["downvoted"],
                g["question"],
                " | ".join(g["variants"]),
                g.get("previous", ""),
                _iso(g.get("asked")),
                " | ".join(g.get("where", [])),
                _iso(g.get("written")),
            ]
            for g in r["to_write"]
        ],
    ),
    "downvoted": (
        ["down", "up", "question", "sources", "answer", "asked", "where", "coverage"],
        lambda r: [
            [
                d["down"],
                d["up"],
                d["question"],
                _sources(d["sources"]),
                d.get("answer", ""),
                _iso(d.get("asked")),
                d.get("where", ""),
                d.get("coverage") or "",
            ]
            for d in r["downvoted"]
        ],
    ),
    "written": (
        ["marked", "question"],
        lambda r: [[_iso(w["marked"]), w["question"]] for w in r.get("written", [])],
    ),
    "most_cited": (
        ["count", "llm_cited", "id", "title", "url"],
        lambda r: [[a["count"], a["llm_cited"], a["id"], a["title"], a["url"]] for a in r["most_cited"]],
    ),
    "never_cited": (
        ["id", "title", "url"],
        lambda r: [[a["id"], a["title"], a["url"]] for a in r["never_cited"]],
    ),
    "library": (
        ["time", "change", "id", "title", "url"],
        lambda r: [
            [_iso(c["time"]), c["change"], c["id"], c["title"], c["url"]] for c in _library_changes(r)
        ],
    ),
}


# What makes a spreadsheet read a cell as a formula (or a DDE command): its first character, also after
# spaces and line breaks (some spreadsheets trim them), in ASCII and in full width.
_FORMULA_START = tuple("=+-@＝＋－＠")
_LEADING_SPACE = " \t\r\n\x0b\x0c\u3000"


def csv_cell(value: Any) -> Any:
    """A cell a spreadsheet will not run: members' questions and article titles are text, never formulas
    (`=HYPERLINK(...)`, `+cmd|...`, `@SUM(...)`, a leading tab or line break). Such a cell starts with
    `'`, which spreadsheets read as "text" and do not show."""
    if not isinstance(value, str):
        return value
    if value[:1] in ("\t", "\r", "\n") or value.lstrip(_LEADING_SPACE).startswith(_FORMULA_START):
        return "'" + value
    return value


def write_csv(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """The one way the project writes CSV: every cell through `csv_cell`."""
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow([csv_cell(h) for h in header])
    for row in rows:
        w.writerow([csv_cell(v) for v in row])
    return out.getvalue()


# The tables of members' questions: in the operator's view each row names its community.
BY_COMMUNITY = ("most_asked", "abstained", "offtopic", "to_write", "downvoted", "written")


def table_rows(report: dict[str, Any], table: str) -> tuple[list[str], list[list[Any]]]:
    """One table's header and rows; the operator's view (no `community` chosen) adds a community column."""
    header, rows = TABLES[table]
    body = rows(report)
    if table in BY_COMMUNITY and report.get("community") is None:
        header = ["community", *header]
        body = [[item.get("community", ""), *row] for item, row in zip(report[table], body, strict=True)]
    return header, body


def table_csv(report: dict[str, Any], table: str) -> str:
    """One table of the report (`TABLES`) as CSV."""
    header, rows = table_rows(report, table)
    return write_csv(header, rows)


def render(report: dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(report, ensure_ascii=False, indent=2)
    if fmt == "csv":
        return to_csv(report)
    return to_markdown(report)
