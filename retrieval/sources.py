"""Readers for article sources: Alignment Research Dataset JSONL (file, .gz or URL) and Markdown folders.

Readers never raise on a bad record: they yield a `SkippedRecord` with its line number and carry on.
They raise `SourceError` only when the source as a whole cannot be opened.
"""

from __future__ import annotations

import ast
import gzip
import io
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from retrieval.documents import Document, SkippedRecord
from retrieval.errors import SourceError

# A whole download of one SOURCES URL: the deadline and the size beyond which it is refused.
URL_TIMEOUT_S = 300.0
URL_MAX_BYTES = 2 * 1024 * 1024 * 1024
MARKDOWN_SUFFIXES = (".md", ".markdown")

Item = tuple[int, Document] | SkippedRecord

_LINK = re.compile(r"!?\[([^\]]*)\]\((?:[^()\s]|\([^()]*\))*\)")
_HTML_TAG = re.compile(r"</?[A-Za-z][^>]*>")
_SPACES = re.compile(r"[ \t]+")
_BLANKS = re.compile(r"\n{3,}")
_FRONT_MATTER = re.compile(r"\A---\s*\n(.*?)\n---\s*(?:\n|\Z)", re.S)
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)


def _link_words(m: re.Match[str]) -> str:
    """A Markdown link's words, set apart from a word it was glued to: exports drop the space around
    links ("unless it was[corrigible](...)"), which made one word of two, lost to search and reader."""
    before = m.string[m.start() - 1 : m.start()]
    after = m.string[m.end() : m.end() + 1]
    words = m.group(1)
    lead = " " if before.isalnum() and not words[:1].isspace() else ""
    tail = " " if after.isalnum() and not words[-1:].isspace() else ""
    return f"{lead}{words}{tail}"


def clean_text(text: str) -> str:
    """Plain reading text: Markdown links become their words, tags go, whitespace is tidied."""
    text = _LINK.sub(_link_words, text)
    text = _HTML_TAG.sub(" ", text)
    text = text.replace("\r\n", "\n").replace("\u00a0", " ")
    text = _SPACES.sub(" ", text)
    text = "\n".join(line.strip() for line in text.split("\n"))
    return _BLANKS.sub("\n\n", text).strip()


# An article with less than a sentence of its own once bare links are taken out ("See the Credits page.",
# a lone link to a wiki tag) has nothing to ground an answer on: citing it sends the reader to a page that
# only points elsewhere, and its title alone would outrank the articles that explain its subject.
STUB_WORDS = 8
_BARE_URL = re.compile(r"https?://\S+")


def is_stub(text: str) -> bool:
    """Fewer than STUB_WORDS words once bare links are taken out (`text` as `clean_text` leaves it)."""
    return len(_BARE_URL.sub(" ", text).split()) < STUB_WORDS


def read_source(
    spec: str, *, aisafety_info_url: str | None = None, prefetched: Mapping[str, object] | None = None
) -> Iterator[Item]:
    """Read one source given as a path (file, .gz, folder of .md), an http(s) URL, or `aisafety.info`:
    the site's own feed of published answers, read at `aisafety_info_url` (default the site itself; a
    saved copy of the feed, a `.json` file, links to it too). `prefetched`: the feed document already
    downloaded for this entry (a sync reads its `timestamp` first)."""
    from retrieval import aisafety_info  # it imports this module's cleaning

    base = aisafety_info_url or aisafety_info.DEFAULT_BASE
    if spec.strip() == aisafety_info.SOURCE:
        if prefetched is not None and spec in prefetched:
            feed_url = aisafety_info.feed_url(base)
            yield from aisafety_info.items(
                aisafety_info.parse_feed(prefetched[spec], base_url=base, origin=feed_url)
            )
        else:
            yield from aisafety_info.read_feed(base)
        return
    if spec.startswith(("http://", "https://")):
        yield from _read_url(spec)
        return
    path = Path(spec).expanduser()
    if path.is_dir():
        yield from read_markdown_folder(path)
    elif path.is_file() and path.suffix.lower() == ".json" and aisafety_info.is_saved_feed(path):
        yield from aisafety_info.read_saved_feed(path, base_url=base)
    elif path.is_file() and path.suffix.lower() in MARKDOWN_SUFFIXES:
        yield from read_markdown_file(path, root=path.parent)
    elif path.is_file():
        opener = gzip.open if path.suffix == ".gz" else open
        try:
            # utf-8-sig: a byte-order mark, which some editors write, is not part of the first record.
            with opener(path, "rt", encoding="utf-8-sig", errors="replace") as fh:
                yield from read_ard_jsonl(fh, origin=str(path))
        except (OSError, EOFError) as exc:
            raise SourceError(f"cannot read {path}: {exc}") from exc
    else:
        raise SourceError(
            f"source {spec!r} does not exist: give a .jsonl/.jsonl.gz file, a .md file, a folder of .md "
            "files or a URL"
        )


