"""Query-side handling of the field's shorthand: a question that says "ELK" or "x-risk" is searched with
the words they stand for added (the list is `glossary.txt`)."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

GLOSSARY = Path(__file__).with_name("glossary.txt")


@lru_cache(maxsize=1)
def _entries() -> list[tuple[re.Pattern[str], str]]:
    entries = []
    for line in GLOSSARY.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#") or ":" not in line:
            continue
        term, meaning = (part.strip() for part in line.split(":", 1))
        exact = term.startswith("=")
        term = term.lstrip("=")
        flags = 0 if exact else re.IGNORECASE
        entries.append((re.compile(rf"(?<![\w-]){re.escape(term)}(?![\w-])", flags), meaning))
    return entries


def expand(question: str) -> str:
    """The question, followed by what each piece of shorthand in it stands for (each once)."""
    added: list[str] = []
    for pattern, meaning in _entries():
        if meaning not in added and pattern.search(question) and meaning.lower() not in question.lower():
            added.append(meaning)
    return f"{question} ({'; '.join(added)})" if added else question
