"""The terminal front end: render an `Answer` as plain text with numbered, linked sources."""

from __future__ import annotations

from bot.models import Answer

MODE_LABEL = {"llm": "", "retrieval-only": "[retrieval-only]", "abstain": "[no matching articles]"}


def render_sources(answer: Answer) -> str:
    lines: list[str] = []
    if answer.sources:
        lines.append("Sources:")
        lines.extend(f"  [{s.n}] {s.title}\n      {s.url}" for s in answer.sources)
    if answer.read_next:
        heading = "Nearest articles:" if answer.mode == "abstain" else "Read next:"
        lines.append(heading)
        lines.extend(f"  - {s.title}\n      {s.url}" for s in answer.read_next)
    return "\n".join(lines)


def render(answer: Answer) -> str:
    """The whole answer: label, text, then sources and read-next links."""
    parts = []
    if answer.notice:
        parts.append(answer.notice)
    parts.append(answer.text)
    tail = render_sources(answer)
    if tail:
        parts.append(tail)
    return "\n\n".join(parts)
