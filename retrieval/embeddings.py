"""Dense (fastembed) and BM25 sparse embeddings. The calls block; `HybridRetriever` runs them on its retrieval thread."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from retrieval.errors import EmbeddingError

_log = logging.getLogger(__name__)

BM25_MODEL = "Qdrant/bm25"
# Our own stopword list and model folder, so the sparse vectors are the same online and offline.
BM25_DIR = Path(__file__).with_name("bm25")
# BM25 length normalisation uses the average passage length in tokens after stopword removal;
# fastembed's default (256) suits much longer passages than our ~175-word chunks.
BM25_AVG_LEN = 110.0
# Texts per ONNX run. The runtime grows its memory pool to the largest batch and keeps it: 8 peaked at
# 358 MB against 720 MB for 32 while embedding 615 passages, and ran 1.06-1.11x faster (paired runs;
# BENCHMARKS.md).
DENSE_BATCH = 8


@dataclass(frozen=True)
class SparseVec:
    indices: list[int]
    values: list[float]


@dataclass(frozen=True)
class Embedded:
    dense: list[float]
    sparse: SparseVec


class Embedder(Protocol):
    dim: int

    def embed_passages(self, texts: Sequence[str]) -> list[Embedded]: ...

    def embed_queries(self, texts: Sequence[str]) -> list[Embedded]: ...


def _stopwords() -> set[str]:
    return {w.strip() for w in (BM25_DIR / "english.txt").read_text().split() if w.strip()}


class FastEmbedder:
    """fastembed's ONNX models, loaded lazily on first use (never at import time)."""

    def __init__(self, *, model_name: str, model_path: str | None = None, cache_dir: str | None = None):
        self.model_name = model_name
        self.model_path = model_path
        self.cache_dir = cache_dir
        self._dense: Any = None
        self._sparse: Any = None
        self._lock = threading.Lock()
        self.dim = 384

    def _load(self) -> None:
        with self._lock:
            if self._dense is not None:
                return
            from fastembed import TextEmbedding
            from fastembed.sparse.bm25 import Bm25

            kwargs: dict[str, Any] = {}
            if self.model_path:
                if not Path(self.model_path, "model.onnx").exists() and not any(
                    Path(self.model_path).glob("*.onnx")
                ):
                    raise EmbeddingError(
                        f"EMBEDDING_MODEL_PATH={self.model_path} holds no .onnx model: point it at a folder "
                        "with model.onnx and the tokenizer files of "
                        f"{self.model_name}, or unset it to download the model."
                    )
                kwargs.update(specific_model_path=self.model_path, local_files_only=True)
            if self.cache_dir:
                kwargs["cache_dir"] = self.cache_dir
            try:
                with _fastembed_quiet():
                    dense = TextEmbedding(self.model_name, **kwargs)
            except Exception as exc:  # fastembed raises bare ValueError/OSError/RuntimeError
                raise EmbeddingError(
                    f"cannot load embedding model {self.model_name!r}: {str(exc).rstrip('.')}. Offline, set "
                    "EMBEDDING_MODEL_PATH to a local copy of the model (see the README)."
                ) from None
            self._sparse = Bm25(
                BM25_MODEL,
                specific_model_path=str(BM25_DIR),
                avg_len=BM25_AVG_LEN,
                stopwords=_stopwords(),
            )
            probe = next(iter(dense.embed(["probe"])))
            self.dim = len(probe)
            self._dense = dense
            _log.info("embedding model %s loaded (%d dims)", self.model_name, self.dim)

    def warm_up(self) -> None:
        self._load()

    def embed_passages(self, texts: Sequence[str]) -> list[Embedded]:
        self._load()
        dense = list(self._dense.embed(list(texts), batch_size=DENSE_BATCH))
        sparse = list(self._sparse.embed(list(texts)))
        return [Embedded(_as_list(d), _sparse(s)) for d, s in zip(dense, sparse, strict=True)]

    def embed_query(self, text: str) -> Embedded:
        return self.embed_queries([text])[0]

    def embed_queries(self, texts: Sequence[str]) -> list[Embedded]:
        """Questions in one batch: about half the cost per question of embedding them one by one."""
        self._load()
        dense = list(self._dense.query_embed(list(texts)))
        sparse = list(self._sparse.query_embed(list(texts)))
        return [Embedded(_as_list(d), _sparse(s)) for d, s in zip(dense, sparse, strict=True)]

    def embed_dense_only(self, texts: Sequence[str]) -> list[list[float]]:
        """Raw dense throughput, for the ingest benchmark's baseline."""
        self._load()
        return [_as_list(d) for d in self._dense.embed(list(texts), batch_size=DENSE_BATCH)]


@contextlib.contextmanager
def _fastembed_quiet() -> Iterator[None]:
    """fastembed logs each failed download attempt through loguru, before raising; the error we raise
    says what failed and how to fix it, once."""
    try:
        from loguru import logger
    except ImportError:  # pragma: no cover - fastembed depends on loguru
        yield
        return
    logger.disable("fastembed")
    try:
        yield
    finally:
        logger.enable("fastembed")


def _as_list(vec: Any) -> list[float]:
    return np.asarray(vec, dtype=np.float32).tolist()


def _sparse(emb: Any) -> SparseVec:
    return SparseVec(indices=[int(i) for i in emb.indices], values=[float(v) for v in emb.values])


def configure_offline(model_path: str | None) -> None:
    """With a local model folder nothing needs the hub: fail fast instead of retrying for 40 s."""
    if model_path:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
