"""The chat platforms, registered once: each name with the package that implements it.

A package exposes `enabled(settings) -> bool` and `make_platform(settings, services) -> Platform`
(`bot.platform.Platform`). It is imported only when asked about, and imports its platform's library only
when it makes a platform, so a command loads only the libraries it uses.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Protocol, cast

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.conversation import Services
    from bot.platform import Platform

PLATFORMS = {
    "discord": "adapters.discord",
    "slack": "adapters.slack",
}


class PlatformPackage(Protocol):
    def enabled(self, settings: Settings) -> bool: ...

    def make_platform(self, settings: Settings, services: Services) -> Platform: ...


def package(name: str) -> PlatformPackage:
    return cast(PlatformPackage, importlib.import_module(PLATFORMS[name]))


def enabled(settings: Settings) -> list[str]:
    """The names of the platforms these settings switch on, in registration order."""
    return [name for name in PLATFORMS if package(name).enabled(settings)]
