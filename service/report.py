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

import numpy as np

from service.feedback import FeedbackRow, FeedbackStore

SAME_QUESTION = 0.8  # cosine above which two questions count as the same question
# Cosine to a cluster's first question above which a question joins it, for "questions to write": one
# topic asked in different words (chosen on the project's own questions, see benchmarks/topics.py).
SAME_TOPIC = 0.7
OUTCOMES = ("llm", "retrieval-only", "abstain", "error")
DAY = 86400
Embed = Callable[[Sequence[str]], list[list[float]]]


def embed_questions(questions: Sequence[str], embed: Embed) -> dict[str, np.ndarray]:
    """Each distinct question's unit vector, embedded once for every section of the report."""
    texts = sorted({q for q in questions if q.strip()})
    if not texts:
        return {}
    vectors = np.asarray(embed(texts), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True) + 1e-9
    return dict(zip(texts, vectors, strict=True))


def group_questions(
    questions: Sequence[str],
    vectors: dict[str, np.ndarray],
    *,
    threshold: float = SAME_QUESTION,
    members: bool = False,
) -> list[dict[str, Any]]:
    """Near-duplicate questions grouped (greedy, by embedding cosine), most asked first. With `members`,
    each group also lists every question in it."""
    groups: list[tuple[np.ndarray, list[str]]] = []
    for text in questions:
        vec = vectors.get(text)
        if vec is None:
            continue  # blank
        for head, group in groups:
            if float(head @ vec) >= threshold:
                group.append(text)
                break
        else:
            groups.append((vec, [text]))
    out = [
        {"question": Counter(m).most_common(1)[0][0], "count": len(m), "variants": sorted(set(m))[:5]}
        | ({"members": m} if members else {})
        for _, m in groups
    ]
    return sorted(out, key=lambda g: (-g["count"], g["question"]))


