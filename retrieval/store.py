"""The only module that talks to qdrant-client: a Qdrant server as the vector store (`QDRANT_URL`)."""

from __future__ import annotations

import logging
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from operator import attrgetter
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from retrieval.documents import Chunk, Document, Passage
from retrieval.embeddings import Embedded
from retrieval.index import (
    ARTICLE_VECTOR_FULL_SCAN_KB,
    CATALOGUE_FIELDS,
    DEAD,
    DENSE,
    DENSE_VECTORS,
    HIT_FIELDS,
    HNSW_EF_CONSTRUCT,
    HNSW_M,
    INDEXED_FIELDS,
    NO_INDEX,
    SPARSE,
    STATE_FIELDS,
    TOMBSTONE,
    WRONG_MODEL,
    ArticleState,
    Hit,
    Ranking,
    SearchMode,
    SearchPlan,
    StoreError,
    article_points,
    article_states,
    best_articles,
    builds_of,
    by_passage,
    catalogue_of,
    collection_name,
    first_passages,
    passage_points,
    ranked,
    search_plan,
    vocabulary_of,
)
from retrieval.vocabulary import EMPTY, Vocabulary

_log = logging.getLogger(__name__)

# Passages per upsert request during an ingest.
UPSERT_BATCH = 256
# How long the vocabulary read from the collection is kept (`QdrantStore.vocabulary`).
VOCABULARY_FRESH_S = 3600.0

# Qdrant compresses a large response on the fly and sends it in chunks; on a kept-alive connection the
# last chunk then waits for the client's delayed acknowledgement: 40 ms added to every search whose
# answer is over about 1.5 KB (every search the bot makes). qdrant-client avoids it for "localhost" and
# "127.0.0.1" only, by opening a new connection per request; any other host (`http://qdrant:6333` in
# the compose file, a cluster node by name) paid it twice a question. Uncompressed answers never wait,
# are cheaper for the server to write, and let every host keep its connections open
# (benchmarks/bench_qdrant_http.py: 89.9 -> 5.1 ms a question by name; tests/test_server.py).
_HTTP_OPTIONS: dict[str, Any] = {
    "headers": {"Accept-Encoding": "identity"},
    "limits": httpx.Limits(max_connections=None, max_keepalive_connections=32),
}


def _vector(r: Ranking) -> Any:
    if r.dense is not None:
        return r.dense
    assert r.sparse is not None
    return models.SparseVector(indices=r.sparse.indices, values=r.sparse.values)


def _detail(exc: Exception) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__


def _unreachable(exc: Exception) -> bool:
    """The node did not answer at all (refused, reset, timed out), as opposed to answering an error."""
    source = exc.source if isinstance(exc, ResponseHandlingException) else exc
    return isinstance(source, (httpx.TransportError, ConnectionError, TimeoutError))


def query_requests(plan: SearchPlan) -> list[models.QueryRequest]:
    """The plan's rankings as qdrant-client's batched query requests."""
    return [
        models.QueryRequest(
            query=_vector(r),
            using=r.using,
            limit=plan.limit,
            with_payload=list(plan.fields),
            params=None if plan.breadth(r) is None else models.SearchParams(hnsw_ef=plan.breadth(r)),
        )
        for r in plan.rankings
    ]


