"""Slack: the bot in workspaces, in Socket Mode or HTTP mode (slack-bolt, imported only when Slack is used)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.conversation import Services
    from bot.platform import Platform

NAME = "slack"


def enabled(settings: Settings) -> bool:
    """Slack runs when SLACK_BOT_TOKEN is set."""
    return NAME in settings.platforms


def make_platform(settings: Settings, services: Services) -> Platform:
    from adapters.slack.platform import make_platform

    return make_platform(settings, services)
