"""A fake aisafety.info on 127.0.0.1 serving `GET /questions/allQuestionsOnSite` as the site does.

The shape follows StampyAI/stampy-ui: `withCache` answers `{"timestamp": ..., "data": ...}` and
`loadOnSiteAnswers` gives `data` as `Question`s built by `convertToQuestion` (`app/server-utils/stampy.ts`).
Fields that function leaves `undefined` are absent from the JSON, as `JSON.stringify` drops them; text
fields Coda leaves empty are "" (its `extractText` turns a missing value into "").

The fake records each request (path and headers) and can answer badly on demand: an HTTP error (with a
Retry-After), a body that is not JSON or not a feed, a body larger than the reader's cap, an answer that
comes too late, or a body trickled byte by byte.
"""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

FEED_PATH = "/questions/allQuestionsOnSite"
LIVE = "Live on site"


def question(
    pageid: str,
    title: str,
    markdown: str | None = "An answer long enough to ground a reply: it has well over eight words in it.",
    *,
    status: str | None = LIVE,
    related: Sequence[tuple[str, str]] = (),
    alternate_phrasings: str = "",
    tags: Sequence[str] = (),
    updated_at: str = "2025-01-15T10:00:00.000Z",
) -> dict[str, Any]:
    """One `Question` as `convertToQuestion` returns it (related as (title, pageid) pairs)."""
    q: dict[str, Any] = {
        "title": title,
        "pageid": pageid,
        "text": f"<p>{markdown}</p>\n" if markdown else None,
        "markdown": markdown,
        "ttr": 1 if markdown else 0,
        "answerEditLink": f"https://docs.google.com/document/d/{pageid}-doc/edit",
        "tags": list(tags),
        "banners": [],
        "relatedQuestions": [{"title": t, "pageid": p} for t, p in related],
        "alternatePhrasings": alternate_phrasings,
        "subtitle": "",
        "parents": [],
        "updatedAt": updated_at,
        "order": 0,
    }
    if status is not None:
        q["status"] = status
    return q


def feed_from_ard(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Alignment Research Dataset records of aisafety.info (`aisafety.info:<pageid>` ids, with `pageid`,
    `related_pageids` and `tags`) as the feed's live answers, their text as the Markdown, in file order."""
    rows = list(rows)

    def pageid(row: Mapping[str, Any]) -> str:
        return str(row.get("pageid") or str(row["id"]).split(":", 1)[1])

    titles = {pageid(r): str(r["title"]) for r in rows}
    out = []
    for r in rows:
        related = [(titles.get(str(p), ""), str(p)) for p in r.get("related_pageids") or ()]
        tags = r.get("tags") or ()
        out.append(question(pageid(r), str(r["title"]), str(r["text"]), related=related, tags=tags))
    return out


@dataclass
class Seen:
    path: str
    headers: dict[str, str]


@dataclass
class FakeAisafety:
    """Serve `questions` (or a fault) until `stop()`; `base` is the site's base URL."""

    questions: list[Any] = field(default_factory=list)
    status: int = 200  # answer this HTTP status instead of the feed
    retry_after: str | None = None  # sent with a non-200 status
    body: bytes | None = None  # sent instead of the feed (e.g. not JSON)
    delay_s: float = 0.0  # wait this long before answering at all
    trickle_s: float = 0.0  # send the body a byte at a time, this long apart
    stall_after: int | None = None  # send this many bytes of the body, then nothing more until stopped
    chunked: bool = False  # send no Content-Length (the body's size is learnt only by reading it)
    timestamp: str = "2025-01-20T09:30:00.000Z"
    seen: list[Seen] = field(default_factory=list)
    _server: http.server.ThreadingHTTPServer | None = None
    _stopping: threading.Event = field(default_factory=threading.Event)

    @property
    def base(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def feed_body(self) -> bytes:
        return json.dumps({"timestamp": self.timestamp, "data": self.questions}).encode()

    def start(self) -> FakeAisafety:
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                fake.seen.append(Seen(self.path, {k.lower(): v for k, v in self.headers.items()}))
                if fake.delay_s and fake._stopping.wait(fake.delay_s):
                    return
                if self.path.split("?")[0] != FEED_PATH:
                    self._send(404, b"Not Found", "text/plain")
                elif fake.status != 200:
                    self._send(fake.status, b"Could not fetch all articles", "text/plain")
                else:
                    self._send(
                        200, fake.body if fake.body is not None else fake.feed_body(), "application/json"
                    )

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                if status != 200 and fake.retry_after is not None:
                    self.send_header("Retry-After", fake.retry_after)
                if fake.chunked:
                    self.send_header("Transfer-Encoding", "chunked")
                else:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    if fake.chunked:
                        for start in range(0, len(body), 4096):
                            part = body[start : start + 4096]
                            self.wfile.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
                        self.wfile.write(b"0\r\n\r\n")
                    elif fake.stall_after is not None:
                        self.wfile.write(body[: fake.stall_after])
                        self.wfile.flush()
                        fake._stopping.wait(60)
                    elif fake.trickle_s:
                        for i in range(len(body)):
                            self.wfile.write(body[i : i + 1])
                            self.wfile.flush()
                            if fake._stopping.wait(fake.trickle_s):
                                return
                    else:
                        self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the reader gave up, as it should

            def log_message(self, *args: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> FakeAisafety:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
