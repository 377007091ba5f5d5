"""What every vector store backend shares: the protocol, point ids, payloads and the fusion settings.

Two backends implement `VectorStore`: `retrieval.store.QdrantStore` (a Qdrant server, through
qdrant-client) and `retrieval.edge_store.EdgeStore` (Qdrant's in-process engine, the embedded default).
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from retrieval import rescoring
from retrieval.documents import Chunk, Document, Passage
from retrieval.embeddings import Embedded, SparseVec
from retrieval.errors import StoreError as StoreError  # re-exported: callers import it from here
from retrieval.rescoring import DENSE, LEAD, SPARSE, TITLE, Hit, SearchMode
from retrieval.vocabulary import Vocabulary

__all__ = ["DENSE", "LEAD", "SPARSE", "TITLE", "Hit", "SearchMode", "StoreError"]

# The article-level vectors sit on one passage of each article: their search index must not fall back
# to a full scan of every passage, which Qdrant's default threshold does (4.3 ms at 100,000 passages,
# 0.8 ms with this one; benchmarks/bench_large.py).
ARTICLE_VECTOR_FULL_SCAN_KB = 100
# HNSW graphs built with twice Qdrant's default breadth (100): at 100,000 passages a search of the same
# breadth then finds more of the exact top 50's articles (0.926 -> 0.981 on a server at breadth 256), at
# the same speed; an index takes longer to build (benchmarks/bench_large.py; `SearchPlan.hnsw_ef`).
HNSW_M = 16
HNSW_EF_CONSTRUCT = 200

# The named vectors: DENSE the passage itself (with its title); TITLE the article's title (community
# questions often read like aisafety.info titles); LEAD the article's opening passage (what the whole
# article is about); SPARSE BM25 of the passage (with its title).
DENSE_VECTORS = (DENSE, TITLE, LEAD)
_ID_NAMESPACE = uuid.UUID("6f1c2a4e-5b8d-4f3a-9c7e-2d1b0a9f8e7d")


@dataclass(frozen=True)
class ArticleState:
    content_hash: str
    chunks: int
    phrasings: int = 0  # the article's other titles, each a point of its own (`phrasing_point_id`)
    # What the change log and the removal guard need of an article that is gone from its source.
    source: str = ""
    title: str = ""
    url: str = ""


def collection_name(alias: str) -> str:
    """A new build's collection: the alias and the time in milliseconds."""
    return f"{alias}_{time.time_ns() // 1_000_000}"


def builds_of(alias: str, names: Iterable[str]) -> list[str]:
    """The collections built for `alias` (`collection_name`), oldest first; another alias's builds are not
    among them, even when that alias begins with this one and an underscore ("lib" and "lib_v2")."""
    built = re.compile(rf"{re.escape(alias)}_\d+")
    return sorted(n for n in names if built.fullmatch(n))


def point_id(article_id: str, index: int) -> str:
    """Deterministic: the same passage of the same article always lands on the same point."""
    return str(uuid.uuid5(_ID_NAMESPACE, f"{article_id}#{index}"))


def phrasing_point_id(article_id: str, index: int) -> str:
    """The point of the article's `index`th other title (a phrasing of its question)."""
    return str(uuid.uuid5(_ID_NAMESPACE, f"{article_id}#title{index}"))


@dataclass(frozen=True)
class PointSpec:
    """One point to write, in no SDK's types: each backend translates it. A tombstone has no vectors
    (no search finds it) and marks a slot an article no longer uses."""

    id: str
    dense: dict[str, list[float]]
    sparse: SparseVec | None
    payload: dict[str, Any]


# A tombstone's payload: its article and this mark (a keyword: the in-process engine matches no booleans).
TOMBSTONE = "state"
DEAD = "tombstone"


