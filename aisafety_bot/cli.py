"""The command line: `aisafety-bot ingest / search / ask / chat / eval / run / report / ...`.

This module holds the parser and `main`; the commands are in `aisafety_bot/commands/`, the wiring they
share in `wiring.py`, and the running bot in `runner.py`. Only what every command needs is imported
here: the model runtime, the Qdrant client, the Anthropic SDK and the platform libraries each take from
a tenth of a second to several seconds to import, so a command imports each of them only when it uses it
(`--help`, `healthcheck`, `feedback` and `discord-invite` use none; tests/test_startup.py checks this).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from collections.abc import Sequence
from typing import Any

from aisafety_bot.commands.library import check_eval, cmd_ask, cmd_chat, cmd_eval, cmd_ingest, cmd_search
from aisafety_bot.commands.moderators import cmd_feedback, cmd_move_history, cmd_report
from aisafety_bot.commands.platforms import cmd_discord_invite, cmd_discord_sync, cmd_healthcheck, cmd_run
from aisafety_bot.context import Context, UsageError
from bot.config import load_settings
from bot.errors import BotError, ConfigError
from bot.logs import configure as configure_logging
from retrieval.errors import LibraryError

# `discord:<server id>`, `slack:<team id>`, `dm` (direct messages), `unassigned` (older answers)
_COMMUNITY = re.compile(r"[A-Za-z0-9_.:-]{1,100}")
COMMUNITY_HELP = "one community only: discord:<server id>, slack:<team id> or dm (default: every community)"


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def _days(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of days") from None
    if not value >= 0:  # also rejects nan
        raise argparse.ArgumentTypeError(f"must be 0 or more days, not {text}")
    return value


def _question(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError('give a question, for example: "what is inner alignment?"')
    return text


def _community(text: str) -> str:
    if not _COMMUNITY.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a community: give discord:<server id>, slack:<team id> or dm"
        )
    return text


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:
        """One line that says what to change (argparse's own adds the whole usage block)."""
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="aisafety-bot",
        description="Answers AI-safety questions from a library of articles, with sources.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv: debug)")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)

    p = sub.add_parser("ingest", help="index the sources (incremental unless --rebuild)")
    p.add_argument("sources", nargs="*", metavar="SOURCE", help="paths or URLs (default: SOURCES)")
    p.add_argument("--rebuild", action="store_true", help="build a new index and switch to it when complete")
    p.add_argument(
        "--allow-large-removal",
        action="store_true",
        help="remove articles gone from the sources even beyond SYNC_MAX_REMOVE (this once)",
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=cmd_ingest)

    modes = ["hybrid", "dense", "sparse"]
    p = sub.add_parser("search", help="the most relevant articles for a question")
    p.add_argument("question", type=_question)
    p.add_argument("--k", type=_positive_int, default=5)
    p.add_argument("--mode", choices=modes, default="hybrid")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("ask", help="answer one question with numbered sources")
    p.add_argument("question", type=_question)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser("chat", help="interactive chat in the terminal")
    p.set_defaults(func=cmd_chat)

    p = sub.add_parser("eval", help="retrieval and abstention metrics over a JSONL question file")
    p.add_argument("file")
    p.add_argument("--k", type=_positive_int, default=5)
    p.add_argument("--mode", choices=modes, default="hybrid")
    p.add_argument("--llm", action="store_true", help="condense follow-ups with the LLM when configured")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_eval, check=check_eval)

    p = sub.add_parser("run", help="run the bot (terminal chat when no platform token is set)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("report", help="what the community asks: most asked, abstained, 👎, articles cited")
    p.add_argument("--since", type=_days, default=30, metavar="DAYS")
    p.add_argument("--format", choices=["md", "csv", "json"], default="md")
    p.add_argument(
        "--table",
        metavar="NAME",
        help="one table as CSV (every row): by_day, most_asked, abstained, offtopic, to_write (the questions "
        "not covered, close calls or 👎, by topic, for article writers), downvoted, written, most_cited, "
        "never_cited, library",
    )
    p.add_argument("--community", type=_community, metavar="ID", help=COMMUNITY_HELP)
    p.add_argument(
        "--mark-written",
        metavar="QUESTION",
        help='mark a topic of "questions to write" written (in --community, or in every community): it '
        "leaves the list until it is asked again",
    )
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("healthcheck", help="exit 0 if the running bot's /healthz answers (for containers)")
    p.set_defaults(func=cmd_healthcheck)

    p = sub.add_parser("discord-invite", help="print the URL that adds the bot to a Discord server")
    p.set_defaults(func=cmd_discord_invite)

    p = sub.add_parser("discord-sync", help="register the bot's slash commands with Discord")
    p.add_argument("--guild", type=int, help="a server id: commands show there at once (for testing)")
    p.set_defaults(func=cmd_discord_sync)

    p = sub.add_parser(
        "move-history", help="copy the SQLite answers and votes into DATABASE_URL's PostgreSQL"
    )
    p.add_argument("--from", dest="sqlite", metavar="FILE", help="the SQLite file (default: FEEDBACK_DB)")
    p.set_defaults(func=cmd_move_history)

    p = sub.add_parser("feedback", help="answers that got 👍 / 👎, newest first")
    p.add_argument("--limit", type=_positive_int, default=50)
    p.add_argument("--all", action="store_true", help="every recorded answer, voted on or not")
    p.add_argument("--json", action="store_true")
    p.add_argument("--community", type=_community, metavar="ID", help=COMMUNITY_HELP)
    p.set_defaults(func=cmd_feedback)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        args = parser.parse_args(["run", *(argv or [])])
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)]
    if args.command == "run":
        level = min(level, logging.INFO)  # a running bot logs one line per answered question
    configure_logging(level=level, json_format=os.environ.get("LOG_FORMAT", "").lower() == "json")
    try:
        check = getattr(args, "check", None)
        if check is not None:
            check(args)
        settings = load_settings()
        configure_logging(level=level, json_format=settings.log_format == "json")  # LOG_FORMAT may be in .env
        ctx = Context(settings)
        try:
            return int(args.func(ctx, args))
        finally:
            ctx.close()
    except UsageError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (LibraryError, BotError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
