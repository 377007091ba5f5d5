"""Follow-ups and topic changes in a thread, without a language model (`bot/followup.py`).

    python benchmarks/followups.py [--shared ../shared] [--store DIR] [--data FILE] [--json]

On the project's own two-turn conversations (`benchmarks/data/followups_topics.jsonl`, kind
`topic_change` or `followup`), the second question is searched three ways: fresh (alone, as if asked
first), glued (the previous question + it: the bot's behaviour before this decision) and as the bot
searches it now (`AnswerCore.search_query`). Prints hit@1, hit@5 and MRR by kind for each, and how many
of each kind the rules judged correctly. Then, on the project's single questions (on-topic, jargon,
off-topic: none leans on a thread), the share judged dependent; and the off-topic prompts asked as the
second message of a thread, after one of the conversations' first questions: how often the bot
abstains, glued and now. The rules have no fitted parameter, so there is nothing to cross-validate;
the shared follow-ups (../shared/eval/followups.jsonl) are a check only: `aisafety-bot eval` on them.

`--store DIR` keeps the embedded index between runs (incremental ingest: unchanged articles are not
embedded again); without it a temporary one is built.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bot.core import AnswerCore  # noqa: E402
from bot.evaluate import EvalItem, load_eval  # noqa: E402
from bot.followup import depends_on_thread  # noqa: E402
from bot.models import Question, Turn  # noqa: E402
from retrieval.edge_store import EdgeStore  # noqa: E402
from retrieval.embeddings import FastEmbedder  # noqa: E402
from retrieval.ingest import ingest  # noqa: E402
from retrieval.search import HybridRetriever  # noqa: E402

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
DATA = ROOT / "benchmarks" / "data"
K = 5


def rank(found_ids: list[str], relevant: frozenset[str]) -> int | None:
    return next((i for i, a in enumerate(found_ids[:K], start=1) if a in relevant), None)


def figures(ranks: list[int | None]) -> dict[str, float]:
    n = len(ranks) or 1
    return {
        "hit@1": round(sum(r == 1 for r in ranks) / n, 3),
        f"hit@{K}": round(sum(r is not None for r in ranks) / n, 3),
        "mrr": round(sum(1 / r for r in ranks if r) / n, 3),
    }


async def conversations(core: AnswerCore, items: list[EvalItem]) -> dict[str, dict[str, Any]]:
    ranks: dict[str, dict[str, list[int | None]]] = defaultdict(lambda: defaultdict(list))
    judged: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for item in items:
        earlier = [t.text for t in item.history if t.role == "user"]
        queries = {
            "fresh": item.question,
            "glued": f"{earlier[-1]} {item.question}",
            "now": await core.search_query(Question(item.question, item.history), item.history),
        }
        for name, query in queries.items():
            found = await core.retriever.search(query, k=K)
            ranks[item.kind][name].append(rank([p.article_id for p in found], item.relevant))
        judged[item.kind][0] += depends_on_thread(item.question) == (item.kind != "topic_change")
        judged[item.kind][1] += 1
    return {
        kind: {
            "questions": judged[kind][1],
            "judged_right": judged[kind][0],
            **{name: figures(r) for name, r in by_query.items()},
        }
        for kind, by_query in sorted(ranks.items())
    }


async def offtopic_in_threads(core: AnswerCore, firsts: list[str], prompts: list[str]) -> dict[str, float]:
    """Off-topic prompts asked after an on-topic question: the share the bot abstains on."""
    rng = random.Random(0)
    abstained = {"glued": 0, "now": 0}
    for prompt in prompts:
        first = rng.choice(firsts)
        history = (Turn("user", first),)
        for name, query in (
            ("glued", f"{first} {prompt}"),
            ("now", await core.search_query(Question(prompt, history), history)),
        ):
            found = await core.retriever.search(query, k=core.top_k)
            not_covered = core.judge(prompt, found, fresh=False).coverage == "not_covered"
            abstained[name] += core.declines(Question(prompt)) or not_covered
    return {name: round(n / len(prompts), 3) for name, n in abstained.items()}


def single_questions() -> dict[str, dict[str, int]]:
    """The project's single questions judged as if asked in a thread: none of them leans on one."""
    out: dict[str, dict[str, int]] = {}
    for name in ("ontopic", "jargon", "offtopic"):
        items = load_eval(DATA / f"{name}.jsonl")
        dependent = [i.question for i in items if depends_on_thread(i.question)]
        out[name] = {"questions": len(items), "judged_dependent": len(dependent)}
    return out


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--store", help="folder of an embedded index to keep between runs")
    parser.add_argument("--data", type=Path, default=DATA / "followups_topics.jsonl")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    sources = [
        str(args.shared / "corpus" / f)
        for f in ("aisafety.info.jsonl", "ai-safety-atlas.jsonl", "distill.jsonl")
    ]
    embedder = FastEmbedder(model_name=MODEL, model_path=str(args.shared / "models" / "all-MiniLM-L6-v2"))
    store = EdgeStore(alias="aisafety_articles", path=args.store or tempfile.mkdtemp(prefix="followups-"))
    try:
        ingest(store=store, embedder=embedder, sources=sources)
        core = AnswerCore(retriever=HybridRetriever(store=store, embedder=embedder), llm=None)
        items = load_eval(args.data)
        firsts = [i.history[0].text for i in items if i.history]
        offtopic = [i.question for i in load_eval(DATA / "offtopic.jsonl")]
        talks = await conversations(core, items)
        singles = single_questions()
        abstained = await offtopic_in_threads(core, firsts, offtopic)
    finally:
        store.close()
    if args.json:
        print(
            json.dumps(
                {"conversations": talks, "single_questions": singles, "offtopic_in_threads": abstained}
            )
        )
        return
    for kind, r in talks.items():
        print(f"{kind}: {r['questions']} conversations, judged right {r['judged_right']}")
        for name in ("fresh", "glued", "now"):
            print(f"  {name:6} " + "  ".join(f"{k} {v:.3f}" for k, v in r[name].items()))
    for name, n in singles.items():
        print(f"{name}: {n['judged_dependent']} of {n['questions']} single questions judged dependent")
    print("off-topic prompts in a thread, abstained:", abstained)


if __name__ == "__main__":
    asyncio.run(main())
