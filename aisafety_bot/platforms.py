"""The chat platforms, registered once: each name with the module that makes it.

A platform's module exposes `make_platform(settings, services) -> Platform` (`bot.platform.Platform`)
and is imported only when its platform is switched on (its token is set: `Settings.platforms`), so a
command loads only the libraries it uses.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.conversation import Services
    from bot.platform import Platform

PLATFORMS = {
    "discord": "adapters.discord.platform",
    "slack": "adapters.slack.platform",
}


def enabled(settings: Settings) -> list[str]:
    """The names of the platforms these settings switch on, in registration order."""
    return [name for name in PLATFORMS if name in settings.platforms]


def make_platform(name: str, settings: Settings, services: Services) -> Platform:
    platform: Platform = importlib.import_module(PLATFORMS[name]).make_platform(settings, services)
    return platform
