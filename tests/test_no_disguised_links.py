"""No disguised link, no mention: nothing in the model's or a member's text (or an article's, which can
carry a prompt injection into the model's answer) becomes a masked link or a mention in anything the bot
posts: answers, previews, Slack's question header, Discord's thread names, the digest, read-next links,
the terminal. The only masked links are the bot's own, to the library's articles.

Tested as an attacker would: text built from the pieces of link, mention and escape syntax (hypothesis,
derandomized, so every run tries the same examples), judged three ways: a CommonMark parser
(markdown-it-py) and Discord's own masked-link pattern for Discord's Markdown; a parser of Slack's
`<...>` grammar for mrkdwn; and, independent of any parser, no `](`, `<http`, `<@`, `<#` or `<!` left
outside the links the bot built.
"""

from __future__ import annotations

import io
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt
from markdown_it.token import Token
from rich.console import Console
from rich.markdown import Markdown

from adapters.discord import render as discord
from adapters.slack import render as slack
from adapters.terminal import render as terminal_render
from bot.models import Answer, Source
from bot.platform import Style
from bot.prompts import retrieval_only_text, written_lead
from service.digest import LibraryNews, digest_text, last_complete

LIBRARY = ("https://aisafety.info/questions/1/What-is-AI-safety", "https://aisafety.info/questions/2/Next")
SOURCE = Source(1, "aisafety.info:1", "What is AI safety?", LIBRARY[0])
NEXT = Source(1, "aisafety.info:2", "Read this next", LIBRARY[1])

# The outside tester's spellings, each once a masked link on Slack or Discord.
KNOWN = [
    "[source 2](https://evil.example/x(y)",
    "[the docs](https://evil.example/<z>)",
    "[read more](https://evil.example/a((b))c)",
    "[[1]](https://evil.example/cite)",
    '[x](https://evil.example/t "aisafety.info")',
    "[Official aisafety.info answer](https://evil.example/phish)",
]

FRAGMENTS = [
    "[", "]", "(", ")", "<", ">", "|", "!", "@", "#", "&", ":", "*", "_", "~", "\\", "`", "```", '"', "'",
    "\n", "\n\n", " ", "  ", "- ", "1. ", "> ", "a", "Z", "1", "[1]", "](", "](<", ">)",
    "&lt;", "&gt;", "&amp;", "&#60;", "&#x3C;", "http://", "https://evil.example/", "https://aisafety.info/",
    LIBRARY[0], "evil.example", "everyone", "here", "channel", "@everyone", "@here", "@channel",
    "<@U123>", "<@123>", "<@!123>", "<@&456>", "<#789>", "<#C1|general>", "<!channel>", "<!here>",
    "<!subteam^S1|@team>", "<https://evil.example|aisafety.info>", "[1]: https://evil.example/ref\n",
    "\x1b]8;;https://evil.example/\x1b\\", "\x1b\\", "\u202e", "\r", "mailto:", "javascript:",
]  # fmt: skip


def _link_spellings() -> st.SearchStrategy[str]:
    """A Markdown link's pieces put together in ways that are, or almost are, a link."""
    piece = st.lists(st.sampled_from(FRAGMENTS), max_size=4).map("".join)
    url = st.lists(
        st.sampled_from(["https://evil.example/", "(", ")", "<", ">", "x", " ", "|", "\\", LIBRARY[0]]),
        max_size=6,
    ).map("".join)
    title = st.sampled_from(["", ' "aisafety.info"', " 'aisafety.info'", " (aisafety.info)"])
    return st.builds(
        lambda bang, label, u, t, angle: (
            f"{bang}[{label}]({'<' if angle else ''}{u}{'>' if angle else ''}{t})"
        ),
        st.sampled_from(["", "!", "["]),
        piece,
        url,
        title,
        st.booleans(),
    )


TEXTS = st.lists(st.one_of(st.sampled_from(FRAGMENTS), _link_spellings()), max_size=30).map("".join)
EXAMPLES = settings(
    max_examples=150, derandomize=True, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)

# -- the judges ----------------------------------------------------------------------------------------

COMMONMARK = MarkdownIt("commonmark")  # the parser's defaults: raw HTML on, as a Markdown viewer would
LIBRARY_HREFS = {COMMONMARK.normalizeLink(u) for u in LIBRARY}
# Discord's masked link (simple-markdown's link rule), found anywhere and blind to escapes: stricter
# than Discord, which skips what a backslash escapes.
DISCORD_LINK = re.compile(
    r"\[((?:\[[^\]]*\]|[^\[\]]|\](?=[^\[]*\]))*)\]\(\s*<?((?:\([^)]*\)|[^\s\\]|\\.)*?)>?"
    r"(?:\s+['\"]([\s\S]*?)['\"])?\s*\)"
)
_LIB = "|".join(re.escape(u) for u in LIBRARY)
BOT_DISCORD_LINK = re.compile(rf"\[[^\[\]\n]*\]\(<(?:{_LIB})>\)")
BOT_SLACK_LINK = re.compile(rf"<(?:{_LIB})\|[^<>]*>")
UNSAFE = ("](", "<http", "<@", "<#", "<!")


