"""Pure functions for Slack: events to a `Question`, an `Answer` to mrkdwn text and Block Kit.

No slack_bolt import here; the handlers in `slack_app.py` pass plain dicts (the raw payloads).

Untrusted text (the model's answer and previews, articles' excerpts, members' questions) is escaped by
Slack's grammar, never searched for bad links: mrkdwn makes links and mentions only from `<...>`, and
`&`, `<` and `>` in text are escaped (`escape`), so none can form from it. The model's Markdown is read
by a CommonMark parser and written out as mrkdwn (`to_mrkdwn`); a link in it reads "label (domain)". The
only `<url|label>` links are the bot's own (`bot_link`), to the library's articles.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from adapters.markdown import Dialect, rewrite, scrub
from bot.models import DM, Answer, Question, Turn
from bot.platform import HANDOFF_LABEL, Style
from bot.textsplit import split_text

SECTION_LIMIT = 3000  # characters of mrkdwn in one section block
HISTORY_TURNS = 12
ZWSP = "\u200b"

_SLACK_LINK = re.compile(r"<(?:https?://|mailto:)[^<>|\s]*(?:\|[^<>]*)?>")
# Where a section is not split: a link, an escaped character.
_WHOLE = re.compile(rf"{_SLACK_LINK.pattern}|&(?:amp|lt|gt);")
_MASS_WORD = re.compile(r"@(channel|here|everyone)\b", re.I)
_SPECIAL = re.compile(
    r"<(!(?:channel|here|everyone)|!subteam\^[^>]*|@[UW][A-Z0-9]+(?:\|[^>]*)?|#C[A-Z0-9]+(?:\|[^>]*)?)>"
)


def _mention_of(bot_user_id: str) -> str:
    return rf"<@{re.escape(bot_user_id)}(?:\|[^>]*)?>"


def strip_mention(text: str, bot_user_id: str) -> str:
    return " ".join(re.sub(_mention_of(bot_user_id), " ", text).split())


def mentions_bot(text: str, bot_user_id: str) -> bool:
    return bool(re.search(_mention_of(bot_user_id), text or ""))


def build_history(
    messages: Sequence[Mapping[str, Any]], bot_user_id: str, *, limit: int = HISTORY_TURNS
) -> tuple[Turn, ...]:
    """Earlier messages of a thread or DM, oldest first; the bot's own are the assistant's turns."""
    turns: list[Turn] = []
    for m in messages[-limit:]:
        text = strip_mention(str(m.get("text") or ""), bot_user_id)
        if not text:
            continue
        mine = m.get("user") == bot_user_id or bool(
            m.get("bot_id") and m.get("bot_profile", {}).get("app_id")
        )
        turns.append(Turn("assistant" if mine else "user", text))
    return tuple(turns)


def community_of(team_id: str, channel: str, *, direct: bool = False) -> str:
    """The community of an event: its workspace, or `dm` for a direct message (a D... channel)."""
    return DM if direct or channel.startswith("D") else f"slack:{team_id}"


def to_question(
    event: Mapping[str, Any], *, bot_user_id: str, history: Sequence[Mapping[str, Any]], community: str
) -> Question:
    return Question(
        strip_mention(str(event.get("text") or ""), bot_user_id),
        build_history(history, bot_user_id),
        asker=f"slack:{event.get('user', '')}",
        place=f"slack:{event.get('channel', '')}",
        community=community,
    )


def escape(text: str) -> str:
    """Untrusted text as plain mrkdwn: `&`, `<` and `>` escaped, so no link, no mention and no
    @channel can come out of it (and a zero-width space keeps a Markdown `](` from reading as a link
    anywhere the text is shown)."""
    text = scrub(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MASS_WORD.sub(lambda m: f"@{ZWSP}{m.group(1)}", text).replace("](", "]" + ZWSP + "(")


def neutralise(text: str) -> str:
    """Defuse Slack's special mentions in text that is already mrkdwn (belt and braces)."""
    text = _SPECIAL.sub(lambda m: "@" + ZWSP + m.group(1).lstrip("!@#").split("|")[-1], text)
    return _MASS_WORD.sub(lambda m: f"@{ZWSP}{m.group(1)}", text)


def _safe_url(url: str) -> str:
    """A URL that cannot end (or open) a <url|text> link early."""
    return re.sub(r"[\s|<>]", lambda m: f"%{ord(m.group(0)):02X}", url)


