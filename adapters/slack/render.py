"""Pure functions for Slack: events to a `Question`, an `Answer` to mrkdwn text and Block Kit.

No slack_bolt import here; the handlers in `slack_app.py` pass plain dicts (the raw payloads).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from bot.models import DM, Answer, Question, Source, Turn
from bot.platform import HANDOFF_LABEL, Style
from bot.textsplit import split_text

SECTION_LIMIT = 3000  # characters of mrkdwn in one section block
HISTORY_TURNS = 12
ZWSP = "\u200b"

_SLACK_LINK = re.compile(r"<(?:https?://|mailto:)[^<>|\s]*(?:\|[^<>]*)?>")
_MD_LINK = re.compile(r"\[([^\]\n]+)\]\((https?://[^)\s]+)\)")
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
    """Untrusted text as plain mrkdwn: no link, no mention, no @channel can come out of it."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MASS_WORD.sub(lambda m: f"@{ZWSP}{m.group(1)}", text)


def neutralise(text: str) -> str:
    """Defuse Slack's special mentions in text that is already mrkdwn (belt and braces)."""
    text = _SPECIAL.sub(lambda m: "@" + ZWSP + m.group(1).lstrip("!@#").split("|")[-1], text)
    return _MASS_WORD.sub(lambda m: f"@{ZWSP}{m.group(1)}", text)


def to_mrkdwn(markdown: str) -> str:
    """The model's Markdown as Slack mrkdwn: links become <url|text>, **bold** becomes *bold*."""
    links: list[str] = []

    def keep(m: re.Match[str]) -> str:
        links.append(f"<{_safe_url(m.group(2))}|{escape(m.group(1))}>")
        return f"\x00{len(links) - 1}\x00"

    text = escape(_MD_LINK.sub(keep, markdown))
    text = re.sub(r"\*\*(.+?)\*\*", r"*\1*", text)
    text = re.sub(r"^#{1,6}\s+(.+)$", r"*\1*", text, flags=re.M)
    return re.sub(r"\x00(\d+)\x00", lambda m: links[int(m.group(1))], text)


def _safe_url(url: str) -> str:
    """A URL that cannot end (or open) a <url|text> link early."""
    return url.replace("|", "%7C").replace(">", "%3E").replace("<", "%3C")


def _link(s: Source) -> str:
    return f"<{_safe_url(s.url)}|{escape(s.title).replace('|', '¦')}>"


# The digest in Slack mrkdwn: members' text escaped (no link, no mention, no @channel can come out of it).
DIGEST_STYLE = Style(
    clean=escape, bold=lambda s: f"*{s}*", link=lambda label, url: f"<{_safe_url(url)}|{escape(label)}>"
)


def sources_mrkdwn(answer: Answer) -> str:
    parts = []
    if answer.sources:
        parts.append("*Sources*\n" + "\n".join(f"[{s.n}] {_link(s)}" for s in answer.sources))
    if answer.read_next:
        heading = "*Nearest articles*" if answer.mode == "abstain" else "*Read next*"
        parts.append(heading + "\n" + "\n".join(f"• {_link(s)}" for s in answer.read_next))
    return "\n\n".join(parts)


def _body(answer: Answer) -> str:
    """The answer as mrkdwn, after its notice (why it is retrieval-only, for instance) if it has one."""
    body = to_mrkdwn(answer.text)
    return f"_{escape(answer.notice)}_\n\n{body}" if answer.notice else body


def render_text(answer: Answer) -> str:
    """The plain `text` of the message: the whole answer and its sources, for notifications and
    clients that do not show blocks."""
    body = _body(answer)
    tail = sources_mrkdwn(answer)
    return neutralise(f"{body}\n\n{tail}" if tail else body)


def split_sections(mrkdwn: str, limit: int = SECTION_LIMIT) -> list[str]:
    """Pieces that each fit one section block, never cutting a <url|title> link."""
    return [p for p in split_text(mrkdwn, limit, _SLACK_LINK) if p.strip()]


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
