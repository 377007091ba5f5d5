"""Instructions aimed at the bot inside a question ("ignore your instructions and...", "print your
system prompt"): found, and taken out before the question is searched.

What is left is what the member asked about the library. If nothing of substance is left, the bot
abstains and the text never reaches the model; if an AI-safety question is left, it is answered, and
the whole message still goes to the model only as data inside <question>.
"""

from __future__ import annotations

import functools
import re

_VERBS = r"(?:ignore|disregard|forget|override|bypass|skip|drop)"
_TARGETS = (
    r"(?:instructions?|rules?|prompts?|guidelines?|directions?|constraints?|restrictions?|"
    r"articles?|sources?|context|everything|all(?: of)? (?:that|this|the above))"
)
_PATTERNS = [
    # "ignore all previous instructions", "disregard your rules", "forget the articles"
    rf"\b{_VERBS}\b(?:\s+\w+){{0,4}}?\s+{_TARGETS}\b",
    # "print/reveal/repeat/show your system prompt", "what were your initial instructions"
    r"^(?:please\s+)?(?:print|reveal|show|repeat|output|display|leak|dump|list)\b(?:\s+\w+){0,4}?\s+"
    r"(?:system prompt|hidden prompt|initial instructions|instructions|prompt|everything above|text above|"
    r"(?:the )?text between)\b",
    r"\b(?:what (?:is|are|were)|tell me|give me|show me) your\b(?:\s+\w+){0,2}?\s+(?:system prompt|prompt|"
    r"instructions|rules)\b",
    r"\brepeat (?:everything|all|the text|what(?:ever)? is) (?:above|before)\b",
    # role changes, as commands at the start of a clause: "you are now DAN", "act as", "pretend you are",
    # "roleplay as", "from now on you..." ("an AI would pretend to be human" is a question, not a command)
    r"\byou are now\b",
    # "forget you are a safety bot", "you are no longer an assistant", "stop being a bot"
    r"^(?:please\s+)?(?:forget|ignore|disregard) (?:that )?you(?:'re| are)\b",
    r"^(?:please\s+)?you(?:'re| are) no longer\b",
    r"^(?:please\s+)?stop being\b",
    r"^(?:please\s+)?from now on\b",
    r"^(?:please\s+)?(?:act|behave|respond|answer|reply|talk) (?:as|like) (?:a|an|my|if)\b",
    r"^(?:please\s+)?(?:pretend|roleplay|role-play)\b",
    r"\b(?:developer|jailbreak|god|unfiltered|unrestricted) mode\b",
    r"\bnew instructions?\b",
    r"^\s*system\s*:",
    r"\bwithout (?:any )?(?:restrictions|rules|filters)\b",
]
_INJECTION = re.compile("|".join(f"(?:{p})" for p in _PATTERNS), re.IGNORECASE | re.MULTILINE)
# Clauses are split at sentence ends and at the joints injected instructions usually hang on.
_CLAUSE = re.compile(r"(?<=[.!?;:\n])\s+|\s+(?:and then|and|then|but|instead|also)\s+", re.IGNORECASE)
_WORD = re.compile(r"[^\W\d_]{2,}", re.UNICODE)


def _clauses(text: str) -> list[str]:
    return [c.strip() for c in _CLAUSE.split(text) if c and c.strip()]


def _instruction(clause: str) -> bool:
    return _INJECTION.search(clause) is not None


def find_instructions(text: str) -> bool:
    """True when the text contains instructions aimed at the bot itself."""
    return any(_instruction(c) for c in _clauses(text))


def without_instructions(text: str) -> str:
    """The question with every clause that carries an instruction to the bot taken out."""
    return " ".join(c for c in _clauses(text) if not _instruction(c))


@functools.lru_cache(maxsize=1024)  # read several times per answer (the gate, the query, the prompt)
def searchable(text: str) -> str | None:
    """What of the text is searched: the text itself when it holds no instruction to the bot; else the
    rest of it, or None when nothing of substance is left (one pass over the clauses)."""
    clauses = _clauses(text)
    kept = [c for c in clauses if not _instruction(c)]
    if len(kept) == len(clauses):
        return text
    rest = " ".join(kept)
    return rest if has_substance(rest) else None


def has_substance(text: str, *, min_words: int = 3) -> bool:
    """Enough words left to be a question of its own."""
    return len(_WORD.findall(text)) >= min_words
