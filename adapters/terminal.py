"""The terminal front end: the interactive chat, and an `Answer` as text with numbered, linked sources.

On a terminal the answer's Markdown is rendered as it streams (bold, lists, links shown with their
address) with rich; piped into another program it stays plain text. Log lines that arrive while an
answer is being written are held back and shown after it, so they never land inside an answer.

A terminal's own links are escape sequences (OSC 8 hyperlinks): the model's text, articles' titles and
addresses are shown without control characters (`scrub`), and rich renders Markdown without hyperlinks,
so a link always shows its address and nothing in the text can hide one behind a label.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from adapters.markdown import scrub
from bot.errors import BotError
from bot.models import Answer, Question, Turn

if TYPE_CHECKING:
    from rich.console import Console

    from bot.core import AnswerCore

MODE_LABEL = {"llm": "", "retrieval-only": "[retrieval-only]", "abstain": "[no matching articles]"}
GREETING = "Ask about AI safety. /reset starts a new conversation, /quit or Ctrl-D leaves."
# How often a streaming answer is redrawn on a terminal.
REFRESH_PER_S = 8


def _line(text: str) -> str:
    """A title or an address on one line, with no control character."""
    return " ".join(scrub(text).split())


def render_sources(answer: Answer) -> str:
    lines: list[str] = []
    if answer.sources:
        lines.append("Sources:")
        lines.extend(f"  [{s.n}] {_line(s.title)}\n      {_line(s.url)}" for s in answer.sources)
    if answer.read_next:
        heading = "Nearest articles:" if answer.mode == "abstain" else "Read next:"
        lines.append(heading)
        lines.extend(f"  - {_line(s.title)}\n      {_line(s.url)}" for s in answer.read_next)
    return "\n".join(lines)


def render(answer: Answer) -> str:
    """The whole answer: label, text, then sources and read-next links; no control characters."""
    parts = []
    if answer.notice:
        parts.append(scrub(answer.notice))
    parts.append(scrub(answer.text))
    tail = render_sources(answer)
    if tail:
        parts.append(tail)
    return "\n\n".join(parts)


class _Hold(logging.Filter):
    """Keeps back the records its handler is given; `logs_held` hands them over afterwards."""

    def __init__(self) -> None:
        super().__init__()
        self.held: list[logging.LogRecord] = []

    def filter(self, record: logging.LogRecord) -> bool:
        self.held.append(record)
        return False


@contextmanager
def logs_held() -> Iterator[None]:
    """While an answer is written, log records wait; they are emitted, in order, when it is done."""
    holds = [(handler, _Hold()) for handler in logging.getLogger().handlers]
    for handler, hold in holds:
        handler.addFilter(hold)
    try:
        yield
    finally:
        for handler, hold in holds:
            handler.removeFilter(hold)
            for record in hold.held:
                handler.handle(record)


class _Writer:
    """Writes one streamed answer: live-rendered Markdown on a terminal, plain text elsewhere."""

    def __init__(self, console: Console | None, out: Any):
        self.console = console
        self.out = out
        self.text = ""
        self._live: Any = None

    def __enter__(self) -> _Writer:
        if self.console is not None:
            from rich.live import Live

            self._live = Live(
                self._markdown(),
                console=self.console,
                auto_refresh=True,
                refresh_per_second=REFRESH_PER_S,
                vertical_overflow="visible",
            )
            self._live.__enter__()
        else:
            print("bot> ", end="", flush=True, file=self.out)
        return self

    def _markdown(self) -> Any:
        from rich.markdown import Markdown

        return Markdown(self.text, hyperlinks=False)

    def write(self, delta: str) -> None:
        delta = scrub(delta)
        self.text += delta
        if self._live is not None:
            self._live.update(self._markdown())
        else:
            print(delta, end="", flush=True, file=self.out)

    def replace(self, text: str) -> None:
        """Show `text` in place of what was streamed (a fallback answer)."""
        text = scrub(text)
        if self._live is not None:
            self.text = text
            self._live.update(self._markdown())
        else:
            if self.text:
                print("\n", file=self.out)
            print(text, end="", file=self.out)
            self.text = text

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.update(self._markdown(), refresh=True)
            self._live.__exit__(None, None, None)
        else:
            print(file=self.out)


def terminal_console(out: Any = None) -> Console | None:
    """A rich console when the chat runs on a terminal; None when its output goes to a pipe or file."""
    out = out or sys.stdout
    if not out.isatty():
        return None
    from rich.console import Console

    return Console(file=out, highlight=False)


async def chat_loop(
    core: AnswerCore,
    *,
    console: Console | None = None,
    read_line: Callable[[str], str] = input,
    out: Any = None,
) -> None:
    """An interactive chat that keeps the conversation for follow-ups and streams each answer."""
    out = out or sys.stdout
    if console is None:
        console = terminal_console(out)
    history: list[Turn] = []
    print(GREETING, file=out)
    while True:
        try:
            line = await asyncio.to_thread(read_line, "\nyou> ")
        except (EOFError, KeyboardInterrupt):
            print(file=out)
            return
        text = line.strip()
        if text in {"/quit", "/exit"}:
            return
        if text == "/reset":
            history.clear()
            print("(new conversation)", file=out)
            continue
        if not text:
            continue
        final: Answer | None = None
        with logs_held():
            try:
                with _Writer(console, out) as writer:
                    async for item in core.stream(Question(text, tuple(history))):
                        if isinstance(item, Answer):
                            final = item
                        else:
                            writer.write(item)
                    if final is not None and final.mode != "llm":
                        notice = f"{final.notice}\n\n" if writer.text and final.notice else ""
                        writer.replace(notice + final.text)
            except BotError as exc:
                print(f"\nSorry, I could not answer that: {exc.user_message} ({exc})", file=out)
                continue
        assert final is not None
        tail = render_sources(final)
        if tail:
            print(f"\n{tail}", file=out)
        history.extend([Turn("user", text), Turn("assistant", final.text)])
