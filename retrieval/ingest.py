"""load -> chunk -> embed -> upsert, incremental by content hash, with an atomic alias switch on rebuild."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from retrieval.chunking import chunk_document
from retrieval.documents import Chunk, Document, SkippedRecord
from retrieval.embeddings import Embedder
from retrieval.errors import IngestError
from retrieval.index import VectorStore
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

    def summary(self) -> dict[str, int]:
        keys = ("added", "updated", "unchanged", "deleted", "skipped", "chunks")
        return {k: int(getattr(self, k)) for k in keys}

    def to_json(self) -> dict[str, object]:
        data: dict[str, object] = dict(self.summary())
        data["skipped_records"] = [asdict(s) for s in self.skipped_records]
        data["collection"] = self.collection
        data["rebuilt"] = self.rebuilt
        return data


def load_documents(
    sources: Sequence[str], report: IngestReport, *, aisafety_info_url: str | None = None
) -> list[Document]:
    """Every usable article of every source; bad records, stubs (`is_stub`) and duplicate ids are
    skipped and counted. `aisafety_info_url`: where the `aisafety.info` source reads the site's feed."""
    docs: dict[str, Document] = {}
    first_seen: dict[str, str] = {}
    for spec in sources:
        for item in read_source(spec, aisafety_info_url=aisafety_info_url):
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
    report.skipped = len(report.skipped_records)
    if report.skipped:  # the records themselves are listed once, by the caller (see IngestReport)
        _log.info("%d records skipped", report.skipped)
    return list(docs.values())


def _batches(
    planned: Iterable[tuple[Document, list[Chunk]]],
) -> Iterable[list[tuple[Document, list[Chunk]]]]:
    """Several articles per embedding call: the model is fastest on full batches."""
    batch: list[tuple[Document, list[Chunk]]] = []
    size = 0
    for doc, chunks in planned:
        batch.append((doc, chunks))
        size += len(chunks)
        if size >= EMBED_BATCH:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def ingest(
    *,
    store: VectorStore,
    embedder: Embedder,
    sources: Sequence[str],
    rebuild: bool = False,
    progress: ProgressStyle | bool = False,
    on_batch: Callable[[int], None] | None = None,
    aisafety_info_url: str | None = None,
) -> IngestReport:
    """Bring the index in line with the sources.

    Without `rebuild`, the live collection is updated in place: unchanged articles are not embedded
    again, changed ones are re-embedded, and articles gone from the sources are deleted. With `rebuild`
    (or when there is no index yet) a new collection is filled and the alias switched to it only
    when it is complete; if anything fails on the way, the new collection is dropped and the live
    one is untouched.
    """
    report = IngestReport()
    try:
        docs = load_documents(sources, report, aisafety_info_url=aisafety_info_url)
    except SourceError as exc:
        raise IngestError(f"{exc} (the index was not changed)") from exc
    live = store.live_collection()
    if not docs:
        raise IngestError(
            f"no usable articles in {', '.join(sources)} ({report.skipped} records skipped); "
            "the index was not changed"
        )

    fresh = rebuild or live is None
    target = store.new_collection(embedder_dim(embedder)) if fresh else str(live)
    report.collection = target
    report.rebuilt = fresh
    existing = {} if fresh else store.article_states(target)
    try:
        todo = []
        for doc in docs:
            state = existing.get(doc.id)
            if state is not None and state.content_hash == doc.content_hash:
                report.unchanged += 1
            else:
                todo.append(doc)
        planned = [(doc, chunk_document(doc)) for doc in todo]
        total_chunks = sum(len(chunks) for _, chunks in planned)
        style: ProgressStyle = "bar" if progress is True else ("none" if progress is False else progress)
        bar = _Progress(total_chunks, style)
        try:
            for n, batch in enumerate(_batches(planned)):
                texts = [c.embed_text(doc.title) for doc, chunks in batch for c in chunks]
                titles = [doc.title for doc, _ in batch]
                vectors = embedder.embed_passages(texts + titles)
                title_vectors = vectors[len(texts) :]
                pos = 0
                for (doc, chunks), title_vec in zip(batch, title_vectors, strict=True):
                    store.upsert(target, doc, chunks, vectors[pos : pos + len(chunks)], title_vec)
                    pos += len(chunks)
                    old = existing.get(doc.id)
                    if old is None:
                        report.added += 1
                    else:
                        report.updated += 1
                        store.delete_chunks(target, doc.id, range(len(chunks), old.chunks))
                    report.chunks += len(chunks)
                bar.update(len(texts))
                if on_batch is not None:
                    on_batch(n)
        finally:
            bar.close()
        wanted = {d.id for d in docs}
        for article_id, state in existing.items():
            if article_id not in wanted:
                store.delete_chunks(target, article_id, range(state.chunks))
                report.deleted += 1
        if fresh:
            store.switch_alias(target)
        elif report.added or report.updated or report.deleted:
            store.flush()  # nothing to flush (or to re-catalogue) when nothing changed
    except BaseException:
        if fresh:
            _log.warning("ingest interrupted; dropping the unfinished collection %s", target)
            try:
                store.drop_collection(target)
            except Exception:  # the original error matters more than the clean-up
                _log.exception("could not drop %s", target)
        raise
    _log.info("ingest done: %s", report.summary())
    return report


def embedder_dim(embedder: Embedder) -> int:
    warm = getattr(embedder, "warm_up", None)
    if callable(warm):
        warm()
    return int(embedder.dim)
