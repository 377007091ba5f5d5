"""No setting a developer exported and no `.env` where pytest starts changes a test's result: a few fast
test files run in a subprocess with every setting of bot/config.py exported with a valid value other than
its default, and the same settings in a `.env` in its working directory (tests/conftest.py takes them
out; only the documented test inputs, such as EMBEDDING_MODEL_PATH, choose what runs or skips)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import Settings, load_settings
from tests.conftest import MODEL_PATH, ROOT, SETTINGS

# Test files that read settings in-process, run the CLI as a user does, and read the deployment files.
FAST_FILES = ("tests/test_config.py", "tests/test_messages.py", "tests/test_deploy.py")


def exported(folder: Path) -> dict[str, str]:
    """A valid value, not the default, for every setting; services and hosts on 127.0.0.1 ports where
    nothing listens, so a test that read one would fail rather than reach anything."""
    model = MODEL_PATH
    if model is None:  # a folder that passes the setting's check (the files' contents are never read here)
        model = folder / "model"
        model.mkdir(exist_ok=True)
        (model / "model.onnx").write_bytes(b"")
        (model / "tokenizer.json").write_text("{}")
    nowhere = "http://127.0.0.1:9"
    return {
        "QDRANT_URL": nowhere,
        "QDRANT_API_KEY": "exported-qdrant-key",
        "QDRANT_PATH": str(folder / "exported-qdrant"),
        "QDRANT_COLLECTION": "exported_articles",
        "QDRANT_TIMEOUT_S": "3",
        "QDRANT_SHARDS": "2",
        "QDRANT_REPLICATION": "2",
        "QDRANT_WRITE_CONSISTENCY": "2",
        "EMBEDDING_MODEL": "BAAI/bge-small-en-v1.5",
        "EMBEDDING_MODEL_PATH": str(model),  # also a test input: the model the tests use
        "EMBEDDING_CACHE_DIR": str(folder / "exported-cache"),
        "SOURCES": str(folder / "exported.jsonl"),
        "AISAFETY_INFO_URL": nowhere,
        "SYNC_EVERY_S": "120",
        "SYNC_MAX_REMOVE": "0.5",
        "ANTHROPIC_API_KEY": "sk-ant-exported",
        "ANTHROPIC_MODEL": "claude-exported",
        "ANTHROPIC_BASE_URL": nowhere,
        "LLM_TIMEOUT_S": "7",
        "LLM_MAX_RETRIES": "1",
        "LLM_MAX_TOKENS": "512",
        "ANSWER_DEADLINE_S": "45",
        "SHUTDOWN_GRACE_S": "5",
        "MAX_QUESTION_CHARS": "2000",
        "TOP_K": "3",
        "HISTORY_TOKEN_BUDGET": "800",
        "ABSTAIN_BELOW": "0.3",
        "RATE_LIMIT_PER_MINUTE": "2",
        "ALLOWED_CHANNELS": "C0EXPORTED,123",
        "FEEDBACK_DB": str(folder / "exported.sqlite3"),
        "STREAM_EDIT_INTERVAL_S": "2",
        "DISCORD_TOKEN": "MTIzNDU2Nzg5MDEyMzQ1Njc4.Gx1234.exported",
        "DISCORD_APPLICATION_ID": "123456789012345678",
        "DISCORD_SYNC_COMMANDS": "true",
        "DISCORD_SHARD_COUNT": "2",
        "DISCORD_SHARD_IDS": "0",
        "SLACK_BOT_TOKEN": "xoxb-exported",
        "SLACK_APP_TOKEN": "xapp-exported",
        "SLACK_SIGNING_SECRET": "exported-signing-secret",
        "SLACK_HTTP_PORT": "3999",
        "SLACK_HTTP_HOST": "127.0.0.1",
        "SLACK_API_URL": nowhere + "/api/",
        "SLACK_APP_ID": "A0EXPORTED",
        "SLACK_CLIENT_ID": "111.exported",
        "SLACK_CLIENT_SECRET": "exported-client-secret",
        "REDIS_URL": "redis://127.0.0.1:9/5",
        "DATABASE_URL": "postgresql://exported@127.0.0.1:9/exported",
        "DATABASE_TIMEOUT_S": "2",
        "REDIS_KEY_PREFIX": "exported:",
        "HEALTH_PORT": "8999",
        "HEALTH_HOST": "127.0.0.1",
        "LOG_FORMAT": "json",
        "DAILY_TOKEN_BUDGET": "1000",
        "STORE_QUESTIONS": "false",
        "QUESTION_RETENTION_DAYS": "30",
        "ADMIN_TOKEN": "exported-admin-token-0123456789",
        "PUBLIC_URL": "https://bot.example.org",
        "ADMIN_URL": "https://old.example.org/admin/",
        "DIGEST_CHANNEL": "discord:123456789012345678",
        "DIGEST_EVERY": "daily",
        "HANDOFF_ROLE": "slack:S0EXPORTED",
    }


def test_every_setting_has_a_valid_value_other_than_its_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    values = exported(tmp_path)
    assert set(values) == SETTINGS  # a new setting is added here too
    # Slack's OAuth credentials replace SLACK_BOT_TOKEN and Socket Mode: read in a second round without them.
    oauth = {"SLACK_CLIENT_ID", "SLACK_CLIENT_SECRET"}
    for round_names, unset in ((set(values) - oauth, oauth), (oauth, {"SLACK_BOT_TOKEN", "SLACK_APP_TOKEN"})):
        for name, value in values.items():
            monkeypatch.setenv(name, value)
        for name in unset:
            monkeypatch.delenv(name)
        settings = load_settings()
        for name in round_names:
            field = Settings.model_fields[name.lower()]
            default = field.get_default(call_default_factory=True)
            assert getattr(settings, name.lower()) != default, name


def test_exported_settings_and_a_dotenv_change_no_result(tmp_path: Path) -> None:
    import os

    values = exported(tmp_path)
    started_in = tmp_path / "where-pytest-starts"
    started_in.mkdir()
    (started_in / ".env").write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-x",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(ROOT),
            "-c",
            str(ROOT / "pyproject.toml"),
            *(str(ROOT / f) for f in FAST_FILES),
        ],
        env={**os.environ, **values},
        cwd=started_in,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=600,
    )
    tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-30:])
    assert proc.returncode == 0, tail
    assert " passed" in proc.stdout and " failed" not in proc.stdout, tail
