"""Operations: health and readiness, metrics after real traffic, JSON logs, the token budget, retention."""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from bot.core import AnswerCore
from bot.logs import JsonFormatter
from bot.models import Answer, Question, Source
from bot.observability import Observer, TokenBudget
from bot.prompts import RETRIEVAL_ONLY_LABEL
from retrieval.embeddings import FastEmbedder
from retrieval.index import VectorStore
from retrieval.ingest import ingest
from retrieval.search import HybridRetriever
from retrieval.store import QdrantStore
from service.anthropic_llm import AnthropicLLM
from service.feedback import FeedbackStore
from service.health import add_health_routes, serve
from service.metrics import Metrics
from tests.conftest import write_jsonl
from tests.fake_anthropic import FakeAnthropic, Reply
from tests.fixture_articles import rows as fixture_rows
from tests.qdrant_server import QdrantServer, free_port


async def test_health_and_readiness_follow_qdrant(
    embedder: FastEmbedder, tmp_path: Path, qdrant_server: QdrantServer
) -> None:
    server = QdrantServer(qdrant_server.binary)
    server.start()
    store = QdrantStore(alias="health", url=server.url, timeout_s=2)
    try:
        src = write_jsonl(tmp_path / "a.jsonl", fixture_rows("orthogonality"))
        ingest(store=store, embedder=embedder, sources=[str(src)])
        import asyncio

        async def qdrant_ready() -> bool:
            return await asyncio.to_thread(store.live_collection) is not None

        port = free_port()
        runner = await serve(
            add_health_routes(web.Application(), checks={"qdrant": qdrant_ready}, metrics=Metrics()),
            "127.0.0.1",
            port,
        )
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as http:

            async def get(path: str) -> tuple[int, dict[str, object]]:
                async with http.get(base + path) as r:
                    return r.status, await r.json()

            assert await get("/healthz") == (200, {"status": "ok"})
            assert await get("/readyz") == (200, {"ready": True, "checks": {"qdrant": True}})
            server.kill()
            assert await get("/readyz") == (503, {"ready": False, "checks": {"qdrant": False}})
            assert (await get("/healthz"))[0] == 200  # alive all the same
            server.revive()
            assert await get("/readyz") == (200, {"ready": True, "checks": {"qdrant": True}})
            async with http.get(base + "/metrics") as r:
                assert r.status == 200 and "aisafety_questions_total" in await r.text()
        await runner.cleanup()
    finally:
        store.close()
        server.stop()


async def test_budget_switches_to_retrieval_only_and_metrics_count(
    slice_store: VectorStore, embedder: FastEmbedder, llm_server: FakeAnthropic
) -> None:
    metrics = Metrics()
    budget = TokenBudget(daily_tokens=100)
    llm = AnthropicLLM(api_key="k", model="m", base_url=llm_server.url, max_retries=0)
    core = AnswerCore(
        retriever=HybridRetriever(store=slice_store, embedder=embedder),
        llm=llm,
        observer=Observer(metrics),
        budget=budget,
    )
    llm_server.script.append(Reply(text="Goals and intelligence are independent [1]."))
    first = await core.answer(Question("what is the orthogonality thesis?"))
    assert first.mode == "llm" and budget.spent == 123 + first.usage["output_tokens"]
    assert {"retrieval", "first_token", "done"} <= set(first.timings)
    second = await core.answer(Question("what is the orthogonality thesis?"))
    assert second.mode == "retrieval-only" and second.text.startswith(f"*{RETRIEVAL_ONLY_LABEL}*")
    assert "budget" not in second.text.lower()  # members read a label; the reason is the operator's
    assert len(llm_server.requests) == 1
    core.observer.answered("discord", Question("q"), first, first_sign_s=0.01)
    core.observer.answered("discord", Question("q"), second)
    core.observer.answered("slack", Question("q"), None)
    text = metrics.render().decode()
    assert 'aisafety_questions_total{outcome="llm",platform="discord"} 1.0' in text
    assert 'aisafety_questions_total{outcome="retrieval-only",platform="discord"} 1.0' in text
    assert 'aisafety_questions_total{outcome="error",platform="slack"} 1.0' in text
    assert 'aisafety_llm_tokens_total{direction="input"} 123.0' in text
    assert 'aisafety_answer_latency_seconds_count{stage="first_sign"} 1.0' in text
    assert "aisafety_retrieval_latency_seconds_count 2.0" in text


def test_answer_log_line_is_json_and_has_no_message_text(caplog: pytest.LogCaptureFixture) -> None:
    answer = Answer(
        "secret-ish answer text",
        (),
        "llm",
        usage={"input_tokens": 5, "output_tokens": 7},
        timings={"done": 1.5},
    )
    question = Question("what is my private question?")
    with caplog.at_level(logging.INFO, logger="bot.answers"):
        Observer(None).answered("slack", question, answer, first_sign_s=0.004)
    record = next(r for r in caplog.records if r.name == "bot.answers")
    line = json.loads(JsonFormatter().format(record))
    assert line["question_id"] == question.id and line["platform"] == "slack" and line["outcome"] == "llm"
    assert line["first_sign_ms"] == 4 and line["total_ms"] == 1500 and line["tokens_out"] == 7
    assert "private question" not in caplog.text  # message text only at debug level


def test_retention_and_question_storage(tmp_path: Path) -> None:
    db = tmp_path / "f.sqlite3"
    answer = Answer("A [1].", (Source(1, "a:1", "T", "https://e.org"),), "llm")
    store = FeedbackStore(db)
    old = store.record_answer(
        platform="slack", community="slack:1", place="p", asker="u", question="old question", answer=answer
    )
    new = store.record_answer(
        platform="slack", community="slack:1", place="p", asker="u", question="new question", answer=answer
    )
    store.record_vote(old, voter="u", vote="down")
    with sqlite3.connect(db) as raw:
        raw.execute("UPDATE answers SET created = ? WHERE id = ?", (time.time() - 100 * 86400, old))
    assert store.purge(90) == 1
    assert [r.answer_id for r in store.since(365)] == [new]
    store.close()

    private = FeedbackStore(tmp_path / "p.sqlite3", store_questions=False)
    aid = private.record_answer(
        platform="discord",
        community="discord:1",
        place="c",
        asker="u",
        question="do not keep me",
        answer=answer,
    )
    private.record_vote(aid, voter="u", vote="up")
    row = private.rows()[0]
    assert row.question == "" and row.answer == "" and row.sources[0]["id"] == "a:1" and row.up == 1
    private.close()


def test_text_log_lines_escape_newlines_in_values() -> None:
    import io
    import logging

    from bot.logs import TextFormatter

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(TextFormatter("%(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("tests.forged")
    logger.addHandler(handler)
    try:
        logger.warning("question was %r then %s", "x", "harmless\n2026-01-01 ERROR bot: forged line")
    finally:
        logger.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].endswith("harmless\\n2026-01-01 ERROR bot: forged line")
