"""Split long text for chat platforms: on paragraph, line, sentence or word breaks, never inside a
link or a fenced code block when that can be avoided. Each platform passes its own link syntax."""

from __future__ import annotations

import re

FENCE = "```"


def protected_spans(text: str, link: re.Pattern[str]) -> list[tuple[int, int]]:
    """Character ranges a split must not fall inside: links and fenced code blocks."""
    spans = [(m.start(), m.end()) for m in link.finditer(text)]
    start = text.find(FENCE)
    while start != -1:
        end = text.find(FENCE, start + 3)
        if end == -1:
            break
        spans.append((start, end + 3))
        start = text.find(FENCE, end + 3)
    return spans


def _best_cut(text: str, limit: int, link: re.Pattern[str]) -> int:
    """Where to end the first piece: the last paragraph, line, sentence or word break that fits."""
    window = text[:limit]
    spans = protected_spans(text, link)

    def ok(i: int) -> bool:
        return 0 < i <= limit and not any(a < i < b for a, b in spans)

    for sep in ("\n\n", "\n", ". ", "! ", "? ", " "):
        i = window.rfind(sep)
        while i > 0:
            cut = i + len(sep)
            if ok(cut):
                return cut
            i = window.rfind(sep, 0, i)
    # No break fits: cut where a link or code block starts or ends, if one does within the limit.
    edges = [i for a, b in spans for i in (a, b) if ok(i)]
    if edges:
        return max(edges)
    # A link or code block longer than the limit must be cut after all.
    return limit


def split_text(text: str, limit: int, link: re.Pattern[str]) -> list[str]:
    """Pieces of at most `limit` characters; joining them gives back the text."""
    pieces: list[str] = []
    rest = text
    while len(rest) > limit:
        cut = _best_cut(rest, limit, link)
        pieces.append(rest[:cut])
        rest = rest[cut:]
    if rest or not pieces:
        pieces.append(rest)
    return pieces
