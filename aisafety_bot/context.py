"""What every command is given (`Context`), and the one mistake a command can report (`UsageError`)."""

from __future__ import annotations

import contextlib

from aisafety_bot.wiring import App, open_app
from bot.config import Settings


class UsageError(Exception):
    """A mistake on the command line: one line saying what to change, exit status 2."""


class Context:
    """The settings, and the app (the article index and the embedding model) opened on first use, so a
    command that never needs them never opens them. `main` closes what was opened."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._app: App | None = None
        self._opened = contextlib.ExitStack()

    @property
    def app(self) -> App:
        if self._app is None:
            self._app = self._opened.enter_context(open_app(self.settings))
        return self._app

    def close(self) -> None:
        self._app = None
        self._opened.close()
