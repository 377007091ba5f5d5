"""`/aisafety-settings` and `/aisafety-report` on Slack: for a workspace's admins and owners, privately.

Who may use them is asked of Slack on every use (`users.info`: `is_admin` or `is_owner`; the app needs
the `users:read` scope), with the token of the workspace the command came from (bolt's `client`). The
command is acknowledged at once; the reply goes to the command's `response_url`, seen only by the admin.
Arguments are read from the command's text, with Slack's escapes for channels (`<#C123|name>`) and user
groups (`<!subteam^S123|@mods>`; the manifest's `should_escape: true`). What the commands mean is in
`adapters.community_commands`; nothing in a reply can ping (user groups are written as their id).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from adapters import community_commands as cc
from adapters.slack.render import community_of

if TYPE_CHECKING:
    from bot.conversation import Conversation

_log = logging.getLogger(__name__)

MARKS = cc.Marks(channel=lambda c: f"<#{c}>", handoff=lambda g: f"user group `{g}`", place="workspace")
USAGE = (
    "Usage: `/aisafety-settings show`, `channels #a #b` (or `channels all`), `handoff @group`, "
    "`digest #channel daily|weekly|monthly`, `rate_limit N`, `store_questions on|off`, `retention DAYS`, "
    "`token_budget N`, or `reset SETTING` (back to the deployment's value). `/aisafety-report`: a private "
    "link to this workspace's report page."
)
UNCHECKED = (
    "I could not check that you are a workspace admin just now (the app needs the users:read scope). "
    "Please try again in a minute."
)
_CHANNEL = re.compile(r"^<#([CG][A-Z0-9]{2,})(?:\|[^>]*)?>$|^([CG][A-Z0-9]{2,})$")
_GROUP = re.compile(r"^<!subteam\^(S[A-Z0-9]{2,})(?:\|[^>]*)?>$|^(S[A-Z0-9]{2,})$")
RESET_WORDS = ("reset", "default")
NAMES = {  # what an admin types -> the setting
    "channels": "allowed_channels",
    "allowed_channels": "allowed_channels",
    "handoff": "handoff",
    "digest": "digest",
    "digest_channel": "digest_channel",
    "digest_every": "digest_every",
    "digest_period": "digest_every",
    "rate_limit": "rate_limit_per_minute",
    "rate_limit_per_minute": "rate_limit_per_minute",
    "store_questions": "store_questions",
    "retention": "retention_days",
    "retention_days": "retention_days",
    "token_budget": "daily_token_budget",
    "budget": "daily_token_budget",
    "daily_token_budget": "daily_token_budget",
}

Respond = Callable[..., Awaitable[Any]]


def _channel(word: str) -> str:
    found = _CHANNEL.match(word)
    if found is None:
        raise cc.Refused("Name channels as #channel (Slack links them as you type).")
    return found.group(1) or found.group(2)


def parse(text: str) -> dict[str, Any] | None:
    """The change a command's text asks for (None: just show the settings), or `Refused`."""
    words = text.split()
    if not words or words[0].lower() == "show":
        return None
    name = NAMES.get(words[0].lower().replace("-", "_"))
    args = words[1:]
    if words[0].lower() in RESET_WORDS:
        if len(args) != 1 or NAMES.get(args[0].lower().replace("-", "_")) is None:
            raise cc.Refused("Say which setting to reset.")
        target = NAMES[args[0].lower().replace("-", "_")]
        return {"digest_channel": None, "digest_every": None} if target == "digest" else {target: None}
    if name is None:
        raise cc.Refused("I don't know that setting.")
    if not args:
        raise cc.Refused("Give the setting a value.")
    if len(args) == 1 and args[0].lower() in RESET_WORDS:
        return {"digest_channel": None, "digest_every": None} if name == "digest" else {name: None}
    if name == "allowed_channels":
        if len(args) == 1 and args[0].lower() in ("all", "every", "everywhere"):
            return {name: frozenset()}
        return {name: frozenset(_channel(w) for w in args)}
    if name in ("digest", "digest_channel", "digest_every"):
        changes: dict[str, Any] = {}
        for word in args:
            if word.lower() in cc.DIGEST_PERIODS and name != "digest_channel":
                changes["digest_every"] = word.lower()
            elif name != "digest_every":
                changes["digest_channel"] = _channel(word)
            else:
                cc.period(word)
        return changes
    if len(args) != 1:
        raise cc.Refused("Give the setting one value.")
    value = args[0]
    if name == "handoff":
        found = _GROUP.match(value)
        if found is None:
            raise cc.Refused("Name the moderators' user group as @group (Slack links it as you type).")
        return {name: found.group(1) or found.group(2)}
    if name == "store_questions":
        return {name: cc.switch(value, "store_questions")}
    return {name: cc.whole_number(value, *cc.NUMBERS[name])}


class AdminCommands:
    """The two commands' listeners, registered on the bot's bolt app (`register`)."""

    def __init__(self, conversation: Conversation, *, default_team: Callable[[], str] = str):
        """`default_team`: the workspace of SLACK_BOT_TOKEN, for a command that names none."""
        self.conversation = conversation
        self._default_team = default_team

    def register(self, app: Any) -> None:
        app.command("/aisafety-settings")(self.on_settings)
        app.command("/aisafety-report")(self.on_report)

    def _community(self, command: dict[str, Any]) -> str:
        """The workspace the command came from: its settings apply in every channel, DMs included."""
        return community_of(str(command.get("team_id") or self._default_team()), "")

    async def admitted(self, client: Any, command: dict[str, Any], respond: Respond) -> bool:
        """Whether the member is an admin or owner of the workspace (asked of Slack); if not, told so."""
        user = str(command.get("user_id") or "")
        try:
            found = await client.users_info(user=user)
            member = found.get("user") or {}
        except Exception as exc:
            _log.warning("could not look up a member for /aisafety-* (%s)", type(exc).__name__)
            await respond(text=UNCHECKED, response_type="ephemeral")
            return False
        if member.get("is_admin") or member.get("is_owner") or member.get("is_primary_owner"):
            return True
        _log.info("refused /aisafety-* to a member who is not a workspace admin")
        await respond(text=cc.NOT_ADMIN_SLACK, response_type="ephemeral")
        return False

    async def on_settings(self, ack: Any, command: dict[str, Any], client: Any, respond: Respond) -> None:
        await ack()
        if not await self.admitted(client, command, respond):
            return
        community = self._community(command)
        text = str(command.get("text") or "").strip()
        store, deployment = self.conversation.settings, self.conversation.deployment
        if text.lower() in ("help", "-h", "--help"):
            reply = USAGE
        else:
            try:
                changes = parse(text)
            except cc.Refused as exc:
                reply = f"{exc}\n{USAGE}"
            else:
                if changes is None:
                    reply = await cc.show(store, deployment, community, MARKS)
                else:
                    reply = await cc.change(store, deployment, community, changes, MARKS)
        await respond(text=reply, response_type="ephemeral")

    async def on_report(self, ack: Any, command: dict[str, Any], client: Any, respond: Respond) -> None:
        await ack()
        if not await self.admitted(client, command, respond):
            return
        link = self.conversation.options.report_link
        url = link(self._community(command)) if link is not None else None
        # The bot's own link, written as Slack's link markup.
        reply = cc.report_reply(f"<{url}>" if url else None, place="workspace")
        await respond(text=reply, response_type="ephemeral")
