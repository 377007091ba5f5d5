"""What every chat platform adapter shares: its options, the replies that are the same everywhere, and
the one interface the runner starts, checks and stops each platform through (`Platform`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from bot.models import Answer

if TYPE_CHECKING:
    from bot.conversation import Conversation
    from bot.ports import Claim

SLOW_DOWN = "You're asking faster than I can keep up. Please wait a minute and try again."
APOLOGY = "Sorry, something went wrong while I was answering."
THANKS = {
    "up": "Thanks for the 👍, it helps us improve.",
    "down": "Thanks for the 👎: it tells the article writers what to fix.",
}
VOTE_LOST = "I can't find that answer any more, but thanks!"
VOTE_FAILED = "Sorry, I could not record that just now. Please try again in a minute."
HANDOFF_LABEL = "Ask a human"
HANDOFF_ASKED = "Done: the moderators have been asked to follow up here."
HANDOFF_ALREADY = "The moderators have already been asked to follow up here."
HANDOFF_OFF = "Asking a human is not set up on this server."
HANDOFF_FAILED = "Sorry, I could not reach the moderators just now. Please try again in a minute."
HANDOFF_NOT_OURS = "That button is not on one of my answers, so I did not call the moderators."


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
    store_questions: bool = True  # STORE_QUESTIONS: the journal keeps a question's text only when true
    # A community's signed link to its own report page (`/aisafety-report`); None, or a None link: the
    # operator has not set PUBLIC_URL and ADMIN_TOKEN. Made by the composition root.
    report_link: Callable[[str], str | None] | None = None


def apology(answer: Answer | None, render: Callable[[Answer], str]) -> str:
    """Never silent: the apology, with whatever sources were found (rendered for the platform)."""
    if answer is not None and (answer.sources or answer.read_next):
        return f"{APOLOGY} Here is what I found:\n\n{render(answer)}"
    return APOLOGY


def thanks(vote: str, recorded: bool) -> str:
    return THANKS[vote] if recorded else VOTE_LOST


@dataclass(frozen=True)
class Style:
    """How a platform writes the digest: its escaping of members' text, bold, and a link."""

    clean: Callable[[str], str]
    bold: Callable[[str], str]
    link: Callable[[str, str], str]


class Platform(Protocol):
    """One chat platform as the runner sees it. Each adapter package implements it (`platform.py`) and
    makes it with `make_platform(settings, services)`; the runner names none of them."""

    name: str  # "discord", "slack": the prefix of its places, communities and settings ids
    digest_style: Style  # how the digest is written there

    @property
    def conversation(self) -> Conversation:
        """This platform's answers; drained when the bot stops."""
        ...

    async def start(self) -> None:
        """Sign in and say who the bot is. A refused token is a StartupError at once, before anything
        slow (the index, the model) is loaded."""
        ...

    async def run(self) -> None:
        """Receive events until closed. A platform whose events arrive through `http_app` just waits."""
        ...

    async def ready(self) -> bool:
        """Connected and able to answer (for /readyz)."""
        ...

    async def post(self, channel: str, text: str, *, community: str | None = None) -> None:
        """A message of the bot's own in `channel` (the digest), mentioning no one. `community`: the
        community the channel is of (a platform with one token per community posts with its own)."""
        ...

    async def resume(self, claim: Claim) -> None:
        """Continue a question a stopped process left unfinished, from what its claim recorded
        (`Conversation.recover` calls it once the platform is connected)."""
        ...

    async def communities_of(self, places: Sequence[str]) -> dict[str, str]:
        """The community of each place (`<platform>:<channel id>`) it can find: for the digest's channel,
        and for answers stored before communities were recorded. Places not found are left out."""
        ...

    def http_app(self) -> Any | None:
        """The aiohttp app that receives this platform's events over HTTP, served with the health routes;
        None when events arrive another way."""
        ...

    async def close(self) -> None:
        """Disconnect; answers still running apologise."""
        ...
