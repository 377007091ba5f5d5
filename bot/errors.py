"""One error tree. Every error carries a message that is safe to show a user (no secrets, no traces)."""

from __future__ import annotations


class BotError(Exception):
    """Base of the app's errors; `str(err)` is safe to show."""

    user_message = "Something went wrong while answering."


class ConfigError(BotError):
    user_message = "The bot is misconfigured."


class RetrievalError(BotError):
    user_message = "I could not search the article library just now."


class LLMError(BotError):
    """The language model could not answer. `kind` names the cause for logs and metrics."""

    user_message = "The language model is unavailable right now."

    def __init__(self, kind: str, detail: str = ""):
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind


class StartupError(BotError):
    """The bot could not start: a platform refused its token or cannot be reached. The message names the
    setting to change, or says that the network is the problem."""

    user_message = "The bot could not start."


class StateTimeout(BotError, TimeoutError):
    """A shared-state service (the answers database, Redis) did not answer in time; the answer goes on
    without it."""

    user_message = "The bot's database is slow to answer right now."


class StateClosed(BotError):
    """The shared-state service was closed (the bot is stopping): nothing more can be stored."""

    user_message = "The bot is stopping."
