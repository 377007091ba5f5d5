"""Untrusted Markdown (the model's answer, an article's excerpt, a member's question) written out again
in a chat platform's own grammar, so that no link and no mention can form from it.

Nothing here tries to recognise a bad link. The text is parsed once by a CommonMark parser
(markdown-it-py); what it means (paragraphs, lists, emphasis, code, links) is written out in the
platform's syntax, and every piece of literal text goes through the platform's escaping (`Dialect.text`),
so that whatever the parser took for plain text stays plain text on the platform. A link the model
wrote becomes words: its label followed by the site's domain, "label (domain)" (a bare address stays
itself). The only masked links are the ones the bot builds (`Dialect.link`) for the library's own
articles: the addresses the caller passes as `library`.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from markdown_it import MarkdownIt
from markdown_it.tree import SyntaxTreeNode

ZWSP = "\u200b"  # a zero-width space: breaks a mention or a link's syntax without a visible change

# Control characters (a terminal's escape sequences, carriage returns) and the bidirectional overrides
# that can make a domain read backwards; tabs and newlines stay.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def scrub(text: str) -> str:
    """`text` without control characters (ANSI and OSC 8 hyperlink sequences, carriage returns) or
    bidirectional overrides."""
    return _CONTROL.sub("", text)


@functools.cache
def parser() -> MarkdownIt:
    """CommonMark, with ~~strike~~; raw HTML is read as text (no platform shows it)."""
    # markdown-it-py logs every block rule it tries at DEBUG: with LOG_LEVEL=DEBUG each preview would
    # write dozens of lines. Its own logger is kept at INFO.
    logging.getLogger("markdown_it").setLevel(logging.INFO)
    return MarkdownIt("commonmark", {"html": False}).enable("strikethrough")


def allowed_links(urls: Iterable[str]) -> dict[str, str]:
    """The addresses the bot may link behind a label, keyed by the form the parser gives a link's
    address (so `[label](url)` in the text finds its article), each to the address as stored."""
    allowed: dict[str, str] = {}
    for url in urls:
        if url:
            allowed[url] = url
            allowed[parser().normalizeLink(url)] = url
    return allowed


@dataclass(frozen=True)
class Dialect:
    """How one platform writes what the parser found.

    `text` escapes literal text so that nothing in it forms a link or a mention on the platform; `code`
    does the same for the inside of code (where the platform shows escapes as typed). `link` is the
    bot's own masked link (label, address), used only for the library's addresses."""

    text: Callable[[str], str]
    code: Callable[[str], str]
    code_span: Callable[[str], str]  # the escaped inside of `code` -> the whole span
    fence: Callable[[str, str], str]  # (language, escaped inside) -> the whole block
    link: Callable[[str, str], str]
    strong: str
    em: str
    strike: str
    heading: Callable[[int, str], str]
    bullet: str
    quote: str
    rule: str = "———"


def rewrite(text: str, dialect: Dialect, library: Iterable[str] = ()) -> str:
    """Untrusted Markdown in the dialect. Links to `library` addresses become the bot's own links (its
    address, the text's label); any other link becomes "label (domain)" text."""
    tree = SyntaxTreeNode(parser().parse(scrub(text)))
    return _Writer(dialect, allowed_links(library)).blocks(tree.children, tight=False)


def host(url: str) -> str | None:
    """The host of a web address, as the parser normalised it (IDNs in punycode); None for others."""
    try:
        parts = urlsplit(url)
        return parts.hostname if parts.scheme.lower() in ("http", "https") and parts.hostname else None
    except ValueError:
        return None


def shown_link(label: str, url: str) -> str:
    """What a link that is not the bot's becomes: the label and the site's domain, or the address
    itself when that is all the label says."""
    label = label.strip()
    if label in (url, unquote(url)) or f"mailto:{label}" == url:
        return label
    domain = host(url)
    if domain is None:
        return label
    return f"{label} ({domain})" if label else domain


