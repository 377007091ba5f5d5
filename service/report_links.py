"""Links to the report page scoped to one community, for that community's moderators: signed with a key
derived from `ADMIN_TOKEN`, expiring after a day, and unusable for any other community however the link
is edited (the community is inside what is signed)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import urllib.parse

LINK_TTL_S = 86400.0


def link_key(admin_token: str) -> bytes:
    """The signing key: derived from ADMIN_TOKEN, never the token itself."""
    return hmac.new(admin_token.encode(), b"aisafety-bot report links v1", hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(key: bytes, community: str, *, now: float | None = None, ttl_s: float = LINK_TTL_S) -> str:
    """A token naming `community`, valid for `ttl_s` seconds from `now`."""
    expires = int((time.time() if now is None else now) + ttl_s)
    body = _b64(json.dumps({"c": community, "e": expires}, separators=(",", ":")).encode())
    mac = _b64(hmac.new(key, body.encode(), hashlib.sha256).digest())
    return f"{body}.{mac}"


def verify(key: bytes, token: str, *, now: float | None = None) -> str | None:
    """The community a token names, if it is intact and unexpired; None otherwise."""
    body, _, mac = token.partition(".")
    if not body or not mac or len(token) > 1024:
        return None
    expected = _b64(hmac.new(key, body.encode(), hashlib.sha256).digest())
    if not hmac.compare_digest(expected, mac):
        return None
    try:
        data = json.loads(_unb64(body))
        community, expires = str(data["c"]), float(data["e"])
    except (ValueError, KeyError, TypeError):
        return None
    if (time.time() if now is None else now) >= expires:
        return None
    return community


def scoped_url(public_url: str, key: bytes, community: str, *, now: float | None = None) -> str:
    """The report page's address for `community`'s moderators (PUBLIC_URL + /admin/)."""
    token = sign(key, community, now=now)
    return f"{public_url.rstrip('/')}/admin/?{urllib.parse.urlencode({'scope': token})}"
