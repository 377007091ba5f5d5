"""The library and its answers in the terminal: `ingest`, `search`, `ask`, `chat`, `eval`."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from aisafety_bot.context import Context, UsageError
from aisafety_bot.wiring import print_report, progress_style

if TYPE_CHECKING:
    from bot.core import AnswerCore
    from retrieval.ingest import IngestReport

T = TypeVar("T")


def cmd_ingest(ctx: Context, args: argparse.Namespace) -> int:
    from retrieval.ingest import ingest

    app = ctx.app
    sources = args.sources or app.settings.source_list
    report = ingest(
        store=app.store,
        embedder=app.embedder,
        sources=sources,
        rebuild=args.rebuild,
        progress=progress_style(),
        aisafety_info_url=app.settings.aisafety_info_url,
        max_remove=1.0 if args.allow_large_removal else app.settings.sync_max_remove,
    )
    print_report(report, file=sys.stdout, as_json=args.json)
    record_changes(ctx, report)
    return 0


def record_changes(ctx: Context, report: IngestReport) -> None:
    """The ingest's changes go to the library's change log in the answers database (the report's
    `library` section), as a running bot's syncs do. The library has changed either way: a database
    that cannot be written is a warning, not a failed ingest."""
    from aisafety_bot.wiring import open_feedback

    try:
        feedback = open_feedback(ctx.app.settings)
        try:
            outcome = "changed" if report.changes else "unchanged"
            feedback.record_library_sync(outcome, report.changes, articles=report.articles)
        finally:
            feedback.close()
    except Exception as exc:
        print(
            f"warning: the library's change log was not written ({type(exc).__name__}: {exc})",
            file=sys.stderr,
        )


def cmd_search(ctx: Context, args: argparse.Namespace) -> int:
    app = ctx.app
    app.ensure_ingested()
    hits = app.retriever(args.mode).search_sync(args.question, k=args.k)
    if args.json:
        rows = [
            {"id": h.article_id, "title": h.title, "url": h.url, "score": round(h.score, 6), "text": h.text}
            for h in hits
        ]
        print(json.dumps(rows, ensure_ascii=False))
    else:
        for i, h in enumerate(hits, start=1):
            print(f"{i}. {h.title}  ({h.score:.4f}, cosine {h.dense_score:.3f})\n   {h.url}")
    return 0


def cmd_ask(ctx: Context, args: argparse.Namespace) -> int:
    from adapters.terminal import render
    from bot.models import Question

    app = ctx.app
    app.ensure_ingested()
    core = app.core()
    answer = asyncio.run(closing(core, core.answer(Question(args.question))))
    print(json.dumps(answer.to_json(), ensure_ascii=False) if args.json else render(answer))
    return 0


async def closing(core: AnswerCore, work: Awaitable[T]) -> T:
    """Run `work`, then close the core's LLM client on the same event loop."""
    try:
        return await work
    finally:
        await core.aclose()


def check_eval(args: argparse.Namespace) -> None:
    """Read the eval file before anything is opened: a bad file is reported in a second, not after
    the model and the index have loaded."""
    from bot.evaluate import EvalFileError, load_eval

    try:
        args.items = load_eval(Path(args.file))
    except EvalFileError as exc:
        raise UsageError(str(exc)) from None


def cmd_eval(ctx: Context, args: argparse.Namespace) -> int:
    from bot.evaluate import evaluate, format_table

    app = ctx.app
    app.ensure_ingested()
    core = app.core(args.mode, use_llm=args.llm)
    result = asyncio.run(closing(core, evaluate(core, args.items, k=args.k)))
    if args.json:
        print(json.dumps(result))  # with the per-kind breakdown
    else:
        print(format_table(result))
    return 0


def cmd_chat(ctx: Context, args: argparse.Namespace) -> int:
    from adapters.terminal import chat_loop

    app = ctx.app
    app.ensure_ingested()
    core = app.core()
    asyncio.run(closing(core, chat_loop(core)))
    return 0