def _read_url(url: str) -> Iterator[Item]:
    """A JSONL file (or .gz) on the web, downloaded whole within a deadline and a size cap first: a
    download that breaks off half-way changes nothing (a library read from half a file would lose the
    rest of its articles)."""
    from retrieval.aisafety_info import download

    body = download(url, timeout_s=URL_TIMEOUT_S, max_bytes=URL_MAX_BYTES, what="cannot download")
    if url.split("?")[0].endswith(".gz"):
        try:
            body = gzip.decompress(body)
        except (OSError, EOFError) as exc:
            raise SourceError(f"download of {url} is not a whole gzip file: {exc}") from exc
    text = io.TextIOWrapper(io.BytesIO(body), encoding="utf-8-sig", errors="replace")
    yield from read_ard_jsonl(text, origin=url)


def _web_url(url: str) -> bool:
    """Sources link to web pages only: a `javascript:` or `file:` url would be rendered as a link."""
    parts = urlsplit(url.strip())
    return (
        parts.scheme.lower() in ("http", "https")
        and bool(parts.netloc)
        and not any(c in url for c in "<>|\n")
    )


def _related_ids(record: dict[str, Any], source: str) -> tuple[str, ...]:
    raw = record.get("related_pageids") or record.get("related") or []
    if isinstance(raw, str):
        try:
            raw = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            raw = re.findall(r"[\w./:-]+", raw)
    if not isinstance(raw, list | tuple):
        return ()
    ids = []
    for item in raw:
        value = str(item).strip()
        if value:
            ids.append(value if ":" in value else f"{source}:{value}")
    return tuple(ids)


def json_error(exc: json.JSONDecodeError) -> str:
    """The decoder's message with its place: some of its messages end in "at", to be followed by one
    ("Invalid control character at", "Unterminated string starting at")."""
    at = "" if exc.msg.endswith(" at") else " at"
    return f"{exc.msg}{at} column {exc.colno}"


def read_ard_jsonl(lines: Iterable[str], *, origin: str) -> Iterator[Item]:
    """Records in the Alignment Research Dataset schema, one JSON object a line."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            yield SkippedRecord(origin, number, f"malformed JSON ({json_error(exc)})")
            continue
        if not isinstance(record, dict):
            yield SkippedRecord(origin, number, "not a JSON object")
            continue
        text = record.get("text")
        url = record.get("url")
        if not isinstance(text, str) or not text.strip():
            yield SkippedRecord(origin, number, "no text")
            continue
        if not isinstance(url, str) or not url.strip():
            yield SkippedRecord(origin, number, "no url")
            continue
        if not _web_url(url):
            yield SkippedRecord(origin, number, f"url is not http(s): {url.strip()[:60]!r}")
            continue
        source = str(record.get("source") or "")
        doc_id = str(record.get("id") or "").strip() or url.strip()
        title = str(record.get("title") or "").strip() or url.strip()
        yield (
            number,
            Document(
                id=doc_id,
                title=title,
                url=url.strip(),
                text=clean_text(text),
                source=source,
                related=_related_ids(record, source),
            ),
        )


def _front_matter(text: str) -> tuple[dict[str, str], str]:
    match = _FRONT_MATTER.match(text)
    if not match:
        return {}, text
    meta: dict[str, str] = {}
    for line in match.group(1).splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() and not key.startswith((" ", "\t", "#")):
            meta[key.strip().lower()] = value.strip().strip("'\"")
    return meta, text[match.end() :]


def read_markdown_folder(folder: Path) -> Iterator[Item]:
    """Each `.md` file under the folder is an article (see `read_markdown_file`)."""
    for path in sorted(folder.rglob("*.md")):
        yield from read_markdown_file(path, root=folder)


def read_markdown_file(path: Path, *, root: Path) -> Iterator[Item]:
    """One article: title from front matter or the first heading, url from front matter; its id is
    `<folder name>:<path under the folder>` unless the front matter gives one."""
    origin = str(path)
    try:
        raw = path.read_text(encoding="utf-8-sig", errors="replace")
    except OSError as exc:
        yield SkippedRecord(origin, 0, f"unreadable ({exc})")
        return
    meta, body = _front_matter(raw)
    url = meta.get("url", "")
    heading = _HEADING.search(body)
    title = meta.get("title") or (heading.group(1) if heading else path.stem.replace("-", " "))
    if not body.strip():
        yield SkippedRecord(origin, 1, "no text")
        return
    if not url:
        yield SkippedRecord(origin, 1, "no url in front matter")
        return
    if not _web_url(url):
        yield SkippedRecord(origin, 1, f"url is not http(s): {url[:60]!r}")
        return
    rel = path.relative_to(root).with_suffix("").as_posix()
    yield (
        1,
        Document(
            id=meta.get("id") or f"{root.name}:{rel}",
            title=clean_text(title),
            url=url,
            text=clean_text(body),
            source=meta.get("source") or root.name,
        ),
    )
