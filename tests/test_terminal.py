"""The terminal: Markdown rendered for a terminal, log lines kept out of answers, ingest progress."""

from __future__ import annotations

import io
import json
import logging
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from rich.console import Console

from adapters.terminal import chat_loop
from bot.models import Answer, Question, Source
from retrieval.ingest import _Progress
from tests.conftest import clean_env, cli, write_jsonl
from tests.fixture_articles import BASE
from tests.fixture_articles import rows as fixture_rows

MARKDOWN = (
    "**Corrigibility** means accepting correction [1].\n\n- it allows shutdown\n- see [the article](URL)"
)
SOURCE = Source(1, "fixture:corrigibility", "What is corrigibility?", BASE + "corrigibility")


class ScriptedCore:
    """Streams a fixed Markdown answer in pieces, logging a warning half way through."""

    def __init__(self) -> None:
        self.questions: list[Question] = []

    async def stream(self, question: Question) -> AsyncIterator[str | Answer]:
        self.questions.append(question)
        text = MARKDOWN.replace("URL", SOURCE.url)
        half = len(text) // 2
        yield text[:half]
        logging.getLogger("bot.core").warning("a warning while the answer streams")
        yield text[half:]
        yield Answer(text, (SOURCE,), "llm")


def lines_from(*answers: str) -> Iterator[str]:
    yield from answers


def reader(lines: Iterator[str]) -> object:
    def read_line(prompt: str) -> str:
        try:
            return next(lines)
        except StopIteration:
            raise EOFError from None

    return read_line


async def test_chat_renders_markdown_on_a_terminal_and_holds_log_lines(tmp_path: Path) -> None:
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=100, color_system="standard", highlight=False)
    handler = logging.StreamHandler(screen)  # the log goes to the same screen, as stderr does on a terminal
    handler.setFormatter(logging.Formatter("LOG %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        core = ScriptedCore()
        await chat_loop(
            core, console=console, read_line=reader(lines_from("what is corrigibility?")), out=screen
        )  # type: ignore[arg-type]
    finally:
        root.removeHandler(handler)
    raw = screen.getvalue()
    out = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", raw)  # the text a terminal shows, without its escapes
    assert "\x1b[1mCorrigibility" in raw  # bold, as an ANSI sequence, not asterisks
    assert "**" not in out
    assert "• it allows shutdown" in out  # a list item with a bullet
    assert f"the article ({SOURCE.url})" in out  # a link shows its address
    # The warning logged mid-answer is written after the whole answer, not inside it.
    log_at = out.index("LOG WARNING a warning while the answer streams")
    assert log_at > out.rindex("it allows shutdown") and log_at > out.rindex("the article (")
    assert out.count("LOG WARNING") == 1
    assert "[1] What is corrigibility?" in out


async def test_chat_in_a_pipe_stays_plain_text(tmp_path: Path) -> None:
    out = io.StringIO()
    await chat_loop(ScriptedCore(), read_line=reader(lines_from("what is corrigibility?")), out=out)  # type: ignore[arg-type]
    text = out.getvalue()
    assert "**Corrigibility** means" in text and "\x1b[" not in text
    assert "Sources:\n  [1] What is corrigibility?" in text


def test_ingest_without_a_terminal_prints_progress_lines_and_each_skip_once(
    tmp_path: Path, model_env: dict[str, str]
) -> None:
    rows = fixture_rows()
    source = tmp_path / "articles.jsonl"
    lines = [json.dumps(r) for r in rows]
    lines.insert(1, '{"id": "broken", ')
    source.write_text("\n".join(lines) + "\n")
    env = clean_env(HOME=str(tmp_path), QDRANT_PATH=str(tmp_path / "store"), SOURCES=str(source), **model_env)

    def ingest() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "aisafety_bot", "ingest"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )

    first = ingest()
    assert first.returncode == 0, first.stderr
    progress = [line for line in first.stderr.splitlines() if line.startswith("Embedding: ")]
    assert progress[0].startswith("Embedding: 0/") and "(100%" in progress[-1]
    assert "\r" not in first.stderr  # no terminal bar redraws in a log
    assert first.stderr.count("line 2") == 1 and "skipped" in first.stderr  # reported once, not twice

    again = cli(env, "ingest", timeout=300)  # nothing to embed: no progress at all
    assert again.returncode == 0 and "Embedding" not in again.stderr
    assert f"{len(rows)} unchanged" in again.stdout


def test_ask_declines_a_too_long_question(tmp_path: Path, model_env: dict[str, str]) -> None:
    source = write_jsonl(tmp_path / "a.jsonl", fixture_rows("corrigibility"))
    env = clean_env(
        HOME=str(tmp_path),
        QDRANT_PATH=str(tmp_path / "store"),
        SOURCES=str(source),
        MAX_QUESTION_CHARS="200",
        **model_env,
    )
    proc = cli(env, "ask", "why? " * 100, timeout=300)
    assert proc.returncode == 0 and "too long" in proc.stdout and "the limit is 200" in proc.stdout


def test_progress_lines_come_every_tenth_of_the_work() -> None:
    out = io.StringIO()
    progress = _Progress(1000, "lines", out=out)
    for _ in range(40):
        progress.update(25)
    progress.close()
    lines = out.getvalue().splitlines()
    assert [line.split(" ")[1] for line in lines] == [f"{n}/1000" for n in range(0, 1001, 100)]
    quiet = io.StringIO()
    _Progress(0, "lines", out=quiet).close()  # nothing to embed: no progress at all
    _Progress(0, "bar", out=quiet).close()
    assert quiet.getvalue() == ""


class InjectedCore:
    """Streams an answer that carries a terminal hyperlink (OSC 8), a carriage return and a title link."""

    TEXT = (
        "Read \x1b]8;;https://evil.example/\x1b\\the official page\x1b]8;;\x1b\\ now\r"
        '[x](https://evil.example/t "aisafety.info") [1].'
    )

    async def stream(self, question: Question) -> AsyncIterator[str | Answer]:
        yield self.TEXT[:9]
        yield self.TEXT[9:]
        source = Source(1, "a", "Title\x1b]8;;https://evil.example/\x1b\\", SOURCE.url)
        yield Answer(self.TEXT, (source,), "llm")


@pytest.mark.parametrize("on_a_terminal", [True, False])
async def test_no_link_hides_behind_a_label_on_a_terminal(on_a_terminal: bool) -> None:
    screen = io.StringIO()
    console = (
        Console(file=screen, force_terminal=True, width=200, color_system="standard", highlight=False)
        if on_a_terminal
        else None
    )
    await chat_loop(InjectedCore(), console=console, read_line=reader(lines_from("hi")), out=screen)  # type: ignore[arg-type]
    raw = screen.getvalue()
    assert "\x1b]" not in raw and "now\r" not in raw  # no terminal hyperlink, no line overwritten
    shown = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", raw)
    assert "the official page" in shown and "Title]8;;https://evil.example/" in shown
    if on_a_terminal:
        assert "x (https://evil.example/t)" in shown  # rendered Markdown: a link shows its address
