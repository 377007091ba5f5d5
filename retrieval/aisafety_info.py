"""aisafety.info's own feed of published answers: the source of truth for the site's articles.

`GET {base}/questions/allQuestionsOnSite` answers `{"data": [Question, ...], "timestamp": ...}` with no
token. The shape is StampyAI/stampy-ui's (`app/server-utils/stampy.ts`: `loadOnSiteAnswers`,
`convertToQuestion`, the `Question` type); an article's address is `questionUrl` of `app/routesMapper.ts`,
`/questions/<pageid>/<canonicalizeQuestionSlug(title)>`.

The feed is one JSON document, so it is downloaded whole (a time limit, a size cap) and read only when
complete: a broken download raises `SourceError` and yields nothing. A broken record is skipped and
counted (`SkippedRecord`), never the whole feed. A saved copy of the feed (a `.json` file) is read the
same way, offline.
"""

from __future__ import annotations

import email.utils
import functools
import http.client
import json
import re
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from retrieval.documents import Document, SkippedRecord
from retrieval.errors import SourceError
from retrieval.sources import Item, clean_text

SOURCE = "aisafety.info"  # the source name, the ids' prefix, and what the written-answer logic checks
DEFAULT_BASE = "https://aisafety.info"
FEED_PATH = "/questions/allQuestionsOnSite"
LIVE = "Live on site"  # stampy-ui's QuestionStatus.LIVE_ON_SITE: the only status published as an article
# The whole download, headers and body. The site answers from its cache; a cold cache makes it read every
# answer from Coda first, which takes seconds, not minutes.
FEED_TIMEOUT_S = 60.0
# The feed holds every published answer twice (Markdown and HTML): a few MB today. A body beyond this is
# not the feed (or a runaway server) and is refused rather than held in memory.
FEED_MAX_BYTES = 64 * 1024 * 1024

# What `canonicalizeQuestionSlug` removes after turning each space (U+0020 only, as JS `replaceAll(' ')`)
# into a hyphen. Slashes, dots, other punctuation and non-ASCII letters stay in the slug.
_SLUG_DROPPED = re.compile(r"""[?!,;:()\[\]{}'"]""")
# A saved feed begins `{"timestamp": ..., "data": [...]}` (as the site sends it) or `{"data": ...}`;
# an Alignment Research Dataset record, in a JSONL file named `.json`, does not.
_FEED_START = re.compile(rb'\A(?:\xef\xbb\xbf)?\s*\{\s*"(?:data|timestamp)"\s*:')
# List markers editors put before alternate phrasings: "- ", "* ", "+ ", "• ", "1. ", "2) ".
_LIST_MARKER = re.compile(r"^(?:[-*+•]|\d{1,3}[.)])(?:\s+|$)")


@dataclass(frozen=True)
class FeedAnswer:
    """One published answer: its Document (with the editors' other phrasings and tags), and when it was
    last edited."""

    document: Document
    updated_at: str = ""


FeedItem = tuple[int, FeedAnswer] | SkippedRecord


def canonical_slug(title: str) -> str:
    """stampy-ui's `canonicalizeQuestionSlug`: spaces become hyphens, then ?!,;:()[]{}'" are removed."""
    return _SLUG_DROPPED.sub("", title.replace(" ", "-"))


def question_url(pageid: str, title: str, base_url: str = DEFAULT_BASE) -> str:
    """stampy-ui's `questionUrl` under `base_url`, each part percent-encoded as one path segment (a
    slash in a title is %2F: the site routes on the pageid and takes the rest as its slug)."""
    slug = quote(canonical_slug(title), safe="")
    if slug in (".", ".."):  # a dot segment would take the browser to another page
        slug = ""
    return f"{_base(base_url)}/questions/{quote(pageid, safe='')}/{slug}"


def feed_url(base_url: str = DEFAULT_BASE) -> str:
    """Where the feed is; never with the site's `?reload`, which makes it re-read every answer from Coda."""
    return _base(base_url) + FEED_PATH


def _base(base_url: str) -> str:
    base = base_url.strip().rstrip("/")
    parts = urlsplit(base)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise SourceError(
            f"the aisafety.info address {base_url.strip()[:80]!r} is not an http(s) base URL such as "
            f"{DEFAULT_BASE} (no query, no fragment)"
        )
    return base


@functools.cache
def user_agent() -> str:
    """`aisafety-bot/<version>`: the site's operators can tell who is reading the feed."""
    try:
        version = metadata.version("aisafety-bot")
    except metadata.PackageNotFoundError:
        version = "unknown"
    return f"aisafety-bot/{version}"


