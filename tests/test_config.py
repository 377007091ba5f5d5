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
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    s = load_settings()
    assert s.qdrant_url is None and s.qdrant_path == tmp_path / "data" / "aisafety-bot" / "qdrant"
    assert s.source_list == [DEFAULT_SOURCE] and DEFAULT_SOURCE.endswith("/aisafety.info.jsonl")
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
