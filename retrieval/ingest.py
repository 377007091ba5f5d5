"""load -> chunk -> embed -> upsert, incremental by content hash, with an atomic alias switch on rebuild."""

from __future__ import annotations

import logging
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal
from urllib.parse import unquote

from retrieval.chunking import chunk_document
from retrieval.documents import ArticleChange, ChangeKind, Chunk, Document, SkippedRecord
from retrieval.embeddings import Embedder
from retrieval.errors import IngestError
from retrieval.index import ArticleState, VectorStore
from retrieval.sources import STUB_WORDS, SourceError, is_stub, read_source

_log = logging.getLogger(__name__)

EMBED_BATCH = 64
# Without a terminal, a progress line at every tenth of the work and at least this often.
PROGRESS_EVERY_S = 30.0

ProgressStyle = Literal["bar", "lines", "none"]


class _Progress:
    """A tqdm bar on a terminal; plain lines (for logs, containers and CI) otherwise; nothing for an
    ingest that has nothing to embed."""

    def __init__(self, total: int, style: ProgressStyle, *, out: Any = None):
        self.total, self.done = total, 0
        self.style: ProgressStyle = style if total > 0 else "none"
        self.out = out or sys.stderr
        self._bar: Any = None
        self._started = self._last = time.monotonic()
        self._next_tenth = 1
        if self.style == "bar":
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit="passage", desc="Embedding", dynamic_ncols=True, file=self.out)
        elif self.style == "lines":
            self._line()

    def _line(self) -> None:
        pct = 100 * self.done // self.total
        elapsed = time.monotonic() - self._started
        print(
            f"Embedding: {self.done}/{self.total} passages ({pct}%, {elapsed:.0f} s)",
            file=self.out,
            flush=True,
        )
        self._last = time.monotonic()

    def update(self, n: int) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
        elif self.style == "lines":
            tenth = 10 * self.done // self.total
            if tenth >= self._next_tenth or time.monotonic() - self._last >= PROGRESS_EVERY_S:
                self._next_tenth = tenth + 1
                self._line()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


@dataclass
class IngestReport:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    skipped: int = 0
    chunks: int = 0
    skipped_records: list[SkippedRecord] = field(default_factory=list)
    collection: str = ""
    rebuilt: bool = False
    # Every article added, changed or removed, for the library's change log.
    changes: list[ArticleChange] = field(default_factory=list)
    articles: int = 0  # in the library once done

    def summary(self) -> dict[str, int]:
        keys = ("added", "updated", "unchanged", "deleted", "skipped", "chunks")
        return {k: int(getattr(self, k)) for k in keys}

    def to_json(self) -> dict[str, object]:
        data: dict[str, object] = dict(self.summary())
        data["skipped_records"] = [asdict(s) for s in self.skipped_records]
        data["collection"] = self.collection
        data["rebuilt"] = self.rebuilt
        return data


class LargeRemoval(IngestError):
    """The sources would remove more of a source's articles than `SYNC_MAX_REMOVE` allows."""


# The share of a source's articles one ingest may remove (SYNC_MAX_REMOVE): a feed that lost most of its
# answers for an hour must not take them out of the library.
MAX_REMOVE = 0.25
# Articles of the Alignment Research Dataset's aisafety.info file: md5 ids and `?state=<pageid>` urls.
_STATE_URL = re.compile(r"^https?://(?:www\.)?aisafety\.info/?\?(?:[^#]*&)?state=([^&#]+)", re.I)


def feed_id_of(url: str) -> str | None:
    """The feed's id (`aisafety.info:<pageid>`) of an article the dataset linked as `?state=<pageid>`:
    the same article under its old id."""
    m = _STATE_URL.match(url.strip())
    return f"aisafety.info:{unquote(m.group(1))}" if m else None


