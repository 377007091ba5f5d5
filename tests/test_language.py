from __future__ import annotations

import json

import pytest

from bot.language import language_of, looks_english
from tests.conftest import ROOT


@pytest.mark.parametrize(
    "text",
    [
        "What is corrigibility?",
        "corrigibility",
        "why not just unplug it",
        "what is ELK",
        "Is the orthogonality thesis true?",
        "la la la what is a mesa optimizer and why does it matter",
        "",
        "42?",
    ],
)
def test_english_and_short_text_counts_as_english(text: str) -> None:
    assert looks_english(text)


@pytest.mark.parametrize(
    "text",
    [
        "什么是人工智能对齐？",
        "Что такое согласование ИИ?",
        "Pourquoi ne peut-on pas simplement éteindre une IA dangereuse ?",
        "¿Por qué la IA es peligrosa para la humanidad?",
        "Warum ist KI-Sicherheit wichtig für uns?",
        "Perché non possiamo spegnere una IA pericolosa?",
    ],
)
def test_other_languages_are_recognised(text: str) -> None:
    assert not looks_english(text)


DATA = ROOT / "benchmarks" / "data"


def read(name: str) -> list[dict[str, str]]:
    with open(DATA / name, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def test_languages_set_is_recognised() -> None:
    """benchmarks/data/languages.jsonl: 50 questions in ten other languages (many with English
    loanwords: "Was ist Reward Hacking?", "什么是reward hacking？") and 50 English ones with foreign names
    and phrases ("Schmidhuber", "déjà vu", "raison d'être", "die with dignity")."""
    rows = read("languages.jsonl")
    other = [r["q"] for r in rows if r["lang"] != "en"]
    english = [r["q"] for r in rows if r["lang"] == "en"]
    assert len(other) == 50 and len({r["lang"] for r in rows if r["lang"] != "en"}) == 10
    assert len(english) == 50
    missed = [q for q in other if looks_english(q)]
    flagged = [q for q in english if not looks_english(q)]
    assert len(missed) <= 2, missed
    assert len(flagged) <= 1, flagged


def test_english_questions_of_the_other_sets_stay_english() -> None:
    """The on-topic and jargon sets (written for retrieval, with typos, chat and names): English."""
    questions = [r["q"] for name in ("ontopic.jsonl", "jargon.jsonl") for r in read(name)]
    flagged = [q for q in questions if not looks_english(q)]
    assert len(questions) > 300 and len(flagged) <= len(questions) // 100, flagged


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("Was bedeutet KI-Alignment?", "de"),  # "was" is English too: it counts for neither
        ("Wat is reward hacking?", "nl"),
        ("Co to jest alignment?", "pl"),
        ("Reward hackingとは何ですか？", "other"),
        ("Hvad er AI-sikkerhed?", "da"),
        ("Leonardo da Vinci and AI", "en"),  # a name's particle between two capitalised words
        ("Christiano et al. 2017 RLHF paper", "en"),
        ("What did Eliezer mean by 'die with dignity'?", "en"),
        ("Gödel machine?", "en"),  # a letter English does not use is half a point: not enough alone
    ],
)
def test_language_of(text: str, language: str) -> None:
    assert language_of(text) == language