class _Inline:
    """One run of inline output: literal text is collected and escaped together (so that escaping sees
    neighbours such as `]` and `(` across the parser's tokens); markup is written as is."""

    def __init__(self, dialect: Dialect):
        self.dialect = dialect
        self.parts: list[str] = []
        self.pending: list[str] = []

    def text(self, s: str) -> None:
        self.pending.append(s)

    def markup(self, s: str) -> None:
        self.flush()
        self.parts.append(s)

    def flush(self) -> None:
        if self.pending:
            self.parts.append(self.dialect.text("".join(self.pending)))
            self.pending = []

    def result(self) -> str:
        self.flush()
        return "".join(self.parts)


def _plain(node: SyntaxTreeNode) -> str:
    """The words of a node: its text and code, without markup."""
    if node.type in ("text", "code_inline"):
        return node.content
    if node.type in ("softbreak", "hardbreak"):
        return " "
    return "".join(_plain(c) for c in node.children)


def _prefix(body: str, first: str, rest: str, *, blank: str = "") -> str:
    lines = body.split("\n")
    out = [first + lines[0]]
    out += [(rest + line) if line else blank for line in lines[1:]]
    return "\n".join(out)


class _Writer:
    def __init__(self, dialect: Dialect, allowed: Mapping[str, str]):
        self.d = dialect
        self.allowed = allowed

    def blocks(self, nodes: Iterable[SyntaxTreeNode], *, tight: bool) -> str:
        return ("\n" if tight else "\n\n").join(self.block(n) for n in nodes)

    def block(self, node: SyntaxTreeNode) -> str:
        d, kind = self.d, node.type
        if kind == "paragraph":
            return self.inline(node.children)
        if kind == "heading":
            return d.heading(int(node.tag[1:] or 1), self.inline(node.children))
        if kind in ("bullet_list", "ordered_list"):
            tight = all(p.hidden for item in node.children for p in item.children if p.type == "paragraph")
            items = []
            for item in node.children:
                marker = d.bullet if kind == "bullet_list" else f"{item.info}{item.markup}"
                body = self.blocks(item.children, tight=tight)
                items.append(_prefix(body, f"{marker} ", " " * (len(marker) + 1)))
            return ("\n" if tight else "\n\n").join(items)
        if kind == "blockquote":
            return _prefix(self.blocks(node.children, tight=False), d.quote, d.quote, blank=d.quote.rstrip())
        if kind in ("fence", "code_block"):
            language = re.sub(r"[^\w+#.-]", "", node.info.split()[0]) if node.info.split() else ""
            content = node.content if node.content.endswith("\n") else node.content + "\n"
            return d.fence(language, d.code(content))
        if kind == "hr":
            return d.rule
        if kind == "inline":
            return self.inline(node.children)
        return d.text(node.content)  # anything else is shown as the text it is

    def inline(self, nodes: Iterable[SyntaxTreeNode]) -> str:
        out = _Inline(self.d)
        for node in nodes:
            if node.type == "inline":
                self._inline(node.children, out)
            else:
                self._inline([node], out)
        return out.result()

    def _inline(self, nodes: Iterable[SyntaxTreeNode], out: _Inline) -> None:
        d = self.d
        for node in nodes:
            kind = node.type
            if kind == "text":
                out.text(node.content)
            elif kind in ("softbreak", "hardbreak"):
                out.text("\n")
            elif kind == "code_inline":
                if node.content.strip():
                    out.markup(d.code_span(d.code(node.content)))
                else:
                    out.text(node.content)
            elif kind in ("strong", "em", "s"):
                marker = {"strong": d.strong, "em": d.em, "s": d.strike}[kind]
                out.markup(marker)
                self._inline(node.children, out)
                out.markup(marker)
            elif kind == "link":
                self._link(node, out)
            elif kind == "image":
                out.text(shown_link(_plain(node), str(node.attrs.get("src", ""))))
            else:
                out.text(node.content)

    def _link(self, node: SyntaxTreeNode, out: _Inline) -> None:
        href = str(node.attrs.get("href", ""))
        label = _plain(node)
        target = self.allowed.get(href)
        if target is not None:
            out.markup(self.d.link(" ".join(label.split()) or target, target))
            return
        shown = shown_link(label, href)
        if shown == label.strip() or not label.strip():
            out.text(shown)  # the address itself, or the words of a link that is not to the web
            return
        self._inline(node.children, out)  # the label, with its emphasis
        out.text(shown[len(label.strip()) :])
