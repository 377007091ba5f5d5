"""Pure functions for Discord: from messages to a `Question`, from an `Answer` to message texts.

No discord.py import here: the handler in `discord_bot.py` turns discord.py objects into the plain
values these functions take.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from bot.models import DM, Answer, Question, Source, Turn
from bot.platform import Style
from bot.textsplit import split_text

MESSAGE_LIMIT = 2000
THREAD_NAME_LIMIT = 100
HISTORY_TURNS = 12
ZWSP = "\u200b"

_MENTION = re.compile(r"<@!?(\d+)>")
_LINK = re.compile(r"\[[^\]\n]*\]\(<?[^)\s]*>?\)")
_MASS_MENTION = re.compile(r"@(everyone|here)")


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
    name = " ".join(question.split()) or "Question"
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


def defuse(text: str) -> str:
    """Text from the model or the articles cannot ping anyone, even if allowed_mentions were lost."""
    text = _MASS_MENTION.sub(lambda m: f"@{ZWSP}{m.group(1)}", text)
    return re.sub(r"<@([!&]?)(\d+)>", lambda m: f"<@{ZWSP}{m.group(1)}{m.group(2)}>", text)


def plain(text: str) -> str:
    """Members' text shown as typed: no markdown, so no disguised link, and no ping."""
    return re.sub(r"([\\*_~`|>\[\]()#])", r"\\\1", defuse(text))


# The digest in Discord markdown (the client sends it with no mention allowed).
DIGEST_STYLE = Style(clean=plain, bold=lambda s: f"**{s}**", link=lambda label, url: f"[{label}](<{url}>)")


def _link(s: Source) -> str:
    # Angle brackets stop Discord from unfurling every source into a preview card.
    title = s.title.replace("[", "(").replace("]", ")")
    return f"[{title}](<{s.url}>)"


def render(answer: Answer) -> str:
    """The answer in Discord markdown, numbered sources and "read next" links beneath it."""
    parts = []
    if answer.notice:
        parts.append(f"*{answer.notice}*")
    parts.append(answer.text)
    if answer.sources:
        parts.append("**Sources**\n" + "\n".join(f"[{s.n}] {_link(s)}" for s in answer.sources))
    if answer.read_next:
        heading = "**Nearest articles**" if answer.mode == "abstain" else "**Read next**"
        parts.append(heading + "\n" + "\n".join(f"• {_link(s)}" for s in answer.read_next))
    return defuse("\n\n".join(parts))


def split_message(text: str, limit: int = MESSAGE_LIMIT) -> list[str]:
    """Pieces of at most `limit` characters, split on paragraph or sentence breaks, never inside a
    link or a code block when that can be avoided. Joining the pieces gives back the text."""
    return split_text(text, limit, _LINK)
