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


@dataclass(frozen=True)
class PlatformOptions:
    """The same settings, with the same meaning, on Discord and Slack."""

    allowed_channels: frozenset[str] = frozenset()  # empty: every channel
    rate_limit_per_minute: int = 5  # questions per member; 0: no limit
    edit_interval_s: float = 1.2  # the least time between two edits of a streamed answer


def apology(answer: Answer | None, render: Callable[[Answer], str]) -> str:
    """Never silent: the apology, with whatever sources were found (rendered for the platform)."""
    if answer is not None and (answer.sources or answer.read_next):
        return f"{APOLOGY} Here is what I found:\n\n{render(answer)}"
    return APOLOGY


def thanks(vote: str, recorded: bool) -> str:
    return THANKS[vote] if recorded else VOTE_LOST