def commonmark_links(text: str) -> list[str]:
    """The addresses of every link and image a CommonMark renderer makes of `text`."""
    found: list[str] = []

    def walk(tokens: list[Token]) -> None:
        for t in tokens:
            if t.type == "link_open":
                found.append(str(t.attrs["href"]))
            elif t.type == "image":
                found.append(str(t.attrs["src"]))
            walk(t.children or [])

    walk(COMMONMARK.parse(text))
    return found


def assert_discord_safe(out: str) -> None:
    assert set(commonmark_links(out)) <= LIBRARY_HREFS, out
    for m in DISCORD_LINK.finditer(out):
        assert m.group(2) in LIBRARY, (m.group(0), out)
    assert not re.search(r"@(everyone|here)", out, re.I), out
    outside = BOT_DISCORD_LINK.sub("", out)
    for bad in UNSAFE:
        assert bad not in outside, (bad, out)


def slack_entities(out: str) -> list[str]:
    """What Slack reads as `<...>` entities (links, mentions, @channel): from a `<` to the next `>`."""
    return re.findall(r"<([^>]*)>?", out)


def assert_slack_safe(out: str) -> None:
    for entity in slack_entities(out):
        url, bar, label = entity.partition("|")
        assert url in LIBRARY and bar and "<" not in label, (entity, out)
    assert not re.search(r"@(channel|here|everyone)\b", out, re.I), out
    outside = BOT_SLACK_LINK.sub("", out)  # a `>` alone is a quote's marker, or text
    for bad in UNSAFE:
        assert bad not in outside, (bad, out)


def answer_of(text: str) -> Answer:
    return Answer(text, (SOURCE,), "llm", read_next=(NEXT,))


# -- the properties ------------------------------------------------------------------------------------


@EXAMPLES
@given(TEXTS)
def test_discord_answers_previews_and_thread_names(text: str) -> None:
    rendered = discord.render(answer_of(text))
    assert_discord_safe(rendered)
    for piece in discord.split_message(rendered, 300):
        assert_discord_safe(piece)
    preview = discord.render_preview(text * 20)
    assert len(preview) <= discord.MESSAGE_LIMIT
    assert_discord_safe(preview)
    assert_discord_safe(discord.defuse(text))  # what the preview is built with today
    name = discord.thread_name(text)  # shown as typed: judged without a parser
    assert len(name) <= discord.THREAD_NAME_LIMIT
    assert not any(bad in name for bad in UNSAFE) and not re.search(r"@(everyone|here)", name, re.I)


@EXAMPLES
@given(TEXTS)
def test_slack_answers_previews_and_question_headers(text: str) -> None:
    answer = answer_of(text)
    assert_slack_safe(slack.render_text(answer))
    for block in slack.render_blocks(answer, 1, handoff=True):
        if block["type"] == "section":
            assert_slack_safe(block["text"]["text"])
    assert_slack_safe(slack.neutralise(slack.to_mrkdwn(text)) + " …")  # a preview; the /ask header too


@EXAMPLES
@given(TEXTS)
def test_an_article_cannot_smuggle_a_link_into_a_retrieval_only_answer(text: str) -> None:
    """An article's excerpt and title are untrusted too: they reach the answer when the model cannot."""
    found = Source(1, "aisafety.info:1", f"Title {text}", LIBRARY[0], excerpt=text)
    body = written_lead(found.title, found.url) + "\n\n" + retrieval_only_text([found])
    answer = Answer(body, (found,), "retrieval-only", read_next=(NEXT,))
    assert_discord_safe(discord.render(answer))
    assert_slack_safe(slack.render_text(answer))


@EXAMPLES
@given(TEXTS, TEXTS)
def test_digests(question: str, title: str) -> None:
    report = {
        "answers": 2,
        "by_outcome": {"llm": 1, "abstain": 1},
        "most_asked": [{"count": 2, "question": question}],
        "abstained": [{"count": 1, "question": question}],
        "downvoted": [],
    }
    news = LibraryNews(
        new=[{"title": title, "url": LIBRARY[0]}, {"title": title, "url": "mailto:x"}], changed=0, removed=0
    )
    period = last_complete("weekly", 1_800_000_000)
    judges: list[tuple[Style, object]] = [
        (discord.DIGEST_STYLE, assert_discord_safe),
        (slack.DIGEST_STYLE, assert_slack_safe),
    ]
    for style, judge in judges:
        judge(digest_text(report, period, style, admin_url=None, library=news))  # type: ignore[operator]


@EXAMPLES
@given(TEXTS)
def test_the_terminal_gets_no_control_sequence(text: str) -> None:
    answer = Answer(text, (Source(1, "a", f"T{text}", f"{LIBRARY[0]}{text}"),), "llm", notice=text)
    out = terminal_render(answer)
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]", out), repr(out)


