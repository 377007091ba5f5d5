from __future__ import annotations

import pytest

from bot.language import looks_english


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
