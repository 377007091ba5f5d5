"""Shared fixtures: real fastembed, the project's own fixture articles, a real Qdrant, a fake LLM.

Tests run from a plain clone. What needs files from outside the repository asks for them through
`need()`: the real corpus (`AISAFETY_SHARED`, default ../shared) and, when it cannot be downloaded the
normal way, the embedding model (`EMBEDDING_MODEL_PATH`). Missing, such a test is skipped with one line
saying how to provide it; with `CI=true` it fails instead, so CI can never pass by skipping.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import NoReturn

import pytest
import pytest_asyncio

from bot.config import Settings
from retrieval.edge_store import EdgeStore
from retrieval.embeddings import FastEmbedder
from retrieval.errors import EmbeddingError
from retrieval.index import VectorStore
from retrieval.ingest import ingest
from tests import fixture_articles
from tests.fake_anthropic import FakeAnthropic
from tests.fake_slack import FakeSlack
from tests.qdrant_server import QdrantServer

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("AISAFETY_SHARED", ROOT.parent / "shared"))
CORPUS = SHARED / "corpus"
MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def need(what: str, how: str) -> NoReturn:
    """Something a test needs is missing: skip with one line saying how to provide it, or fail in CI."""
    message = f"needs {what}: {how}"
    if IN_CI:
        pytest.fail(f"{message} (CI=true: a missing file or service fails the run)", pytrace=False)
    pytest.skip(message)


def local_model_path() -> Path | None:
    """A local copy of the embedding model: EMBEDDING_MODEL_PATH, else the shared folder's."""
    configured = os.environ.get("EMBEDDING_MODEL_PATH")
    if configured:
        return Path(configured)
    shared = SHARED / "models" / "all-MiniLM-L6-v2"
    return shared if (shared / "model.onnx").exists() else None


MODEL_PATH = local_model_path()
if MODEL_PATH is not None:
    # A local model: nothing needs the hub, and a broken copy must fail at once, not after 40 s of retries.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

# The test inputs (README, Development): they choose what runs or skips, and nothing else. Every variable
# the bot reads as a setting is taken out of this process's environment before any test runs (the model
# path is kept in MODEL_PATH and given back through `model_env`), and the tests run in an empty folder
# (`away_from_the_shell`), so that no setting a developer exported and no `.env` where pytest was started
# changes a result. tests/test_env_isolation.py checks it.
TEST_INPUTS = ("AISAFETY_SHARED", "EMBEDDING_MODEL_PATH", "CI", "HF_HUB_OFFLINE", "QDRANT_BIN", "CHROMIUM")
SETTINGS = frozenset(name.upper() for name in Settings.model_fields)
for _name in [k for k in os.environ if k.upper() in SETTINGS]:  # pydantic-settings ignores the case
    del os.environ[_name]

NO_MODEL = (
    "set EMBEDDING_MODEL_PATH to a folder with all-MiniLM-L6-v2's model.onnx and tokenizer files, or "
    "AISAFETY_SHARED to a folder holding models/all-MiniLM-L6-v2; with internet access and HF_HUB_OFFLINE "
    "unset, the tests download it the normal way"
)


def need_corpus() -> Path:
    """The real articles in the shared folder, for the tests that measure on them."""
    if not (CORPUS / "aisafety.info.jsonl").exists():
        need(
            f"the shared corpus ({CORPUS}/aisafety.info.jsonl)",
            "set AISAFETY_SHARED to the folder holding corpus/ and models/ (see the README's Development section)",
        )
    return CORPUS


