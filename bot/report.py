"""What the community asks: the report article writers use to decide what to write next."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from bot.feedback import FeedbackRow

SAME_QUESTION = 0.8  # cosine above which two questions count as the same question
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
    questions: Sequence[str], vectors: dict[str, np.ndarray], *, threshold: float = SAME_QUESTION
) -> list[dict[str, Any]]:
    """Near-duplicate questions grouped (greedy, by embedding cosine), most asked first."""
    groups: list[tuple[np.ndarray, list[str]]] = []
    for text in questions:
        vec = vectors.get(text)
        if vec is None:
            continue  # blank
        for head, members in groups:
            if float(head @ vec) >= threshold:
                members.append(text)
                break
        else:
            groups.append((vec, [text]))
    out = [
        {"question": Counter(m).most_common(1)[0][0], "count": len(m), "variants": sorted(set(m))[:5]}
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
) -> dict[str, Any]:
    cited = Counter(str(s["id"]) for r in rows for s in r.sources if r.mode == "llm")
    vectors = embed_questions([r.question for r in rows], embed)
    return {
        "since_days": since_days,
        "answers": len(rows),
        "by_outcome": dict(Counter(r.mode for r in rows)),
        "most_asked": group_questions([r.question for r in rows], vectors)[:top],
        "abstained": group_questions([r.question for r in rows if r.mode == "abstain"], vectors)[:top],
        "downvoted": [
            {"question": r.question, "answer": r.answer, "down": r.down, "up": r.up, "sources": r.sources}
            for r in rows
            if r.down > 0
        ][:top],
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


def to_markdown(report: dict[str, Any]) -> str:
    lines = [
        f"# What the community asked (last {report['since_days']:g} days)",
        "",
        f"{report['answers']} answers: "
        + ", ".join(f"{n} {mode}" for mode, n in sorted(report["by_outcome"].items())),
        "",
        "## Most asked",
        *[f"- {g['count']}× {g['question']}" for g in report["most_asked"]],
        "",
        "## Questions the articles did not cover (the bot abstained)",
        *[f"- {g['count']}× {g['question']}" for g in report["abstained"]],
        "",
        "## Answers that got 👎",
    ]
    for d in report["downvoted"]:
        sources = ", ".join(f"[{s['title']}]({s['url']})" for s in d["sources"]) or "no sources"
        lines.append(f"- 👎 {d['down']} 👍 {d['up']}: {d['question']} (sources: {sources})")
    lines += ["", "## Articles cited most"]
    lines += [f"- {a['count']}× [{a['title']}]({a['url']})" for a in report["most_cited"]]
    lines += ["", f"## Articles never cited ({len(report['never_cited'])})"]
    lines += [f"- [{a['title']}]({a['url']})" for a in report["never_cited"]]
    return "\n".join(lines) + "\n"


def to_csv(report: dict[str, Any]) -> str:
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["section", "count", "question_or_title", "id", "url"])
    for g in report["most_asked"]:
        w.writerow(["most_asked", g["count"], g["question"], "", ""])
    for g in report["abstained"]:
        w.writerow(["abstained", g["count"], g["question"], "", ""])
    for d in report["downvoted"]:
        w.writerow(["downvoted", d["down"], d["question"], ";".join(str(s["id"]) for s in d["sources"]), ""])
    for a in report["most_cited"]:
        w.writerow(["most_cited", a["count"], a["title"], a["id"], a["url"]])
    for a in report["never_cited"]:
        w.writerow(["never_cited", 0, a["title"], a["id"], a["url"]])
    return out.getvalue()


def render(report: dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(report, ensure_ascii=False, indent=2)
    if fmt == "csv":
        return to_csv(report)
    return to_markdown(report)