def article_points(
    doc: Document,
    chunks: Sequence[Chunk],
    vectors: Sequence[Embedded],
    title: Embedded,
    phrasings: Sequence[Embedded] = (),
    old: ArticleState | None = None,
) -> list[PointSpec]:
    """Every point of an article's new version, to be written in ONE store operation: its passages, a
    title-only point per other phrasing, and a tombstone on every slot its old version used beyond them.
    A kill before the operation leaves the old version whole, after it the new one: the old tail is never
    left searchable beside a new head (tombstones are swept later, `VectorStore.sweep`)."""
    points = [
        PointSpec(
            point_id(doc.id, c.index),
            dense_vectors(c.index, v, title, vectors[0]),
            v.sparse,
            payload(doc, c, len(chunks)),
        )
        for c, v in zip(chunks, vectors, strict=True)
    ]
    points += [
        PointSpec(
            phrasing_point_id(doc.id, k),
            {TITLE: v.dense},
            None,
            {"article_id": doc.id, "phrasing": k, "title": doc.alt_titles[k], "hash": doc.content_hash},
        )
        for k, v in enumerate(phrasings)
    ]
    if old is not None:
        dead = {"article_id": doc.id, TOMBSTONE: DEAD}
        points += [PointSpec(point_id(doc.id, i), {}, None, dead) for i in range(len(chunks), old.chunks)]
        points += [
            PointSpec(phrasing_point_id(doc.id, k), {}, None, dead)
            for k in range(len(phrasings), old.phrasings)
        ]
    return points


class VectorStore(Protocol):
    """Collections behind an alias, so a rebuild can be switched in atomically when complete."""

    alias: str
    # True when searching is CPU work in this process (an embedded store), False when it waits on a
    # server: CPU work goes to the retriever's own thread, waiting to the shared pool.
    in_process: bool

    def live_collection(self) -> str | None: ...

    def new_collection(self, dim: int) -> str: ...

    def switch_alias(self, collection: str) -> None: ...

    def build_collections(self) -> list[str]: ...

    def drop_collection(self, name: str) -> None: ...

    def article_states(self, collection: str) -> dict[str, ArticleState]: ...

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
        """Write an article's new version in one operation (`article_points`); `old`: its stored state."""
        ...

    def delete_article(self, collection: str, article_id: str) -> None:
        """Every point of the article, in one operation."""
        ...

    def sweep(self, collection: str) -> None:
        """Delete the tombstones `upsert` left (one operation; harmless if never done)."""
        ...

    def flush(self) -> None: ...

    def count(self) -> int: ...

    def rankings(
        self, query: Embedded, *, limit: int, mode: SearchMode = "hybrid"
    ) -> dict[str, list[Hit]]: ...

    def search(
        self, query: Embedded, *, limit: int, mode: SearchMode = "hybrid", top: int | None = None
    ) -> list[Passage]: ...

    def payloads(self, keys: Sequence[tuple[str, int]]) -> dict[tuple[str, int], dict[str, Any]]: ...

    def articles(self, article_ids: Sequence[str]) -> dict[str, Passage]: ...

    def catalogue(self) -> dict[str, tuple[str, str]]:
        """Every article of the live collection as {id: (title, url)}, from first passages only."""
        ...

    def vocabulary(self) -> Vocabulary:
        """What the live collection's passages say about words (`retrieval.vocabulary`), for the report."""
        ...

    def close(self) -> None: ...


def payload(doc: Document, chunk: Chunk, chunks: int) -> dict[str, Any]:
    """A passage's stored payload. Every passage carries its article's hash and passage count, so an
    incremental ingest learns each article's state from its first passages alone (`article_states`)."""
    return {
        "article_id": doc.id,
        "chunk": chunk.index,
        "chunks": chunks,
        "title": doc.title,
        "url": doc.url,
        "source": doc.source,
        "heading": chunk.heading,
        "text": chunk.text,
        "hash": doc.content_hash,
        "related": list(doc.related),
        "phrasings": len(doc.alt_titles),
        "tags": list(doc.tags),
    }


def dense_vectors(index: int, passage: Embedded, title: Embedded, lead: Embedded) -> dict[str, list[float]]:
    """A passage's dense vectors. The article-level ones (title, lead) sit on its first passage only, so
    each article appears once in those rankings: no ties between passages of one article."""
    vectors = {DENSE: passage.dense}
    if index == 0:
        vectors[TITLE] = title.dense
        vectors[LEAD] = lead.dense
    return vectors


