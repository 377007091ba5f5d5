"""What every chat platform adapter shares: its options and the replies that are the same everywhere."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bot.models import Answer

SLOW_DOWN = "You're asking faster than I can keep up. Please wait a minute and try again."
APOLOGY = "Sorry, something went wrong while I was answering."
THANKS = {
    "up": "Thanks for the 👍, it helps us improve.",
    "down": "Thanks for the 👎: it tells the article writers what to fix.",
}
VOTE_LOST = "I can't find that answer any more, but thanks!"
HANDOFF_LABEL = "Ask a human"
HANDOFF_ASKED = "Done: the moderators have been asked to follow up here."
HANDOFF_ALREADY = "The moderators have already been asked to follow up here."
HANDOFF_OFF = "Asking a human is not set up on this server."
HANDOFF_FAILED = "Sorry, I could not reach the moderators just now. Please try again in a minute."


def handoff_message(mention: str) -> str:
    """The one message that mentions anyone: the moderators' role or group, when a member asks."""
    return f"{mention} a member would like a human to follow up on this question."


@dataclass(frozen=True)
class PlatformOptions:
    """The same settings, with the same meaning, on Discord and Slack."""

    allowed_channels: frozenset[str] = frozenset()  # empty: every channel
    rate_limit_per_minute: int = 5  # questions per member; 0: no limit
    edit_interval_s: float = 1.2  # the least time between two edits of a streamed answer
    handoff: str | None = None  # the role (Discord) or user group (Slack) "Ask a human" mentions; None: off


def apology(answer: Answer | None, render: Callable[[Answer], str]) -> str:
    """Never silent: the apology, with whatever sources were found (rendered for the platform)."""
    if answer is not None and (answer.sources or answer.read_next):
        return f"{APOLOGY} Here is what I found:\n\n{render(answer)}"
    return APOLOGY


def thanks(vote: str, recorded: bool) -> str:
    return THANKS[vote] if recorded else VOTE_LOST