def load_documents(
    sources: Sequence[str],
    report: IngestReport,
    *,
    aisafety_info_url: str | None = None,
    prefetched: Mapping[str, object] | None = None,
) -> list[Document]:
    """Every usable article of every source; bad records, stubs (`is_stub`) and duplicate ids are
    skipped and counted. `aisafety_info_url`: where the `aisafety.info` source reads the site's feed;
    `prefetched`: feeds already downloaded, by SOURCES entry. A source with no usable article at all is
    an error: an empty feed or folder is a fault, not a library with nothing in it."""
    docs: dict[str, Document] = {}
    first_seen: dict[str, str] = {}
    for spec in sources:
        usable = 0
        for item in read_source(spec, aisafety_info_url=aisafety_info_url, prefetched=prefetched):
            if isinstance(item, SkippedRecord):
                report.skipped_records.append(item)
                continue
            line, doc = item
            where = f"{spec}:{line}"
            if is_stub(doc.text):
                report.skipped_records.append(
                    SkippedRecord(
                        spec, line, f"a stub: under {STUB_WORDS} words besides links ({doc.title[:60]!r})"
                    )
                )
                continue
            if doc.id in docs:
                report.skipped_records.append(
                    SkippedRecord(spec, line, f"duplicate id {doc.id!r} (first at {first_seen[doc.id]})")
                )
                continue
            docs[doc.id] = doc
            first_seen[doc.id] = where
            usable += 1
        if not usable and len(sources) > 1:
            raise SourceError(f"{spec} gave no usable articles")
    report.skipped = len(report.skipped_records)
    if report.skipped:  # the records themselves are listed once, by the caller (see IngestReport)
        _log.info("%d records skipped", report.skipped)
    return list(docs.values())


def _batches(
    planned: Iterable[tuple[Document, list[Chunk]]], size_limit: int = EMBED_BATCH
) -> Iterable[list[tuple[Document, list[Chunk]]]]:
    """Several articles per embedding call: the model is fastest on full batches."""
    batch: list[tuple[Document, list[Chunk]]] = []
    size = 0
    for doc, chunks in planned:
        batch.append((doc, chunks))
        size += len(chunks) + 1 + len(doc.alt_titles)
        if size >= size_limit:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


@dataclass(frozen=True)
class _Plan:
    """What an ingest will do, worked out before it writes anything."""

    todo: list[Document]
    removed: dict[str, ArticleState]  # stored articles gone from the sources
    renamed: dict[str, str]  # new id -> the old id of the same article (the dataset's md5 ids)
    unchanged: int


def _plan(docs: Sequence[Document], existing: Mapping[str, ArticleState]) -> _Plan:
    wanted = {d.id for d in docs}
    renamed: dict[str, str] = {}
    removed: dict[str, ArticleState] = {}
    for article_id, state in existing.items():
        if article_id in wanted:
            continue
        new_id = feed_id_of(state.url)
        if new_id is not None and new_id in wanted and new_id not in existing and new_id not in renamed:
            renamed[new_id] = article_id
        else:
            removed[article_id] = state
    todo = []
    unchanged = 0
    for doc in docs:
        stored = existing.get(doc.id)
        if stored is not None and stored.content_hash == doc.content_hash:
            unchanged += 1
        else:
            todo.append(doc)
    return _Plan(todo, removed, renamed, unchanged)


def _check_removal(plan: _Plan, existing: Mapping[str, ArticleState], max_remove: float) -> None:
    """Refuse (`LargeRemoval`) when the sources would remove more than `max_remove` of any one source's
    stored articles; nothing has been written yet."""
    if max_remove >= 1 or not plan.removed:
        return
    stored = Counter(state.source for state in existing.values())
    gone = Counter(state.source for state in plan.removed.values())
    for source, n in gone.items():
        share = n / stored[source]
        if share > max_remove:
            raise LargeRemoval(
                f"the sources would remove {n} of the library's {stored[source]} {source or 'unnamed'} "
                f"articles ({share:.0%}, over SYNC_MAX_REMOVE={max_remove:g}); nothing was changed. If "
                "they were really taken down, run `aisafety-bot ingest --allow-large-removal` (or sync "
                "from the report page)"
            )


