"""One `Settings` object, read from environment variables (and a `.env` file) and validated once."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.errors import ConfigError

DEFAULT_SOURCE = (
    "https://huggingface.co/datasets/StampyAI/alignment-research-dataset/resolve/main/aisafety.info.jsonl"
)


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "aisafety-bot"


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
    slack_http_port: int = Field(3000, ge=1, le=65535)
    slack_http_host: str = "0.0.0.0"
    slack_api_url: str | None = Field(
        None, description="Slack Web API base URL, e.g. a GovSlack or proxy URL"
    )

    # Several replicas: shared state on Redis (or Valkey)
    redis_url: SecretStr | None = Field(
        None, description="redis://[:password@]host:6379/0; unset: each process keeps its own state"
    )

    database_url: SecretStr | None = Field(
        None, description="postgresql://user:password@host:5432/db; unset: answers and votes in FEEDBACK_DB"
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
    admin_url: str | None = Field(
        None, description="the report page's public address, linked from the digest"
    )
    digest_channel: str | None = Field(None, description="a Discord or Slack channel id for the digest")
    digest_every: str = Field("weekly", pattern="^(daily|weekly|monthly)$")
    handoff_role: str | None = Field(
        None, description="a Discord role id or Slack user group id: adds an 'Ask a human' button"
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
        "abstain_below",
        "redis_url",
        "database_url",
        "qdrant_shards",
        "qdrant_replication",
        "qdrant_write_consistency",
        "discord_shard_count",
        "admin_token",
        "admin_url",
        "digest_channel",
        "handoff_role",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("qdrant_url", "anthropic_base_url", "admin_url")
    @classmethod
    def _http_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return value
        several = info.field_name == "qdrant_url"  # QDRANT_URL may name several nodes of one cluster
        urls = [u.strip().rstrip("/") for u in value.split(",")] if several else [value.rstrip("/")]
        if not all(u.startswith(("http://", "https://")) for u in urls):
            hint = " (several cluster nodes: separated by commas)" if several else ""
            raise ValueError(f"must start with http:// or https://, for example http://localhost:6333{hint}")
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
        if value is not None and not value.is_dir():
            raise ValueError(f"{value} is not a folder; point it at a folder holding model.onnx")
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

    @model_validator(mode="after")
    def _moderator_platforms(self) -> Settings:
        """DIGEST_CHANNEL and HANDOFF_ROLE name a Discord id (a number) or a Slack one (letters and
        digits): that platform must be configured."""
        for name, value, what in (
            ("DIGEST_CHANNEL", self.digest_channel, "channel"),
            (
                "HANDOFF_ROLE",
                self.handoff_role,
                "role" if platform_of(self.handoff_role or "") == "discord" else "user group",
            ),
        ):
            if value is None:
                continue
            if platform_of(value) == "discord" and self.discord_token is None:
                raise ValueError(f"{name} is a Discord {what} id (a number) but DISCORD_TOKEN is not set")
            if platform_of(value) == "slack" and self.slack_bot_token is None:
                raise ValueError(
                    f"{name} is a Slack {what} id ({value[:1]}...) but SLACK_BOT_TOKEN is not set; for Discord "
                    f"give the {what}'s number"
                )
        return self

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
            self.admin_token,
        )
        return [s.get_secret_value() for s in secrets if s]


def platform_of(channel_or_role: str) -> str:
    """Which platform an id of DIGEST_CHANNEL or HANDOFF_ROLE belongs to: Discord's are numbers, Slack's
    start with a letter (C..., S...)."""
    return "discord" if channel_or_role.isdigit() else "slack"


def load_settings(**overrides: object) -> Settings:
    """Read and validate the settings; a bad value gives a `ConfigError` that says how to fix it."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            name = ".".join(str(p) for p in err["loc"]).upper() or "settings"
            lines.append(f"  {name}: {err['msg']}")
        raise ConfigError("invalid settings (environment variables or .env):\n" + "\n".join(lines)) from None
