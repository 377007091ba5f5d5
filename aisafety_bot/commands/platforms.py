"""The running bot and its platforms: `run`, `healthcheck`, `discord-invite`, `discord-sync`."""

from __future__ import annotations

import argparse
import asyncio
import sys

from aisafety_bot import platforms
from aisafety_bot.commands.library import cmd_chat
from aisafety_bot.context import Context
from bot.config import Settings
from bot.errors import ConfigError

# What `run` says when it has no platform and no terminal to chat on (a container with the tokens blank):
# a bad setting, exit status 2, so that a restart policy does not loop on it in silence.
NO_PLATFORM = (
    "no platform token is set (DISCORD_TOKEN, or SLACK_BOT_TOKEN with SLACK_APP_TOKEN or "
    "SLACK_SIGNING_SECRET, or SLACK_CLIENT_ID and SLACK_CLIENT_SECRET) and standard input is not a terminal, so there is nothing to run: set a token "
    "(in the environment or .env; see the README's Discord and Slack sections), or use `aisafety-bot chat` "
    "or `aisafety-bot ask` for questions on standard input"
)


def cmd_run(ctx: Context, args: argparse.Namespace) -> int:
    """The platforms whose tokens are set (one process, one event loop), else the terminal chat: on a
    terminal only. Piped questions are `chat`'s and `ask`'s job."""
    if not platforms.enabled(ctx.settings):
        if sys.stdin is None or not sys.stdin.isatty():
            raise ConfigError(NO_PLATFORM)
        return cmd_chat(ctx, args)
    if ctx.settings.discord_token is not None:
        _check_discord_token(ctx.settings.discord_token.get_secret_value())  # before any connection
    from aisafety_bot.runner import run_platforms

    asyncio.run(run_platforms(ctx.app))
    return 0


def cmd_healthcheck(ctx: Context, args: argparse.Namespace) -> int:
    """For container health checks: is the running bot's /healthz answering?"""
    import urllib.request

    _, port, variable = ctx.settings.listen
    url = f"http://127.0.0.1:{port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=4) as resp:
            return 0 if resp.status == 200 else 1
    except OSError as exc:
        reason = getattr(exc, "reason", None) or exc
        print(f"unhealthy: no answer from {url} ({variable}={port}): {reason}", file=sys.stderr)
        return 1


def _check_discord_token(token: str, *, or_else: str = "") -> int:
    """The application id a bot token starts with; a token without a bot token's shape is a bad setting,
    found here without a connection to Discord."""
    from adapters.discord.invite import MalformedToken, application_id_from_token

    try:
        return application_id_from_token(token)
    except MalformedToken as exc:
        raise ConfigError(
            f"DISCORD_TOKEN is malformed: {exc}. Copy the bot token again from the developer portal "
            f"(Bot -> Reset Token){or_else}"
        ) from None


def _application_id(settings: Settings) -> int:
    if settings.discord_application_id is not None:
        return settings.discord_application_id
    if settings.discord_token is None:
        raise ConfigError(
            "set DISCORD_APPLICATION_ID (the Application ID on the Discord developer portal) or DISCORD_TOKEN"
        )
    return _check_discord_token(
        settings.discord_token.get_secret_value(), or_else=", or set DISCORD_APPLICATION_ID instead"
    )


def cmd_discord_invite(ctx: Context, args: argparse.Namespace) -> int:
    from adapters.discord.invite import invite_url

    print(invite_url(_application_id(ctx.settings)))
    return 0


def cmd_discord_sync(ctx: Context, args: argparse.Namespace) -> int:
    """Register the slash commands with Discord (globally; it can take up to an hour to show everywhere)."""
    from adapters.discord.client import sync_commands

    token = ctx.settings.discord_token
    if token is None:
        raise ConfigError("set DISCORD_TOKEN to sync the slash commands")
    names = asyncio.run(sync_commands(token.get_secret_value(), guild_id=args.guild))
    print(f"synced: {', '.join('/' + n for n in names)}")
    return 0
