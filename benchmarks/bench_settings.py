"""Per-community settings add no measurable time to an answer.

Two conversations on one real answer core (the fixture library in an embedded store, the real
embedding model), each with its own SQLite answers database holding the settings of 1 community or of
1,000. Each answer's preparation is timed as the conversation does it before the language model: the
community's effective settings (`Conversation.effective`, through `SqlSettings`' cache and its look for
changes every `refresh_s`) and the core's `prepare` (search query, hybrid search, prompt). The two are
measured alternately in one run, `--rounds` times over the questions, and the medians compared.

    python benchmarks/bench_settings.py [--shared ../shared] [--rounds 40] [--refresh 0.05]

`--refresh` is short on purpose: many looks for changes fall inside the timed answers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.community import CommunitySettings
from bot.conversation import Conversation
from bot.core import AnswerCore
from bot.models import Question
from bot.platform import PlatformOptions
from retrieval.edge_store import EdgeStore
from retrieval.embeddings import FastEmbedder
from retrieval.ingest import ingest
from retrieval.search import HybridRetriever
from service.community_settings import SqlSettings
from service.feedback import FeedbackStore
from tests.fixture_articles import ARTICLES

QUESTIONS = [
    "what is a mesa-optimizer?",
    "why can't we just turn it off?",
    "what is the orthogonality thesis?",
    "what is reward hacking?",
    "what is AI takeoff?",
]


def fixture_core(shared: Path, folder: Path) -> AnswerCore:
    embedder = FastEmbedder(
        model_name="sentence-transformers/all-MiniLM-L6-v2",
        model_path=str(shared / "models" / "all-MiniLM-L6-v2"),
    )
    library = folder / "articles.jsonl"
    library.write_text("".join(json.dumps(a) + "\n" for a in ARTICLES), encoding="utf-8")
    store = EdgeStore(alias="bench", path=str(folder / "qdrant"))
    ingest(store=store, embedder=embedder, sources=[str(library)])
    return AnswerCore(retriever=HybridRetriever(store=store, embedder=embedder), llm=None)


async def conversation_with(core: AnswerCore, db: Path, communities: int, refresh_s: float) -> Conversation:
    store = FeedbackStore(db)
    settings = SqlSettings(store, refresh_s=refresh_s)
    for n in range(communities):
        await settings.set(
            f"discord:{n}",
            CommunitySettings(
                rate_limit_per_minute=3,
                allowed_channels=frozenset({str(n)}),
                retention_days=30,
                handoff=str(n),
            ),
        )
    conversation = Conversation.in_process(
        "discord", core=core, store=store, options=PlatformOptions(), usage=""
    )
    conversation.settings = SqlSettings(store, refresh_s=refresh_s)  # a fresh replica: reads the database
    await conversation.settings.load()  # type: ignore[attr-defined]
    return conversation


async def prepare(conversation: Conversation, question: Question) -> float:
    started = time.perf_counter()
    applies = await conversation.effective(question.community)
    assert applies.rate_limit_per_minute == 3
    await conversation.core.prepare(question)
    return time.perf_counter() - started


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared")
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--refresh", type=float, default=0.05)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-settings-"))
    core = fixture_core(args.shared, folder)
    one = await conversation_with(core, folder / "one.sqlite3", 1, args.refresh)
    many = await conversation_with(core, folder / "many.sqlite3", 1000, args.refresh)
    for text in QUESTIONS:  # warm: the model, the index, each question's first embedding
        await core.prepare(Question(text))
    times: dict[str, list[float]] = {"1": [], "1000": []}
    for r in range(args.rounds):
        for i, text in enumerate(QUESTIONS):
            # The last community of the thousand: its row was read with all the others.
            pairs = [("1", one, "discord:0"), ("1000", many, "discord:999")]
            if (r + i) % 2:
                pairs.reverse()  # neither always goes first
            for label, conversation, community in pairs:
                times[label].append(await prepare(conversation, Question(text, community=community)))
    medians = {k: statistics.median(v) * 1000 for k, v in times.items()}
    print(
        json.dumps(
            {
                "answers_each": len(times["1"]),
                "median_ms_1_community": round(medians["1"], 2),
                "median_ms_1000_communities": round(medians["1000"], 2),
                "ratio": round(medians["1000"] / medians["1"], 3),
            }
        )
    )
    for conversation in (one, many):
        await conversation.settings.aclose()  # type: ignore[attr-defined]


if __name__ == "__main__":
    asyncio.run(main())
