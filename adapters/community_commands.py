"""`/aisafety-settings` and `/aisafety-report` as every platform means them.

A community's admins change their community's own settings (`bot.community.CommunitySettings`) within
the deployment's ceilings and see what applies (`bot.community.effective`). Here: the checks of a change,
the store call, and the reply's text. Each platform's `commands.py` checks who may use the commands, reads
their arguments and sends the reply privately; ids are written by the platform's `Marks`, which never
ping anyone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from bot.community import (
    DIGEST_PERIODS,
    CommunitySettings,
    Deployment,
    Effective,
    SettingsStore,
    effective,
)

_log = logging.getLogger(__name__)

MAX_RATE = 1000  # questions per member a minute
MAX_RETENTION_DAYS = 3650
MAX_TOKEN_BUDGET = 1_000_000_000
MAX_CHANNELS = 50
SETTINGS = frozenset(f.name for f in fields(CommunitySettings))
NUMBERS = {  # the numbers a community sets: what they are called, and their bounds
    "rate_limit_per_minute": ("The rate limit", 0, MAX_RATE),
    "retention_days": ("The retention", 1, MAX_RETENTION_DAYS),
    "daily_token_budget": ("The daily token budget", 0, MAX_TOKEN_BUDGET),
}

NOT_ADMIN_DISCORD = "Only members with the Manage Server permission can use this command."
NOT_ADMIN_SLACK = "Only workspace admins and owners can use this command."
NOT_IN_DM = "This command works in a server only, not in direct messages."
NOT_STORED = (
    "Questions cannot be stored here: this deployment keeps none (its operator set STORE_QUESTIONS=false)."
)
NO_LINKS = "Report links are off: the bot's operator must set PUBLIC_URL and ADMIN_TOKEN first."
UNSAVED = "Sorry, I could not save the settings just now. Please try again in a minute."
UNREAD = "Sorry, I could not read the settings just now. Please try again in a minute."


class Refused(ValueError):
    """A change not made; its message is one line for the admin."""


@dataclass(frozen=True)
class Marks:
    """How a platform writes what the settings name, without pinging anyone."""

    channel: Callable[[str], str]
    handoff: Callable[[str], str]
    place: str  # "server", "workspace"


def report_reply(link: str | None, *, place: str) -> str:
    """The reply to `/aisafety-report`: this community's link (a day), or why there is none."""
    if link is None:
        return NO_LINKS
    return f"The report page for this {place} only (valid for a day; keep it among the moderators):\n{link}"


# -- values as typed -----------------------------------------------------------------------------
def whole_number(text: object, what: str, low: int, high: int) -> int:
    """A whole number from `low` to `high`, else `Refused` naming the setting."""
    raw = str(text).strip().replace(",", "").replace("_", "")
    if not (raw.isascii() and raw.lstrip("-").isdigit()) or not low <= int(raw) <= high:
        raise Refused(f"{what} takes a whole number from {low:,} to {high:,}.")
    return int(raw)


def switch(text: str, what: str) -> bool:
    word = text.strip().lower()
    if word in ("on", "yes", "true", "1"):
        return True
    if word in ("off", "no", "false", "0"):
        return False
    raise Refused(f"{what} takes on or off.")


def period(text: str) -> str:
    word = text.strip().lower()
    if word not in DIGEST_PERIODS:
        raise Refused(f"The digest period is one of {', '.join(DIGEST_PERIODS)}.")
    return word


# -- a change --------------------------------------------------------------------------------------
def checked(own: CommunitySettings, deployment: Deployment, changes: Mapping[str, Any]) -> CommunitySettings:
    """`own` with `changes` made (a value None: back to the deployment's), or `Refused`. A number above
    the deployment's ceiling is kept (it applies capped); storing questions where the deployment keeps
    none is refused."""
    cleaned: dict[str, Any] = {}
    for name, value in changes.items():
        if name not in SETTINGS:
            raise Refused("There is no such setting.")
        if value is None and name != "allowed_channels":
            pass  # back to the deployment's value
        elif name in NUMBERS:
            value = whole_number(value, *NUMBERS[name])
        elif name == "store_questions":
            if value is not False and not deployment.store_questions:
                raise Refused(NOT_STORED)
            value = bool(value)
        elif name == "digest_every":
            value = period(str(value))
        elif name == "allowed_channels":
            value = frozenset(value or ())
            if len(value) > MAX_CHANNELS:
                raise Refused(f"At most {MAX_CHANNELS} channels can be listed.")
        else:
            value = str(value)  # an id: a role, user group or channel of this community
        cleaned[name] = value
    return replace(own, **cleaned)


