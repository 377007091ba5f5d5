"""Heading-aware chunking: passages of roughly 100-250 words that do not straddle sections needlessly."""

from __future__ import annotations

import re
from dataclasses import dataclass

from retrieval.documents import Chunk, Document

TARGET_WORDS = 175
MAX_WORDS = 250
MIN_WORDS = 100
OVERLAP_WORDS = 30

_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[A-Z0-9*_])")


@dataclass
class _Unit:
    text: str
    heading: str
    words: int


def _split_sentences(paragraph: str) -> list[str]:
    parts = [p.strip() for p in _SENTENCE_END.split(paragraph) if p.strip()]
    out: list[str] = []
    for part in parts:
        words = part.split()
        # A "sentence" with no full stop in sight (a list, a table) is cut at the word limit.
        while len(words) > MAX_WORDS:
            out.append(" ".join(words[:TARGET_WORDS]))
            words = words[TARGET_WORDS:]
        if words:
            out.append(" ".join(words))
    return out


def _units(text: str, title: str) -> list[_Unit]:
    """Paragraphs (or sentences of long paragraphs), each tagged with the heading it sits under."""
    units: list[_Unit] = []
    heading = ""
    path: dict[int, str] = {}  # heading level -> text, for a "Part › Section" heading path
    heading_line = ""
    has_body = True
    for block in re.split(r"\n\s*\n", text):
        lines = block.strip().split("\n")
        body: list[str] = []
        for line in lines:
            match = _HEADING.match(line)
            if match:
                if body:
                    units.extend(_paragraph_units(" ".join(body), heading))
                    body = []
                if not has_body and heading_line:
                    # A heading with nothing under it (a list of headings): keep its words as text.
                    units.append(_Unit(heading_line, heading, len(heading_line.split())))
                heading_line = match.group(2).strip()
                has_body = False
                level = len(match.group(1))
                path = {lvl: h for lvl, h in path.items() if lvl < level}
                path[level] = match.group(2).strip()
                heading = " › ".join(path[lvl] for lvl in sorted(path) if path[lvl] != title)
            elif line.strip():
                body.append(line.strip())
                has_body = True
        if body:
            units.extend(_paragraph_units("\n".join(body), heading))
    return units


def _paragraph_units(paragraph: str, heading: str) -> list[_Unit]:
    n = len(paragraph.split())
    if n <= TARGET_WORDS:
        return [_Unit(paragraph, heading, n)]
    return [_Unit(s, heading, len(s.split())) for s in _split_sentences(paragraph)]


def _tail(units: list[_Unit]) -> list[_Unit]:
    """The last sentences of a chunk, about OVERLAP_WORDS long, repeated at the start of the next."""
    if not units:
        return []
    sentences = _split_sentences(units[-1].text)
    kept: list[str] = []
    count = 0
    for sentence in reversed(sentences):
        n = len(sentence.split())
        if count + n > OVERLAP_WORDS and kept:
            break
        if n > OVERLAP_WORDS * 2:
            break
        kept.insert(0, sentence)
        count += n
    if not kept:
        return []
    return [_Unit(" ".join(kept), units[-1].heading, count)]


def chunk_document(doc: Document) -> list[Chunk]:
    """Split an article into passages; short articles stay whole."""
    units = _units(doc.text, doc.title)
    chunks: list[Chunk] = []
    current: list[_Unit] = []
    current_words = 0
    fresh_words = 0  # words in `current` that are not overlap from the previous chunk

    def flush(overlap: bool) -> None:
        nonlocal current, current_words, fresh_words
        if fresh_words:
            text = "\n\n".join(u.text for u in current)
            chunks.append(Chunk(doc.id, len(chunks), text, current[0].heading))
        current = _tail(current) if overlap else []
        current_words = sum(u.words for u in current)
        fresh_words = 0

    for unit in units:
        section_changed = bool(current) and unit.heading != current[-1].heading
        # When a short section runs on into the next, the new heading stays visible inside the passage.
        marker = unit.heading.split(" › ")[-1] + ":" if section_changed and unit.heading else ""
        size = unit.words + len(marker.split())
        if section_changed and fresh_words >= MIN_WORDS:
            flush(overlap=False)
        elif current_words + size > MAX_WORDS or (
            current_words >= TARGET_WORDS and current_words + size > TARGET_WORDS + 25
        ):
            flush(overlap=True)
        if marker and current:
            current.append(_Unit(marker, unit.heading, len(marker.split())))
            current_words += len(marker.split())
        current.append(unit)
        current_words += unit.words
        fresh_words += unit.words
    if fresh_words:
        if (
            chunks
            and fresh_words < MIN_WORDS // 2
            and len(chunks[-1].text.split()) + fresh_words <= MAX_WORDS
        ):
            last = chunks.pop()
            extra = "\n\n".join(u.text for u in current if u.text not in last.text)
            if current[0].heading != last.heading and not current[0].text.endswith(":"):
                extra = f"{current[0].heading.split(' › ')[-1]}:\n\n{extra}"
            chunks.append(Chunk(doc.id, last.index, f"{last.text}\n\n{extra}".strip(), last.heading))
        else:
            flush(overlap=False)
    if not chunks and doc.text.strip():
        chunks.append(Chunk(doc.id, 0, doc.text.strip(), ""))
    return chunks