# -- the spellings found, one by one -------------------------------------------------------------------


@pytest.mark.parametrize("spelling", KNOWN)
def test_known_spellings_are_words_on_discord(spelling: str) -> None:
    for shown in (
        discord.render(answer_of(f"Read {spelling} now [1].")),
        discord.render_preview(f"Read {spelling} now [1]."),
        discord.defuse(f"Read {spelling} now [1]."),
    ):
        assert_discord_safe(shown)
        assert "evil.example" in shown  # the address is not hidden: its domain, at least, shows
        assert "now [1]." in shown  # a citation still reads as one


@pytest.mark.parametrize("spelling", KNOWN)
def test_known_spellings_are_words_on_slack(spelling: str) -> None:
    answer = answer_of(f"Read {spelling} now [1].")
    for shown in (
        slack.render_text(answer),
        *(b["text"]["text"] for b in slack.render_blocks(answer, 1) if b["type"] == "section"),
        slack.neutralise(slack.to_mrkdwn(f"Read {spelling} now [1].")),
    ):
        assert_slack_safe(shown)
    assert "<https://evil" not in slack.render_text(answer)


def test_a_link_reads_label_and_domain() -> None:
    text = (
        "See [the official page](https://evil.example.com/phish), [[1]](https://evil.example/cite), "
        '[x](https://evil.example/t "aisafety.info"), <https://plain.example.net/p> and **bold** [1]."'
    )
    assert discord.to_markdown(text) == (
        "See the official page (evil.example.com), [1] (evil.example), x (evil.example), "
        'https://plain.example.net/p and **bold** [1]."'
    )
    assert slack.to_mrkdwn(text) == (
        "See the official page (evil.example.com), [1] (evil.example), x (evil.example), "
        'https://plain.example.net/p and *bold* [1]."'
    )
    # A Slack member's /ask is echoed above the answer: its link is words too.
    header = slack.neutralise(slack.to_mrkdwn(KNOWN[-1] + " is this true?"))
    assert header == "Official aisafety.info answer (evil.example) is this true?"


def test_what_is_not_a_link_is_escaped_not_removed() -> None:
    assert discord.to_markdown(KNOWN[0]) == "[source 2]\\(https://evil.example/x(y)"  # shows as typed
    assert discord.to_markdown("`[a](b) <@1>`") == "`[a]\u200b(b) <\u200b@1>`"
    assert discord.to_markdown("Hi @everyone <@&1> <#2>") == "Hi @\u200beveryone <\u200b@&1> <\u200b#2>"
    assert slack.to_mrkdwn(KNOWN[0]) == "[source 2]\u200b(https://evil.example/x(y)"
    assert slack.to_mrkdwn("<!here> & <@U1>") == "&lt;!here&gt; &amp; &lt;@U1&gt;"


def test_the_bots_own_links_stay_links() -> None:
    """The reply's lead to aisafety.info's written answer, and the model's link to an article it was
    given, point at the library: the bot builds them, with the article's address."""
    body = f"{written_lead(SOURCE.title, SOURCE.url)}\n\nSee [this article]({LIBRARY[1]}) [1]."
    answer = Answer(body, (SOURCE,), "llm", read_next=(NEXT,))
    shown = discord.render(answer)
    assert f"[What is AI safety?](<{LIBRARY[0]}>)" in shown and f"[this article](<{LIBRARY[1]}>)" in shown
    assert commonmark_links(shown) == [LIBRARY[0], LIBRARY[1], LIBRARY[0], LIBRARY[1]]
    text = slack.render_text(answer)
    assert f"<{LIBRARY[0]}|What is AI safety?>" in text and f"<{LIBRARY[1]}|this article>" in text
    # A preview does not know the library yet: no masked link at all.
    assert commonmark_links(discord.render_preview(body)) == []
    assert slack_entities(slack.to_mrkdwn(body)) == []


def test_a_preview_fits_one_message() -> None:
    text = "[x](https://evil.example/a) " * 200
    preview = discord.render_preview(text)
    assert len(preview) <= discord.MESSAGE_LIMIT and preview.endswith(" …")
    assert preview.startswith("x (evil.example) x (evil.example)")


def test_the_terminal_shows_every_address() -> None:
    """On a terminal rich renders the Markdown without hyperlinks: a link shows its address; the
    terminal's own links (OSC 8 escape sequences) never reach it."""
    text = f"{KNOWN[4]} and \x1b]8;;https://evil.example/\x1b\\label\x1b]8;;\x1b\\"
    shown = terminal_render(Answer(text, (SOURCE,), "llm"))
    assert "\x1b" not in shown and "]8;;https://evil.example/" in shown
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=200, color_system="standard", highlight=False)
    console.print(Markdown(shown, hyperlinks=False))
    out = re.sub(r"\x1b\[[0-9;]*m", "", screen.getvalue())
    assert "x (https://evil.example/t)" in out and "\x1b]8" not in screen.getvalue()
