"""Query-side handling of the field's shorthand (retrieval/glossary.py)."""

from __future__ import annotations

from retrieval.glossary import expand


def test_shorthand_is_searched_with_what_it_stands_for() -> None:
    assert expand("what is ELK?") == "what is ELK? (eliciting latent knowledge)"
    assert expand("how does rlhf work") == "how does rlhf work (reinforcement learning from human feedback)"
    assert (
        expand("ELK vs HCH")
        == "ELK vs HCH (eliciting latent knowledge; humans consulting HCH, amplification)"
    )


def test_ordinary_words_and_spelled_out_terms_are_left_alone() -> None:
    assert expand("elk meat recipes") == "elk meat recipes"  # "=ELK": only as written
    assert expand("meet irl?") == "meet irl?"
    assert expand("the arc of history") == "the arc of history"
    spelled = "what is reinforcement learning from human feedback (RLHF)?"
    assert expand(spelled) == spelled
    assert expand("why is AGI dangerous?") == "why is AGI dangerous?"  # a term the model knows
    assert expand("pre-RLHF models") == "pre-RLHF models"  # part of a longer word