def build_report(
    rows: Sequence[FeedbackRow],
    *,
    embed: Embed,
    articles: dict[str, tuple[str, str]],
    since_days: float,
    top: int = 20,
    questions_stored: bool = True,
    now: float | None = None,
    community: str | None = None,
    library: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What the community asked in the last `since_days` days. Without stored questions
    (`STORE_QUESTIONS=false`) only counts and sources: the question sections are empty.

    `community`: the one community `rows` were read for (its moderators' view); None for the operator's
    view of every community, where questions are grouped within their own community and each group,
    answer and topic names it. `library`: the library's state and changes (`library_section`), the same
    in every view."""
    if community is not None and any(r.community != community for r in rows):
        raise ValueError(f"a report of {community} was given another community's answers")
    cited = Counter(str(s["id"]) for r in rows for s in r.sources if r.mode == "llm")
    vectors = embed_questions([r.question for r in rows] if questions_stored else [], embed)
    downvoted = [r for r in rows if r.down > 0]
    most_asked: list[dict[str, Any]] = []
    abstained: list[dict[str, Any]] = []
    to_write: list[dict[str, Any]] = []
    for name in sorted({r.community for r in rows}):
        mine = [r for r in rows if r.community == name] if questions_stored else []
        asked = [r.question for r in mine]
        not_covered = [r.question for r in mine if r.mode == "abstain"]
        voted_down = [r.question for r in mine if r.down > 0]
        tag = {} if community is not None else {"community": name}
        most_asked += [g | tag for g in group_questions(asked, vectors)]
        abstained += [g | tag for g in group_questions(not_covered, vectors)]
        to_write += [g | tag for g in topics(not_covered, voted_down, vectors)]
    report = {
        "community": community,
        "since_days": since_days,
        "questions_stored": questions_stored,
        "answers": len(rows),
        "by_outcome": dict(Counter(r.mode for r in rows)),
        "by_day": by_day(rows, since_days, now=now),
        "most_asked": _most(most_asked)[:top],
        "abstained": _most(abstained)[:top],
        "downvoted": [
            {
                "question": r.question if questions_stored else "",
                "answer": r.answer if questions_stored else "",
                "down": r.down,
                "up": r.up,
                "sources": r.sources,
            }
            | ({} if community is not None else {"community": r.community})
            for r in downvoted
        ][:top],
        "to_write": _most(to_write)[:top],
        "most_cited": [
            {
                "id": aid,
                "count": n,
                "title": articles.get(aid, ("", ""))[0],
                "url": articles.get(aid, ("", ""))[1],
            }
            for aid, n in cited.most_common(top)
        ],
        "never_cited": [
            {"id": aid, "title": title, "url": url}
            for aid, (title, url) in sorted(articles.items())
            if aid not in cited
        ],
    }
    return report if library is None else report | {"library": library}


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


def topics(
    abstained: Sequence[str], downvoted: Sequence[str], vectors: dict[str, np.ndarray]
) -> list[dict[str, Any]]:
    """The questions the library did not cover and those whose answers got 👎, clustered by topic: what
    to write next, with counts and example wordings."""
    origin = {q: "abstained" for q in abstained} | {q: "downvoted" for q in downvoted}
    out = []
    for g in group_questions([*abstained, *downvoted], vectors, threshold=SAME_TOPIC, members=True):
        members = g.pop("members")
        out.append(
            {
                **g,
                "abstained": sum(origin.get(m) == "abstained" for m in members),
                "downvoted": sum(origin.get(m) == "downvoted" for m in members),
            }
        )
    return out


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
    """A time of the library's log as the report shows it; "never" for no time."""
    return "never" if when is None else time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(when))


def to_markdown(report: dict[str, Any]) -> str:
    community = report.get("community")
    lines = [
        f"# What {community or 'every community'} asked (last {report['since_days']:g} days)",
        "",
        f"{report['answers']} answers: "
        + ", ".join(f"{n} {mode}" for mode, n in sorted(report["by_outcome"].items())),
        "",
        "## Most asked",
        *[f"- {g['count']}× {_md_text(g['question'])}{_in(g)}" for g in report["most_asked"]],
        "",
        "## Questions the articles did not cover (the bot abstained)",
        *[f"- {g['count']}× {_md_text(g['question'])}{_in(g)}" for g in report["abstained"]],
        "",
        "## Answers that got 👎",
    ]
    for d in report["downvoted"]:
        sources = ", ".join(_md_link(s["title"], s["url"]) for s in d["sources"]) or "no sources"
        lines.append(f"- 👎 {d['down']} 👍 {d['up']}: {_md_text(d['question'])}{_in(d)} (sources: {sources})")
    lines += ["", "## Questions to write (not covered or 👎, by topic)"]
    lines += [
        f"- {g['count']}× {_md_text(g['question'])}{_in(g)} "
        f"({g['abstained']} not covered, {g['downvoted']} 👎)"
        for g in report["to_write"]
    ]
    lines += ["", "## Articles cited most"]
    lines += [f"- {a['count']}× {_md_link(a['title'], a['url'])}" for a in report["most_cited"]]
    lines += ["", f"## Articles never cited ({len(report['never_cited'])})"]
    lines += [f"- {_md_link(a['title'], a['url'])}" for a in report["never_cited"]]
    library = report.get("library")
    if library is not None:
        changes = library["changes"]
        lines += [
            "",
            "## The library",
            "",
            f"{library['articles']} articles; last synced: {utc(library['last_sync'])}.",
            "",
            f"### Changes in the period ({len(changes)})",
            *[f"- {utc(c['time'])} {c['change']}: {_md_link(c['title'], c['url'])}" for c in changes],
        ]
    return "\n".join(lines) + "\n"


def to_csv(report: dict[str, Any]) -> str:
    """Every section in one CSV: a row per question group, article and library change."""
    header = ["section", "count", "question_or_title", "id", "url", "community", "change", "time"]
    rows: list[list[Any]] = []

    def put(*cells: Any) -> None:
        rows.append([*cells] + [""] * (len(header) - len(cells)))

    for section in ("most_asked", "abstained", "downvoted", "to_write"):
        for g in report[section]:
            count = g["down"] if section == "downvoted" else g["count"]
            ids = ";".join(str(s["id"]) for s in g["sources"]) if section == "downvoted" else ""
            put(section, count, g["question"], ids, "", g.get("community", ""))
    for a in report["most_cited"]:
        put("most_cited", a["count"], a["title"], a["id"], a["url"])
    for a in report["never_cited"]:
        put("never_cited", 0, a["title"], a["id"], a["url"])
    for c in _library_changes(report):
        put("library", "", c["title"], c["id"], c["url"], "", c["change"], _iso(c["time"]))
    return write_csv(header, rows)


def _library_changes(report: dict[str, Any]) -> list[dict[str, Any]]:
    library = report.get("library")
    return [] if library is None else list(library["changes"])


def _iso(when: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))


def _sources(sources: Sequence[dict[str, Any]]) -> str:
    return "; ".join(f"{s.get('title', '')} <{s.get('url', '')}>" for s in sources)


def _grouped(groups: Sequence[dict[str, Any]]) -> list[list[Any]]:
    return [[g["count"], g["question"], " | ".join(g["variants"])] for g in groups]


# Each table of the report as CSV: its header and its rows.
TABLES: dict[str, tuple[list[str], Callable[[dict[str, Any]], list[list[Any]]]]] = {
    "by_day": (["day", *OUTCOMES], lambda r: [[d["day"], *(d[o] for o in OUTCOMES)] for d in r["by_day"]]),
    "most_asked": (["count", "question", "variants"], lambda r: _grouped(r["most_asked"])),
    "abstained": (["count", "question", "variants"], lambda r: _grouped(r["abstained"])),
    "to_write": (
        ["count", "not_covered", "downvoted", "question", "examples"],
        lambda r: [
            [g["count"], g["abstained"], g["downvoted"], g["question"], " | ".join(g["variants"])]
            for g in r["to_write"]
        ],
    ),
    "downvoted": (
        ["down", "up", "question", "sources"],
        lambda r: [[d["down"], d["up"], d["question"], _sources(d["sources"])] for d in r["downvoted"]],
    ),
    "most_cited": (
        ["count", "id", "title", "url"],
        lambda r: [[a["count"], a["id"], a["title"], a["url"]] for a in r["most_cited"]],
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
BY_COMMUNITY = ("most_asked", "abstained", "to_write", "downvoted")


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