def ingest(
    *,
    store: VectorStore,
    embedder: Embedder,
    sources: Sequence[str],
    rebuild: bool = False,
    progress: ProgressStyle | bool = False,
    on_batch: Callable[[int], None] | None = None,
    aisafety_info_url: str | None = None,
    max_remove: float = MAX_REMOVE,
    prefetched: Mapping[str, object] | None = None,
    batch_size: int = EMBED_BATCH,
) -> IngestReport:
    """Bring the index in line with the sources.

    Without `rebuild`, the live collection is updated in place: unchanged articles are not embedded
    again, changed ones are re-embedded, and articles gone from the sources are deleted; each article is
    written in one store operation, so a kill at any point leaves every article whole, old or new. With
    `rebuild` (or when there is no index yet) a new collection is filled and the alias switched to it only
    when it is complete; if anything fails on the way, the new collection is dropped and the live one is
    untouched. Either way nothing is written when the sources would remove more than `max_remove` of a
    source's articles (`LargeRemoval`; 1 allows any removal). `batch_size`: passages per embedding call
    (a running bot's sync uses small ones, so questions never wait long for the model).
    """
    report = IngestReport()
    try:
        docs = load_documents(sources, report, aisafety_info_url=aisafety_info_url, prefetched=prefetched)
    except SourceError as exc:
        raise IngestError(f"{exc} (the index was not changed)", retry_after=exc.retry_after) from exc
    live = store.live_collection()
    if not docs:
        raise IngestError(
            f"no usable articles in {', '.join(sources)} ({report.skipped} records skipped); "
            "the index was not changed"
        )
    previous = store.article_states(live) if live is not None else {}
    plan = _plan(docs, previous)
    _check_removal(plan, previous, max_remove)

    fresh = rebuild or live is None
    target = store.new_collection(embedder_dim(embedder)) if fresh else str(live)
    report.collection = target
    report.rebuilt = fresh
    existing = {} if fresh else previous
    todo = list(docs) if fresh else plan.todo
    report.unchanged = 0 if fresh else plan.unchanged
    try:
        planned = [(doc, chunk_document(doc)) for doc in todo]
        total_chunks = sum(len(chunks) for _, chunks in planned)
        style: ProgressStyle = "bar" if progress is True else ("none" if progress is False else progress)
        bar = _Progress(total_chunks, style)
        try:
            for n, batch in enumerate(_batches(planned, batch_size)):
                texts = [c.embed_text(doc.title) for doc, chunks in batch for c in chunks]
                titles = [t for doc, _ in batch for t in (doc.title, *doc.alt_titles)]
                vectors = embedder.embed_passages(texts + titles)
                pos, tpos = 0, len(texts)
                for doc, chunks in batch:
                    titled = vectors[tpos : tpos + 1 + len(doc.alt_titles)]
                    tpos += len(titled)
                    old = existing.get(doc.id)
                    store.upsert(
                        target, doc, chunks, vectors[pos : pos + len(chunks)], titled[0], titled[1:], old
                    )
                    pos += len(chunks)
                    if old is None and not fresh and doc.id in plan.renamed:
                        store.delete_article(target, plan.renamed[doc.id])
                    if old is None:
                        report.added += 1
                    else:
                        report.updated += 1
                    report.chunks += len(chunks)
                bar.update(len(texts))
                if on_batch is not None:
                    on_batch(n)
        finally:
            bar.close()
        if not fresh:
            for article_id in plan.removed:
                store.delete_article(target, article_id)
            report.deleted = len(plan.removed)
            if report.added or report.updated or report.deleted:
                store.sweep(target)
                store.flush()  # nothing to flush (or to re-catalogue) when nothing changed
        else:
            report.deleted = len(plan.removed)
            store.switch_alias(target)
    except BaseException:
        if fresh:
            _log.warning("ingest interrupted; dropping the unfinished collection %s", target)
            try:
                store.drop_collection(target)
            except Exception:  # the original error matters more than the clean-up
                _log.exception("could not drop %s", target)
        raise
    report.changes = _changes(docs, previous, plan)
    if not fresh:  # a renamed article was counted as added: it is the same article, changed
        report.added -= len(plan.renamed)
        report.updated += len(plan.renamed)
    report.articles = len(docs)
    _log.info("ingest done: %s", report.summary())
    return report


def _changes(
    docs: Sequence[Document], previous: Mapping[str, ArticleState], plan: _Plan
) -> list[ArticleChange]:
    """The change log's entries: what the library gained, what changed, what it lost, compared with the
    live collection before the ingest (a rebuild included)."""
    out: list[ArticleChange] = []
    changed = {d.id for d in plan.todo}
    for doc in docs:
        if doc.id not in changed:
            continue
        kind: ChangeKind = "changed" if doc.id in previous or doc.id in plan.renamed else "added"
        out.append(ArticleChange(doc.id, doc.title, doc.url, kind))
    for article_id, state in plan.removed.items():
        out.append(ArticleChange(article_id, state.title, state.url, "removed"))
    return out


def embedder_dim(embedder: Embedder) -> int:
    warm = getattr(embedder, "warm_up", None)
    if callable(warm):
        warm()
    return int(embedder.dim)
