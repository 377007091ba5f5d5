"""Pure functions for Discord: from messages to a `Question`, from an `Answer` to message texts.

No discord.py import here: the handler in `discord_bot.py` turns discord.py objects into the plain
values these functions take.

Untrusted text (the model's answer and previews, articles' excerpts, members' questions) is escaped by
Discord's grammar, never searched for bad links: `to_markdown` writes the model's Markdown out again with
every `](` and `]:` broken by an escape and every `<` and `@everyone` / `@here` followed by a zero-width
space, so no masked link and no mention can form from it. The only masked links are the bot's own
(`bot_link`), to the library's articles. Messages are also sent with no mention allowed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from adapters.markdown import Dialect, rewrite, scrub
from bot.models import DM, Answer, Question, Turn
from bot.platform import Style
from bot.textsplit import split_text

MESSAGE_LIMIT = 2000
THREAD_NAME_LIMIT = 100
HISTORY_TURNS = 12
ZWSP = "\u200b"

_LINK = re.compile(r"\[[^\]\n]*\]\(<?[^)\s]*>?\)")
# Where a message is not split: a link, an escape and what it escapes, a defused mention.
_WHOLE = re.compile(rf"{_LINK.pattern}|\\.|<{ZWSP}|@{ZWSP}")


@dataclass(frozen=True)
class Said:
    """One earlier message of a thread or DM, reduced to what the history needs."""

    author_id: int
    text: str
    is_bot: bool = False


def strip_mentions(content: str, bot_id: int) -> str:
    """The question without the bot's own mention (other mentions stay as written)."""
    text = re.sub(rf"<@!?{bot_id}>", " ", content)
    return " ".join(text.split())


def thread_name(question: str) -> str:
    """A thread's name from a member's question. Discord shows names as typed (no markdown), so no
    escape: a zero-width space breaks every `](`, `<` and `@everyone` / `@here` instead."""
    name = _CLOSER.sub("]" + ZWSP, _no_ping(scrub(" ".join(question.split())))) or "Question"
    if len(name) <= THREAD_NAME_LIMIT:
        return name
    return name[: THREAD_NAME_LIMIT - 1].rsplit(" ", 1)[0] + "…"


def build_history(messages: Sequence[Said], bot_id: int, *, limit: int = HISTORY_TURNS) -> tuple[Turn, ...]:
    """Earlier messages, oldest first, as conversation turns; the bot's own are the assistant's."""
    turns: list[Turn] = []
    for m in messages[-limit:]:
        text = strip_mentions(m.text, bot_id)
        if not text:
            continue
        turns.append(Turn("assistant" if m.author_id == bot_id else "user", text))
    return tuple(turns)


def community_of(guild_id: int | None) -> str:
    """The community of a message or interaction: its server, or `dm` outside any server."""
    return f"discord:{guild_id}" if guild_id else DM


def to_question(
    content: str, *, bot_id: int, history: Sequence[Said], asker: str, place: str, community: str
) -> Question:
    return Question(
        strip_mentions(content, bot_id),
        build_history(history, bot_id),
        asker=asker,
        place=place,
        community=community,
    )


_MASS = re.compile(r"@(everyone|here)", re.I)
# A `]` right before `(` or `:` could close a link's label or start a link definition.
_CLOSER = re.compile(r"\](?=[(:])")


def _no_ping(text: str) -> str:
    """No mention can form: `<@…>`, `<@&…>`, `<#…>` and `</…>` lose their `<`, `@everyone` and `@here`
    their `@`, each to a zero-width space after it."""
    return _MASS.sub(lambda m: f"@{ZWSP}{m.group(1)}", text.replace("<", "<" + ZWSP))


def _text(text: str) -> str:
    """Literal text in Discord markdown: no link can form from it (every `](` and `]:` is broken by an
    escape, so no label can close onto an address), no mention, no stray code span; emphasis
    characters stay, a citation [1] reads as one."""
    text = text.replace("\\", "\\\\").replace("`", "\\`")
    return _CLOSER.sub("]\\\\", _no_ping(text))


