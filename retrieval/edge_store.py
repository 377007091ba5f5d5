"""The embedded default: Qdrant's in-process engine (qdrant-edge) in a local folder.

Each collection is a shard folder under `<path>/collections/`; the alias is a small JSON file replaced
atomically (`os.replace`), so a rebuild is switched in only when complete, as on a server. One process
holds the folder at a time (an exclusive file lock), like qdrant-client's embedded mode.

Beside each collection it keeps a catalogue, `catalogues/<collection>.json`: its articles (id, title,
url), replaced atomically whenever the collection changes. Commands that only need the list of articles
(`report`) read the live one while the running bot holds the lock.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import qdrant_edge as qe

from retrieval.documents import Chunk, Document, Passage
from retrieval.embeddings import Embedded
from retrieval.index import (
    ARTICLE_VECTOR_FULL_SCAN_KB,
    DEAD,
    DENSE,
    DENSE_VECTORS,
    HIT_FIELDS,
    HNSW_EF_CONSTRUCT,
    HNSW_M,
    INDEXED_FIELDS,
    LIBRARY_FIELDS,
    NO_INDEX,
    SPARSE,
    STATE_FIELDS,
    TOMBSTONE,
    WRONG_MODEL,
    ArticleState,
    Hit,
    Ranking,
    SearchMode,
    StoreError,
    article_points,
    article_states,
    best_articles,
    builds_of,
    by_passage,
    collection_name,
    first_passages,
    library_of,
    passage_points,
    ranked,
    search_plan,
)
from retrieval.vocabulary import EMPTY, Vocabulary

_log = logging.getLogger(__name__)

CATALOGUES = "catalogues"
ALIASES = "aliases.json"


class StoreInUse(StoreError):
    """Another process holds the embedded store."""


def _write_json_atomically(path: Path, data: object) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _nearest(r: Ranking) -> Any:
    if r.dense is not None:
        return qe.Query.Nearest(r.dense, using=r.using)
    assert r.sparse is not None
    return qe.Query.Nearest(qe.SparseVector(indices=r.sparse.indices, values=r.sparse.values), using=r.using)


def _catalogue_path(root: Path, collection: str) -> Path:
    return root / CATALOGUES / f"{collection}.json"


def _vocabulary_path(root: Path, collection: str) -> Path:
    return root / CATALOGUES / f"{collection}.words.json"


def _json_or_none(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _read_live(path: str, alias: str, file_of: Callable[[Path, str], Path]) -> Any:
    """A JSON file kept beside the live collection of `alias`, read without the store's lock (the
    alias file and it are replaced atomically); None when there is none yet or it is unreadable."""
    root = Path(path)
    aliases = _json_or_none(root / ALIASES)
    collection = aliases.get(alias) if isinstance(aliases, dict) else None
    return None if collection is None else _json_or_none(file_of(root, str(collection)))


def _articles(data: Any) -> dict[str, tuple[str, str]] | None:
    try:
        return {str(k): (str(v[0]), str(v[1])) for k, v in data.items()}
    except (TypeError, IndexError, AttributeError):
        return None


def _words(data: Any) -> Vocabulary | None:
    try:
        return Vocabulary.from_json(data)
    except (TypeError, ValueError, AttributeError):
        return None


def read_vocabulary(path: str, alias: str) -> Vocabulary | None:
    """The live collection's vocabulary (`retrieval.vocabulary`), read without the store's lock; None
    when it has not been written yet."""
    data = _read_live(path, alias, _vocabulary_path)
    return None if data is None else _words(data)


def read_catalogue(path: str, alias: str) -> dict[str, tuple[str, str]] | None:
    """The live collection's articles as {id: (title, url)}, read without the store's lock; None when
    there is no catalogue for `alias` yet."""
    data = _read_live(path, alias, _catalogue_path)
    return None if data is None else _articles(data)


class EdgeStore:
    in_process = True

    def __init__(self, *, alias: str, path: str):
        self.alias = alias
        self.root = Path(path)
        self._collections = self.root / "collections"
        self._alias_file = self.root / ALIASES
        self._shards: dict[str, Any] = {}
        self._live_name: str | None = None
        # The live collection's catalogue and vocabulary, as last written or read: (collection, both).
        self._library: tuple[str, dict[str, tuple[str, str]], Vocabulary] | None = None
        self._lock = threading.RLock()
        try:
            self._collections.mkdir(parents=True, exist_ok=True)
            self._lock_file: IO[str] | None = open(self.root / ".lock", "w")
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StoreInUse(
                f"the embedded store at {self.root} is in use by another aisafety-bot process; stop it first, "
                "or use a Qdrant server (QDRANT_URL) to share the index between processes"
            ) from None
        except OSError as exc:
            raise StoreError(f"cannot open the embedded store at {self.root}: {exc}") from exc

    # -- collections and the alias -------------------------------------------------------------
    def _aliases(self) -> dict[str, str]:
        try:
            data = json.loads(self._alias_file.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise StoreError(f"{self._alias_file} is unreadable: {exc}") from exc
        return {str(k): str(v) for k, v in data.items()}

    def live_collection(self) -> str | None:
        # Read once: this process holds the folder's lock, so only `switch_alias` can change it.
        if self._live_name is None:
            name = self._aliases().get(self.alias)
            if name and (self._collections / name).is_dir():
                self._live_name = name
                self._known(name)  # read, or written when built before they existed
        return self._live_name

    def write_catalogue(self) -> None:
        """Record the live collection's articles (id, title, url) and its vocabulary for readers without
        the lock, from one pass over its passages (each page of it under the lock, not the whole pass:
        searches go on meanwhile). Kept for this process's `catalogue` and `vocabulary` too."""
        name = self._live_name
        if name is None:
            return
        articles, words = library_of(self._scroll(name, LIBRARY_FIELDS, first_only=False))
        self._library = (name, articles, words)
        try:
            target = _catalogue_path(self.root, name)
            target.parent.mkdir(exist_ok=True)
            _write_json_atomically(target, {aid: list(entry) for aid, entry in articles.items()})
            _write_json_atomically(_vocabulary_path(self.root, name), words.to_json())
        except OSError as exc:  # only the report depends on them
            _log.warning("could not write the article catalogue: %s", exc)

    def _scroll(self, collection: str, fields: list[str], *, first_only: bool) -> Iterator[dict[str, Any]]:
        """Every stored payload of `collection` (`fields` of it), or every article's first passage's."""
        first = (
            qe.Filter(must=[qe.FieldCondition(key="chunk", match=qe.MatchValue(0))]) if first_only else None
        )
        offset = None
        while True:
            with self._lock:
                records, offset = self._shard(collection).scroll(
                    qe.ScrollRequest(
                        offset=offset, limit=1024, filter=first, with_payload=fields, with_vector=False
                    )
                )
            for r in records:
                yield r.payload or {}
            if offset is None:
                return

    def _shard(self, name: str) -> Any:
        with self._lock:
            shard = self._shards.get(name)
            if shard is None:
                folder = self._collections / name
                if not folder.is_dir():
                    raise StoreError(f"collection {name} does not exist in {self.root}")
                try:
                    shard = qe.EdgeShard.load(str(folder))
                except Exception as exc:  # the engine raises plain exceptions with its own messages
                    raise StoreError(f"cannot load collection {name}: {exc}") from exc
                self._shards[name] = shard
            return shard

    def _live(self) -> Any:
        name = self.live_collection()
        if name is None:
            raise StoreError(NO_INDEX)
        return self._shard(name)

    def new_collection(self, dim: int) -> str:
        name = collection_name(self.alias)
        config = qe.EdgeConfig(
            vectors={
                n: qe.EdgeVectorParams(
                    size=dim,
                    distance=qe.Distance.Cosine,
                    hnsw_config=None
                    if n == DENSE
                    else qe.HnswIndexConfig(
                        m=HNSW_M,
                        ef_construct=HNSW_EF_CONSTRUCT,
                        full_scan_threshold=ARTICLE_VECTOR_FULL_SCAN_KB,
                    ),
                )
                for n in DENSE_VECTORS
            },
            sparse_vectors={SPARSE: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
            # A Qdrant server's defaults, spelt out: the engine's own leave a library in plain segments.
            hnsw_config=qe.HnswIndexConfig(
                m=HNSW_M, ef_construct=HNSW_EF_CONSTRUCT, full_scan_threshold=10_000
            ),
            optimizers=qe.EdgeOptimizersConfig(indexing_threshold=10_000, default_segment_number=2),
        )
        with self._lock:
            shard = self._shards[name] = qe.EdgeShard.create(str(self._collections / name), config)
            for field, kind in INDEXED_FIELDS.items():
                schema = qe.PayloadSchemaType.Keyword if kind == "keyword" else qe.PayloadSchemaType.Integer
                shard.update(qe.UpdateOperation.create_field_index(field, schema))
        return name

    def _optimise(self, name: str) -> None:
        """Build the collection's search index (HNSW graphs) now: the in-process engine has no background
        optimiser, so without this every search scans every vector of an ever-growing plain segment.
        Below the indexing threshold (a few thousand passages) plain segments stay, and scanning is fast."""
        started = time.perf_counter()
        with self._lock:
            changed = self._shard(name).optimize()
        if changed:
            _log.info("built the search index of %s in %.1f s", name, time.perf_counter() - started)

    def switch_alias(self, collection: str) -> None:
        """Flush the new collection, point the alias at it atomically, then drop what it replaced."""
        with self._lock:
            self._optimise(collection)
            self._shard(collection).flush()
            aliases = self._aliases()
            aliases[self.alias] = collection
            _write_json_atomically(self._alias_file, aliases)
            self._live_name = collection
            for name in self.build_collections():
                if name != collection:
                    self.drop_collection(name)
        self.write_catalogue()

    def build_collections(self) -> list[str]:
        return builds_of(self.alias, (p.name for p in self._collections.iterdir()))

    def drop_collection(self, name: str) -> None:
        with self._lock:
            shard = self._shards.pop(name, None)
            if shard is not None:
                shard.close()
            shutil.rmtree(self._collections / name, ignore_errors=True)
            _catalogue_path(self.root, name).unlink(missing_ok=True)
            _vocabulary_path(self.root, name).unlink(missing_ok=True)
            if name == self._live_name:
                self._live_name = None

    def close(self) -> None:
        with self._lock:
            for shard in self._shards.values():
                shard.close()
            self._shards.clear()
            if self._lock_file is not None:
                self._lock_file.close()
                self._lock_file = None

    # -- writing -------------------------------------------------------------------------------
    def article_states(self, collection: str) -> dict[str, ArticleState]:
        return article_states(
            lambda first_only: self._scroll(collection, STATE_FIELDS, first_only=first_only)
        )

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
        """One update of the engine, one record of its write-ahead log: a kill leaves the article's old
        version or its new one, whole (`article_points`)."""
        points = [
            qe.Point(
                p.id,
                {
                    **p.dense,
                    **(
                        {SPARSE: qe.SparseVector(indices=p.sparse.indices, values=p.sparse.values)}
                        if p.sparse is not None
                        else {}
                    ),
                },
                p.payload,
            )
            for p in article_points(doc, chunks, vectors, title, phrasings, old)
        ]
        with self._lock:
            self._shard(collection).update(qe.UpdateOperation.upsert_points(points))

    def delete_article(self, collection: str, article_id: str) -> None:
        article = qe.Filter(must=[qe.FieldCondition(key="article_id", match=qe.MatchValue(article_id))])
        with self._lock:
            self._shard(collection).update(qe.UpdateOperation.delete_points_by_filter(article))

    def sweep(self, collection: str) -> None:
        dead = qe.Filter(must=[qe.FieldCondition(key=TOMBSTONE, match=qe.MatchValue(DEAD))])
        with self._lock:
            self._shard(collection).update(qe.UpdateOperation.delete_points_by_filter(dead))

    def flush(self) -> None:
        with self._lock:
            for name, shard in self._shards.items():
                self._optimise(name)
                shard.flush()
        self.write_catalogue()

    # -- reading -------------------------------------------------------------------------------
    def count(self) -> int:
        if self.live_collection() is None:
            return 0
        with self._lock:
            return int(self._live().count(qe.CountRequest(exact=True)))

    def rankings(self, query: Embedded, *, limit: int, mode: SearchMode = "hybrid") -> dict[str, list[Hit]]:
        """The shared search plan, as one batched request to the in-process engine."""
        plan = search_plan(query, limit=limit, mode=mode)
        if plan is None:
            return {}
        requests = [
            qe.QueryRequest(
                limit=plan.limit,
                query=_nearest(r),
                with_payload=list(plan.fields),
                params=None if plan.breadth(r) is None else qe.SearchParams(hnsw_ef=plan.breadth(r)),
            )
            for r in plan.rankings
        ]
        with self._lock:
            try:
                answers = self._live().query_batch(qe.QueryBatchRequest(requests))
            except StoreError:
                raise
            except Exception as exc:  # the engine raises plain exceptions with its own messages
                if "dimension" in str(exc).lower():
                    raise StoreError(WRONG_MODEL) from None
                raise StoreError(f"search failed in {self.root}: {exc}") from None
        return ranked(plan, (((p.score, p.payload) for p in points) for points in answers))

    def search(
        self, query: Embedded, *, limit: int, mode: SearchMode = "hybrid", top: int | None = None
    ) -> list[Passage]:
        return best_articles(self, query, limit=limit, mode=mode, top=top)

    def payloads(self, keys: Sequence[tuple[str, int]]) -> dict[tuple[str, int], dict[str, Any]]:
        if not keys or self.live_collection() is None:
            return {}
        ids: list[Any] = passage_points(keys)
        with self._lock:
            records = self._live().retrieve(ids, with_payload=HIT_FIELDS, with_vector=False)
        return by_passage(r.payload for r in records)

    def articles(self, article_ids: Sequence[str]) -> dict[str, Passage]:
        return first_passages(self.payloads, article_ids)

    def catalogue(self) -> dict[str, tuple[str, str]]:
        live = self.live_collection()
        return self._known(live)[1] if live else {}

    def vocabulary(self) -> Vocabulary:
        live = self.live_collection()
        return self._known(live)[2] if live else EMPTY

    def _known(self, live: str) -> tuple[str, dict[str, tuple[str, str]], Vocabulary]:
        """The live collection's catalogue and vocabulary: kept since this process wrote or read them,
        else read from the files beside the index, else written again."""
        if self._library is None or self._library[0] != live:
            articles = _articles(_json_or_none(_catalogue_path(self.root, live)))
            words = _words(_json_or_none(_vocabulary_path(self.root, live)))
            if articles is None or words is None:
                self.write_catalogue()
            else:
                self._library = (live, articles, words)
        assert self._library is not None
        return self._library
