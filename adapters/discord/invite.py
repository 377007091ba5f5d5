"""The Discord invite link and the token checks it needs, without importing discord.py.

`aisafety-bot discord-invite` is a quick command: it builds the OAuth2 URL from the application id
alone, so it starts in a fraction of a second and works without a connection to Discord.
"""

from __future__ import annotations

import base64
import binascii
import re
from urllib.parse import urlencode

# The permissions the bot needs, and nothing more (Discord's permission bits).
VIEW_CHANNEL = 1 << 10
SEND_MESSAGES = 1 << 11
READ_MESSAGE_HISTORY = 1 << 16
CREATE_PUBLIC_THREADS = 1 << 35
SEND_MESSAGES_IN_THREADS = 1 << 38
PERMISSIONS = (
    VIEW_CHANNEL | SEND_MESSAGES | READ_MESSAGE_HISTORY | CREATE_PUBLIC_THREADS | SEND_MESSAGES_IN_THREADS
)
SCOPES = ("bot", "applications.commands")
AUTHORIZE_URL = "https://discord.com/oauth2/authorize"

# A bot token is three dot-separated parts: the base64 of the bot's user id, a timestamp and an HMAC.
_TOKEN = re.compile(r"^[A-Za-z0-9_+/=-]+\.[A-Za-z0-9_+/=-]+\.[A-Za-z0-9_+/=-]+$")


class MalformedToken(ValueError):
    """The text given as a Discord bot token does not have a bot token's shape."""


def application_id_from_token(token: str) -> int:
    """A bot token starts with its user id in base64; for a bot that is the application id."""
    token = token.strip()
    if token.lower().startswith("bot "):
        token = token[4:].strip()
    if not _TOKEN.match(token):
        raise MalformedToken("it should be three parts separated by dots, as the developer portal shows it")
    head = token.split(".", 1)[0]
    try:
        decoded = base64.b64decode(
            head.rstrip("=").replace("-", "+").replace("_", "/") + "=" * (-len(head.rstrip("=")) % 4)
        ).decode("ascii")
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise MalformedToken("its first part is not a base64 user id") from None
    if not decoded.isdigit():
        raise MalformedToken("its first part is not a base64 user id")
    return int(decoded)


def invite_url(application_id: int) -> str:
    """The URL that adds the bot to a server with exactly the permissions it uses."""
    query = {"client_id": str(application_id), "scope": " ".join(SCOPES), "permissions": str(PERMISSIONS)}
    return f"{AUTHORIZE_URL}?{urlencode(query)}"
