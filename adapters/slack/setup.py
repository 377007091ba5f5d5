"""Slack at start-up: the tokens checked once, with one line that says what to change, and bolt's
logging kept to our levels."""

from __future__ import annotations

import logging
from typing import NamedTuple

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.errors import StartupError

# auth.test errors that mean the token itself is wrong.
TOKEN_ERRORS = frozenset(
    {
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "not_allowed_token_type",
    }
)


class _NotOurTokenNote(logging.Filter):
    """bolt notes that SLACK_BOT_TOKEN in the environment is unused when a client is given: it is the same
    token, so the note only puzzles whoever reads the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "`token` will be unused" not in record.getMessage()


def bolt_logger() -> logging.Logger:
    # One named logger under "slack_bolt" (whose level bot/logs.py sets), instead of bolt's per-class
    # loggers that copy the root logger's level when they are created.
    logger = logging.getLogger("slack_bolt.aisafety")
    if not any(isinstance(f, _NotOurTokenNote) for f in logger.filters):
        logger.addFilter(_NotOurTokenNote())
    return logger


class Identity(NamedTuple):
    """Who SLACK_BOT_TOKEN is (auth.test): the bot's user id, its workspace, and the organisation when
    the app is installed organisation-wide (Enterprise Grid), else ""."""

    user_id: str
    team_id: str
    org_id: str = ""


async def check_bot_token(client: AsyncWebClient) -> Identity:
    """Who the bot is (auth.test), or a StartupError naming SLACK_BOT_TOKEN."""
    try:
        auth = await client.auth_test()
    except SlackApiError as exc:
        error = str(exc.response.get("error") or exc.response.status_code)
        if error in TOKEN_ERRORS:
            raise StartupError(
                f"Slack refused SLACK_BOT_TOKEN ({error}): copy the Bot User OAuth Token (xoxb-...) again "
                "from your app's OAuth & Permissions page, and reinstall the app if it was removed"
            ) from None
        raise StartupError(f"Slack's auth.test failed ({error}); check SLACK_BOT_TOKEN") from None
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise StartupError(_unreachable(client, exc) + "; SLACK_BOT_TOKEN could not be checked") from None
    org = str(auth.get("enterprise_id") or "") if auth.get("is_enterprise_install") else ""
    return Identity(str(auth["user_id"]), str(auth.get("team_id") or ""), org)


async def check_app_token(client: AsyncWebClient, app_token: str) -> None:
    """Socket Mode's app-level token, or a StartupError naming SLACK_APP_TOKEN."""
    try:
        await client.apps_connections_open(app_token=app_token)
    except SlackApiError as exc:
        error = str(exc.response.get("error") or exc.response.status_code)
        raise StartupError(
            f"Slack refused SLACK_APP_TOKEN ({error}): create an app-level token with the "
            "connections:write scope (Basic Information -> App-Level Tokens) and set SLACK_APP_TOKEN=xapp-..."
        ) from None
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise StartupError(_unreachable(client, exc)) from None


def _unreachable(client: AsyncWebClient, exc: BaseException) -> str:
    return (
        f"cannot reach Slack's Web API at {client.base_url} ({type(exc).__name__}): check the network "
        "connection, or SLACK_API_URL if it is set"
    )
