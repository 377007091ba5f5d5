"""Each community's own settings (a Discord server, a Slack workspace), set in the platform by that
community's admins and kept in the answers database, and what they mean beside the deployment's.

The environment's values are the deployment's: an id setting (`DIGEST_CHANNEL`, `HANDOFF_ROLE`,
`ALLOWED_CHANNELS`) applies only in the community that owns that channel or role; a number
(`RATE_LIMIT_PER_MINUTE`, `QUESTION_RETENTION_DAYS`, `DAILY_TOKEN_BUDGET`) is a ceiling a community may
tighten, never loosen; `STORE_QUESTIONS=false` cannot be turned on by a community. `effective` applies
these rules; every reader of a community's settings goes through it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal, Protocol

# A deployment made from one platform's options alone (tests, the terminal chat, one community's bot):
# its HANDOFF_ROLE applies in every community.
EVERY = "*"

DigestEvery = Literal["daily", "weekly", "monthly"]
DIGEST_PERIODS: tuple[DigestEvery, ...] = ("daily", "weekly", "monthly")


@dataclass(frozen=True)
class CommunitySettings:
    """What one community chose. None (or empty): not chosen, the deployment's value applies."""

    allowed_channels: frozenset[str] = frozenset()  # channel ids (no platform prefix); empty: every one
    handoff: str | None = None  # the role (Discord) or user group (Slack) "Ask a human" mentions
    digest_channel: str | None = None  # a channel id of this community
    digest_every: DigestEvery | None = None
    rate_limit_per_minute: int | None = None  # 0: no limit (only where the deployment has none)
    store_questions: bool | None = None
    retention_days: int | None = None
    daily_token_budget: int | None = None  # 0: no budget (only where the deployment has none)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "allowed_channels":
                if value:
                    out[f.name] = sorted(value)
            elif value is not None:
                out[f.name] = value
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CommunitySettings:
        """The stored form back; unknown keys (a newer release's) are ignored."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if "allowed_channels" in values:
            values["allowed_channels"] = frozenset(str(c) for c in values["allowed_channels"])
        return cls(**values)


@dataclass(frozen=True)
class Deployment:
    """The environment's settings as they bear on communities (see the module's rules)."""

    allowed_channels: frozenset[str] = frozenset()  # `<platform>:<channel id>` (or bare ids)
    handoff: str | None = None  # `<platform>:<role or group id>`
    handoff_community: str | None = None  # the community that owns HANDOFF_ROLE, once known (EVERY: all)
    digest_channel: str | None = None  # `<platform>:<channel id>`
    digest_community: str | None = None  # the community that owns DIGEST_CHANNEL, once known
    digest_every: DigestEvery = "weekly"
    rate_limit_per_minute: int = 5
    store_questions: bool = True
    retention_days: int = 90
    daily_token_budget: int = 0
    # ALLOWED_CHANNELS' owners (`<platform>:<channel id>` -> community), once looked up
    channel_communities: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Effective:
    """What applies in one community: its own choices within the deployment's ceilings."""

    community: str
    allowed_channels: frozenset[str]  # empty: every channel
    handoff: str | None
    digest_channel: str | None
    digest_every: DigestEvery
    rate_limit_per_minute: int  # 0: no limit
    store_questions: bool
    retention_days: int
    daily_token_budget: int  # 0: no budget


def _ceiling(deployment: int, chosen: int | None) -> int:
    """A number a community may tighten, never loosen (0 means unlimited)."""
    if chosen is None or chosen < 0:
        return deployment
    if deployment == 0:
        return chosen
    if chosen == 0:
        return deployment
    return min(deployment, chosen)


def _bare(value: str | None) -> str | None:
    """An id without its `<platform>:` prefix."""
    return None if value is None else value.split(":", 1)[-1]


def _platform(value: str) -> str | None:
    """The platform an id or community names (`discord:123` -> discord); None for `dm` or a bare id."""
    platform, colon, _ = value.partition(":")
    return platform if colon else None


def effective(community: str, own: CommunitySettings | None, deployment: Deployment) -> Effective:
    """The settings that apply in `community`.

    The deployment's ids: DIGEST_CHANNEL and HANDOFF_ROLE apply only in the community found to own them
    (unknown: nowhere, so that no community is sent another's digest or pinged with a role id that names
    nothing there). An ALLOWED_CHANNELS channel applies in its owner community only; while its owner is
    not known (not yet looked up, or not found) it applies in every community of its platform, as the
    one list did before communities: the safe side for an allow list."""
    own = own or CommunitySettings()
    platform = _platform(community)
    env_channels = frozenset(
        c.split(":", 1)[-1]
        for c in deployment.allowed_channels
        if deployment.channel_communities.get(c) == community
        or (
            c not in deployment.channel_communities and (platform is None or _platform(c) in (None, platform))
        )
    )
    own_retention = own.retention_days if own.retention_days and own.retention_days > 0 else None
    return Effective(
        community=community,
        allowed_channels=own.allowed_channels or env_channels,
        handoff=own.handoff
        or (_bare(deployment.handoff) if deployment.handoff_community in (community, EVERY) else None),
        digest_channel=own.digest_channel
        or (_bare(deployment.digest_channel) if deployment.digest_community == community else None),
        digest_every=own.digest_every or deployment.digest_every,
        rate_limit_per_minute=_ceiling(deployment.rate_limit_per_minute, own.rate_limit_per_minute),
        store_questions=deployment.store_questions and (own.store_questions is not False),
        retention_days=min(deployment.retention_days, own_retention or deployment.retention_days),
        daily_token_budget=_ceiling(deployment.daily_token_budget, own.daily_token_budget),
    )


class SettingsStore(Protocol):
    """Every community's own settings, shared by the replicas (the answers database). `get` is served
    from a cache that follows changes made by any replica within seconds."""

    async def get(self, community: str) -> CommunitySettings: ...

    async def set(self, community: str, settings: CommunitySettings) -> None: ...

    async def forget(self, community: str) -> None: ...

    async def all(self) -> Mapping[str, CommunitySettings]:
        """Every community that chose something (the digests, retention)."""
        ...


class MemorySettings:
    """The settings kept in this process (tests, the terminal chat)."""

    def __init__(self) -> None:
        self._by_community: dict[str, CommunitySettings] = {}

    async def get(self, community: str) -> CommunitySettings:
        return self._by_community.get(community, CommunitySettings())

    async def set(self, community: str, settings: CommunitySettings) -> None:
        self._by_community[community] = settings

    async def forget(self, community: str) -> None:
        self._by_community.pop(community, None)

    async def all(self) -> Mapping[str, CommunitySettings]:
        return dict(self._by_community)