# What reading an article's state needs of a payload.
STATE_FIELDS = ["article_id", "hash", "chunk", "chunks", "phrasings", "source", "title", "url"]
# Payload indexes every collection gets: the first passages are found by `chunk` without a full scan.
INDEXED_FIELDS = {"article_id": "keyword", "chunk": "integer"}

Scroll = Callable[[bool], Iterable[dict[str, Any]]]


def article_states(scroll: Scroll) -> dict[str, ArticleState]:
    """Each article's content hash and passage count. `scroll(first_only)` yields stored payloads
    (`STATE_FIELDS`), of every article's first passage only when `first_only`: one point per article,
    found through the payload index, instead of every passage of the library. A collection written before
    passages carried their article's count is read whole."""
    states: dict[str, ArticleState] = {}
    for pl in scroll(True):
        if "chunks" not in pl:
            break
        states[str(pl.get("article_id"))] = _state(pl, int(pl["chunks"]))
    else:
        return states
    states = {}
    for pl in scroll(False):
        if "chunk" not in pl:  # a phrasing's point or a tombstone
            continue
        aid = str(pl.get("article_id"))
        prev = states.get(aid)
        n = max(prev.chunks if prev else 0, int(pl.get("chunk", 0)) + 1)
        states[aid] = _state(pl, n)
    return states


def _state(pl: dict[str, Any], chunks: int) -> ArticleState:
    return ArticleState(
        str(pl.get("hash")),
        chunks,
        int(pl.get("phrasings") or 0),
        str(pl.get("source") or ""),
        str(pl.get("title") or ""),
        str(pl.get("url") or ""),
    )


# The payload fields of the list of articles (`catalogue`): the report's "never cited".
CATALOGUE_FIELDS = ["article_id", "title", "url"]


# The payload fields of `library_of`: the catalogue's and the passages' text.
LIBRARY_FIELDS = [*CATALOGUE_FIELDS, "chunk", "text"]


def library_of(payloads: Iterable[dict[str, Any]]) -> tuple[dict[str, tuple[str, str]], Vocabulary]:
    """The catalogue (`catalogue_of`, from the first passages) and the vocabulary (`vocabulary_of`) of a
    collection, in one pass over every passage's payload (`LIBRARY_FIELDS`)."""
    first: list[dict[str, Any]] = []

    def every() -> Iterator[dict[str, Any]]:
        for pl in payloads:
            if pl.get("chunk") == 0:
                first.append(pl)
            yield pl

    words = vocabulary_of(every())
    return catalogue_of(first), words


def vocabulary_of(payloads: Iterable[dict[str, Any]]) -> Vocabulary:
    """The library's vocabulary (`retrieval.vocabulary`) from every passage's payload (its `text`)."""
    return Vocabulary.from_texts(str(pl.get("text") or "") for pl in payloads)


def catalogue_of(first_passages: Iterable[dict[str, Any]]) -> dict[str, tuple[str, str]]:
    """{article id: (title, url)} from the articles' first passages' payloads (`CATALOGUE_FIELDS`)."""
    return {
        str(pl.get("article_id")): (str(pl.get("title", "")), str(pl.get("url", ""))) for pl in first_passages
    }


# The payload fields a search hit needs (not the hash or chunk bookkeeping): less to send back.
HIT_FIELDS = ["article_id", "chunk", "title", "url", "text", "source", "related"]


def to_passage(pl: dict[str, Any], *, score: float, dense: float = 0.0) -> Passage:
    """A search hit from a stored payload, with its fused score and its dense cosine to the query."""
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


# -- one search plan for every backend ---------------------------------------------------------------

NO_INDEX = "there is no index yet: run `aisafety-bot ingest`"
WRONG_MODEL = (
    "the index was built with another embedding model (its vectors have another size): run "
    "`aisafety-bot ingest --rebuild` to rebuild it with EMBEDDING_MODEL"
)


@dataclass(frozen=True)
class Ranking:
    """One ranking of the passages: a named vector of the collection and the query's vector for it."""

    using: str
    dense: list[float] | None = None
    sparse: SparseVec | None = None


