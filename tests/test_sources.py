from __future__ import annotations

import gzip
import http.server
import json
import threading
from pathlib import Path

import pytest

from retrieval import sources
from retrieval.documents import Document, SkippedRecord
from retrieval.ingest import IngestReport, load_documents
from retrieval.sources import SourceError, clean_text, read_source
from tests.conftest import need_corpus
from tests.fixture_articles import rows as fixture_rows


def _docs(items: list[object]) -> list[Document]:
    return [i[1] for i in items if isinstance(i, tuple)]


def test_reads_the_real_corpus_file() -> None:
    items = list(read_source(str(need_corpus() / "aisafety.info.jsonl")))
    docs = _docs(items)
    assert len(docs) == 190 and not [i for i in items if isinstance(i, SkippedRecord)]
    doc = next(d for d in docs if d.id == "aisafety.info:1250")
    assert doc.url.startswith("https://aisafety.info/questions/1250/")
    assert doc.related == ("aisafety.info:6178", "aisafety.info:7605", "aisafety.info:8324")
    assert "](http" not in doc.text  # Markdown links are reduced to their words


def test_bad_records_are_skipped_and_counted_with_line_numbers(tmp_path: Path) -> None:
    good = fixture_rows("orthogonality", "mesa-optimizers")
    lines = [
        json.dumps(good[0]),
        '{"id": "broken", "text": ',  # line 2: malformed
        json.dumps({"id": "x:1", "title": "t", "url": "https://e.org/1"}),  # line 3: no text
        json.dumps({"id": "x:2", "title": "t", "text": "words here"}),  # line 4: no url
        "",
        json.dumps(good[1]),
        json.dumps(good[0]),  # line 7: duplicate id
        "[1, 2]",  # line 8: not an object
    ]
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(lines) + "\n")
    report = IngestReport()
    docs = load_documents([str(path)], report)
    assert [d.id for d in docs] == ["fixture:orthogonality", "fixture:mesa-optimizers"]
    assert report.skipped == 5
    reasons = {r.line: r.reason for r in report.skipped_records}
    assert reasons[2].startswith("malformed JSON")
    assert reasons[3] == "no text" and reasons[4] == "no url"
    assert reasons[7].startswith("duplicate id 'fixture:orthogonality'") and ":1)" in reasons[7]
    assert reasons[8] == "not a JSON object"


def test_stubs_holding_only_a_link_are_skipped_and_counted(tmp_path: Path) -> None:
    """An article with less than a sentence besides links cannot ground an answer; a short real one can."""
    link = "[https://www.lesswrong.com/tag/goodhart-s-law](https://www.lesswrong.com/tag/goodhart-s-law)"
    rows = [
        {"id": "s:1", "title": "What is Goodhart's law?", "url": "https://e.org/1", "text": link},
        {
            "id": "s:2",
            "title": "Who made this?",
            "url": "https://e.org/2",
            "text": "See the [Credits page](https://e.org/c).",
        },
        {
            "id": "s:3",
            "title": "Where is the map?",
            "url": "https://e.org/3",
            "text": "This map shows most major landmarks of the field: https://e.org/map",
        },
    ]
    path = tmp_path / "stubs.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    report = IngestReport()
    docs = load_documents([str(path)], report)
    assert [d.id for d in docs] == ["s:3"]
    assert report.skipped == 2
    assert [(r.line, r.reason) for r in report.skipped_records] == [
        (1, 'a stub: under 8 words besides links ("What is Goodhart\'s law?")'),
        (2, "a stub: under 8 words besides links ('Who made this?')"),
    ]


def test_gzip_file(tmp_path: Path) -> None:
    rows = fixture_rows("orthogonality")
    path = tmp_path / "a.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write(json.dumps(rows[0]) + "\n")
    assert [d.id for d in _docs(list(read_source(str(path))))] == ["fixture:orthogonality"]


def test_markdown_folder(tmp_path: Path) -> None:
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "corrigibility.md").write_text(
        "---\ntitle: What is corrigibility?\nurl: https://example.org/corrigibility\n---\n"
        "# Ignored heading\n\nCorrigibility means an AI accepts correction. See [this](https://x.org).\n"
    )
    (tmp_path / "notes" / "heading-only.md").write_text(
        "---\nurl: https://example.org/h\n---\n\n## Reward hacking\n\nAn agent games its reward.\n"
    )
    (tmp_path / "notes" / "no-url.md").write_text("# Title\n\nText without a url.\n")
    items = list(read_source(str(tmp_path / "notes")))
    docs = {d.title: d for d in _docs(items)}
    assert docs["What is corrigibility?"].url == "https://example.org/corrigibility"
    assert "See this." in docs["What is corrigibility?"].text
    assert docs["Reward hacking"].id == "notes:heading-only"
    skipped = [i for i in items if isinstance(i, SkippedRecord)]
    assert len(skipped) == 1 and skipped[0].reason == "no url in front matter"


