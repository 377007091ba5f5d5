"""Retrieval-only answers, as members read them on Discord, Slack and the terminal: a label written for
members (the operator's reason goes to the log, once), each article its own paragraph, and excerpts
with no Markdown left over from the articles."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import AsyncIterator, Iterator, Sequence

import pytest
from rich.console import Console
from rich.markdown import Markdown

from adapters.discord import render as discord
from adapters.slack import render as slack
from adapters.terminal import render as terminal_text
from bot import prompts
from bot.errors import LLMError
from bot.llm import Message, Usage
from bot.models import Answer, Question, Source
from bot.plaintext import literal, plain_text, reads_as
from retrieval.chunking import chunk_document
from retrieval.documents import Document
from retrieval.sources import read_source
from tests.conftest import need_corpus
from tests.test_stages import COVERED, UNCOVERED, FakeBudget, FakeLLM, core

# What an article's Markdown leaves in an excerpt when it is not read: setext underlines, footnotes,
# escaped brackets, headings, HTML tags and comments, links and images, pandoc attributes, bold markers,
# TeX commands and display maths.
ARTEFACTS = {
    "setext underline": re.compile(r"-{3,}|={3,}"),
    "footnote": re.compile(r"\[\^"),
    "escaped bracket": re.compile(r"\\[\[\]]"),
    "heading": re.compile(r"(?:^|\s)#{1,6}\s"),
    "HTML tag": re.compile(r"</?[A-Za-z][^<>]*>|<!--"),
    "link": re.compile(r"\]\(|<https?:"),
    "image": re.compile(r"!\["),
    "attributes": re.compile(r"\{#"),
    "bold markers": re.compile(r"\*\*|__"),
    "TeX": re.compile(r"\\[A-Za-z]{2,}|\$\$"),
}


def artefacts(shown: str) -> list[str]:
    return [name for name, pattern in ARTEFACTS.items() if pattern.search(shown)]


def rich_text(markdown: str) -> str:
    """What the terminal chat shows for `markdown` (it renders the answer with rich)."""
    console = Console(file=io.StringIO(), width=100, record=True, color_system=None)
    console.print(Markdown(markdown, hyperlinks=False))
    return console.export_text()


def surfaces(answer: Answer) -> dict[str, str]:
    """The answer's text as each surface shows it, without what the renderer itself builds (the bot's
    own links to the sources, the headings of the sources list, zero-width spaces and Slack's escapes)."""
    urls = [s.url for s in answer.sources]
    shown = {
        "discord": discord.render(answer),
        "slack": slack.render_text(answer),
        "slack blocks": "\n".join(
            b["text"]["text"] for b in slack.render_blocks(answer, 1) if b["type"] == "section"
        ),
        "terminal": terminal_text(answer),
        "terminal chat": rich_text(answer.text),
    }
    out = {}
    for surface, text in shown.items():
        text = text.replace("\u200b", "")
        for s in answer.sources:
            text = text.replace(discord.bot_link(s.title, s.url), "").replace(
                slack.bot_link(s.title, s.url), ""
            )
        for url in urls:
            text = text.replace(url, "")
        text = text.replace("**Sources**", "").replace("*Sources*", "")
        if surface.startswith("slack"):
            text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
        out[surface] = text
    return out


def corpus_documents() -> Iterator[Document]:
    for path in sorted(need_corpus().glob("*.jsonl")):
        for item in read_source(str(path)):
            if isinstance(item, tuple):
                yield item[1]


def test_every_passage_of_the_corpus_reads_clean_on_every_surface() -> None:
    """The excerpt of every passage of every article in the shared corpus (any of them can be the best
    passage of a search), shown in a retrieval-only answer on Discord, Slack and the terminal."""
    found: dict[str, list[str]] = {}
    passages = 0
    for doc in corpus_documents():
        chunks = chunk_document(doc)
        passages += len(chunks)
        sources = tuple(
            Source(i, doc.id, doc.title, doc.url, prompts.excerpt(c.text)) for i, c in enumerate(chunks, 1)
        )
        answer = Answer(prompts.retrieval_only_text(sources), sources, "retrieval-only")
        for surface, shown in surfaces(answer).items():
            for name in artefacts(shown):
                found.setdefault(f"{surface}: {name}", []).append(doc.id)
    assert passages > 1000  # the whole corpus was read
    assert found == {}


def test_an_excerpt_is_the_passages_words() -> None:
    passage = (
        'Hard takeoff\n============\n\nA **hard takeoff** (or an AI going "FOOM" \\[2\\]) is fast.[^hy8b]\n\n'
        "[^hy8b]: As defined by someone.\n\n"
        "See also\n--------\n\n* [Soft takeoff](https://example.org/soft)\n* Singleton\n\n"
        "The return is $\\gamma^{t} r_t$ <!-- a comment --> and ![a chart](x.png) shows it.\n\n"
        "$$R = \\sum_t r_t$$\n\nLanguage {#01}: Tasks. David Lewis proved ^3^ it."
    )
    assert plain_text(passage) == (
        'Hard takeoff: A hard takeoff (or an AI going "FOOM" [2]) is fast. See also: Soft takeoff; '
        "Singleton The return is γ^t r_t and a chart shows it. (formula) Language: Tasks. David Lewis proved it."
    )
    assert prompts.excerpt(passage, 40) == "Hard takeoff: A hard takeoff (or an AI…"


