"""Shared fixtures: real fastembed with the model in ../shared, real corpus slices, a real Qdrant, a fake LLM."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from retrieval.edge_store import EdgeStore
from retrieval.embeddings import FastEmbedder
from retrieval.index import VectorStore
from retrieval.ingest import ingest
from tests.fake_anthropic import FakeAnthropic
from tests.qdrant_server import QdrantServer

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("AISAFETY_SHARED", ROOT.parent / "shared"))
CORPUS = SHARED / "corpus"
MODEL_PATH = SHARED / "models" / "all-MiniLM-L6-v2"
MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"

# A missing model must fail at once instead of retrying the hub for 40 s.
os.environ["HF_HUB_OFFLINE"] = "1"

# Articles the tests ask about, plus neighbours so that ranking means something.
SLICE_IDS = [
    "aisafety.info:3119",  # turning the AI off
    "aisafety.info:6988",
    "aisafety.info:6568",  # orthogonality thesis
    "aisafety.info:8160",  # mesa-optimizer
    "aisafety.info:8428",  # inner vs outer alignment
    "aisafety.info:6449",  # quantilizers
    "aisafety.info:6220",
    "aisafety.info:7763",
    "aisafety.info:6703",
    "aisafety.info:7619",
    "aisafety.info:2222",
    "aisafety.info:8342",
    "aisafety.info:7783",
    "aisafety.info:8333",
    "aisafety.info:6966",  # AI takeoff; lists 6968 and 6982 as related questions
    "aisafety.info:6968",
    "aisafety.info:6982",
    "aisafety.info:7071",
    "aisafety.info:1250",
    "ai-safety-atlas:chapters/07/02",
]


def read_rows(name: str) -> list[dict[str, object]]:
    with open(CORPUS / name, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def corpus_rows(ids: list[str]) -> list[dict[str, object]]:
    rows = {}
    for name in ("aisafety.info.jsonl", "ai-safety-atlas.jsonl"):
        for row in read_rows(name):
            rows[row["id"]] = row
    return [rows[i] for i in ids]


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def embedder() -> FastEmbedder:
    if not (MODEL_PATH / "model.onnx").exists():
        pytest.fail(f"the embedding model is missing at {MODEL_PATH} (set AISAFETY_SHARED)")
    emb = FastEmbedder(model_name=MODEL_NAME, model_path=str(MODEL_PATH))
    emb.warm_up()
    return emb


@pytest.fixture(scope="session")
def slice_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_jsonl(tmp_path_factory.mktemp("corpus") / "slice.jsonl", corpus_rows(SLICE_IDS))


@pytest.fixture(scope="session")
def slice_store(
    tmp_path_factory: pytest.TempPathFactory, embedder: FastEmbedder, slice_file: Path
) -> Iterator[VectorStore]:
    """One embedded store with the slice ingested, shared by every test that only reads it."""
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
        pytest.skip("no Qdrant server binary (run scripts/fetch-qdrant.sh)")
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
    yield
    root.removeHandler(handler)
    root.setLevel(previous)
    assert handler.lines, "no log records were captured"
    leaks = [(secret, line[:300]) for line in handler.lines for secret in SECRETS if secret in line]
    assert not leaks, f"secrets in logs: {leaks[:3]}"
