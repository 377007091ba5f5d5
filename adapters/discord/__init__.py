"""Discord: the bot in servers and direct messages (discord.py, imported only when Discord is used)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.conversation import Services
    from bot.platform import Platform

NAME = "discord"


def enabled(settings: Settings) -> bool:
    """Discord runs when DISCORD_TOKEN is set."""
    return NAME in settings.platforms


def make_platform(settings: Settings, services: Services) -> Platform:
    from adapters.discord.platform import make_platform

    return make_platform(settings, services)
