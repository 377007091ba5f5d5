"""The chat platforms, registered once: each name with the module that makes it.

A platform's module exposes `make_platform(settings, services) -> Platform` (`bot.platform.Platform`)
and is imported only when its platform is switched on (its token is set: `Settings.platforms`), so a
command loads only the libraries it uses.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

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
    platform: Platform = importlib.import_module(PLATFORMS[name]).make_platform(
        settings, services, **platform_state(name, settings, services)
    )
    conversation = platform.conversation
    conversation.options = replace(conversation.options, report_link=report_links(settings))
    return platform


def platform_state(name: str, settings: Settings, services: Services) -> dict[str, Any]:
    """What a platform keeps in the answers database besides answers: Slack's OAuth installations
    (SLACK_CLIENT_ID), shared by every replica."""
    if name != "slack" or not settings.slack_oauth:
        return {}
    from service.feedback import FeedbackStore
    from service.slack_installations import SqlInstallations

    if not isinstance(services.store, FeedbackStore):
        raise TypeError("Slack installs by OAuth keep their installations in the answers database")
    return {"installations": SqlInstallations(services.store)}


def report_links(settings: Settings) -> Callable[[str], str | None]:
    """A community's signed, day-long link to its own report page (`/aisafety-report`); None for every
    community while PUBLIC_URL or ADMIN_TOKEN is not set. Holds the key derived from ADMIN_TOKEN, never
    the token."""
    from service.report_links import link_key, scoped_url

    if settings.public_url is None or settings.admin_token is None:
        return lambda community: None
    public_url, key = settings.public_url, link_key(settings.admin_token.get_secret_value())
    return lambda community: scoped_url(public_url, key, community)