def bot_link(label: str, url: str) -> str:
    """The bot's own link, to an address it chose (an article of the library, the report page)."""
    label = escape(" ".join(label.split())).replace("|", "¦")
    return f"<{_safe_url(url)}|{label or escape(url)}>"


def _code_span(inside: str) -> str:
    return "`" + inside.replace("`", "ˋ") + "`"


def _fence(language: str, inside: str) -> str:
    return "```\n" + inside.replace("```", "ˋˋˋ") + "```"


DIALECT = Dialect(
    text=escape,
    code=escape,
    code_span=_code_span,
    fence=_fence,
    link=bot_link,
    strong="*",
    em="_",
    strike="~",
    heading=lambda level, inside: f"*{inside}*",
    bullet="•",
    quote="> ",
)


def to_mrkdwn(markdown: str, library: Iterable[str] = ()) -> str:
    """Untrusted Markdown (the model's, an article's, a member's) as Slack mrkdwn: **bold** becomes
    *bold*, lists and code stay; every character of text is escaped, so the only links are the bot's
    own to a `library` address. Any other link reads "label (domain)"."""
    return rewrite(markdown, DIALECT, library)


# The digest in Slack mrkdwn: members' text escaped (no link, no mention, no @channel can come out of it).
DIGEST_STYLE = Style(clean=escape, bold=lambda s: f"*{s}*", link=bot_link)


def sources_mrkdwn(answer: Answer) -> str:
    parts = []
    if answer.sources:
        parts.append("*Sources*\n" + "\n".join(f"[{s.n}] {bot_link(s.title, s.url)}" for s in answer.sources))
    if answer.read_next:
        heading = "*Nearest articles*" if answer.mode == "abstain" else "*Read next*"
        parts.append(heading + "\n" + "\n".join(f"• {bot_link(s.title, s.url)}" for s in answer.read_next))
    return "\n\n".join(parts)


def _body(answer: Answer) -> str:
    """The answer as mrkdwn, after its notice (why it is retrieval-only, for instance) if it has one."""
    body = to_mrkdwn(answer.text, answer.library())
    return f"_{escape(answer.notice)}_\n\n{body}" if answer.notice else body


def render_text(answer: Answer) -> str:
    """The plain `text` of the message: the whole answer and its sources, for notifications and
    clients that do not show blocks."""
    body = _body(answer)
    tail = sources_mrkdwn(answer)
    return neutralise(f"{body}\n\n{tail}" if tail else body)


def split_sections(mrkdwn: str, limit: int = SECTION_LIMIT) -> list[str]:
    """Pieces that each fit one section block, never cutting a <url|title> link."""
    return [p for p in split_text(mrkdwn, limit, _WHOLE) if p.strip()]


def feedback_actions(answer_id: int) -> dict[str, Any]:
    return {
        "type": "actions",
        "block_id": f"feedback:{answer_id}",
        "elements": [
            {
                "type": "button",
                "action_id": f"feedback_{vote}",
                "value": str(answer_id),
                "text": {"type": "plain_text", "text": emoji, "emoji": True},
            }
            for vote, emoji in (("up", "👍"), ("down", "👎"))
        ],
    }


HANDOFF_ACTION = "handoff"


def handoff_button() -> dict[str, Any]:
    return {
        "type": "button",
        "action_id": HANDOFF_ACTION,
        "value": "handoff",
        "text": {"type": "plain_text", "text": HANDOFF_LABEL},
    }


def render_blocks(answer: Answer, answer_id: int | None, *, handoff: bool = False) -> list[dict[str, Any]]:
    """Block Kit: the answer in sections of at most 3000 characters, then the sources, then 👍 / 👎
    (when there is an answer id to rate) and "Ask a human" (with HANDOFF_ROLE)."""
    body = _body(answer)
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": neutralise(part)}}
        for part in split_sections(body)
    ]
    tail = sources_mrkdwn(answer)
    if tail:
        blocks.append({"type": "divider"})
        blocks += [
            {"type": "section", "text": {"type": "mrkdwn", "text": part}} for part in split_sections(tail)
        ]
    if answer_id is not None and answer.mode != "abstain":  # nothing to rate when the bot abstains
        blocks.append(feedback_actions(answer_id))
    if handoff:
        if blocks[-1]["type"] == "actions":
            blocks[-1]["elements"].append(handoff_button())
        else:
            blocks.append({"type": "actions", "block_id": "handoff", "elements": [handoff_button()]})
    return blocks