@pytest.mark.parametrize(
    "text", ["*not emphasis* here", "a [label](https://evil.example) b", "x <b>y</b> `z`", "plain [2] text"]
)
def test_literal_text_reads_back_as_the_same_words(text: str) -> None:
    """Plain text put back into Markdown (an excerpt, a title) reads as itself; it is escaped only when
    Markdown would take some of it for markup."""
    written = literal(text)
    assert reads_as(written) == text
    assert (written == text) == (text == "plain [2] text")


def test_each_source_is_its_own_paragraph_on_the_terminal() -> None:
    sources = (
        Source(1, "a", "What is corrigibility?", "https://example.org/1", "An AI that accepts correction."),
        Source(2, "b", "Instrumental convergence", "https://example.org/2", "Most goals need resources."),
    )
    text = prompts.retrieval_only_text(sources)
    lines = [line.strip() for line in rich_text(text).splitlines()]
    first = lines.index("[1] What is corrigibility? An AI that accepts correction.")  # no "?:"
    second = lines.index("[2] Instrumental convergence: Most goals need resources.")
    label = lines.index(prompts.RETRIEVAL_ONLY_LABEL)
    assert label < first < second and lines[first + 1] == "" and lines[label + 1] == ""
    for shown in (
        discord.render(Answer(text, sources, "retrieval-only")),
        slack.render_text(Answer(text, sources, "retrieval-only")),
    ):
        assert "\n\n[1] What is corrigibility?" in shown and "\n\n[2] Instrumental convergence" in shown


class FailingLLM(FakeLLM):
    """A model whose key is refused, as service/anthropic_llm.py reports it."""

    def stream(
        self, *, system: str, messages: Sequence[Message], max_tokens: int, usage: Usage | None = None
    ) -> AsyncIterator[str]:
        raise LLMError("auth", "the API key was refused (HTTP 401); check ANTHROPIC_API_KEY")


@pytest.mark.parametrize(
    ("llm", "budget", "setting"),
    [
        (None, None, "ANTHROPIC_API_KEY is not set"),
        (FailingLLM(), None, "check ANTHROPIC_API_KEY"),
        (FakeLLM(["never", "asked"]), FakeBudget(exhausted=True), "DAILY_TOKEN_BUDGET"),
    ],
)
async def test_members_read_a_label_and_the_operator_the_reason_once(
    llm: FakeLLM | None, budget: FakeBudget | None, setting: str, caplog: pytest.LogCaptureFixture
) -> None:
    c = core(COVERED, llm, budget)
    with caplog.at_level(logging.WARNING, logger="bot.core"):
        answers = [await c.answer(Question(q)) for q in ("what is corrigibility?", "and shutdown?", "why?")]
    for answer in answers:
        assert answer.mode == "retrieval-only"
        assert answer.text.startswith(f"*{prompts.RETRIEVAL_ONLY_LABEL}*")
        assert not re.search(r"ANTHROPIC|BUDGET|budget|API key|language model", answer.text)
    told = [r.getMessage() for r in caplog.records if "retrieval-only answers" in r.getMessage()]
    assert len(told) == 1 and setting in told[0]  # once for three answers, naming the setting


async def test_each_reason_is_told_once_in_a_process_that_meets_two(caplog: pytest.LogCaptureFixture) -> None:
    """One process (one core) whose key is refused, then whose budget runs out: each reason once."""
    budget = FakeBudget(exhausted=False)
    c = core(COVERED, FailingLLM(), budget)
    with caplog.at_level(logging.WARNING, logger="bot.core"):
        for q in ("what is corrigibility?", "what is shutdown?"):
            assert (await c.answer(Question(q))).mode == "retrieval-only"
        budget.is_exhausted = True
        for q in ("what is reward hacking?", "what is ELK?", "what is corrigibility?"):
            assert (await c.answer(Question(q))).mode == "retrieval-only"
    told = [r.getMessage() for r in caplog.records if "retrieval-only answers" in r.getMessage()]
    assert len(told) == 2, told
    assert "check ANTHROPIC_API_KEY" in told[0] and "DAILY_TOKEN_BUDGET" in told[1], told


async def test_without_a_model_another_language_gets_one_sentence() -> None:
    c = core(UNCOVERED)  # an English search for a German question finds nothing close
    answer = await c.answer(Question("Was ist Reward Hacking?"))
    assert answer.text == prompts.ENGLISH_ONLY_TEXT
    assert re.fullmatch(r"[^.?!]+[.?!]", prompts.ENGLISH_ONLY_TEXT)  # one sentence
