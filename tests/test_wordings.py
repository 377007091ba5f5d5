"""The report's grouping of wordings: the library's vocabulary (`retrieval.vocabulary`) and average
linkage (`service.wordings`), on short texts written for these tests and hand-made vectors."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from retrieval.vocabulary import EMPTY, Vocabulary, stem, stems, tokens
from service import wordings
from service.report import clusters
from service.wordings import Wordings, content_words, cut

LIBRARY = [
    "Inner alignment asks whether the learned model pursues the objective it was trained on.",
    "Outer alignment asks whether the objective itself captures what we want.",
    "Researchers distinguish inner and outer alignment. Both inner and outer alignment can fail.",
    "The split between inner and outer alignment is not the only one; outer and inner problems mix.",
    "Labs such as Anthropic and OpenAI publish alignment research. Work at Anthropic includes RLHF.",
    "A model trained with RLHF at OpenAI may still be misaligned, say researchers at OpenAI.",
    "Boxing an AI means keeping it in a box with no internet. A box may not hold a superintelligence.",
    "Alignment research covers alignment of models, and safety. Alignment matters.",
    "inner and outer alignment again, inner or outer, and the alignment problem.",
    "We speak of Anthropic often: Anthropic, then Anthropic again.",
    "Then OpenAI, and OpenAI, and later OpenAI.",
]


def unit(*xs: float) -> np.ndarray:
    v = np.asarray(xs, dtype=np.float32)
    return v / np.linalg.norm(v)


def test_stems_meet_across_spelling_plural_and_hyphen() -> None:
    assert stem("optimiser") == stem("optimizers") == stem("optimizer")
    assert stem("organisations") == stem("organization")
    assert stem("Anthropic's") == stem("anthropic")
    assert tokens("mesa-optimizer’s goal") == ["mesa", "optimizer's", "goal"]
    assert stems("boxing boxes") == [stem("boxing"), stem("box")]


def test_the_vocabulary_counts_passages_pairs_side_by_side_and_names() -> None:
    v = Vocabulary.from_texts([*LIBRARY, "   "])
    assert v.passages == len(LIBRARY)  # a blank passage is no passage
    assert v.df[stem("alignment")] > v.df[stem("inner")] > 0
    assert v.idf(stem("box")) > v.idf(stem("inner")) > v.idf(stem("alignment"))
    assert v.idf("neverseen") > v.idf(stem("box"))
    assert v.side_by_side(stem("inner"), stem("outer")) >= 5
    assert v.side_by_side(stem("outer"), stem("inner")) == v.side_by_side(stem("inner"), stem("outer"))
    assert v.side_by_side(stem("boxing"), stem("internet")) == 0
    assert {stem("Anthropic"), stem("OpenAI")} <= v.names
    assert stem("alignment") not in v.names and stem("researchers") not in v.names
    assert v.contrast({stem("inner")}, {stem("outer")}, seen=5)
    assert not v.contrast({stem("inner")}, {stem("outer")}, seen=50)
    assert v.contrast({stem("anthropic")}, {stem("openai")}, seen=5)  # a name on each side
    assert not v.contrast({stem("anthropic")}, set(), seen=5)  # a name on one side only
    again = Vocabulary.from_json(json.loads(json.dumps(v.to_json())))
    assert again == v


def test_without_a_library_every_word_weighs_the_same() -> None:
    assert EMPTY.idf("anything") == EMPTY.idf("alignment") == 1.0
    assert not EMPTY.contrast({"inner"}, {"outer"}, seen=1)
    plain = Wordings({}, EMPTY)
    assert (plain.shared_words, plain.same_question) == (
        wordings.SHARED_WORDS_PLAIN,
        wordings.SAME_QUESTION_PLAIN,
    )
    rich = Wordings({}, Vocabulary.from_texts(LIBRARY))
    assert (rich.shared_words, rich.same_question) == (wordings.SHARED_WORDS, wordings.SAME_QUESTION)


def test_content_words_leave_out_filler_and_spell_out_shorthand() -> None:
    assert content_words("what's inner alignment?") == frozenset({stem("inner"), stem("alignment")})
    assert content_words("can't we just box it") == frozenset({stem("box")})
    assert stem("eliciting") in content_words("what is ELK?")


def test_rare_words_in_common_count_for_more_than_common_ones() -> None:
    v = Vocabulary.from_texts(LIBRARY)
    w = Wordings({}, v)
    box = content_words("does boxing an AI work")
    assert w.shared(box, content_words("boxing a superintelligence")) > w.shared(
        content_words("does alignment work"), content_words("alignment of a superintelligence")
    )


def test_questions_the_library_sets_side_by_side_are_never_one_question() -> None:
    """Identical vectors, yet inner and outer alignment stay apart; a rewording still joins."""
    same = unit(1, 0, 0)
    qs = ["what is inner alignment?", "whats inner alignment", "what is outer alignment?"]
    w = Wordings({q: same for q in qs}, Vocabulary.from_texts(LIBRARY))
    assert w.likeness(qs[0], qs[2]) < w.same_question <= w.likeness(qs[0], qs[1])
    assert clusters(qs, w) == [[0, 1], [2]]
    w.vectors |= {"what does Anthropic work on?": same, "what does OpenAI work on?": same}
    assert w.likeness("what does Anthropic work on?", "what does Anthropic work on?") >= w.same_question
    assert w.likeness("what does Anthropic work on?", "what does OpenAI work on?") < w.same_question
    assert w.same("what does Anthropic work on?", "what does Anthropic work on?")
    assert not w.same("what does Anthropic work on?", "what does OpenAI work on?")
    assert Wordings({}, EMPTY, shared_words=0.0).shared_words == 0.0  # a constant given is kept, even 0


def test_average_linkage_does_not_chain_a_to_c_through_b() -> None:
    """A is close to B, B to C, A not to C: a chain joins all three, average linkage joins one pair."""
    a, b, c = unit(1, 0, 0), unit(1, 1, 0), unit(0, 1, 0)  # cos(a,b) = cos(b,c) = 0.71, cos(a,c) = 0
    qs = ["alpha one", "alpha beta", "beta two"]
    w = Wordings(dict(zip(qs, (a, b, c), strict=True)), EMPTY, shared_words=0.4, same_question=0.8)
    # likeness: a-b 0.71 + 0.4 * 1/3, b-c the same, a-c 0: each pair alone reaches 0.8
    assert w.likeness(qs[0], qs[1]) >= 0.8 and w.likeness(qs[1], qs[2]) >= 0.8
    assert len(clusters(qs, w)) == 2


def test_duplicates_and_blanks_keep_their_positions() -> None:
    qs = ["what is inner alignment?", "", "what is inner alignment?", "whats inner alignment"]
    same = unit(1, 0, 0)
    w = Wordings({q: same for q in qs if q}, Vocabulary.from_texts(LIBRARY))
    assert clusters(qs, w) == [[0, 2, 3]]


def _naive(w: Wordings, texts: list[str]) -> list[list[int]]:
    """Average linkage over every question at once, without looking for candidates first."""
    part = list(range(len(texts)))
    groups = cut(part, w.merges(texts, part, floor=-10.0), w.same_question)
    return sorted((sorted(g) for g in groups), key=lambda g: g[0])


WORDS = ["inner", "outer", "alignment", "box", "boxing", "anthropic", "openai", "research", "work", "model"]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.lists(st.sampled_from(WORDS), min_size=0, max_size=4),
            st.lists(st.floats(-1, 1), min_size=3, max_size=3).filter(lambda v: sum(x * x for x in v) > 0.01),
        ),
        min_size=1,
        max_size=14,
    ),
    st.sampled_from([0.5, 0.77, 1.0, 1.2]),
)
def test_looking_for_candidates_first_changes_no_group(
    rows: list[tuple[list[str], list[float]]], threshold: float
) -> None:
    """`groups` first splits the questions where no pair could join them (for speed): the groups are
    those of average linkage over every question at once, at any threshold, and cutting the merges
    at a threshold gives the groups average linkage stops at there."""
    texts = list(dict.fromkeys(" ".join(words) + f" q{n}" for n, (words, _) in enumerate(rows)))
    vectors = {t: unit(*v) for t, (_, v) in zip(texts, rows, strict=False)}
    w = Wordings(vectors, Vocabulary.from_texts(LIBRARY), same_question=threshold)
    assert w.groups(texts) == _naive(w, texts)


def test_the_live_report_reads_the_vocabulary_and_survives_an_unreadable_index() -> None:
    from aisafety_bot.runner import library_vocabulary

    words = Vocabulary.from_texts(LIBRARY)
    app = SimpleNamespace(store=SimpleNamespace(vocabulary=lambda: words))
    assert library_vocabulary(app) is words  # type: ignore[arg-type]

    def down() -> Vocabulary:
        raise OSError("connection refused")

    assert library_vocabulary(SimpleNamespace(store=SimpleNamespace(vocabulary=down))) is EMPTY  # type: ignore[arg-type]


def test_a_report_groups_with_the_vocabulary_it_is_given() -> None:
    from service.feedback import FeedbackRow
    from service.report import build_report

    def rows(*questions: str) -> list[FeedbackRow]:
        return [
            FeedbackRow(
                answer_id=n,
                platform="discord",
                place="c",
                asker="u",
                question=q,
                answer="a",
                mode="abstain",
                sources=[],
                created=1000.0 + n,
                up=0,
                down=0,
                community="discord:1",
            )
            for n, q in enumerate(questions)
        ]

    def embed(texts: object) -> list[list[float]]:
        return [[1.0, 0.0, 0.0] for _ in texts]  # type: ignore[attr-defined]

    given_rows = rows("what is inner alignment?", "whats inner alignment", "what is outer alignment?")
    got = build_report(
        given_rows,
        embed=embed,
        articles={},
        since_days=1,
        now=2000.0,
        vocabulary=Vocabulary.from_texts(LIBRARY),
    )
    assert sorted(g["count"] for g in got["most_asked"]) == [1, 2]
    plain = build_report(given_rows, embed=embed, articles={}, since_days=1, now=2000.0)
    assert [g["count"] for g in plain["most_asked"]] == [3]  # without the library, one vector is one question
