"""Mistakes a new deployment makes get one line that says what to change, never a traceback."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import discord
import pytest

from aisafety_bot.cli import main
from tests.conftest import cli, home_env
from tests.fake_discord import FakeDiscord
from tests.fake_slack import FakeSlack
from tests.qdrant_server import free_port

SECRET = "test-signing-secret"
TOKEN = "MTIzNDU2Nzg5MDEyMzQ1Njc4.Gx1234.secret-part-of-the-token"


def run_cli(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    proc = cli(env, *args, timeout=120)
    return proc.returncode, proc.stdout, proc.stderr


LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (INFO|WARNING) ")


def one_line(err: str) -> str:
    """Apart from the running bot's own log lines, stderr is a single line: no traceback, no usage block."""
    lines = [line for line in err.splitlines() if line.strip() and not LOG_LINE.match(line)]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return home_env(tmp_path, QDRANT_PATH=str(tmp_path / "store"), SOURCES=str(tmp_path / "articles.jsonl"))


# -- the platforms at start-up: a refused token or no network ----------------------------------------


@pytest.fixture
def run_env(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> dict[str, str]:
    """`aisafety-bot run` in this process (the fakes run on this event loop), with `env` as settings."""
    for key in list(env):
        if key.startswith(("DISCORD_", "SLACK_", "ANTHROPIC_", "QDRANT_URL")):
            monkeypatch.delenv(key, raising=False)
    for key in ("DISCORD_TOKEN", "SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET", "QDRANT_URL"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        if key not in ("PYTHONPATH", "HOME"):
            monkeypatch.setenv(key, value)
    monkeypatch.chdir(env["HOME"])
    return env


def set_env(monkeypatch: pytest.MonkeyPatch, **values: str) -> None:
    for key, value in values.items():
        monkeypatch.setenv(key, value)


async def run_bot(capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    started = time.monotonic()
    code = await asyncio.to_thread(main, ["run"])
    assert time.monotonic() - started < 30  # reported at once, before any ingest or model load
    return code, capsys.readouterr().err


async def test_discord_token_refused(
    run_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakeDiscord(reject_token=True)
    await fake.start()
    monkeypatch.setattr(discord.http.Route, "BASE", fake.api_base)
    monkeypatch.setenv("DISCORD_TOKEN", TOKEN)
    try:
        code, err = await run_bot(capsys)
    finally:
        await fake.stop()
    line = one_line(err)
    assert code == 1 and line.startswith("error: Discord refused DISCORD_TOKEN")
    assert "secret-part" not in err


async def test_discord_unreachable(
    run_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(discord.http.Route, "BASE", f"http://127.0.0.1:{free_port()}/api/v10")
    monkeypatch.setenv("DISCORD_TOKEN", TOKEN)
    code, err = await run_bot(capsys)
    line = one_line(err)
    assert code == 1 and "cannot reach Discord" in line and "network" in line
    assert "secret-part" not in err


@pytest.mark.parametrize(
    ("method", "mode", "variable"),
    [
        ("auth.test", {"SLACK_SIGNING_SECRET": SECRET}, "SLACK_BOT_TOKEN"),
        # Socket Mode's app-level token is checked at start-up too: slack_sdk would retry it for ever.
        ("apps.connections.open", {"SLACK_APP_TOKEN": "xapp-test"}, "SLACK_APP_TOKEN"),
    ],
)
async def test_slack_token_refused(
    run_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    method: str,
    mode: dict[str, str],
    variable: str,
) -> None:
    fake = FakeSlack(errors={method: "invalid_auth"})
    await fake.start()
    set_env(monkeypatch, SLACK_BOT_TOKEN="xoxb-test", SLACK_API_URL=f"{fake.url}/api/", **mode)
    try:
        code, err = await run_bot(capsys)
    finally:
        await fake.stop()
    line = one_line(err)
    assert code == 1 and line.startswith(f"error: Slack refused {variable} (invalid_auth)")
    assert "xoxb-test" not in err and "xapp-test" not in err


async def test_slack_unreachable(
    run_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    unreachable = f"http://127.0.0.1:{free_port()}/api/"
    set_env(monkeypatch, SLACK_BOT_TOKEN="xoxb-test", SLACK_SIGNING_SECRET=SECRET, SLACK_API_URL=unreachable)
    code, err = await run_bot(capsys)
    line = one_line(err)
    assert code == 1 and "cannot reach Slack's Web API" in line and "SLACK_BOT_TOKEN" in line


async def test_bad_feedback_db_stops_run_before_connecting(
    run_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    fake = FakeDiscord()
    await fake.start()
    monkeypatch.setattr(discord.http.Route, "BASE", fake.api_base)
    monkeypatch.setenv("DISCORD_TOKEN", TOKEN)
    monkeypatch.setenv("FEEDBACK_DB", str(tmp_path))
    try:
        code, err = await run_bot(capsys)
    finally:
        await fake.stop()
    assert code == 2 and one_line(err).startswith(f"error: FEEDBACK_DB={tmp_path} is a folder")
    assert not fake.requests  # nothing was sent to Discord


async def test_a_malformed_discord_token_is_a_bad_setting_found_before_the_network(
    run_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakeDiscord()
    await fake.start()
    monkeypatch.setattr(discord.http.Route, "BASE", fake.api_base)
    monkeypatch.setenv("DISCORD_TOKEN", "not-a-real-token")
    try:
        code, err = await run_bot(capsys)
    finally:
        await fake.stop()
    assert code == 2 and one_line(err).startswith("error: DISCORD_TOKEN is malformed")
    assert "not-a-real-token" not in err
    assert not fake.requests  # nothing was sent to Discord


def test_run_without_a_token_or_a_terminal_is_one_line(env: dict[str, str]) -> None:
    """A container started with the tokens blank (as .env.example leaves them): exit status 2 at once,
    so a restart policy does not loop on it in silence."""
    started = time.monotonic()
    code, out, err = run_cli(env, "run")  # standard input: /dev/null, not a terminal
    line = one_line(err)
    assert code == 2 and out == "" and time.monotonic() - started < 30
    assert "DISCORD_TOKEN" in line and "SLACK_BOT_TOKEN" in line and "not a terminal" in line


# -- settings and files --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "names"),
    [
        ({"LLM_TIMEOUT_S": "0"}, ["LLM_TIMEOUT_S"]),
        # A check of several settings together (pydantic calls it "Value error, ...").
        ({"SYNC_EVERY_S": "60", "SOURCES": "aisafety.info"}, ["SYNC_EVERY_S"]),
        ({"DISCORD_SHARD_IDS": "0"}, ["DISCORD_SHARD_IDS", "DISCORD_SHARD_COUNT"]),
        ({"SLACK_BOT_TOKEN": "xoxb-test"}, ["SLACK_BOT_TOKEN", "SLACK_APP_TOKEN"]),
        ({"TOP_K": "many", "ADMIN_TOKEN": "short"}, ["TOP_K", "ADMIN_TOKEN"]),
    ],
)
def test_a_bad_setting_is_one_line_with_status_2(
    env: dict[str, str], settings: dict[str, str], names: list[str]
) -> None:
    code, _, err = run_cli(dict(env, **settings), "feedback")
    line = one_line(err)
    assert code == 2 and line.startswith("error: ") and all(name in line for name in names), line
    assert "Value error" not in line and "Assertion failed" not in line and "xoxb-test" not in err


def test_a_model_folder_without_a_model_is_a_bad_setting(env: dict[str, str], tmp_path: Path) -> None:
    folder = tmp_path / "all-MiniLM-L6-v2"
    folder.mkdir()
    (folder / "README.md").write_text("the model files were not copied\n")
    code, _, err = run_cli(dict(env, EMBEDDING_MODEL_PATH=str(folder)), "ingest")
    line = one_line(err)
    assert code == 2 and line.startswith(f"error: EMBEDDING_MODEL_PATH: {folder} holds no .onnx model file")
    assert "tokenizer.json" in line


def test_an_unreachable_database_is_status_1(env: dict[str, str]) -> None:
    port = free_port()
    url = f"postgresql://bot:hunter2-secret@127.0.0.1:{port}/aisafety"
    code, _, err = run_cli(dict(env, DATABASE_URL=url), "feedback")
    line = one_line(err)
    assert code == 1 and line.startswith(
        f"error: DATABASE_URL: cannot connect to PostgreSQL at 127.0.0.1:{port}"
    )
    assert "hunter2" not in err


def test_a_bad_env_file_is_one_line(env: dict[str, str]) -> None:
    (Path(env["HOME"]) / ".env").write_bytes(b"TOP_K=\xff\xfe\n")
    code, _, err = run_cli(env, "feedback")
    assert (
        code == 2
        and one_line(err)
        == f"error: {env['HOME']}/.env is not UTF-8 text (byte 6: invalid start byte); save it as UTF-8"
    )


def test_bad_feedback_db(env: dict[str, str], tmp_path: Path) -> None:
    folder = tmp_path / "a-folder"
    folder.mkdir()
    code, _, err = run_cli(dict(env, FEEDBACK_DB=str(folder)), "feedback")
    assert code == 2 and "FEEDBACK_DB" in one_line(err) and "is a folder" in err

    not_a_folder = tmp_path / "plain-file"
    not_a_folder.write_text("x")
    code, _, err = run_cli(dict(env, FEEDBACK_DB=str(not_a_folder / "feedback.sqlite3")), "feedback")
    assert code == 2 and "FEEDBACK_DB" in one_line(err) and "cannot be created" in err

    not_sqlite = tmp_path / "notes.txt"
    not_sqlite.write_text("these are my notes, not a database\n" * 100)
    code, _, err = run_cli(dict(env, FEEDBACK_DB=str(not_sqlite)), "feedback")
    assert code == 2 and "FEEDBACK_DB" in one_line(err) and "not an SQLite database" in err
    assert not_sqlite.read_text().startswith("these are my notes")  # left as it was


def test_unwritable_feedback_db(env: dict[str, str], tmp_path: Path) -> None:
    db = tmp_path / "feedback.sqlite3"
    code, _, _ = run_cli(dict(env, FEEDBACK_DB=str(db)), "feedback")
    assert code == 0 and db.exists()
    # A read-only file system, as a container with a read-only volume has (chmod does not stop root).
    code, _, err = run_cli(dict(env, FEEDBACK_DB="/proc/aisafety-bot/feedback.sqlite3"), "feedback")
    assert code == 2 and "FEEDBACK_DB=/proc/aisafety-bot/feedback.sqlite3" in one_line(err)


def test_eval_file_is_checked_before_anything_is_opened(env: dict[str, str], tmp_path: Path) -> None:
    code, _, err = run_cli(env, "eval", str(tmp_path / "missing.jsonl"))
    assert code == 2 and one_line(err).endswith(f"{tmp_path / 'missing.jsonl'}: no such file")
    bad = tmp_path / "questions.jsonl"
    bad.write_text('{"q": "what is corrigibility?", "relevant": ["a:1"]}\n{"q": "unfinished\n')
    code, _, err = run_cli(env, "eval", str(bad))
    assert code == 2 and one_line(err).endswith(
        f"{bad}:2: not valid JSON (Unterminated string starting at column 7)"
    )
    bad.write_text('{"q": "what is corrigibility?"}\n')
    code, _, err = run_cli(env, "eval", str(bad))
    assert code == 2 and f"{bad}:1: missing 'relevant'" in one_line(err)
    assert not (tmp_path / "store").exists()  # the store was never opened


def test_qdrant_failure_names_the_url_never_the_key(env: dict[str, str]) -> None:
    port = free_port()
    env = dict(
        env, QDRANT_URL=f"http://127.0.0.1:{port}", QDRANT_API_KEY="test-qdrant-key", QDRANT_TIMEOUT_S="2"
    )
    code, out, err = run_cli(env, "search", "what is corrigibility?")
    line = one_line(err)
    assert code == 1 and line.startswith(f"error: Qdrant at http://127.0.0.1:{port} (QDRANT_URL):")
    assert line.endswith(
        "start the Qdrant server (or check its address and port in QDRANT_URL), or unset QDRANT_URL to use the embedded store"
    )
    assert "test-qdrant-key" not in out + err


def test_healthcheck_names_the_port_it_tried(env: dict[str, str]) -> None:
    port = free_port()
    code, _, err = run_cli(dict(env, HEALTH_PORT=str(port)), "healthcheck")
    assert code == 1 and f"http://127.0.0.1:{port}/healthz (HEALTH_PORT={port})" in one_line(err)


@pytest.mark.parametrize(
    ("args", "settings", "expected"),
    [
        (("search", "corrigibility", "--k", "0"), {}, "argument --k: must be 1 or more, not 0"),
        (("eval", "x.jsonl", "--k", "-3"), {}, "argument --k: must be 1 or more, not -3"),
        (("report", "--since", "-1"), {}, "argument --since: must be 0 or more days"),
        (("search", ""), {}, "argument question: give a question"),
        (("ask", "   "), {}, "argument question: give a question"),
        (("search", "corrigibility"), {"LLM_TIMEOUT_S": "0"}, "LLM_TIMEOUT_S"),
        (("search", "corrigibility"), {"LLM_TIMEOUT_S": "-5"}, "LLM_TIMEOUT_S"),
        (("search", "corrigibility"), {"MAX_QUESTION_CHARS": "10"}, "MAX_QUESTION_CHARS"),
    ],
)
def test_usage_errors(
    env: dict[str, str], args: tuple[str, ...], settings: dict[str, str], expected: str
) -> None:
    code, _, err = run_cli(dict(env, **settings), *args)
    assert code == 2 and expected in err, err
    assert "Traceback" not in err and len(err.splitlines()) <= 2


def test_discord_invite_calls_a_malformed_token_malformed(env: dict[str, str]) -> None:
    code, out, err = run_cli(dict(env, DISCORD_TOKEN="not-a-real-token"), "discord-invite")
    assert code == 2 and one_line(err).startswith("error: DISCORD_TOKEN is malformed")
    assert "not-a-real-token" not in out + err
    code, out, _ = run_cli(dict(env, DISCORD_TOKEN=TOKEN), "discord-invite")
    assert code == 0 and "client_id=123456789012345678" in out


def test_no_model_offline_is_one_line(env: dict[str, str], tmp_path: Path) -> None:
    page = tmp_path / "reading-group.md"
    page.write_text(
        "---\ntitle: Our reading group\nurl: https://example.org/rg\n---\nWe meet every week to read and discuss one alignment paper together.\n"
    )
    empty_cache = tmp_path / "models"
    empty_cache.mkdir()
    env = dict(env, HF_HUB_OFFLINE="1", EMBEDDING_CACHE_DIR=str(empty_cache))
    code, _, err = run_cli(env, "ingest", str(page))
    line = one_line(err)
    assert code == 1 and "cannot load embedding model" in line and "set EMBEDDING_MODEL_PATH" in line


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ('{"id": "a", "text": "a line break\tin a string"}', "Invalid control character at column 34"),
        ('{"id": "a", "text": "never closed', "Unterminated string starting at column 21"),
        ('{"id": "a",}', "Expecting property name enclosed in double quotes at column 12"),
        ("not json at all", "Expecting value at column 1"),
    ],
)
def test_a_json_error_in_a_source_line_says_where(line: str, reason: str) -> None:
    from retrieval.documents import SkippedRecord
    from retrieval.sources import read_ard_jsonl

    (skipped,) = list(read_ard_jsonl([line], origin="articles.jsonl"))
    assert skipped == SkippedRecord("articles.jsonl", 1, f"malformed JSON ({reason})")