@dataclass(frozen=True)
class SearchPlan:
    """What a search asks of a store, in one batched request: each ranking's best passages. A hit names
    only its article and passage number: a search ranks 50 passages a ranking and keeps a few articles,
    whose payloads one lookup then fetches (`complete`); parsing 200 full payloads cost more than the four
    searches. The rankings are combined here, not in the store (`retrieval.rescoring`). Each backend
    translates the plan for its SDK."""

    rankings: tuple[Ranking, ...]
    limit: int
    fields: tuple[str, ...] = ("article_id", "chunk")
    # The approximate (HNSW) search's breadth. The passage ranking: at 100,000 passages (64 near-copies
    # of each) the default (the index's ef_construct) found 80% of the exact top 50; 256 found 93-96% of
    # the exact top 50's articles depending on the build, 512 found 99% for about 0.6 ms more on a server
    # (benchmarks/bench_large.py). The title and lead rankings search one point per article (18,000
    # at that size): 256 finds all. Small libraries are searched exactly.
    hnsw_ef: int = 512
    article_hnsw_ef: int = 256

    def breadth(self, r: Ranking) -> int | None:
        """The HNSW breadth for ranking `r` (None for BM25, which has no graph)."""
        if r.dense is None:
            return None
        return self.hnsw_ef if r.using == DENSE else self.article_hnsw_ef


Payloads = Callable[[Sequence[tuple[str, int]]], dict[tuple[str, int], dict[str, Any]]]


def complete(found: list[Passage], payloads: Payloads) -> list[Passage]:
    """The results with their passages' title, url, text, source and related articles, fetched in one
    lookup by (article id, passage number)."""
    got = payloads([(p.article_id, p.chunk) for p in found]) if found else {}
    out = []
    for p in found:
        pl = got.get((p.article_id, p.chunk), {})
        out.append(
            replace(
                p,
                title=str(pl.get("title", p.title)),
                url=str(pl.get("url", p.url)),
                text=str(pl.get("text", p.text)),
                source=str(pl.get("source", p.source)),
                related=tuple(pl.get("related") or p.related),
            )
        )
    return out


def first_passages(payloads: Payloads, article_ids: Sequence[str]) -> dict[str, Passage]:
    """The first passage of each of these articles (for "read next" links), from one lookup."""
    found = payloads([(a, 0) for a in article_ids]) if article_ids else {}
    return {aid: to_passage(pl, score=0.0) for (aid, _), pl in found.items()}


def best_articles(
    store: VectorStore, query: Embedded, *, limit: int, mode: SearchMode, top: int | None
) -> list[Passage]:
    """Every backend's search: its rankings, rescored (`retrieval.rescoring`); the best `top` articles
    (all found when None), each as its best passage, with its payload."""
    found = rescoring.passages(store.rankings(query, limit=limit, mode=mode), mode, top=top)
    return complete(found, store.payloads)


def passage_points(keys: Sequence[tuple[str, int]]) -> list[str]:
    return [point_id(article_id, chunk) for article_id, chunk in keys]


def by_passage(payloads: Iterable[dict[str, Any] | None]) -> dict[tuple[str, int], dict[str, Any]]:
    out = {}
    for pl in payloads:
        pl = pl or {}
        out[(str(pl.get("article_id", "")), int(pl.get("chunk", 0)))] = pl
    return out


def search_plan(query: Embedded, *, limit: int, mode: SearchMode = "hybrid") -> SearchPlan | None:
    """The plan for `query`; None when there is nothing to search (a BM25-only search without terms)."""
    dense = [Ranking(name, dense=query.dense) for name in DENSE_VECTORS]
    sparse = [Ranking(SPARSE, sparse=query.sparse)] if query.sparse.indices else []
    if mode == "sparse" and not sparse:
        return None
    rankings = dense[:1] if mode == "dense" else sparse if mode == "sparse" else dense + sparse
    return SearchPlan(tuple(rankings), limit)


def ranked(
    plan: SearchPlan, answers: Iterable[Iterable[tuple[float, dict[str, Any] | None]]]
) -> dict[str, list[Hit]]:
    """A store's answer to a plan, (score, payload) per point in each ranking, as rankings of hits."""
    return {
        r.using: [Hit(float(score), pl or {}) for score, pl in points]
        for r, points in zip(plan.rankings, answers, strict=True)
    }
