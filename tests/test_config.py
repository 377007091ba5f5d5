from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import DEFAULT_SOURCE, load_settings
from bot.errors import ConfigError


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in (
        "QDRANT_URL",
        "QDRANT_API_KEY",
        "QDRANT_PATH",
        "SOURCES",
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_MODEL",
        "ANTHROPIC_BASE_URL",
        "EMBEDDING_MODEL_PATH",
        "XDG_DATA_HOME",
        "TOP_K",
        "DISCORD_TOKEN",
        "SLACK_BOT_TOKEN",
        "SLACK_APP_TOKEN",
        "SLACK_SIGNING_SECRET",
        "DIGEST_CHANNEL",
        "HANDOFF_ROLE",
        "PUBLIC_URL",
        "ADMIN_URL",
        "ALLOWED_CHANNELS",
        "SYNC_EVERY_S",
        "SYNC_MAX_REMOVE",
        "AISAFETY_INFO_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    s = load_settings()
    assert s.qdrant_url is None and s.qdrant_path == tmp_path / "data" / "aisafety-bot" / "qdrant"
    assert s.source_list == [DEFAULT_SOURCE] == ["aisafety.info"]
    assert s.embedding_model == "sentence-transformers/all-MiniLM-L6-v2"
    assert s.anthropic_model.startswith("claude-sonnet") and s.anthropic_api_key is None


def test_env_and_dotenv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("ANTHROPIC_API_KEY=sk-from-dotenv\nSOURCES= a.jsonl , ,b/ \n")
    monkeypatch.setenv("QDRANT_URL", "http://localhost:6333/")
    monkeypatch.setenv("QDRANT_API_KEY", "")
    s = load_settings()
    assert s.source_list == ["a.jsonl", "b/"]
    assert s.qdrant_url == "http://localhost:6333" and s.qdrant_api_key is None
    assert s.anthropic_api_key is not None and s.anthropic_api_key.get_secret_value() == "sk-from-dotenv"
    assert "sk-from-dotenv" not in repr(s) and s.secrets() == ["sk-from-dotenv"]


@pytest.mark.parametrize(
    ("name", "value", "hint"),
    [
        ("QDRANT_URL", "localhost:6333", "http://"),
        ("EMBEDDING_MODEL_PATH", "/nonexistent", "model.onnx"),
        ("TOP_K", "zero", "integer"),
        ("SOURCES", " , ", "at least one"),
        ("ALLOWED_CHANNELS", "#general", "channel id"),
        ("SLACK_BOT_TOKEN", "xoxb-1", "SLACK_APP_TOKEN"),
    ],
)
def test_bad_values_name_the_variable_and_the_fix(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, hint: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert name in str(err.value) and hint in str(err.value)


DISCORD = {"discord_token": "t"}
SLACK = {"slack_bot_token": "xoxb-1", "slack_app_token": "xapp-1"}


def one_setting_error(**settings: object) -> str:
    """The ConfigError of one mistake: one line, `NAME: what to change`, without pydantic's prefixes."""
    with pytest.raises(ConfigError) as err:
        load_settings(**settings)
    message = str(err.value)
    assert "\n" not in message and message.endswith(" (in the environment or .env)"), message
    assert "Value error" not in message
    return message.removesuffix(" (in the environment or .env)")


def test_several_mistakes_are_one_line_naming_each(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOP_K", "0")
    monkeypatch.setenv("LLM_TIMEOUT_S", "soon")
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert str(err.value) == (
        "LLM_TIMEOUT_S: Input should be a valid number, unable to parse string as a number; "
        "TOP_K: Input should be greater than or equal to 1 (in the environment or .env)"
    )


def test_a_check_of_several_settings_has_no_pydantic_prefix() -> None:
    line = one_setting_error(discord_shard_ids="0")
    assert line == "DISCORD_SHARD_IDS is set but DISCORD_SHARD_COUNT is not: set the number of shards in all"


def test_the_model_folder_must_hold_a_model(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    assert one_setting_error(embedding_model_path=folder) == (
        f"EMBEDDING_MODEL_PATH: {folder} holds no .onnx model file and no tokenizer.json; point it at the "
        "folder holding the model's model.onnx and tokenizer files"
    )
    (folder / "model.onnx").write_bytes(b"onnx")
    assert one_setting_error(embedding_model_path=folder).startswith(
        f"EMBEDDING_MODEL_PATH: {folder} holds no tokenizer.json;"
    )
    (folder / "tokenizer.json").write_text("{}")
    assert load_settings(embedding_model_path=folder).embedding_model_path == folder
    (folder / "model.onnx").unlink()
    (folder / "onnx").mkdir()
    (folder / "onnx" / "model.onnx").write_bytes(b"onnx")  # the layout some models have on the hub
    assert load_settings(embedding_model_path=folder).embedding_model_path == folder


def test_public_url_and_its_old_name() -> None:
    s = load_settings(public_url="https://bot.example.org/")
    assert s.public_url == "https://bot.example.org"
    assert s.public_link("/admin/") == "https://bot.example.org/admin/" == s.public_link("admin/")
    # ADMIN_URL, the old name, held the report page's address: the bot's address is what is before it.
    for old in ("https://bot.example.org/admin/", "https://bot.example.org/admin", "https://bot.example.org"):
        s = load_settings(admin_url=old)
        assert s.public_url == "https://bot.example.org"
        assert s.public_link("/admin/") == "https://bot.example.org/admin/"
    assert load_settings(
        admin_url="https://old.example.org/admin/", public_url="https://new.example.org"
    ).public_url == ("https://new.example.org")
    assert load_settings().public_link("/admin/") is None


@pytest.mark.parametrize("name", ["PUBLIC_URL", "ADMIN_URL"])
@pytest.mark.parametrize(
    "value", ["bot.example.org", "https://", "https:// bot.example.org", "ftp://bot.example.org"]
)
def test_a_bad_public_url_is_one_line(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    line = one_setting_error()
    assert (
        line.startswith(f"{name}: must start with http:// or https://") and "https://bot.example.org" in line
    )


def test_a_moderators_id_names_its_platform() -> None:
    both = {**DISCORD, **SLACK}
    s = load_settings(**both, digest_channel="slack:C0MODS", handoff_role="discord:777")
    assert s.digest_channel == "slack:C0MODS" and s.digest_target == ("slack", "C0MODS")
    assert s.handoff_role == "discord:777"
    # With one platform, a bare id is that platform's, whatever it looks like.
    assert load_settings(**DISCORD, digest_channel="123").digest_target == ("discord", "123")
    assert load_settings(**SLACK, digest_channel=" C0MODS ").digest_target == ("slack", "C0MODS")
    assert load_settings(**SLACK, handoff_role="12345").handoff_role == "slack:12345"
    assert load_settings().digest_target is None


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        # Nothing guesses a platform from the look of an id.
        (
            {**DISCORD, **SLACK, "digest_channel": "123"},
            "DIGEST_CHANNEL: Discord and Slack are both set up: write discord: or slack: in front of the id",
        ),
        (
            {**DISCORD, **SLACK, "handoff_role": "S0MODS"},
            "HANDOFF_ROLE: Discord and Slack are both set up: write discord: or slack: in front of the id",
        ),
        ({"digest_channel": "123"}, "DIGEST_CHANNEL: write discord: or slack: in front of the id"),
        (
            {**SLACK, "digest_channel": "discord:123"},
            "DIGEST_CHANNEL: names a Discord channel, but DISCORD_TOKEN is not set",
        ),
        (
            {**DISCORD, "handoff_role": "slack:S0MODS"},
            "HANDOFF_ROLE: names a Slack user group, but SLACK_BOT_TOKEN is not set",
        ),
        (
            {**DISCORD, "digest_channel": "teams:19abc"},
            "DIGEST_CHANNEL: 'teams' is not a platform: write discord: or slack:",
        ),
        ({**DISCORD, "digest_channel": "C0MODS"}, "DIGEST_CHANNEL: 'C0MODS' is not a Discord channel id"),
        ({**SLACK, "handoff_role": "slack:#mods"}, "HANDOFF_ROLE: '#mods' is not a Slack user group id"),
    ],
)
def test_a_moderators_id_without_its_platform_says_what_to_write(
    settings: dict[str, str], expected: str
) -> None:
    assert one_setting_error(**settings).startswith(expected)


def test_the_handoff_role_applies_to_its_platform_only() -> None:
    s = load_settings(**DISCORD, **SLACK, handoff_role="slack:S0MODS", allowed_channels="C1,123")
    assert s.platform_options("slack").handoff == "S0MODS"
    assert s.platform_options("discord").handoff is None
    assert s.platform_options("discord").allowed_channels == frozenset({"C1", "123"})
    assert load_settings(**DISCORD).platform_options("discord").handoff is None


def test_the_platforms_and_where_the_bot_listens() -> None:
    assert load_settings().platforms == [] and load_settings().listen == ("0.0.0.0", 8080, "HEALTH_PORT")
    assert load_settings(**DISCORD, **SLACK).platforms == ["discord", "slack"]
    http = load_settings(slack_bot_token="xoxb-1", slack_signing_secret="s", slack_http_port=3100)
    assert http.platforms == ["slack"] and http.listen == ("0.0.0.0", 3100, "SLACK_HTTP_PORT")
    assert load_settings(**SLACK, health_port=9100).listen[1:] == (9100, "HEALTH_PORT")  # Socket Mode


def test_the_library_sync_settings() -> None:
    s = load_settings()
    assert (s.sync_every_s, s.sync_max_remove) == (3600.0, 0.25)
    # Against the real site, not more often than every five minutes; a mirror or a fake may be asked sooner.
    line = one_setting_error(sync_every_s=60)
    assert "SYNC_EVERY_S must be 0 (off) or at least 300 seconds" in line and "https://aisafety.info" in line
    assert load_settings(sync_every_s=60, aisafety_info_url="http://127.0.0.1:8000").sync_every_s == 60
    assert load_settings(sync_every_s=60, sources="/srv/articles/").sync_every_s == 60
    assert load_settings(sync_every_s=0).sync_every_s == 0
    assert "sync_max_remove" in one_setting_error(sync_max_remove=0).lower()
    assert "sync_max_remove" in one_setting_error(sync_max_remove=1.5).lower()