def read_rows(name: str) -> list[dict[str, object]]:
    with open(need_corpus() / name, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def corpus_rows(ids: list[str]) -> list[dict[str, object]]:
    """Real articles by id, from the shared corpus."""
    rows = {}
    for name in ("aisafety.info.jsonl", "ai-safety-atlas.jsonl", "distill.jsonl"):
        if name == "distill.jsonl" and not any(i.startswith("distill:") for i in ids):
            continue
        for row in read_rows(name):
            rows[row["id"]] = row
    return [rows[i] for i in ids]


def clean_env(**settings: str) -> dict[str, str]:
    """This process's environment without any of the bot's own settings, plus `settings`: what a
    subprocess running the CLI gets, so nothing leaks in from the developer's shell."""
    prefixes = (
        "ANTHROPIC_",
        "QDRANT_",
        "DISCORD_",
        "SLACK_",
        "FEEDBACK_",
        "HEALTH_",
        "SOURCES",
        "LOG_FORMAT",
        "ADMIN_",
        "DIGEST_",
        "HANDOFF_",
        "AISAFETY_",
        "PUBLIC_URL",
    )
    base = {k: v for k, v in os.environ.items() if not k.startswith(prefixes) and k.upper() not in SETTINGS}
    return {**base, "PYTHONPATH": str(ROOT), **settings}


def home_env(home: Path, **settings: str) -> dict[str, str]:
    """`clean_env` for a user whose home, data folder and answers database are all under `home`."""
    return clean_env(
        HOME=str(home),
        XDG_DATA_HOME=str(home / "data"),
        FEEDBACK_DB=str(home / "feedback.sqlite3"),
        **settings,
    )


def cli(env: dict[str, str], *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """`aisafety-bot ARGS` as a user runs it: a new process, in the folder `env["HOME"]`."""
    return subprocess.run(
        [sys.executable, "-m", "aisafety_bot", *args],
        env=env,
        cwd=env["HOME"],
        stdin=subprocess.DEVNULL,  # never the terminal pytest was started from
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="session", autouse=True)
def away_from_the_shell(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Every test runs in an empty folder, where no `.env` is read, with a data folder of the run's own
    (the settings' defaults are under XDG_DATA_HOME): a developer's files are neither read nor written."""
    folder = tmp_path_factory.mktemp("cwd")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        patch.setenv("XDG_DATA_HOME", str(folder / "data"))
        yield


@pytest.fixture(scope="session")
def embedder() -> FastEmbedder:
    """The real embedding model: a local copy when there is one, else fastembed's normal download."""
    if MODEL_PATH is not None:
        if not (MODEL_PATH / "model.onnx").exists():
            need(f"the embedding model at {MODEL_PATH}", NO_MODEL)
        emb = FastEmbedder(model_name=MODEL_NAME, model_path=str(MODEL_PATH))
    else:
        if os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true"}:
            need("the embedding model (HF_HUB_OFFLINE is set, so it cannot be downloaded)", NO_MODEL)
        emb = FastEmbedder(model_name=MODEL_NAME)
    try:
        emb.warm_up()
    except EmbeddingError as exc:
        need(f"the embedding model ({exc})", NO_MODEL)
    return emb


@pytest.fixture(scope="session")
def model_env(embedder: FastEmbedder) -> dict[str, str]:
    """Settings that give a subprocess the same model as `embedder`."""
    if MODEL_PATH is None:
        return {}
    return {"EMBEDDING_MODEL_PATH": str(MODEL_PATH), "HF_HUB_OFFLINE": "1"}


@pytest.fixture(scope="session")
def slice_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's own fixture articles as a JSONL source."""
    return write_jsonl(tmp_path_factory.mktemp("corpus") / "articles.jsonl", fixture_articles.rows())


@pytest.fixture(scope="session")
def slice_store(
    tmp_path_factory: pytest.TempPathFactory, embedder: FastEmbedder, slice_file: Path
) -> Iterator[VectorStore]:
    """One embedded store with the fixture articles ingested, shared by every test that only reads it."""
    store = EdgeStore(alias="articles", path=str(tmp_path_factory.mktemp("qdrant-slice")))
    ingest(store=store, embedder=embedder, sources=[str(slice_file)])
    yield store
    store.close()


@pytest.fixture(scope="session")
def qdrant_server() -> Iterator[QdrantServer]:
    binary = os.environ.get("QDRANT_BIN") or str(ROOT / ".cache" / "qdrant" / "qdrant")
    if not Path(binary).exists():
        if os.environ.get("REQUIRE_QDRANT_SERVER"):
            pytest.fail(f"Qdrant server binary not found at {binary}; run scripts/fetch-qdrant.sh")
        need(f"the Qdrant server binary ({binary})", "run scripts/fetch-qdrant.sh, or set QDRANT_BIN")
    server = QdrantServer(str(Path(binary).resolve()), api_key="test-qdrant-key")
    server.start()
    yield server
    server.stop()


@pytest_asyncio.fixture(scope="session")
async def fake_anthropic() -> AsyncIterator[FakeAnthropic]:
    fake = FakeAnthropic()
    await fake.start()
    yield fake
    await fake.stop()


@pytest_asyncio.fixture
async def fake_slack() -> AsyncIterator[FakeSlack]:
    """A fake Slack Web API (and OAuth pages) on 127.0.0.1, one per test."""
    fake = FakeSlack()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
def llm_server(fake_anthropic: FakeAnthropic) -> Iterator[FakeAnthropic]:
    """The session's fake LLM with a clean script and request log for each test."""
    fake_anthropic.script.clear()
    fake_anthropic.requests.clear()
    yield fake_anthropic
    fake_anthropic.script.clear()


# Every secret the tests configure. No log record of the whole run may contain one.
SECRETS = (
    "sk-ant-test-secret-123",
    "sk-ant-cli-secret-456",
    "fake-token",
    "xoxb-test",
    "xapp-test",
    "test-signing-secret",
    "test-qdrant-key",
    "admin-token-for-tests-0123456789",
)


class _AllRecords(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record) + repr(record.args) + repr(vars(record).get("exc_text")))
        except Exception:  # a record that cannot even be formatted still must not hide a leak
            self.lines.append(repr(vars(record)))


@pytest.fixture(scope="session", autouse=True)
def no_secret_in_any_log() -> Iterator[None]:
    """Scan every log record of the run, at debug level, for every configured secret."""
    handler = _AllRecords()
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    logging.getLogger("tests").debug("log scan started")
    yield
    root.removeHandler(handler)
    root.setLevel(previous)
    assert any("log scan started" in line for line in handler.lines), "the log scan captured nothing"
    leaks = [(secret, line[:300]) for line in handler.lines for secret in SECRETS if secret in line]
    assert not leaks, f"secrets in logs: {leaks[:3]}"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """One line per reason a test was skipped (not one per test), so a plain clone's run says plainly
    what it did not test and how to provide it."""
    reasons: dict[str, int] = {}
    for report in terminalreporter.stats.get("skipped", []):
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        reason = reason.removeprefix("Skipped: ")
        reasons[reason] = reasons.get(reason, 0) + 1
    for reason, count in reasons.items():
        terminalreporter.write_line(f"SKIPPED {count} test{'s' if count > 1 else ''}: {reason}", yellow=True)
