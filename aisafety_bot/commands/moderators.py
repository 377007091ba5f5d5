"""What the moderators read and the operator moves: `report`, `feedback`, `move-history`.

None of them opens the article index for writing: they work while the bot runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from aisafety_bot.context import Context, UsageError
from aisafety_bot.wiring import make_embedder, open_feedback, open_store
from bot.config import Settings
from retrieval.vocabulary import Vocabulary


def cmd_report(ctx: Context, args: argparse.Namespace) -> int:
    """The report of every community (the operator's view), or of one with --community, with the
    library's size and changes (the same in every view) and the previous period's counts beside this
    one's. With --mark-written, marks a topic of "questions to write" written instead."""
    from service.report import TABLES, render, stored_report, table_csv

    if args.table and args.table not in TABLES:
        raise UsageError(f"there is no report table {args.table!r}: use one of {', '.join(TABLES)}")
    settings = ctx.settings
    if getattr(args, "mark_written", None) is not None:
        return mark_written(settings, args.mark_written, args.community)
    articles, vocabulary = library_articles(settings)
    embedder = make_embedder(settings)
    store = open_feedback(settings)
    try:
        store.purge(settings.question_retention_days)
        report = stored_report(
            store,
            embed=embedder.embed_dense_only,
            articles=articles,
            since_days=args.since,
            questions_stored=settings.store_questions,
            community=args.community,
            vocabulary=vocabulary,
        )
    finally:
        store.close()
    print(table_csv(report, args.table) if args.table else render(report, args.format), end="")
    return 0


def mark_written(settings: Settings, question: str, community: str | None) -> int:
    """`report --mark-written QUESTION`: the topic leaves "questions to write" until it is asked again
    after now; in one community (--community) or in every community with stored answers."""
    question = " ".join(question.split())
    if not question:
        raise UsageError("give the topic's question: report --mark-written \"why can't we turn it off?\"")
    if not settings.store_questions:
        raise UsageError(
            "questions are not stored (STORE_QUESTIONS=false), so the report has no questions to write to mark"
        )
    store = open_feedback(settings)
    try:
        where = [community] if community else store.communities()
        if not where:
            raise UsageError("no community has stored answers yet; give the community with --community ID")
        for name in where:
            store.mark_written(name, question)
    finally:
        store.close()
    print(
        f'Marked written in {", ".join(where)}: {question!r} leaves "questions to write" '
        "until it is asked again."
    )
    return 0


def library_articles(settings: Settings) -> tuple[dict[str, tuple[str, str]], Vocabulary]:
    """Every article of the live index (title, url), for the report's "never cited" list, and the
    library's vocabulary, for its grouping of wordings. The embedded store may be held by the running
    bot: then the files it keeps beside the index are read, which needs no lock."""
    from retrieval.edge_store import StoreInUse, read_catalogue, read_vocabulary
    from retrieval.vocabulary import EMPTY

    try:
        store = open_store(settings)
    except StoreInUse:
        catalogue = read_catalogue(str(settings.qdrant_path), settings.qdrant_collection)
        vocabulary = read_vocabulary(str(settings.qdrant_path), settings.qdrant_collection)
        if catalogue is None:
            print(
                "note: the running bot holds the index and it has no article list yet, so the report "
                "leaves out the articles never cited (run `aisafety-bot ingest` once, or stop the bot)",
                file=sys.stderr,
            )
            return {}, vocabulary or EMPTY
        return catalogue, vocabulary or EMPTY
    try:
        return store.catalogue(), store.vocabulary()
    finally:
        store.close()


def cmd_feedback(ctx: Context, args: argparse.Namespace) -> int:
    """The newest answers that got a vote (or all with --all), of every community or of one."""
    store = open_feedback(ctx.settings)
    try:
        rows = store.rows(limit=args.limit, only_voted=not args.all, community=args.community)
    finally:
        store.close()
    if args.json:
        print(json.dumps([r.to_json() for r in rows], ensure_ascii=False))
        return 0
    if not rows:
        print("No feedback yet.")
    for r in rows:
        print(f"#{r.answer_id} [{r.platform}] 👍 {r.up} 👎 {r.down} ({r.mode})\n  Q: {r.question}")
        for src in r.sources:
            print(f"    [{src['n']}] {src['title']} {src['url']}")
    return 0


def cmd_move_history(ctx: Context, args: argparse.Namespace) -> int:
    """Copy an SQLite history (FEEDBACK_DB) into the PostgreSQL database of DATABASE_URL."""
    from service.feedback import FeedbackStore

    settings = ctx.settings
    if settings.database_url is None:
        raise UsageError("set DATABASE_URL to the PostgreSQL database to move the history into")
    source = Path(args.sqlite or settings.feedback_db)
    if not source.is_file():
        raise UsageError(f"{source} is not a file; give the SQLite history with --from (or set FEEDBACK_DB)")
    old = FeedbackStore(source)
    new = open_feedback(settings)
    try:
        answers, votes = new.copy_from(old)
    finally:
        old.close()
        new.close()
    print(f"Copied {answers} answers and {votes} votes from {source} into PostgreSQL.")
    return 0
