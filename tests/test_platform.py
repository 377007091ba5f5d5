"""The replies every platform shares."""

from __future__ import annotations

from bot.models import Answer, Source
from bot.platform import APOLOGY, THANKS, VOTE_LOST, apology, thanks

SOURCE = Source(1, "aisafety.info:6568", "The orthogonality thesis", "https://aisafety.info/questions/6568")


def render(answer: Answer) -> str:
    return "rendered: " + ", ".join(s.title for s in (*answer.sources, *answer.read_next))


def test_the_apology_carries_whatever_was_found() -> None:
    assert apology(None, render) == APOLOGY
    assert apology(Answer("", (), "abstain"), render) == APOLOGY
    with_sources = apology(Answer("text", (SOURCE,), "retrieval-only"), render)
    assert with_sources.startswith(APOLOGY) and with_sources.endswith("rendered: The orthogonality thesis")
    read_next_only = apology(Answer("", (), "abstain", read_next=(SOURCE,)), render)
    assert "rendered: The orthogonality thesis" in read_next_only


def test_thanks_says_when_the_answer_is_gone() -> None:
    assert thanks("up", True) == THANKS["up"] and thanks("down", True) == THANKS["down"]
    assert thanks("up", False) == VOTE_LOST