async def show(store: SettingsStore, deployment: Deployment, community: str, marks: Marks) -> str:
    try:
        own = await store.get(community)
    except Exception as exc:
        _log.warning("could not read a community's settings (%s)", type(exc).__name__)
        return UNREAD
    return describe(effective(community, own, deployment), own, deployment, marks)


async def change(
    store: SettingsStore,
    deployment: Deployment,
    community: str,
    changes: Mapping[str, Any] | Callable[[CommunitySettings], Mapping[str, Any]],
    marks: Marks,
) -> str:
    """Make a change an admin asked for in `community` and say what now applies (one line if refused).
    `changes` may be a function of the community's own settings, read once here ("add this channel to
    the list"); it may raise `Refused`."""
    try:
        own = await store.get(community)
    except Exception as exc:
        _log.warning("could not read a community's settings (%s)", type(exc).__name__)
        return UNREAD
    try:
        if callable(changes):
            changes = changes(own)
        new = checked(own, deployment, changes)
    except Refused as exc:
        return str(exc)
    try:
        await store.set(community, new)
    except Exception as exc:
        _log.warning("could not save a community's settings (%s)", type(exc).__name__)
        return UNSAVED
    _log.info("settings of %s changed: %s", community, ", ".join(sorted(changes)))
    return "Saved. " + describe(effective(community, new, deployment), new, deployment, marks)


# -- what applies ------------------------------------------------------------------------------------
def describe(now: Effective, own: CommunitySettings, deployment: Deployment, marks: Marks) -> str:
    """Every setting as it applies in the community, marking the community's own choices ("set here")
    and saying where the deployment's ceiling caps one."""
    here = " (set here)"

    def mark(chosen: object) -> str:
        return here if chosen not in (None, frozenset()) else ""

    lines = [f"Settings for this {marks.place} (the others are the deployment's defaults):"]
    channels = ", ".join(marks.channel(c) for c in sorted(now.allowed_channels))
    lines.append(f"• Channels I answer in: {channels or 'every channel'}{mark(own.allowed_channels)}")
    handoff = marks.handoff(now.handoff) if now.handoff else "off (no role or group set)"
    lines.append(f"• Ask a human calls: {handoff}{mark(own.handoff)}")
    digest = marks.channel(now.digest_channel) if now.digest_channel else "no channel (no digest)"
    lines.append(f"• Digest: {digest}{mark(own.digest_channel)}, {now.digest_every}{mark(own.digest_every)}")
    lines.append(
        "• Rate limit: "
        + _ceilinged(
            now.rate_limit_per_minute,
            own.rate_limit_per_minute,
            deployment.rate_limit_per_minute,
            amount="questions a minute per member",
            none="no limit",
            noun="limit",
        )
    )
    if now.store_questions:
        stored = f"yes{mark(own.store_questions)}, kept {now.retention_days} days"
        stored += _capped(own.retention_days, now.retention_days, "days") if own.retention_days else ""
        stored += mark(own.retention_days) if own.retention_days == now.retention_days else ""
    elif not deployment.store_questions:
        stored = "no: this deployment keeps none (STORE_QUESTIONS=false)"
    else:
        stored = f"no{here}"
    lines.append(f"• Questions stored: {stored}")
    lines.append(
        "• Daily token budget: "
        + _ceilinged(
            now.daily_token_budget,
            own.daily_token_budget,
            deployment.daily_token_budget,
            amount="tokens a day",
            none="none",
            noun="budget",
        )
    )
    return "\n".join(lines)


def _capped(chosen: int, applied: int, unit: str) -> str:
    return (
        f" (you chose {chosen:,} {unit}: capped at this deployment's {applied:,})"
        if chosen != applied
        else ""
    )


def _ceilinged(applied: int, chosen: int | None, ceiling: int, *, amount: str, none: str, noun: str) -> str:
    """A number the community may lower under the deployment's ceiling (0: none), as it applies."""
    text = f"{applied:,} {amount}" if applied else none
    if chosen is None:
        return text
    if chosen == applied:
        return text + " (set here)"
    if chosen == 0:
        return text + f" (you chose {none}: this deployment's {noun} of {ceiling:,} applies)"
    return text + f" (you chose {chosen:,}: capped at this deployment's {ceiling:,})"
