"""A human-written answer first: when a question is essentially one of aisafety.info's questions, the
reply leads with that article, marked as written by the site's editors, and the model builds on it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.core import AnswerCore
from bot.models import Answer, Question
from bot.prompts import WRITTEN_NOTE
from retrieval.edge_store import EdgeStore
from retrieval.embeddings import FastEmbedder
from retrieval.ingest import ingest
from retrieval.search import HybridRetriever
from service.anthropic_llm import AnthropicLLM
from tests.conftest import corpus_rows, write_jsonl
from tests.fake_anthropic import FakeAnthropic, Reply

OFF_SWITCH = "aisafety.info:3119"
LEAD = "**aisafety.info's editors have answered this question:**"
# Real articles: the off-switch question, its neighbours, and sections of the textbook on other things.
IDS = [
    OFF_SWITCH,
    "aisafety.info:6988",
    "aisafety.info:8192",
    "aisafety.info:6568",
    "aisafety.info:8160",
    "ai-safety-atlas:chapters/07/03",
    "ai-safety-atlas:chapters/09/01",
]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, embedder: FastEmbedder) -> Iterator[EdgeStore]:
    folder = tmp_path_factory.mktemp("written")
    source = write_jsonl(Path(folder) / "articles.jsonl", corpus_rows(IDS))
    store = EdgeStore(alias="written", path=str(folder / "qdrant"))
    ingest(store=store, embedder=embedder, sources=[str(source)])
    yield store
    store.close()


def _core(store: EdgeStore, embedder: FastEmbedder, server: FakeAnthropic | None = None) -> AnswerCore:
    llm = None
    if server is not None:
        llm = AnthropicLLM(api_key="k", model="claude-test", base_url=server.url, timeout_s=5, max_retries=0)
    return AnswerCore(retriever=HybridRetriever(store=store, embedder=embedder), llm=llm)


async def test_without_a_model_the_reply_leads_with_the_editors_answer(
    store: EdgeStore, embedder: FastEmbedder
) -> None:
    answer = await _core(store, embedder).answer(
        Question("why can't we just switch the AI off if it misbehaves?")
    )
    assert answer.mode == "retrieval-only" and answer.written_answer == OFF_SWITCH
    first_line = answer.text.splitlines()[0]
    assert first_line.startswith(LEAD)
    assert "(https://aisafety.info/questions/3119/" in first_line  # linked to the library's own article
    assert answer.sources[0].id == OFF_SWITCH and answer.to_json()["written_answer"] == OFF_SWITCH


async def test_a_question_that_is_no_title_gets_no_lead(store: EdgeStore, embedder: FastEmbedder) -> None:
    answer = await _core(store, embedder).answer(
        Question("what is deceptive alignment, and how would a model end up deceptively aligned?")
    )
    assert answer.mode == "retrieval-only" and answer.written_answer == ""
    assert LEAD not in answer.text


async def test_with_a_model_the_editors_answer_is_source_one_and_the_answer_builds_on_it(
    store: EdgeStore, embedder: FastEmbedder, llm_server: FakeAnthropic
) -> None:
    # The model cites another source first: the editors' answer stays [1] all the same.
    llm_server.script.append(Reply(text="It would resist being switched off [2], as the FAQ explains [1]."))
    core = _core(store, embedder, llm_server)
    deltas: list[str] = []
    final = None
    async for item in core.stream(Question("why can't we just turn the AI off if it starts to misbehave?")):
        if isinstance(item, Answer):
            final = item
        else:
            deltas.append(item)
    assert final is not None and final.mode == "llm" and final.written_answer == OFF_SWITCH
    assert deltas[0].startswith(LEAD)  # shown while the model is still writing
    assert final.text.startswith(LEAD) and final.text.endswith("as the FAQ explains [1].")
    assert final.sources[0].id == OFF_SWITCH and [s.n for s in final.sources] == [1, 2]
    prompt = llm_server.requests[-1].body["messages"][0]["content"]
    assert WRITTEN_NOTE in prompt and prompt.index(OFF_SWITCH.split(":")[1]) < prompt.index("</source>")
