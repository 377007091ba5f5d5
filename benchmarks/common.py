"""Shared pieces of the platform benchmarks: percentiles, an event-loop lag probe, and a real core."""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
from pathlib import Path

from bot.core import AnswerCore
from retrieval.edge_store import EdgeStore
from retrieval.embeddings import FastEmbedder
from retrieval.ingest import ingest
from retrieval.search import HybridRetriever
from service.anthropic_llm import AnthropicLLM
from tests.fake_anthropic import FakeAnthropic, Reply

LLM_FIRST_TOKEN_S = 0.3

QUESTIONS = [
    "what is a mesa-optimizer?",
    "why can't we just turn it off?",
    "what is the orthogonality thesis?",
    "what are quantilizers?",
    "what is AI takeoff?",
]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary_ms(seconds: list[float]) -> dict[str, float]:
    """Median, 95th percentile and maximum of durations, in milliseconds."""
    ms = [x * 1000 for x in seconds]
    return {
        "median": round(statistics.median(ms), 1),
        "p95": round(pct(ms, 0.95), 1),
        "max": round(max(ms), 1),
    }


def real_core(shared: Path, llm_url: str) -> tuple[AnswerCore, EdgeStore]:
    """The real answer core on the aisafety.info file in a fresh embedded store, with an LLM at llm_url."""
    embedder = FastEmbedder(
        model_name="sentence-transformers/all-MiniLM-L6-v2",
        model_path=str(shared / "models" / "all-MiniLM-L6-v2"),
    )
    store = EdgeStore(alias="bench", path=tempfile.mkdtemp(prefix="bench-"))
    ingest(store=store, embedder=embedder, sources=[str(shared / "corpus" / "aisafety.info.jsonl")])
    llm = AnthropicLLM(api_key="k", model="claude-test", base_url=llm_url, timeout_s=30, max_retries=0)
    return AnswerCore(retriever=HybridRetriever(store=store, embedder=embedder), llm=llm), store


class LagProbe:
    """How late a 10 ms sleep wakes up, sampled continuously while it runs."""

    def __init__(self) -> None:
        self.lags_ms: list[float] = []
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stop.is_set():
            before = loop.time()
            await asyncio.sleep(0.01)
            self.lags_ms.append((loop.time() - before - 0.01) * 1000)

    def __enter__(self) -> LagProbe:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()

    async def done(self) -> None:
        if self._task is not None:
            await self._task

    def summary(self) -> dict[str, float]:
        return {"median": round(statistics.median(self.lags_ms), 2), "max": round(max(self.lags_ms), 1)}


def platform_args() -> argparse.Namespace:
    """--shared (the shared folder), --sequential (single mentions) and --burst (mentions at once)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared")
    parser.add_argument("--sequential", type=int, default=15)
    parser.add_argument("--burst", type=int, default=50)
    return parser.parse_args()


async def fake_llm() -> FakeAnthropic:
    """A fake Messages API whose first token comes LLM_FIRST_TOKEN_S after each request."""
    server = FakeAnthropic(
        default=Reply(
            text="An answer from the articles [1]. " * 8, delay_s=LLM_FIRST_TOKEN_S, chunk_delay_s=0.01
        )
    )
    await server.start()
    return server