def _code(text: str) -> str:
    """The inside of code, where Discord shows escapes as typed: zero-width spaces instead."""
    return _CLOSER.sub("]" + ZWSP, _no_ping(text))


def _code_span(inside: str) -> str:
    ticks = "`" * (max((len(r) for r in re.findall(r"`+", inside)), default=0) + 1)
    pad = " " if inside.startswith("`") or inside.endswith("`") else ""
    return f"{ticks}{pad}{inside}{pad}{ticks}"


def _fence(language: str, inside: str) -> str:
    return f"```{language}\n" + re.sub("`(?=`)", "`" + ZWSP, inside) + "```"


def _link_label(label: str) -> str:
    label = scrub(" ".join(label.split())).replace("[", "(").replace("]", ")")
    return _no_ping(label.replace("\\", "\\\\").replace("`", "\\`"))


def _link_url(url: str) -> str:
    return re.sub(r"[\s<>()\\]", lambda m: f"%{ord(m.group(0)):02X}", url)


def bot_link(label: str, url: str) -> str:
    """The bot's own masked link, to an address it chose (an article of the library, the report page);
    in angle brackets, so Discord shows no preview card."""
    return f"[{_link_label(label) or _link_url(url)}](<{_link_url(url)}>)"


def _heading(level: int, inside: str) -> str:
    return f"{'#' * level} {inside}" if level <= 3 else f"**{inside}**"


DIALECT = Dialect(
    text=_text,
    code=_code,
    code_span=_code_span,
    fence=_fence,
    link=bot_link,
    strong="**",
    em="*",
    strike="~~",
    heading=_heading,
    bullet="-",
    quote="> ",
)


def to_markdown(text: str, library: Iterable[str] = ()) -> str:
    """Untrusted Markdown (the model's, an article's, a member's) as Discord markdown: emphasis, lists
    and code kept; no mention, and no masked link but the bot's own to a `library` address. Any other
    link reads "label (domain)"."""
    return rewrite(text, DIALECT, library)


def defuse(text: str) -> str:
    """Untrusted Markdown with no library: nothing in it can link behind a label or ping anyone, even
    if allowed_mentions were lost."""
    return to_markdown(text)


def render_preview(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """A streamed preview of the model's text so far, as one message of at most `limit` characters:
    no masked link at all (which addresses are the library's is settled with the final answer)."""
    shown = to_markdown(text)
    source = text
    while len(shown) > limit:
        source = source[: max(0, len(source) - (len(shown) - limit) - 2)]
        shown = to_markdown(source).rstrip() + " …"
    return shown


def plain(text: str) -> str:
    """Members' text shown as typed: no markdown, so no disguised link, and no ping."""
    text = re.sub(r"([\\*_~`|>\[\]()#])", r"\\\1", scrub(text))
    return _no_ping(text)


# The digest in Discord markdown (the client sends it with no mention allowed).
DIGEST_STYLE = Style(clean=plain, bold=lambda s: f"**{s}**", link=bot_link)


def render(answer: Answer) -> str:
    """The answer in Discord markdown, numbered sources and "read next" links beneath it. The model's
    text is escaped (`to_markdown`): the only masked links are the bot's, to the answer's articles."""
    parts = []
    if answer.notice:
        parts.append(f"*{plain(answer.notice)}*")
    parts.append(to_markdown(answer.text, answer.library()))
    if answer.sources:
        parts.append(
            "**Sources**\n" + "\n".join(f"[{s.n}] {bot_link(s.title, s.url)}" for s in answer.sources)
        )
    if answer.read_next:
        heading = "**Nearest articles**" if answer.mode == "abstain" else "**Read next**"
        parts.append(heading + "\n" + "\n".join(f"• {bot_link(s.title, s.url)}" for s in answer.read_next))
    return "\n\n".join(parts)


def split_message(text: str, limit: int = MESSAGE_LIMIT) -> list[str]:
    """Pieces of at most `limit` characters, split on paragraph or sentence breaks, never inside a
    link or a code block when that can be avoided. Joining the pieces gives back the text."""
    return split_text(text, limit, _WHOLE)
