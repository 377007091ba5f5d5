"""Quick commands start quickly: which heavy libraries each command loads, read from the subprocess's
own `sys.modules` (deterministic, unlike a timing; BENCHMARKS.md has the times)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import home_env, write_jsonl
from tests.fixture_articles import rows as fixture_rows

HEAVY = ("anthropic", "fastembed", "onnxruntime", "qdrant_client", "qdrant_edge", "discord", "slack_bolt")
PROBE = (
    "import json, sys\n"
    "from aisafety_bot.cli import main\n"
    "try:\n"
    "    code = main(sys.argv[1:])\n"
    "except SystemExit as exc:\n"
    "    code = exc.code\n"
    f"print('MODULES=' + json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)), file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def loaded(env: dict[str, str], *args: str, stdin: str = "") -> tuple[int, set[str], str]:
    """Run `aisafety-bot ARGS` in a fresh interpreter; the heavy modules it imported, and its output."""
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        env=env,
        cwd=env["HOME"],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
    )
    line = next(x for x in proc.stderr.splitlines() if x.startswith("MODULES="))
    return proc.returncode, set(json.loads(line.removeprefix("MODULES="))), proc.stdout + proc.stderr


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return home_env(tmp_path, HEALTH_PORT="9")  # nothing listens on port 9


@pytest.mark.parametrize(
    "args",
    [
        ("--help",),
        ("healthcheck",),
        ("feedback",),
        ("feedback", "--json"),
        ("discord-invite",),
        ("report", "--help"),
    ],
)
def test_quick_commands_import_no_heavy_library(env: dict[str, str], args: tuple[str, ...]) -> None:
    env = dict(env, DISCORD_TOKEN="MTIzNDU2Nzg5MDEyMzQ1Njc4.Gx.secret-part")
    code, modules, err = loaded(env, *args)
    assert modules == set(), err
    assert code in (0, 1)  # healthcheck finds no bot: 1, with a message (tested in test_messages)


def test_commands_import_only_what_they_use(
    env: dict[str, str], model_env: dict[str, str], tmp_path: Path
) -> None:
    source = write_jsonl(tmp_path / "a.jsonl", fixture_rows("orthogonality", "mesa-optimizers"))
    env = dict(env, **model_env, SOURCES=str(source), QDRANT_PATH=str(tmp_path / "store"))

    code, modules, err = loaded(env, "ingest")
    assert code == 0, err
    assert modules == {"fastembed", "onnxruntime", "qdrant_edge"}  # embedding, into the embedded store

    code, modules, err = loaded(env, "ingest")  # unchanged: nothing to embed, so no model runtime at all
    assert code == 0 and "2 unchanged" in err, err
    assert modules == {"qdrant_edge"}

    code, modules, err = loaded(env, "search", "what is a mesa-optimizer?")
    assert code == 0, err
    assert modules == {"fastembed", "onnxruntime", "qdrant_edge"}

    code, modules, err = loaded(env, "ask", "what is a mesa-optimizer?")  # no API key: no SDK
    assert code == 0 and "anthropic" not in modules, err

    code, modules, err = loaded(
        dict(env, ANTHROPIC_API_KEY="sk-ant-test-secret-123"), "chat", stdin="/quit\n"
    )
    assert code == 0, err
    assert "anthropic" in modules  # the terminal chat with a key talks to the model...
    assert not modules & {"discord", "slack_bolt", "qdrant_client"}  # ...and needs no platform library