def _shown_url(url: str) -> str:
    """The URL without any user or password in it, for messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


class QdrantStore:
    """Collections behind an alias on a Qdrant server; the alias switch is one atomic server call."""

    in_process = False

    def __init__(
        self,
        *,
        alias: str,
        url: str,
        api_key: str | None = None,
        timeout_s: float = 10.0,
        shards: int | None = None,
        replication: int | None = None,
        write_consistency: int | None = None,
    ):
        self.alias = alias
        self._vocabulary: tuple[str, float, Vocabulary] | None = None  # (collection, when read, vocabulary)
        self._pending: list[models.PointStruct] = []
        self._pending_in = ""
        # How a new collection is spread over a cluster (None: the server's defaults, one shard, one copy).
        self.layout: dict[str, Any] = {
            "shard_number": shards,
            "replication_factor": replication,
            "write_consistency_factor": write_consistency,
        }
        # Several nodes of one cluster, comma-separated: each request goes to the node last answering
        # and moves on to the next when that one cannot be reached.
        urls = [u.strip().rstrip("/") for u in url.split(",") if u.strip()]
        self._shown = [_shown_url(u) for u in urls]
        self._active = 0
        self._switching = threading.Lock()
        # We always send vectors, never documents to embed: `cloud_inference=True` skips the client's
        # search of every request for documents to embed locally, which walks each float of our
        # vectors and cost more than the query itself.
        with warnings.catch_warnings():
            # qdrant-client warns on every start when a key goes over http; said once, in the log, and
            # not for this machine or a container network (a host name without dots, such as `qdrant`).
            warnings.simplefilter("ignore", UserWarning)
            self._clients = [
                QdrantClient(
                    url=u,
                    api_key=api_key,
                    timeout=int(timeout_s),
                    check_compatibility=False,
                    cloud_inference=True,
                    **_HTTP_OPTIONS,
                )
                for u in urls
            ]
        for u, shown in zip(urls, self._shown, strict=True):
            host = urlsplit(u).hostname or ""
            if api_key and u.startswith("http://") and "." in host and host not in ("127.0.0.1", "localhost"):
                _log.warning(
                    "QDRANT_API_KEY is sent over plain http to %s: use https outside a private network", shown
                )

    @property
    def url(self) -> str:
        """The node requests go to (without any user or password), for messages."""
        return self._shown[self._active]

    @property
    def _client(self) -> QdrantClient:
        return self._clients[self._active]

    def _call(self, op: str, *args: Any, missing: str | None = None, **kwargs: Any) -> Any:
        """One client call, `op` naming the client's method ("count"; "http.search_api.query_batch_points":
        the two requests of every question go through the generated REST API directly, since the
        client's `query_batch_points` deep-copies each request, four 384-float vectors, looking for
        documents to embed). A node that cannot be reached hands the call to the next one given; a
        failure becomes a `StoreError` naming the URL (`missing`: the message when the collection or
        alias does not exist)."""
        first = self._active
        for attempt in range(len(self._clients)):
            index = (first + attempt) % len(self._clients)
            try:
                result = attrgetter(op)(self._clients[index])(*args, **kwargs)
            except (ResponseHandlingException, UnexpectedResponse, ConnectionError, TimeoutError) as exc:
                if attempt + 1 < len(self._clients) and _unreachable(exc):
                    continue
                everyone = attempt > 0 and _unreachable(exc)
                where = ", ".join(self._shown) if everyone else self._shown[index]
                raise self._error(exc, missing, where=where) from None
            if index != first:
                with self._switching:  # concurrent calls moving on together say it once
                    if self._active != index:
                        _log.warning(
                            "Qdrant at %s cannot be reached: using %s",
                            self._shown[self._active],
                            self._shown[index],
                        )
                        self._active = index
            return result
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def _error(self, exc: Exception, missing: str | None, *, where: str) -> StoreError:
        detail = _detail(exc)
        if isinstance(exc, UnexpectedResponse) and b"dimension error" in (exc.content or b"").lower():
            return StoreError(WRONG_MODEL)
        if isinstance(exc, UnexpectedResponse) and exc.status_code == 404 and missing is not None:
            return StoreError(missing)
        if isinstance(exc, UnexpectedResponse) and exc.status_code in (401, 403):
            detail = f"HTTP {exc.status_code}: the server refused the API key; check QDRANT_API_KEY"
        if _unreachable(exc):
            detail += (
                "; start the Qdrant server (or check its address and port in QDRANT_URL), or unset QDRANT_URL "
                "to use the embedded store"
            )
        return StoreError(f"Qdrant at {where} (QDRANT_URL): {detail}")

    # -- collections and the alias -------------------------------------------------------------
    def live_collection(self) -> str | None:
        for a in self._call("get_aliases").aliases:
            if a.alias_name == self.alias:
                return str(a.collection_name)
        return None

    def new_collection(self, dim: int) -> str:
        name = collection_name(self.alias)
        self._call(
            "create_collection",
            collection_name=name,
            vectors_config={
                n: models.VectorParams(
                    size=dim,
                    distance=models.Distance.COSINE,
                    hnsw_config=None
                    if n == DENSE
                    else models.HnswConfigDiff(full_scan_threshold=ARTICLE_VECTOR_FULL_SCAN_KB),
                )
                for n in DENSE_VECTORS
            },
            sparse_vectors_config={SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)},
            hnsw_config=models.HnswConfigDiff(m=HNSW_M, ef_construct=HNSW_EF_CONSTRUCT),
            **{k: v for k, v in self.layout.items() if v is not None},
        )
        for field, kind in INDEXED_FIELDS.items():
            self._call(
                "create_payload_index",
                collection_name=name,
                field_name=field,
                field_schema=models.PayloadSchemaType(kind),
                wait=True,
            )
        return name

    def switch_alias(self, collection: str) -> None:
        """Point the alias at `collection` in one atomic operation, then drop the collections it replaced."""
        self.flush()
        ops: list[models.CreateAliasOperation | models.DeleteAliasOperation] = []
        if self.live_collection():
            ops.append(models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=self.alias)))
        ops.append(
            models.CreateAliasOperation(
                create_alias=models.CreateAlias(collection_name=collection, alias_name=self.alias)
            )
        )
        self._call("update_collection_aliases", change_aliases_operations=ops)
        for name in self.build_collections():
            if name != collection:
                self.drop_collection(name)

    def build_collections(self) -> list[str]:
        names = [c.name for c in self._call("get_collections").collections]
        return builds_of(self.alias, names)

    def drop_collection(self, name: str) -> None:
        if self._pending_in == name:  # an interrupted ingest's last passages go with their collection
            self._pending = []
        self._call("delete_collection", collection_name=name)

    def close(self) -> None:
        for client in self._clients:
            client.close()

    def flush(self) -> None:
        """Send the passages `upsert` has gathered, and wait until the server has applied them."""
        points, self._pending = self._pending, []
        if points:
            self._call("upsert", collection_name=self._pending_in, points=points, wait=True)

    # -- writing -------------------------------------------------------------------------------
    def article_states(self, collection: str) -> dict[str, ArticleState]:
        return article_states(lambda first_only: self._scroll(collection, first_only=first_only))

    def _scroll(
        self, collection: str, *, first_only: bool, fields: Sequence[str] = tuple(STATE_FIELDS)
    ) -> Iterator[dict[str, Any]]:
        first = (
            models.Filter(must=[models.FieldCondition(key="chunk", match=models.MatchValue(value=0))])
            if first_only
            else None
        )
        offset = None
        while True:
            points, offset = self._call(
                "scroll",
                collection_name=collection,
                scroll_filter=first,
                limit=1024,
                offset=offset,
                with_payload=list(fields),
                with_vectors=False,
            )
            for p in points:
                yield p.payload or {}
            if offset is None:
                return

    def upsert(
        self,
        collection: str,
        doc: Document,
        chunks: Sequence[Chunk],
        vectors: Sequence[Embedded],
        title: Embedded,
        phrasings: Sequence[Embedded] = (),
        old: ArticleState | None = None,
    ) -> None:
        """Store an article's new version (`article_points`). Whole articles are sent together with other
        articles' in requests of about `UPSERT_BATCH` points (one request per article, each waited for,
        made a large ingest three times slower); `flush` sends the rest. An article is never split
        between two requests: a kill leaves its old version or its new one."""
        if self._pending and self._pending_in != collection:
            self.flush()
        self._pending_in = collection
        self._pending += [
            models.PointStruct(
                id=p.id,
                vector={
                    **p.dense,
                    **(
                        {SPARSE: models.SparseVector(indices=p.sparse.indices, values=p.sparse.values)}
                        if p.sparse is not None
                        else {}
                    ),
                },
                payload=p.payload,
            )
            for p in article_points(doc, chunks, vectors, title, phrasings, old)
        ]
        if len(self._pending) >= UPSERT_BATCH:
            self.flush()

    def _delete_where(self, collection: str, key: str, value: Any) -> None:
        self.flush()  # in the order the ingest asked for them
        self._call(
            "delete",
            collection_name=collection,
            points_selector=models.FilterSelector(
                filter=models.Filter(
                    must=[models.FieldCondition(key=key, match=models.MatchValue(value=value))]
                )
            ),
            wait=True,
        )

    def delete_article(self, collection: str, article_id: str) -> None:
        self._delete_where(collection, "article_id", article_id)

    def sweep(self, collection: str) -> None:
        self._delete_where(collection, TOMBSTONE, DEAD)

    # -- reading -------------------------------------------------------------------------------
    def count(self) -> int:
        if self.live_collection() is None:
            return 0
        return int(self._call("count", collection_name=self.alias, exact=True).count)

    def rankings(self, query: Embedded, *, limit: int, mode: SearchMode = "hybrid") -> dict[str, list[Hit]]:
        """The shared search plan, as one batched request to the server."""
        plan = search_plan(query, limit=limit, mode=mode)
        if plan is None:
            return {}
        answers = self._call(
            "http.search_api.query_batch_points",
            collection_name=self.alias,
            query_request_batch=models.QueryRequestBatch(searches=query_requests(plan)),
            missing=NO_INDEX,
        ).result
        return ranked(plan, (((p.score, p.payload) for p in answer.points) for answer in answers))

    def search(
        self, query: Embedded, *, limit: int, mode: SearchMode = "hybrid", top: int | None = None
    ) -> list[Passage]:
        return best_articles(self, query, limit=limit, mode=mode, top=top)

    def payloads(self, keys: Sequence[tuple[str, int]]) -> dict[tuple[str, int], dict[str, Any]]:
        if not keys:
            return {}
        points = self._call(
            "http.points_api.get_points",
            collection_name=self.alias,
            point_request=models.PointRequest(
                ids=list(passage_points(keys)), with_payload=HIT_FIELDS, with_vector=False
            ),
        ).result
        return by_passage(p.payload for p in points)

    def articles(self, article_ids: Sequence[str]) -> dict[str, Passage]:
        return first_passages(self.payloads, article_ids)

    def catalogue(self) -> dict[str, tuple[str, str]]:
        live = self.live_collection()
        if live is None:
            return {}
        return catalogue_of(self._scroll(live, first_only=True, fields=CATALOGUE_FIELDS))

    def vocabulary(self) -> Vocabulary:
        """Read from every passage once and kept VOCABULARY_FRESH_S (another replica's sync may change the
        collection; a vocabulary changes slowly)."""
        live = self.live_collection()
        if live is None:
            return EMPTY
        known = self._vocabulary
        if known is None or known[0] != live or time.monotonic() - known[1] > VOCABULARY_FRESH_S:
            known = (
                live,
                time.monotonic(),
                vocabulary_of(self._scroll(live, first_only=False, fields=["text"])),
            )
            self._vocabulary = known
        return known[2]
