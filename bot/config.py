"""One `Settings` object, read from environment variables (and a `.env` file) and validated once."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.community import Deployment
from bot.errors import ConfigError
from bot.platform import PlatformOptions

# aisafety.info's own feed of published answers (`retrieval/aisafety_info.py`), read at AISAFETY_INFO_URL:
# the site, not a dataset snapshot, is the library's source of truth.
DEFAULT_SOURCE = "aisafety.info"
# The shortest sync period against the real site (SYNC_EVERY_S).
SYNC_MIN_S = 300.0


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "aisafety-bot"


@dataclass(frozen=True)
class PlatformIds:
    """What the settings know of a chat platform: the setting that switches it on, and what its ids look
    like (DIGEST_CHANNEL and HANDOFF_ROLE name the platform in front: `discord:123...`, `slack:C0...`)."""

    token: str  # the variable that switches it on
    channel: str  # an example channel id
    group: str  # what HANDOFF_ROLE names there
    numeric: bool = False  # ids are numbers
    also: str = ""  # another variable that switches it on (Slack's OAuth: SLACK_CLIENT_ID)


PLATFORM_IDS = {
    "discord": PlatformIds("DISCORD_TOKEN", "123456789012345678", "role", numeric=True),
    "slack": PlatformIds("SLACK_BOT_TOKEN", "C0123456789", "user group", also="SLACK_CLIENT_ID"),
}

# An example for the message when an http URL setting is wrong (the others: a Qdrant server's).
_URL_EXAMPLES = {
    "public_url": "https://bot.example.org",
    "admin_url": "https://bot.example.org/admin/",
    "anthropic_base_url": "https://api.anthropic.com",
    "aisafety_info_url": "https://aisafety.info",
}

# The URL schemes the shared-state settings take, and an example for the message when one is wrong.
_SERVICE_URLS = {
    "redis_url": (("redis://", "rediss://", "unix://"), "redis://localhost:6379/0"),
    "database_url": (("postgresql://", "postgres://"), "postgresql://bot@localhost:5432/aisafety"),
}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    qdrant_url: str | None = Field(
        None,
        description="URL of a Qdrant server, or of several nodes of a cluster, comma-separated; unset for the "
        "embedded store",
    )
    qdrant_api_key: SecretStr | None = None
    qdrant_path: Path = Field(default_factory=lambda: default_data_dir() / "qdrant")
    qdrant_collection: str = "aisafety_articles"
    qdrant_timeout_s: float = 10.0
    # A Qdrant cluster: how a new collection (each ingest --rebuild) is spread; unset: the server's defaults.
    qdrant_shards: int | None = Field(None, ge=1, le=64, description="shards of a new collection")
    qdrant_replication: int | None = Field(None, ge=1, le=8, description="copies of each shard")
    qdrant_write_consistency: int | None = Field(
        None, ge=1, le=8, description="copies that must confirm a write before it counts"
    )

    embedding_model: str = "sentence-transformers/all-MiniLM-L6-v2"
    embedding_model_path: Path | None = None
    embedding_cache_dir: Path | None = None

    sources: str = DEFAULT_SOURCE
    aisafety_info_url: str = Field(
        "https://aisafety.info",
        description="where the `aisafety.info` source reads the site's feed, and what its links point to",
    )
    sync_every_s: float = Field(
        3600.0,
        ge=0,
        description="how often a running bot re-reads SOURCES and updates its library, in seconds; 0: never",
    )
    sync_max_remove: float = Field(
        0.25,
        gt=0,
        le=1,
        description="the largest share of a source's articles one sync or ingest may remove; 1: no limit",
    )

    anthropic_api_key: SecretStr | None = None
    anthropic_model: str = "claude-sonnet-4-5"
    anthropic_base_url: str | None = None
    llm_timeout_s: float = Field(30.0, gt=0, description="seconds; more than 0")
    llm_max_retries: int = Field(2, ge=0, le=5)
    llm_max_tokens: int = Field(1024, ge=64, le=8192)

    answer_deadline_s: float = Field(90.0, gt=0)
    shutdown_grace_s: float = Field(
        20.0, ge=0, le=600, description="on SIGTERM, how long answers in flight may take to finish"
    )
    max_question_chars: int = Field(
        4000, ge=100, le=100_000, description="longer questions get a reply asking for a shorter one"
    )
    top_k: int = Field(5, ge=1, le=20)
    history_token_budget: int = Field(1500, ge=0)
    abstain_below: float | None = Field(
        None,
        ge=-1.0,
        le=1.0,
        description="unset: the calibrated decision; a number: abstain when the best dense cosine is below it",
    )

    # Platforms (shared meaning on Discord and Slack)
    rate_limit_per_minute: int = Field(
        5, ge=0, description="questions a member may ask a minute; 0: no limit"
    )
    allowed_channels: str = Field("", description="comma-separated channel ids; empty: every channel")
    feedback_db: Path = Field(default_factory=lambda: default_data_dir() / "feedback.sqlite3")
    stream_edit_interval_s: float = Field(1.2, ge=0.5, le=10.0)

    discord_token: SecretStr | None = None
    discord_application_id: int | None = None
    discord_sync_commands: bool = False
    discord_shard_count: int | None = Field(
        None, ge=1, le=10_000, description="Discord shards in all; required from 2,500 servers"
    )
    discord_shard_ids: str = Field("", description="comma-separated shards this process runs; empty: all")

    slack_bot_token: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    # Installs by OAuth in any workspace, instead of SLACK_BOT_TOKEN's one (Basic Information -> App
    # Credentials); HTTP mode, with PUBLIC_URL.
    slack_client_id: str | None = Field(
        None, description="the app's Client ID: installs by OAuth at <PUBLIC_URL>/slack/install"
    )
    slack_client_secret: SecretStr | None = None
    slack_http_port: int = Field(3000, ge=1, le=65535)
    slack_http_host: str = "0.0.0.0"
    slack_api_url: str | None = Field(
        None, description="Slack Web API base URL, e.g. a GovSlack or proxy URL"
    )
    slack_app_id: str | None = Field(
        None, description="the app's id (A0...): signed HTTP requests for another app are dropped"
    )

    # Several replicas: shared state on Redis (or Valkey)
    redis_url: SecretStr | None = Field(
        None, description="redis://[:password@]host:6379/0; unset: each process keeps its own state"
    )

    database_url: SecretStr | None = Field(
        None, description="postgresql://user:password@host:5432/db; unset: answers and votes in FEEDBACK_DB"
    )
    database_timeout_s: float = Field(
        5.0, gt=0, le=120, description="the longest any call to the answers database may take, in seconds"
    )

    redis_key_prefix: str = Field(
        "aisafety:",
        min_length=1,
        description="the start of every key the bot writes (several bots on one Redis)",
    )

    # Operations
    health_port: int = Field(8080, ge=1, le=65535)
    health_host: str = "0.0.0.0"
    log_format: str = Field("text", pattern="^(text|json)$")
    daily_token_budget: int = Field(0, ge=0, description="LLM tokens a day; 0: no budget")
    store_questions: bool = True
    question_retention_days: int = Field(90, ge=1)

    # Moderators
    admin_token: SecretStr | None = Field(
        None, description="serves the report page /admin/ to requests that carry it"
    )
    public_url: str | None = Field(
        None,
        description="the address members' browsers and Slack reach the bot at, e.g. https://bot.example.org",
    )
    admin_url: str | None = Field(
        None, description="the old name of PUBLIC_URL: the report page's address (https://.../admin/)"
    )
    digest_channel: str | None = Field(
        None, description="discord:<channel id> or slack:<channel id>: the digest is posted there"
    )
    digest_every: str = Field("weekly", pattern="^(daily|weekly|monthly)$")
    handoff_role: str | None = Field(
        None,
        description="discord:<role id> or slack:<user group id>: adds an 'Ask a human' button on that platform",
    )

    @field_validator(
        "qdrant_url",
        "anthropic_base_url",
        "anthropic_api_key",
        "qdrant_api_key",
        "discord_token",
        "discord_application_id",
        "slack_bot_token",
        "slack_app_token",
        "slack_signing_secret",
        "slack_client_id",
        "slack_client_secret",
        "slack_app_id",
        "abstain_below",
        "redis_url",
        "database_url",
        "qdrant_shards",
        "qdrant_replication",
        "qdrant_write_consistency",
        "discord_shard_count",
        "admin_token",
        "public_url",
        "admin_url",
        "digest_channel",
        "handoff_role",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("qdrant_url", "anthropic_base_url", "public_url", "admin_url", "aisafety_info_url")
    @classmethod
    def _http_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return value
        several = info.field_name == "qdrant_url"  # QDRANT_URL may name several nodes of one cluster
        urls = [u.strip().rstrip("/") for u in value.split(",")] if several else [value.strip().rstrip("/")]
        if not all(u.startswith(("http://", "https://")) and _host(u) for u in urls):
            hint = " (several cluster nodes: separated by commas)" if several else ""
            example = _URL_EXAMPLES.get(info.field_name or "", "http://localhost:6333")
            raise ValueError(
                f"must start with http:// or https:// and name a host, for example {example}{hint}"
            )
        return ",".join(urls)

    @field_validator("redis_url", "database_url")
    @classmethod
    def _service_url(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        schemes, example = _SERVICE_URLS[info.field_name or ""]
        if value is not None and not value.get_secret_value().startswith(schemes):
            raise ValueError(f"must start with {' or '.join(schemes)}, for example {example}")
        return value

    @field_validator("admin_token")
    @classmethod
    def _long_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().strip()) < 16:
            raise ValueError(
                "must be at least 16 characters; make one with: python3 -c 'import secrets; "
                "print(secrets.token_urlsafe(24))'"
            )
        return value

    @field_validator("discord_shard_ids")
    @classmethod
    def _shard_ids(cls, value: str) -> str:
        for item in value.split(","):
            if item.strip() and not item.strip().isdigit():
                raise ValueError(
                    f"{item.strip()!r} is not a shard number; give numbers from 0, comma-separated"
                )
        return value

    @property
    def shard_ids(self) -> list[int] | None:
        ids = [int(i) for i in self.discord_shard_ids.split(",") if i.strip()]
        return ids or None

    @field_validator("embedding_model_path")
    @classmethod
    def _model_folder(cls, value: Path | None) -> Path | None:
        """A folder holding a model as fastembed's `specific_model_path` reads it: an .onnx file (at the
        top or one folder down, as `onnx/model.onnx`) and `tokenizer.json`. Checked here, so a folder
        without them is a bad setting (exit status 2), not a failure to load the model later."""
        if value is None:
            return None
        if not value.is_dir():
            raise ValueError(f"{value} is not a folder; point it at a folder holding model.onnx")
        missing = [
            name
            for name, found in (
                (".onnx model file", any(value.glob("*.onnx")) or any(value.glob("*/*.onnx"))),
                ("tokenizer.json", (value / "tokenizer.json").is_file()),
            )
            if not found
        ]
        if missing:
            raise ValueError(
                f"{value} holds no {' and no '.join(missing)}; point it at the folder holding the model's "
                "model.onnx and tokenizer files"
            )
        return value

    @field_validator("sources")
    @classmethod
    def _some_sources(cls, value: str) -> str:
        if not [s for s in value.split(",") if s.strip()]:
            raise ValueError("give at least one path or URL, comma-separated")
        return value

    @field_validator("allowed_channels")
    @classmethod
    def _channel_ids(cls, value: str) -> str:
        for item in value.split(","):
            if item.strip() and not item.strip().isalnum():
                raise ValueError(
                    f"{item.strip()!r} is not a channel id; give Discord (numeric) or Slack (C...) ids, comma-separated"
                )
        return value

    @model_validator(mode="after")
    def _sync_period(self) -> Settings:
        """The site's operators see one request per period from every install: not more often than
        every SYNC_MIN_S against the real aisafety.info (a mirror or a test's fake may be asked sooner)."""
        host = _host(self.aisafety_info_url).lower().rsplit("@", 1)[-1].split(":")[0]
        real_site = host == "aisafety.info" or host.endswith(".aisafety.info")
        if 0 < self.sync_every_s < SYNC_MIN_S and real_site and DEFAULT_SOURCE in self.source_list:
            raise ValueError(
                f"SYNC_EVERY_S must be 0 (off) or at least {SYNC_MIN_S:g} seconds when the library follows "
                f"{self.aisafety_info_url}"
            )
        return self

    @model_validator(mode="after")
    def _shards(self) -> Settings:
        ids = self.shard_ids or []
        if ids and self.discord_shard_count is None:
            raise ValueError(
                "DISCORD_SHARD_IDS is set but DISCORD_SHARD_COUNT is not: set the number of shards in all"
            )
        if self.discord_shard_count is not None and any(i >= self.discord_shard_count for i in ids):
            raise ValueError(
                f"DISCORD_SHARD_IDS must be below DISCORD_SHARD_COUNT ({self.discord_shard_count}): shards count from 0"
            )
        return self

    @model_validator(mode="after")
    def _slack_mode(self) -> Settings:
        if (
            self.slack_bot_token is not None
            and self.slack_app_token is None
            and self.slack_signing_secret is None
        ):
            raise ValueError(
                "SLACK_BOT_TOKEN is set but neither SLACK_APP_TOKEN (Socket Mode) nor SLACK_SIGNING_SECRET "
                "(HTTP mode) is: set one of them (see the README's Slack section)"
            )
        return self

    @field_validator("digest_channel", "handoff_role")
    @classmethod
    def _platform_id(cls, value: str | None, info: ValidationInfo) -> str | None:
        """`discord:<id>` or `slack:<id>`, and that platform configured; a bare id only when one platform
        is. Kept as `platform:id`."""
        if value is None:
            return None
        configured = [
            p
            for p, ids in PLATFORM_IDS.items()
            if any(info.data.get(v.lower()) is not None for v in (ids.token, ids.also) if v)
        ]
        prefixes = " or ".join(f"{p}:" for p in PLATFORM_IDS)
        examples = " or ".join(f"{p}:{ids.channel}" for p, ids in PLATFORM_IDS.items())
        platform, colon, ident = value.strip().partition(":")
        if not colon:
            if not configured:
                tokens = " or ".join(ids.token for ids in PLATFORM_IDS.values())
                raise ValueError(
                    f"write {prefixes} in front of the id, for example {examples}, and set that "
                    f"platform's token ({tokens})"
                )
            if len(configured) > 1:
                names = " and ".join(p.title() for p in configured)
                every = "both" if len(configured) == 2 else "all"
                raise ValueError(
                    f"{names} are {every} set up: write {prefixes} in front of the id, for example {examples}"
                )
            platform, ident = configured[0], value.strip()
        platform, ident = platform.strip().lower(), ident.strip()
        ids = PLATFORM_IDS.get(platform)
        if ids is None:
            raise ValueError(f"{platform!r} is not a platform: write {prefixes} in front of the id")
        what = ids.group if info.field_name == "handoff_role" else "channel"
        if platform not in configured:
            raise ValueError(f"names a {platform.title()} {what}, but {ids.token} is not set")
        if not ident.isalnum() or (ids.numeric and not ident.isdigit()):
            example = f"{platform}:{ids.channel}" if what == "channel" else f"{platform}:<{what} id>"
            raise ValueError(f"{ident!r} is not a {platform.title()} {what} id; for example {example}")
        return f"{platform}:{ident}"

    @model_validator(mode="after")
    def _public_url(self) -> Settings:
        """ADMIN_URL is the old name: an address of the report page (https://bot.example.org/admin/)
        gives PUBLIC_URL https://bot.example.org."""
        if self.public_url is None and self.admin_url is not None:
            url = self.admin_url
            self.public_url = url.removesuffix("/admin") if url.endswith("/admin") else url
        return self

    @model_validator(mode="after")
    def _slack_oauth(self) -> Settings:
        """Installs by OAuth: both credentials, HTTP mode (signed requests, a public address for the
        redirect), and not beside SLACK_BOT_TOKEN."""
        if (self.slack_client_id is None) != (self.slack_client_secret is None):
            given, missing = (
                ("SLACK_CLIENT_ID", "SLACK_CLIENT_SECRET")
                if self.slack_client_secret is None
                else ("SLACK_CLIENT_SECRET", "SLACK_CLIENT_ID")
            )
            raise ValueError(
                f"{given} is set but {missing} is not: set both (the app's Basic Information -> App "
                "Credentials) to install by OAuth"
            )
        if not self.slack_oauth:
            return self
        if self.slack_bot_token is not None:
            raise ValueError(
                "SLACK_BOT_TOKEN and SLACK_CLIENT_ID are both set: set SLACK_BOT_TOKEN for one workspace, "
                "or SLACK_CLIENT_ID and SLACK_CLIENT_SECRET for installs by OAuth, not both"
            )
        if self.slack_app_token is not None:
            raise ValueError(
                "SLACK_APP_TOKEN (Socket Mode) is set with SLACK_CLIENT_ID: installs by OAuth need HTTP mode; "
                "unset SLACK_APP_TOKEN and set SLACK_SIGNING_SECRET (see the README's Distributing the Slack app)"
            )
        if self.slack_signing_secret is None:
            raise ValueError(
                "SLACK_CLIENT_ID is set but SLACK_SIGNING_SECRET is not: installs by OAuth run in HTTP mode, "
                "which checks Slack's signature (Basic Information -> App Credentials -> Signing Secret)"
            )
        if self.public_url is None:
            raise ValueError(
                "SLACK_CLIENT_ID is set but PUBLIC_URL is not: set it to the bot's public address "
                "(Slack's redirect URL is <PUBLIC_URL>/slack/oauth_redirect)"
            )
        return self

    @property
    def slack_oauth(self) -> bool:
        """Slack installs by OAuth (SLACK_CLIENT_ID and SLACK_CLIENT_SECRET), in any workspace."""
        return self.slack_client_id is not None and self.slack_client_secret is not None

    def public_link(self, path: str) -> str | None:
        """The public address of `path` ("/admin/") on the bot's HTTP server; None without PUBLIC_URL."""
        if self.public_url is None:
            return None
        return f"{self.public_url}/{path.lstrip('/')}"

    @property
    def platforms(self) -> list[str]:
        """The chat platforms whose token (or Slack's OAuth credentials) is set, in registration order."""
        return [
            p
            for p, ids in PLATFORM_IDS.items()
            if any(getattr(self, v.lower()) is not None for v in (ids.token, ids.also) if v)
        ]

    @property
    def digest_target(self) -> tuple[str, str] | None:
        """(platform, channel id) of DIGEST_CHANNEL."""
        return _split(self.digest_channel)

    def platform_options(self, platform: str) -> PlatformOptions:
        """The options of one platform; HANDOFF_ROLE applies only to the platform it names."""
        role = _split(self.handoff_role)
        return PlatformOptions(
            allowed_channels=self.allowed_channel_ids,
            rate_limit_per_minute=self.rate_limit_per_minute,
            edit_interval_s=self.stream_edit_interval_s,
            handoff=role[1] if role is not None and role[0] == platform else None,
            store_questions=self.store_questions,
        )

    def deployment(
        self,
        *,
        channel_communities: Mapping[str, str] | None = None,
        handoff_community: str | None = None,
        digest_community: str | None = None,
    ) -> Deployment:
        """The environment's values as they bear on each community (`bot.community`): the ids with
        their platform (`discord:<id>`, `slack:<id>`; an ALLOWED_CHANNELS id is Discord's when numeric,
        else Slack's), and the communities found to own them (looked up once the platforms connect)."""
        return Deployment(
            allowed_channels=frozenset(
                f"{'discord' if c.isdigit() else 'slack'}:{c}" for c in self.allowed_channel_ids
            ),
            handoff=self.handoff_role,
            handoff_community=handoff_community,
            digest_channel=self.digest_channel,
            digest_community=digest_community,
            digest_every=self.digest_every,  # type: ignore[arg-type]  # checked by its pattern
            rate_limit_per_minute=self.rate_limit_per_minute,
            store_questions=self.store_questions,
            retention_days=self.question_retention_days,
            daily_token_budget=self.daily_token_budget,
            channel_communities=dict(channel_communities or {}),
        )

    @property
    def listen(self) -> tuple[str, int, str]:
        """Where the bot's HTTP server listens (host, port, and the variable that sets the port): Slack's
        port in HTTP mode, where Slack's events and the health routes share one server; else HEALTH_PORT."""
        slack = self.slack_bot_token is not None or self.slack_oauth
        if slack and self.slack_app_token is None:
            return self.slack_http_host, self.slack_http_port, "SLACK_HTTP_PORT"
        return self.health_host, self.health_port, "HEALTH_PORT"

    @property
    def allowed_channel_ids(self) -> frozenset[str]:
        return frozenset(s.strip() for s in self.allowed_channels.split(",") if s.strip())

    @property
    def source_list(self) -> list[str]:
        return [s.strip() for s in self.sources.split(",") if s.strip()]

    def secrets(self) -> list[str]:
        """Every configured secret, so callers can make sure none is ever printed."""
        secrets = (
            self.anthropic_api_key,
            self.qdrant_api_key,
            self.discord_token,
            self.slack_bot_token,
            self.slack_app_token,
            self.slack_signing_secret,
            self.slack_client_secret,
            self.admin_token,
        )
        return [s.get_secret_value() for s in secrets if s]


def _host(url: str) -> str:
    """The host (and port) part of an http URL; empty when there is none, or when it holds a space."""
    host = url.split("://", 1)[-1].split("/", 1)[0]
    return "" if any(c.isspace() for c in url) else host


def _split(value: str | None) -> tuple[str, str] | None:
    """`platform:id` (as the settings keep DIGEST_CHANNEL and HANDOFF_ROLE) as a pair."""
    if value is None:
        return None
    platform, _, ident = value.partition(":")
    return platform, ident


def load_settings(**overrides: object) -> Settings:
    """Read and validate the settings; a bad value gives a `ConfigError` that says how to fix it."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise ConfigError(settings_message(exc)) from None
    except UnicodeDecodeError as exc:  # the only text read here besides the environment: .env
        raise ConfigError(
            f"{Path.cwd() / '.env'} is not UTF-8 text (byte {exc.start}: {exc.reason}); save it as UTF-8"
        ) from None


def settings_message(exc: ValidationError) -> str:
    """One line for every mistake: `NAME: what to change`, without pydantic's own prefixes ("Value
    error, "), joined by "; ". A check of several settings together names them in its message."""
    parts = []
    for err in exc.errors():
        name = ".".join(str(p) for p in err["loc"]).upper()
        text = " ".join(_PYDANTIC_PREFIX.sub("", err["msg"]).split())
        parts.append(f"{name}: {text}" if name else text)
    return "; ".join(parts) + " (in the environment or .env)"


# What pydantic puts in front of a validator's own message.
_PYDANTIC_PREFIX = re.compile(r"^(Value error|Assertion failed), ")
