"""A message in a thread is searched with the earlier question only when it leans on it (no LLM): a new
topic is searched alone, and the written-answer lead appears only for the member's own question."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.core import AnswerCore, heuristic_query, own_question
from bot.evaluate import EvalFileError, EvalItem, evaluate, load_eval
from bot.followup import MAX_EARLIER, dependence, depends_on_thread, thread_query
from bot.models import Question, Turn
from retrieval import rescoring
from retrieval.edge_store import EdgeStore
from retrieval.embeddings import FastEmbedder
from retrieval.ingest import ingest
from retrieval.search import HybridRetriever
from tests.conftest import ROOT, corpus_rows, write_jsonl

DATA = ROOT / "benchmarks" / "data" / "followups_topics.jsonl"

LEANS = [
    # pronouns and demonstratives
    "why would it do that?",
    "who's working on it?",
    "how likely are they?",
    "what are its main problems?",
    "can an AI learn them?",
    "has their approach worked?",
    "what else did he argue?",
    "is this real?",
    "why are those dangerous?",
    "which orgs actually work on that?",
    "how does that relate to IDA?",
    "does that mean a smart AI won't automatically be good?",
    "why wouldn't that be enough?",
    "what was that example about?",
    "is it ethical?",
    "couldn't it still get out?",
    # ellipsis and pointing words
    "and the second one?",
    "which one is more likely?",
    "will we ever build one?",
    "why?",
    "how so?",
    "which is harder?",
    "example?",
    "any examples?",
    "can you give an example in AI?",
    "what would a solution look like?",
    "what's the difference?",
    "tell me more",
    "the latter, please",
    "why did the program end?",
    "what is the team working on?",
    "source?",
    "can you summarize?",
    "why would people build general AI instead?",
    "what should I do then?",
    # continuing starts
    "and why does the speed matter so much?",
    "but how could a superintelligence do much harm without a body?",
    "ok but why would anyone care",
    "what about misuse?",
    "what if we cut the internet cable?",
    "in that case, should I donate?",
]

STANDS_ALONE = [
    # a share of what the message itself named: in a thread, not a share of the earlier turns
    "What is RLHF? is any of this used by OpenAI?",
    "what is instrumental convergence and does any of this apply to LLMs",
    "what is inner alignment",
    "what are s-risks?",
    "what is HCH?",
    "how can I help?",
    "what is AI safety?",
    # an "it" that points nowhere, or at a noun of the same message
    "is it possible to align AI?",
    "is it possible to align AI at all?",
    "is it true that corporations are already superintelligent?",
    "how likely is it that an AI would pretend to be a human?",
    "is it worth donating small amounts to AI safety orgs?",
    "does it matter how fast AI takes off?",
    "would it be bad if AI replaced us?",
    "why can't we just turn the AI off if it misbehaves?",
    "would an AI let us shut it down?",
    "what is RLHF and why is it used?",
    "what's an s-risk? someone said it's worse than extinction",
    "how do AI companies govern themselves?",
    "can AI be used to make autonomous weapons, and why is that worrying?",
    # "that" joining a clause, "this" naming its own thing
    "do experts think that AGI is near?",
    "what is an AI that deceives its developers called?",
    "will AGI arrive this decade?",
    "what's this intelligence explosion idea?",
    # pointing words with what they point at
    "what's the difference between inner and outer alignment?",
    "what is an example of specification gaming?",
    "is there a solution to the control problem?",
    "what is specification gaming, any examples?",
    "where can I learn more about interpretability?",
    "what is the orthogonality thesis?",
    "what is the paper on superposition about?",
    "what does the team at Anthropic do?",
    # fillers and announced new topics
    "so what are mesa-optimizers?",
    "also, what's a value handshake?",
    "ok, unrelated, but what is an alignment tax?",
    "different question: what does MIRI work on?",
    "",
]


@pytest.mark.parametrize("text", LEANS)
def test_a_message_that_leans_on_the_thread(text: str) -> None:
    assert depends_on_thread(text), text


@pytest.mark.parametrize("text", STANDS_ALONE)
def test_a_message_that_stands_alone(text: str) -> None:
    assert dependence(text) is None, text


def test_curly_apostrophes_and_dashes_read_as_plain_ones() -> None:
    assert depends_on_thread("who\u2019s working on it?")
    assert not depends_on_thread("why can\u2019t we just use Asimov\u2019s three laws?")
    # the clause before the dash names what "that" points at
    assert not depends_on_thread(
        "a measure that becomes a target stops being a good one \u2014 why does that matter?"
    )


def test_the_search_query_glues_only_what_leans() -> None:
    earlier = ["what is RLHF?"]
    assert thread_query("what are s-risks?", earlier) == "what are s-risks?"
    assert thread_query("what are its main problems?", earlier) == "what is RLHF? what are its main problems?"
    assert thread_query("what are its main problems?", []) == "what are its main problems?"


def test_a_chain_of_follow_ups_goes_back_to_the_question_they_lean_on() -> None:
    earlier = ["what is RLHF?", "why is it used?"]
    assert thread_query("and its problems?", earlier) == "what is RLHF? why is it used? and its problems?"
    # an earlier question that stands alone stops the walk back
    earlier = ["what is HCH?", "what is RLHF?"]
    assert thread_query("and its problems?", earlier) == "what is RLHF? and its problems?"
    # never more than MAX_EARLIER questions back
    leaning = ["why?"] * (MAX_EARLIER + 2)
    assert thread_query("how so?", leaning).split() == ["why?"] * MAX_EARLIER + ["how", "so?"]


def test_the_core_reads_only_the_members_turns() -> None:
    history = (
        Turn("user", "why can't we just turn it off?"),
        Turn("assistant", "It would resist being turned off, because..."),
    )
    assert heuristic_query("what is inner alignment", history) == "what is inner alignment"
    assert (
        heuristic_query("why would it resist?", history)
        == "why can't we just turn it off? why would it resist?"
    )
    assert own_question("what is inner alignment", history)
    assert not own_question("why would it resist?", history)
    assert own_question("why would it resist?", (Turn("assistant", "Hello!"),))  # no question of theirs


def test_the_project_data_has_both_kinds_with_real_articles() -> None:
    rows = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines() if line.strip()]
    kinds = [r["kind"] for r in rows]
    assert kinds.count("topic_change") >= 60 and kinds.count("followup") >= 60
    assert all(len(r["turns"]) == 2 and r["relevant"] for r in rows)
    items = load_eval(DATA)
    assert {i.kind for i in items} == {"topic_change", "followup"}  # read from the rows, not forced
    assert all(len(i.history) == 1 for i in items)


def test_a_conversation_without_a_kind_is_a_follow_up(tmp_path: Path) -> None:
    rows: list[dict[str, object]] = [
        {"turns": ["what is RLHF?", "what are its problems?"], "relevant": ["a"]},
        {"turns": ["what is RLHF?", "what is HCH?"], "relevant": ["b"], "kind": "topic_change"},
    ]
    items = load_eval(write_jsonl(tmp_path / "talks.jsonl", rows))
    assert [(i.kind, i.question, [t.text for t in i.history]) for i in items] == [
        ("followup", "what are its problems?", ["what is RLHF?"]),
        ("topic_change", "what is HCH?", ["what is RLHF?"]),
    ]
    with pytest.raises(EvalFileError, match=r'talks.jsonl:1: not an eval item \("turns" is empty\)'):
        load_eval(write_jsonl(tmp_path / "talks.jsonl", [{"turns": [], "relevant": []}]))


# Measured on real articles: the conversations of the project's data whose answers are aisafety.info
# articles (ten of each kind), in a store of those articles and the off-switch question.
OFF_SWITCH = "aisafety.info:3119"


def _slice_items() -> list[EvalItem]:
    items = load_eval(DATA)
    chosen: list[EvalItem] = []
    for kind in ("topic_change", "followup"):
        of_kind = [
            i for i in items if i.kind == kind and all(a.startswith("aisafety.info:") for a in i.relevant)
        ]
        chosen += of_kind[:10]
    return chosen


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, embedder: FastEmbedder) -> Iterator[EdgeStore]:
    ids = sorted({a for i in _slice_items() for a in i.relevant} | {OFF_SWITCH, "aisafety.info:8192"})
    folder = tmp_path_factory.mktemp("followups")
    source = write_jsonl(Path(folder) / "articles.jsonl", corpus_rows(ids))
    store = EdgeStore(alias="followups", path=str(folder / "qdrant"))
    ingest(store=store, embedder=embedder, sources=[str(source)])
    yield store
    store.close()


def _core(store: EdgeStore, embedder: FastEmbedder) -> AnswerCore:
    return AnswerCore(retriever=HybridRetriever(store=store, embedder=embedder), llm=None)


async def test_topic_changes_rank_as_if_asked_fresh(store: EdgeStore, embedder: FastEmbedder) -> None:
    core = _core(store, embedder)
    items = _slice_items()
    now = await evaluate(core, items)
    fresh = await evaluate(core, [EvalItem(i.question, (), i.relevant, i.kind) for i in items])
    glued = await evaluate(
        core, [EvalItem(f"{i.history[0].text} {i.question}", (), i.relevant, i.kind) for i in items]
    )
    assert now["by_kind"]["topic_change"]["questions"] == 10 and now["by_kind"]["followup"]["questions"] == 10
    topic = {
        name: r["by_kind"]["topic_change"]["hit_at_1"]
        for name, r in (("now", now), ("fresh", fresh), ("glued", glued))
    }
    assert topic["now"] >= topic["fresh"] - 0.05, topic
    assert topic["now"] > topic["glued"], topic  # gluing the old topic on is what went wrong
    follow = {
        name: r["by_kind"]["followup"] for name, r in (("now", now), ("fresh", fresh), ("glued", glued))
    }
    assert follow["now"]["hit_rate"] >= follow["glued"]["hit_rate"], follow
    assert follow["now"]["hit_at_1"] > follow["fresh"]["hit_at_1"], follow  # alone, a follow-up is lost


async def test_the_written_answer_lead_is_only_for_the_members_own_question(
    store: EdgeStore, embedder: FastEmbedder
) -> None:
    core = _core(store, embedder)
    asked = "why can't we just turn the AI off if it starts to misbehave?"
    fresh = await core.answer(Question(asked))
    assert fresh.written_answer == OFF_SWITCH

    history = (Turn("user", asked), Turn("assistant", fresh.text))
    follow_up = Question("why would it resist that?", history)
    prepared = await core.prepare(follow_up)
    # The search glued the earlier question on, and its title still matches it...
    assert prepared.query.startswith(asked)
    assert rescoring.written_answer(prepared.passages) is not None
    # ...but the member did not ask it now: no lead names it as their question.
    assert prepared.written is None and prepared.lead == ""
    answer = await core.answer(follow_up)
    assert answer.written_answer == "" and "editors have answered" not in answer.text

    # The same question asked again in the thread, on its own, leads with the editors' answer.
    again = await core.answer(Question("why can't we just turn the AI off if it misbehaves?", history))
    assert again.written_answer == OFF_SWITCH


async def test_the_shared_follow_ups_are_still_found(tmp_path: Path, embedder: FastEmbedder) -> None:
    """The shared follow-up conversations (../shared/eval/followups.jsonl: a check, never tuned on) keep
    hit@5 at 0.93 or above, each second turn searched as the bot searches it, in a store of their
    articles and every 10th aisafety.info article as distractors (on the whole corpus: `aisafety-bot eval`,
    BENCHMARKS.md)."""
    from tests.conftest import need_corpus, read_rows

    items = load_eval(need_corpus().parent / "eval" / "followups.jsonl")
    distractors = [str(r["id"]) for r in read_rows("aisafety.info.jsonl")[::10]]
    ids = sorted({a for i in items for a in i.relevant} | set(distractors))
    source = write_jsonl(tmp_path / "articles.jsonl", corpus_rows(ids))
    store = EdgeStore(alias="shared-followups", path=str(tmp_path / "qdrant"))
    try:
        ingest(store=store, embedder=embedder, sources=[str(source)])
        result = await evaluate(_core(store, embedder), items)
    finally:
        store.close()
    assert len(items) >= 15 and all(i.history for i in items), len(items)
    assert result["hit_rate"] >= 0.93, result