def test_url_is_downloaded_whole_within_a_deadline_and_a_size_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = fixture_rows("orthogonality", "mesa-optimizers")
    payload = gzip.compress("".join(json.dumps(r) + "\n" for r in rows).encode())

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != "/data/aisafety.info.jsonl.gz":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        docs = _docs(list(read_source(f"{base}/data/aisafety.info.jsonl.gz")))
        assert [d.id for d in docs] == ["fixture:orthogonality", "fixture:mesa-optimizers"]
        with pytest.raises(SourceError, match="cannot download"):
            list(read_source(f"{base}/missing.jsonl"))
        # A body over the cap is refused whole: no article of it is read.
        monkeypatch.setattr(sources, "URL_MAX_BYTES", len(payload) - 1)
        with pytest.raises(SourceError, match=r"over the limit of [\d,]+"):
            list(read_source(f"{base}/data/aisafety.info.jsonl.gz"))
        monkeypatch.setattr(sources, "URL_MAX_BYTES", len(payload))
        monkeypatch.setattr(sources, "URL_TIMEOUT_S", 0.3)
        slow = threading.Event()
        Handler.do_GET = lambda self: slow.wait(3)  # type: ignore[method-assign]
        with pytest.raises(SourceError, match=r"no complete answer within 0.3 s"):
            list(read_source(f"{base}/data/aisafety.info.jsonl.gz"))
        slow.set()
    finally:
        server.shutdown()


def test_missing_path_says_what_to_give() -> None:
    with pytest.raises(SourceError, match="does not exist"):
        list(read_source("/nonexistent/file.jsonl"))


def test_clean_text() -> None:
    assert (
        clean_text("See [the FAQ](https://a.org/x_(y)) and ![img](p.png)<br/>  now")
        == "See the FAQ and img now"
    )


def test_a_link_glued_to_a_word_becomes_a_word_of_its_own() -> None:
    # As some exports write them: the space before or after the link dropped.
    assert clean_text("unless it was[corrigible](https://a.org/c) and willing") == (
        "unless it was corrigible and willing"
    )
    assert clean_text("[Refine](https://a.org/r)was an incubator") == "Refine was an incubator"
    # Punctuation and spaces around a link, and a link text that brings its own space, are left alone.
    assert clean_text("see ([this](https://a.org/t)), or[ here](https://a.org/h).") == "see (this), or here."


def test_a_single_markdown_file_is_read_as_markdown(tmp_path: Path) -> None:
    page = tmp_path / "corrigibility.md"
    page.write_text(
        "\ufeff---\ntitle: What is corrigibility?\nurl: https://example.org/corrigibility\n---\n"
        "An AI is corrigible if it accepts correction and shutdown.\n",
        encoding="utf-8",
    )
    items = list(read_source(str(page)))
    assert [type(i) for i in items] == [tuple]
    doc = _docs(items)[0]
    assert doc.title == "What is corrigibility?" and doc.url == "https://example.org/corrigibility"
    assert doc.id == f"{tmp_path.name}:corrigibility" and doc.text.startswith("An AI is corrigible")


def test_a_byte_order_mark_before_the_first_record_is_accepted(tmp_path: Path) -> None:
    rows = fixture_rows("orthogonality", "mesa-optimizers")
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + "".join(json.dumps(r) + "\n" for r in rows).encode())
    items = list(read_source(str(path)))
    assert [d.id for d in _docs(items)] == ["fixture:orthogonality", "fixture:mesa-optimizers"]
    assert not [i for i in items if isinstance(i, SkippedRecord)]


def test_a_record_whose_url_is_not_a_web_page_is_skipped(tmp_path: Path) -> None:
    good = fixture_rows("orthogonality")[0]
    bad = dict(fixture_rows("mesa-optimizers")[0], url="javascript:alert(1)//")
    path = tmp_path / "mixed.jsonl"
    path.write_text(json.dumps(bad) + "\n" + json.dumps(good) + "\n")
    report = IngestReport()
    docs = load_documents([str(path)], report)
    assert [d.id for d in docs] == ["fixture:orthogonality"]
    assert report.skipped == 1 and report.skipped_records[0].reason.startswith("url is not http(s)")
