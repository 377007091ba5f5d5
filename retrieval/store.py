"""The only module that talks to Qdrant: collections behind an alias, upserts, and hybrid search.

`QDRANT_URL` selects a Qdrant server; otherwise qdrant-client's embedded store at a local path.
The live index is always reached through an alias, so a rebuild can fill a fresh collection and
switch the alias atomically when it is complete.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from retrieval.documents import Chunk, Document, Passage
from retrieval.embeddings import Embedded

_log = logging.getLogger(__name__)

DENSE = "dense"  # the passage itself (with its title)
TITLE = "title"  # the article's title: community questions often read like aisafety.info titles
LEAD = "lead"  # the article's opening passage: what the whole article is about
SPARSE = "bm25"
# Rank fusion constant: small, so a passage ranked first by one signal stands out.
RRF_K = 5
SearchMode = Literal["hybrid", "dense", "sparse"]
_ID_NAMESPACE = uuid.UUID("6f1c2a4e-5b8d-4f3a-9c7e-2d1b0a9f8e7d")


class StoreError(Exception):
    """Qdrant cannot be reached or refused a request; the message is safe to show."""


@dataclass(frozen=True)
class ArticleState:
    content_hash: str
    chunks: int


def point_id(article_id: str, index: int) -> str:
    """Deterministic: the same passage of the same article always lands on the same point."""
    return str(uuid.uuid5(_ID_NAMESPACE, f"{article_id}#{index}"))


class QdrantStore:
    def __init__(
        self,
        *,
        alias: str,
        url: str | None = None,
        api_key: str | None = None,
        path: str | None = None,
        timeout_s: float = 10.0,
    ):
        self.alias = alias
        self.is_server = bool(url)
        try:
            if url:
                self._client = QdrantClient(
                    url=url, api_key=api_key, timeout=int(timeout_s), check_compatibility=False
                )
            else:
                self._client = QdrantClient(path=path)
        except (RuntimeError, ValueError) as exc:  # e.g. the embedded store is locked by another process
            raise StoreError(f"cannot open the Qdrant store at {path or url}: {exc}") from exc
        # The embedded store is plain Python objects; serialise access from worker threads.
        self._lock = threading.RLock()

    # -- collections and the alias -------------------------------------------------------------
    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            with self._lock:
                return fn(*args, **kwargs)
        except (ResponseHandlingException, UnexpectedResponse, ConnectionError, TimeoutError) as exc:
            raise StoreError(f"Qdrant request failed: {type(exc).__name__}: {str(exc)[:200]}") from exc

    def live_collection(self) -> str | None:
        aliases = self._call(self._client.get_aliases).aliases
        for a in aliases:
            if a.alias_name == self.alias:
                return str(a.collection_name)
        return None

    def new_collection(self, dim: int) -> str:
        name = f"{self.alias}_{time.time_ns() // 1_000_000}"
        self._call(
            self._client.create_collection,
            collection_name=name,
            vectors_config={
                name: models.VectorParams(size=dim, distance=models.Distance.COSINE)
                for name in (DENSE, TITLE, LEAD)
            },
            sparse_vectors_config={SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)},
        )
        if self.is_server:
            self._call(
                self._client.create_payload_index,
                collection_name=name,
                field_name="article_id",
                field_schema=models.PayloadSchemaType.KEYWORD,
            )
        return name

    def switch_alias(self, collection: str) -> None:
        """Point the alias at `collection` in one atomic operation, then drop the collections it replaced."""
        old = self.live_collection()
        ops: list[models.CreateAliasOperation | models.DeleteAliasOperation] = []
        if old:
            ops.append(models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=self.alias)))
        ops.append(
            models.CreateAliasOperation(
                create_alias=models.CreateAlias(collection_name=collection, alias_name=self.alias)
            )
        )
        self._call(self._client.update_collection_aliases, change_aliases_operations=ops)
        for name in self.build_collections():
            if name != collection:
                self.drop_collection(name)

    def build_collections(self) -> list[str]:
        names = [c.name for c in self._call(self._client.get_collections).collections]
        return [n for n in names if n.startswith(f"{self.alias}_")]

    def drop_collection(self, name: str) -> None:
        self._call(self._client.delete_collection, collection_name=name)

    def close(self) -> None:
        with self._lock:
            self._client.close()

    # -- writing -------------------------------------------------------------------------------
    def article_states(self, collection: str) -> dict[str, ArticleState]:
        """What is indexed now: each article's content hash and number of passages."""
        states: dict[str, ArticleState] = {}
        offset = None
        while True:
            points, offset = self._call(
                self._client.scroll,
                collection_name=collection,
                limit=1024,
                offset=offset,
                with_payload=["article_id", "hash", "chunk"],
                with_vectors=False,
            )
            for p in points:
                pl = p.payload or {}
                aid = str(pl.get("article_id"))
                prev = states.get(aid)
                n = max(prev.chunks if prev else 0, int(pl.get("chunk", 0)) + 1)
                states[aid] = ArticleState(str(pl.get("hash")), n)
            if offset is None:
                return states

    def upsert(
        self,
        collection: str,
        doc: Document,
        chunks: Sequence[Chunk],
        vectors: Sequence[Embedded],
        title_vector: Sequence[float],
    ) -> None:
        """Store an article's passages; every passage also carries its article's title and lead vectors."""
        lead = vectors[0].dense
        points = [
            models.PointStruct(
                id=point_id(doc.id, c.index),
                vector={
                    DENSE: v.dense,
                    TITLE: list(title_vector),
                    LEAD: lead,
                    SPARSE: models.SparseVector(indices=v.sparse.indices, values=v.sparse.values),
                },
                payload={
                    "article_id": doc.id,
                    "chunk": c.index,
                    "title": doc.title,
                    "url": doc.url,
                    "source": doc.source,
                    "heading": c.heading,
                    "text": c.text,
                    "hash": doc.content_hash,
                    "related": list(doc.related),
                },
            )
            for c, v in zip(chunks, vectors, strict=True)
        ]
        self._call(self._client.upsert, collection_name=collection, points=points, wait=True)

    def delete_chunks(self, collection: str, article_id: str, indices: Iterable[int]) -> None:
        ids: list[models.ExtendedPointId] = [point_id(article_id, i) for i in indices]
        if ids:
            self._call(
                self._client.delete,
                collection_name=collection,
                points_selector=models.PointIdsList(points=ids),
                wait=True,
            )

    # -- reading -------------------------------------------------------------------------------
    def count(self) -> int:
        if self.live_collection() is None:
            return 0
        return int(self._call(self._client.count, collection_name=self.alias, exact=True).count)

    def search(self, query: Embedded, *, limit: int, mode: SearchMode = "hybrid") -> list[Passage]:
        """Best passages, fused by reciprocal rank; each carries its dense cosine for abstention."""
        sparse = models.SparseVector(indices=query.sparse.indices, values=query.sparse.values)
        common: dict[str, Any] = dict(
            collection_name=self.alias, limit=limit, with_payload=True, with_vectors=[DENSE]
        )
        if mode == "hybrid":
            prefetch = [
                models.Prefetch(query=query.dense, using=name, limit=limit) for name in (DENSE, TITLE, LEAD)
            ]
            if query.sparse.indices:
                prefetch.append(models.Prefetch(query=sparse, using=SPARSE, limit=limit))
            result = self._call(
                self._client.query_points,
                prefetch=prefetch,
                query=models.RrfQuery(rrf=models.Rrf(k=RRF_K)),
                **common,
            )
        elif mode == "dense":
            result = self._call(self._client.query_points, query=query.dense, using=DENSE, **common)
        else:
            if not query.sparse.indices:
                return []
            result = self._call(self._client.query_points, query=sparse, using=SPARSE, **common)
        q = np.asarray(query.dense, dtype=np.float32)
        q /= float(np.linalg.norm(q)) or 1.0
        out = []
        for p in result.points:
            pl = p.payload or {}
            vec = p.vector.get(DENSE) if isinstance(p.vector, dict) else None
            cosine = 0.0
            if vec is not None:
                v = np.asarray(vec, dtype=np.float32)
                cosine = float(q @ v / (float(np.linalg.norm(v)) or 1.0))
            out.append(_passage(pl, score=float(p.score), dense=cosine))
        return out

    def articles(self, article_ids: Sequence[str]) -> dict[str, Passage]:
        """The first passage of each of these articles, for "read next" links."""
        if not article_ids or self.live_collection() is None:
            return {}
        points = self._call(
            self._client.retrieve,
            collection_name=self.alias,
            ids=[point_id(a, 0) for a in article_ids],
            with_payload=True,
            with_vectors=False,
        )
        found = {}
        for p in points:
            pl = p.payload or {}
            found[str(pl.get("article_id"))] = _passage(pl, score=0.0, dense=0.0)
        return found


def _passage(pl: dict[str, Any], *, score: float, dense: float) -> Passage:
    return Passage(
        article_id=str(pl.get("article_id", "")),
        title=str(pl.get("title", "")),
        url=str(pl.get("url", "")),
        text=str(pl.get("text", "")),
        score=score,
        dense_score=dense,
        source=str(pl.get("source", "")),
        related=tuple(pl.get("related") or ()),
    )