def alternate_titles(raw: object, title: str) -> tuple[str, ...]:
    """The editors' other phrasings of the question (`alternatePhrasings`, one string), one a line: list
    markers, blank lines, lines without a word, repeats and lines equal to the title (ignoring case and
    spacing) dropped."""
    if not isinstance(raw, str):
        return ()
    seen = {_same(title)}
    found: list[str] = []
    for line in raw.splitlines():
        phrasing = " ".join(_LIST_MARKER.sub("", line.strip()).split())
        key = _same(phrasing)
        if not any(c.isalnum() for c in phrasing) or key in seen:
            continue
        seen.add(key)
        found.append(phrasing)
    return tuple(found)


def _same(text: str) -> str:
    return " ".join(text.casefold().split())


def _page_id(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        return ""
    return str(value).strip()


def _related(value: object, live: set[str], own: str) -> tuple[str, ...]:
    """`relatedQuestions` as article ids, only those published in the same feed (as `loadOnSiteAnswers`
    keeps them), in the editors' order."""
    if not isinstance(value, list):
        return ()
    ids: list[str] = []
    for item in value:
        pageid = _page_id(item.get("pageid")) if isinstance(item, dict) else ""
        if pageid and pageid != own and pageid in live and f"{SOURCE}:{pageid}" not in ids:
            ids.append(f"{SOURCE}:{pageid}")
    return tuple(ids)


def _tags(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(t.strip() for t in value if isinstance(t, str) and t.strip())


def parse_feed(payload: object, *, base_url: str = DEFAULT_BASE, origin: str) -> list[FeedItem]:
    """Every answer of a feed document: published ones as `FeedAnswer`s numbered by their place in `data`
    (from 1), the others as `SkippedRecord`s saying why. Raises `SourceError` if `payload` is not a feed."""
    if not isinstance(payload, dict):
        raise SourceError(
            f"{origin} is not an aisafety.info feed: a JSON {type(payload).__name__}, not an object"
        )
    data = payload.get("data")
    if not isinstance(data, list):
        got = "missing" if "data" not in payload else f"a JSON {type(data).__name__}"
        raise SourceError(f"{origin} is not an aisafety.info feed: its 'data' is {got}, not a list")
    base = _base(base_url)
    live = {_page_id(q.get("pageid")) for q in data if isinstance(q, dict) and q.get("status") == LIVE} - {""}
    return [_answer(number, q, base=base, live=live, origin=origin) for number, q in enumerate(data, start=1)]


def _answer(number: int, q: object, *, base: str, live: set[str], origin: str) -> FeedItem:
    if not isinstance(q, dict):
        return SkippedRecord(origin, number, "not a JSON object")
    status = q.get("status")
    if status != LIVE:
        shown = repr(status)[:40] if status is not None else "none"
        return SkippedRecord(origin, number, f"status {shown}, not {LIVE!r}")
    pageid = _page_id(q.get("pageid"))
    if not pageid:
        return SkippedRecord(origin, number, "no pageid")
    title = q.get("title")
    if not isinstance(title, str) or not title.strip():
        return SkippedRecord(origin, number, f"no title (pageid {pageid!r})")
    markdown = q.get("markdown")
    if not isinstance(markdown, str):
        got = "missing" if markdown is None else f"a JSON {type(markdown).__name__}"
        return SkippedRecord(origin, number, f"markdown is {got}, not text (pageid {pageid!r})")
    if not markdown.strip():
        return SkippedRecord(origin, number, f"no text (pageid {pageid!r})")
    document = Document(
        id=f"{SOURCE}:{pageid}",
        title=" ".join(title.split()),
        url=question_url(pageid, title, base),
        text=clean_text(markdown),
        source=SOURCE,
        related=_related(q.get("relatedQuestions"), live, pageid),
        alt_titles=alternate_titles(q.get("alternatePhrasings"), title),
        tags=_tags(q.get("tags")),
    )
    updated = q.get("updatedAt")
    return (number, FeedAnswer(document=document, updated_at=updated if isinstance(updated, str) else ""))


def items(answers: list[FeedItem]) -> list[Item]:
    """Feed answers as the other readers' items: `(number, Document)` or `SkippedRecord`."""
    return [a if isinstance(a, SkippedRecord) else (a[0], a[1].document) for a in answers]


def decode(body: bytes, origin: str) -> object:
    """The feed's JSON, or `SourceError` saying how it begins."""
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        start = " ".join(body[:60].decode("utf-8", "replace").split())
        raise SourceError(f"{origin} is not JSON ({_one_line(exc)}); it begins {start!r}") from exc


def fetch_feed(
    base_url: str = DEFAULT_BASE, *, timeout_s: float = FEED_TIMEOUT_S, max_bytes: int = FEED_MAX_BYTES
) -> list[FeedItem]:
    """Download and read the feed at `base_url` (the site, a mirror or a test's fake); links are built
    from `base_url`. All or nothing: any failure raises `SourceError` with a one-line reason."""
    url = feed_url(base_url)
    return parse_feed(
        decode(download(url, timeout_s=timeout_s, max_bytes=max_bytes), url), base_url=base_url, origin=url
    )


def read_feed(
    base_url: str = DEFAULT_BASE, *, timeout_s: float = FEED_TIMEOUT_S, max_bytes: int = FEED_MAX_BYTES
) -> list[Item]:
    """`fetch_feed` as the other readers' items: `(number, Document)` or `SkippedRecord`."""
    return items(fetch_feed(base_url, timeout_s=timeout_s, max_bytes=max_bytes))


def load_saved_feed(path: str | Path, *, base_url: str = DEFAULT_BASE) -> list[FeedItem]:
    """A saved copy of the feed (`{"data": [...]}`, as the site sends it), for installs without internet;
    links are built from `base_url`, the real site unless told otherwise."""
    path = Path(path)
    try:
        body = path.read_bytes()
    except OSError as exc:
        raise SourceError(f"cannot read {path}: {_one_line(exc)}") from exc
    return parse_feed(decode(body, str(path)), base_url=base_url, origin=str(path))


def read_saved_feed(path: str | Path, *, base_url: str = DEFAULT_BASE) -> list[Item]:
    """`load_saved_feed` as the other readers' items."""
    return items(load_saved_feed(path, base_url=base_url))


def is_saved_feed(path: Path) -> bool:
    """Whether a `.json` file looks like a saved feed (an object opening with "data" or "timestamp"),
    rather than Alignment Research Dataset records in a file named `.json`."""
    try:
        with path.open("rb") as fh:
            return bool(_FEED_START.match(fh.read(4096)))
    except OSError:
        return False


def _one_line(value: object) -> str:
    return " ".join(str(value).split())[:300]


def download(
    url: str, *, timeout_s: float, max_bytes: int, what: str = "cannot read the aisafety.info feed at"
) -> bytes:
    """The whole body of `GET url`, within `timeout_s` and `max_bytes`, or `SourceError` saying why
    (`what` begins its message). A 429's `Retry-After` is kept on the error (`SourceError.retry_after`)."""
    deadline = time.monotonic() + timeout_s
    request = urllib.request.Request(url, headers={"User-Agent": user_agent(), "Accept": "application/json"})
    where = f"{what} {url}"
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            length = response.headers.get("Content-Length", "")
            if length.strip().isdigit() and int(length) > max_bytes:
                raise SourceError(f"{where}: it is {int(length):,} bytes, over the limit of {max_bytes:,}")
            chunks: list[bytes] = []
            size = 0
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError
                _limit_wait(response, remaining)
                chunk = response.read1(64 * 1024)
                if not chunk:
                    return b"".join(chunks)
                size += len(chunk)
                if size > max_bytes:
                    raise SourceError(f"{where}: it is over the limit of {max_bytes:,} bytes")
                chunks.append(chunk)
    except urllib.error.HTTPError as exc:
        wait = None
        with exc:
            reason = f"HTTP {exc.code} {_one_line(exc.reason)}".rstrip()
            if exc.code == 429:
                given = exc.headers.get("Retry-After") or ""
                wait = retry_after_seconds(given)
                reason += f" (Retry-After: {_one_line(given or 'not given')[:40]})"
        raise SourceError(f"{where}: {reason}", retry_after=wait) from None
    except TimeoutError as exc:
        raise SourceError(f"{where}: no complete answer within {timeout_s:g} s") from exc
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, TimeoutError):
            raise SourceError(f"{where}: no complete answer within {timeout_s:g} s") from exc
        raise SourceError(
            f"{where}: {_one_line(exc.reason)}. Without internet access, put a saved copy of the feed "
            "(a .json file) in SOURCES instead."
        ) from exc
    except (http.client.HTTPException, OSError) as exc:
        raise SourceError(
            f"{where}: the download broke off ({_one_line(exc) or type(exc).__name__})"
        ) from exc


def retry_after_seconds(value: str, now: float | None = None) -> float | None:
    """`Retry-After` as seconds from now: a number of seconds or an HTTP date; None if it is neither."""
    value = value.strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _limit_wait(response: Any, seconds: float) -> None:
    """Let the next read wait only as long as the whole download has left (the socket's own timeout is
    per read, so a server that trickles bytes would otherwise never time out)."""
    sock = getattr(getattr(getattr(response, "fp", None), "raw", None), "_sock", None)
    if sock is not None:
        sock.settimeout(max(seconds, 0.001))
