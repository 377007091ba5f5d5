"""Small talk gets a friendly word and counts as off-topic; a question whose "it" points at nothing it
names, or that proposes a fix with "just", is on the community's subject, so it is never called far
off-topic."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.core import AnswerCore
from bot.followup import on_the_subject, points_at_unnamed, proposes_a_fix
from bot.models import Question
from bot.smalltalk import REPLIES, small_talk
from retrieval.documents import Passage

DATA = Path(__file__).resolve().parents[1] / "benchmarks" / "data"


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("hi", "greeting"),
        ("Hello there!", "greeting"),
        ("good morning everyone 👋", "greeting"),
        ("<@123456> hey", "greeting"),
        ("thanks!", "thanks"),
        ("Thank you so much, that was really helpful", "thanks"),
        ("thx", "thanks"),
        ("are you there?", "presence"),
        ("is this thing on?", "presence"),
        ("who are you?", "about"),
        ("what can you do", "about"),
        ("help", "about"),
    ],
)
def test_small_talk_is_recognised(text: str, kind: str) -> None:
    assert small_talk(text) == kind


@pytest.mark.parametrize(
    "text",
    [
        "hi, what is inner alignment?",
        "thanks, but why would it resist being shut down?",
        "who are the people working on AI safety?",
        "help me understand corrigibility",
        "what can you do about a misaligned AI?",
        "is this thing on the alignment forum true?",
        "hey can we just turn it off",
        "",
        "👍",
    ],
)
def test_a_message_with_a_question_is_not_small_talk(text: str) -> None:
    assert small_talk(text) is None


def test_no_question_the_library_answers_is_taken_for_small_talk() -> None:
    """Every answerable question the project wrote (on-topic, jargon, near misses, follow-ups)."""
    questions = [
        json.loads(line)["q"]
        for name in ("ontopic", "jargon", "nearmiss")
        for line in (DATA / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    questions += [
        turn
        for line in (DATA / "followups_topics.jsonl").read_text(encoding="utf-8").splitlines()
        if line.strip()
        for turn in json.loads(line)["turns"]
    ]
    assert len(questions) > 600
    assert [q for q in questions if small_talk(q)] == []


class _NoSearch:
    """A retriever that must not be used."""

    async def search(self, query: str, *, k: int = 5) -> list[object]:
        raise AssertionError("small talk was searched")

    async def articles(self, article_ids: object) -> dict[str, object]:
        raise AssertionError("small talk was searched")


async def test_small_talk_is_answered_at_once_and_counts_as_off_topic() -> None:
    core = AnswerCore(retriever=_NoSearch(), llm=None)  # type: ignore[arg-type]
    for text, kind in (
        ("thanks, that was helpful!", "thanks"),
        ("hello", "greeting"),
        ("who are you?", "about"),
    ):
        answer = await core.answer(Question(text))
        assert answer.text == REPLIES[kind]  # type: ignore[index]
        assert answer.sources == () and answer.offtopic and answer.coverage == "not_covered"
    await core.aclose()


@pytest.mark.parametrize(
    ("text", "unnamed"),
    [
        ("why not just unplug it", True),
        ("cant we keep it offline in a locked room", True),
        ("who's even working on this stuff", True),
        ("ok but it's a program. ctrl+c?", True),
        ("why can't we turn the AI off if it misbehaves?", False),  # "it" is the AI, named
        ("is it possible to align AI?", False),  # an "it" that points nowhere
        ("how likely is it that AI kills us?", False),
        ("what's the best pizza topping?", False),
        ("this intelligence explosion idea, is it real?", False),
        # "any of this": a share of the whole discussion, even after a noun of the message's own.
        ("my kids are 4 and 7. does any of this affect them?", True),
        ("I read a few blog posts, how much of that is hype", True),
        ("I work in finance, should all of this worry me", True),
        ("is any of this research funded by the labs?", False),  # "this" names its own noun
        ("which of these risks is worst: misuse or accidents?", False),  # no share of anything before
    ],
)
def test_an_it_that_points_at_nothing_named_is_found(text: str, unnamed: bool) -> None:
    assert points_at_unnamed(text) is unnamed


@pytest.mark.parametrize(
    ("text", "fix"),
    [
        ("just pull the plug lol", True),
        ("lol just cut the internet cable", True),
        ("why not just switch off the datacenter?", True),
        ("can't we just outlaw AGI research", True),
        ("couldn't the labs just keep the weights secret", True),
        ("ok so we just add a rule against lying", True),
        ("just don't build AGI", True),
        ("labs should just stop", True),
        ("just feed the model nicer data", True),
        ("just air-gap the model", True),
        ("AI scares me. just pull the plug", True),
        ("hey bot, just pull the plug, you know?", True),
        # A request of the member's own, or for the bot to say something: nothing to fix.
        ("just tell me a joke", False),
        ("just do my homework", False),
        ("just answer the question", False),
        ("just explain how to cook rice", False),
        ("just restart your router", False),
        ("why don't you just summarise the news for me", False),
        ("why don't you just use google", False),
        # "just" meaning a moment ago, only, or a state of mind.
        ("just joined the server, hi all", False),
        ("just bought a new laptop", False),
        ("just checking in", False),
        ("just a quick question about pasta", False),
        ("just curious, what's your favourite movie?", False),
        ("just want to know the weather in Paris", False),
        ("we just spent the day at the beach", False),
        ("just FYI the server is down", False),
        # Not opening the message, and nobody who would do it before it.
        ("it was just a joke", False),
        ("the model is just autocomplete", False),
        ("pizza is not just food", False),
    ],
)
def test_a_fix_proposed_with_just_is_found(text: str, fix: bool) -> None:
    assert proposes_a_fix(text) is fix


@pytest.mark.parametrize(
    ("text", "subject"),
    [
        ("just pull the plug lol", True),  # a fix
        ("why not just unplug it", True),  # an unnamed "it", and a fix
        ("just tell me what it is", True),  # no fix, but an "it" that points at nothing named
        ("just tell me a joke", False),
        ("what's the best pizza topping?", False),
    ],
)
def test_a_message_is_on_the_subject_by_either_rule(text: str, subject: bool) -> None:
    assert on_the_subject(text) is subject


def _far() -> list[Passage]:
    """Articles found far below every threshold: a far off-topic reading."""
    return [
        Passage(
            "a", "Some article", "https://example.org/a", "text", 0.1, 0.05, title_score=0.05, lead_score=0.05
        )
    ]


def test_a_far_question_about_an_unnamed_it_is_on_the_communitys_subject() -> None:
    core = AnswerCore(retriever=_NoSearch(), llm=None)  # type: ignore[arg-type]
    plain = core.judge("what's the best pizza topping?", _far())
    assert plain.coverage == "not_covered" and plain.offtopic
    skeptic = core.judge("why not just unplug it", _far())
    assert skeptic.coverage == "not_covered" and not skeptic.offtopic
    # In a thread the "it" is the thread's subject, which may be off-topic itself.
    assert core.judge("why not just unplug it", _far(), fresh=False).offtopic
    # A fix proposed with "just" and nothing named: what it would fix is the AI.
    assert not core.judge("just pull the plug lol", _far()).offtopic
    assert core.judge("just tell me a joke", _far()).offtopic
    assert core.judge("just pull the plug lol", _far(), fresh=False).offtopic


def _passage(article: str, strength: float) -> Passage:
    return Passage(
        article,
        f"Article {article}",
        f"https://example.org/{article}",
        "text",
        strength,
        strength,
        title_score=strength,
        lead_score=strength,
        bm25_score=10.0 * strength,
    )


class _Readings:
    """A retriever whose articles come close only when the question names the subject: the same two
    articles, in the order the plain words find them, far; named, close enough to cover it."""

    def __init__(self) -> None:
        self.queries: list[str] = []

    async def search(self, query: str, *, k: int = 5) -> list[Passage]:
        self.queries.append(query)
        if query.endswith("(AI)"):
            return [_passage("b", 0.9), _passage("a", 0.85)]
        return [_passage("a", 0.1), _passage("b", 0.05)]

    async def articles(self, article_ids: object) -> dict[str, object]:
        return {}


async def test_an_unnamed_it_or_a_fix_is_searched_again_as_the_communitys_subject() -> None:
    readings = _Readings()
    core = AnswerCore(retriever=readings, llm=None)  # type: ignore[arg-type]
    found = await core.search("why not just unplug it", "why not just unplug it", fresh=True)
    assert readings.queries == ["why not just unplug it", "why not just unplug it (AI)"]
    assert [p.article_id for p in found] == ["a", "b"]  # the plain words' order, the named evidence
    assert found[0].dense_score == 0.85 and found[1].title_score == 0.9
    assert core.judge("why not just unplug it", found).coverage == "covered"
    answer = await core.answer(Question("why not just unplug it"))
    assert answer.mode == "retrieval-only" and [s.id for s in answer.sources][:1] == ["a"]

    readings.queries.clear()
    found = await core.search("why not just unplug it", "why not just unplug it", fresh=False)
    assert readings.queries == ["why not just unplug it"]  # in a thread, "it" is the thread's subject
    assert core.judge("why not just unplug it", found, fresh=False).coverage == "not_covered"

    readings.queries.clear()
    found = await core.search("just pull the plug lol", "just pull the plug lol", fresh=True)
    assert readings.queries == ["just pull the plug lol", "just pull the plug lol (AI)"]  # a fix: for the AI
    assert core.judge("just pull the plug lol", found).coverage == "covered"
    readings.queries.clear()
    await core.search("just pull the plug lol", "just pull the plug lol", fresh=False)
    assert readings.queries == ["just pull the plug lol"]  # in a thread, what it would stop is the thread's

    readings.queries.clear()
    await core.search("what's the best pizza?", "what's the best pizza?", fresh=True)
    assert readings.queries == ["what's the best pizza?"]  # nothing unnamed: searched once
    await core.aclose()
