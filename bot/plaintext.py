"""An article's Markdown as plain reading text, for the excerpts a retrieval-only answer quotes.

Passages keep their article's Markdown (headings underlined with `-----`, footnotes `[^id]: ...`,
escaped brackets `\\[2\\]`, lists, emphasis, display maths). An excerpt is read in a chat message, so it
is reduced to its words: the passage is parsed once by a CommonMark parser (the one the renderers use)
and only the text is kept: a heading becomes "Heading:", list items are joined by "; ", a link keeps its
label, an image its alt text; footnotes, rules and raw HTML go. `literal` then writes such plain text
back into Markdown so that it reads as the same words, whatever punctuation it holds.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Iterable

from markdown_it import MarkdownIt
from markdown_it.tree import SyntaxTreeNode

# A footnote's definition (to the next blank line) and a reference to one: "[^hy8b4kflu8]".
_FOOTNOTE_DEFINITION = re.compile(r"^[ \t]{0,3}\[\^[^\]\n]+\]:.*(?:\n(?![ \t]*\n).*)*", re.M)
_FOOTNOTE_REF = re.compile(r"\[\^[^\]\s]+\]")
_DISPLAY_MATH = re.compile(r"\$\$.+?\$\$", re.S)
# Inline maths as pandoc reads it: no space inside the dollars, no digit after the closing one ($5).
_INLINE_MATH = re.compile(r"\$(?=[^\s$])([^$\n]{1,120}?)(?<=[^\s$\\])\$(?!\d)")
_TEX_COMMAND = re.compile(r"\\([A-Za-z]+)\s*")
_TEX_SYMBOLS = {
    "alpha": "α",
    "beta": "β",
    "gamma": "γ",
    "delta": "δ",
    "epsilon": "ε",
    "theta": "θ",
    "lambda": "λ",
    "mu": "μ",
    "pi": "π",
    "sigma": "σ",
    "tau": "τ",
    "phi": "φ",
    "omega": "ω",
    "Delta": "Δ",
    "Sigma": "Σ",
    "sum": "Σ",
    "prod": "Π",
    "infty": "∞",
    "ldots": "…",
    "cdots": "…",
    "dots": "…",
    "times": "×",
    "cdot": "·",
    "to": "→",
    "rightarrow": "→",
    "leq": "≤",
    "geq": "≥",
    "neq": "≠",
    "approx": "≈",
    "in": "∈",
    "mathbb": "",
    "mathcal": "",
    "text": "",
    "mathrm": "",
    "left": "",
    "right": "",
}
_HTML_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.S)
_HTML_TAG = re.compile(r"</?[A-Za-z][^<>\n]*>")
# Pandoc's attributes after a heading ("Language {#01}") and superscripts ("proved ^3^").
_ATTRIBUTES = re.compile(r"\s*\{[#.][^{}\n]*\}")
_SUPERSCRIPT_NOTE = re.compile(r"\s?\^\d+\^")
# What is left of Markdown the parser could not read: unmatched ** or __, a setext underline run into
# its line ("See also --------").
_STRAY_EMPHASIS = re.compile(r"\*\*+|__+|(?<![\s\d])\*|\*(?![\s\d])")
_RUN_IN_QUOTE = re.compile(r"(?:\s>){2,}(?=\s)(?:\s[*+-](?=\s))?|\s>\s[*+-](?=\s)")
_RUN_IN_RULE = re.compile(r"\s[-=]{3,}(?=\s|$)")
_ONLY_MARKS = re.compile(r"[\s=\-_*~#|:]*")  # a line of underlines or rules, nothing to read
# Characters CommonMark may read as markup; a backslash before any ASCII punctuation makes it literal.
_ACTIVE = re.compile(r"[\\`*_\[\]<>~&!#|]")
_CLOSES = (".", "!", "?", ":", ";", "…")


@functools.cache
def _parser() -> MarkdownIt:
    """CommonMark with ~~strike~~ and tables, raw HTML read as text: as the renderers parse."""
    logging.getLogger("markdown_it").setLevel(logging.INFO)  # it logs every rule it tries at DEBUG
    return MarkdownIt("commonmark", {"html": False}).enable(["strikethrough", "table"])


def plain_text(markdown: str) -> str:
    """The words of a Markdown passage, on one line."""
    text = _FOOTNOTE_DEFINITION.sub("", markdown)
    text = _FOOTNOTE_REF.sub("", text)
    text = _DISPLAY_MATH.sub(" (formula) ", text)
    text = _INLINE_MATH.sub(lambda m: _tex(m.group(1)), text)
    text = _HTML_TAG.sub(" ", _HTML_COMMENT.sub(" ", text))
    text = _SUPERSCRIPT_NOTE.sub("", _ATTRIBUTES.sub("", text))
    tree = SyntaxTreeNode(_parser().parse(text))
    return " ".join(" ".join(_blocks(tree.children)).split())


def _tex(maths: str) -> str:
    """Inline TeX as it reads: Greek letters and common symbols, no commands or braces."""
    words = _TEX_COMMAND.sub(lambda m: _TEX_SYMBOLS.get(m.group(1), m.group(1)), maths)
    return words.replace("{", "").replace("}", "")


def reads_as(markdown: str) -> str:
    """The words a Markdown reader takes from `markdown`, as they are (no clean-up): on one line."""
    tree = SyntaxTreeNode(_parser().parse(markdown))
    return " ".join(" ".join(_blocks(tree.children, clean=False)).split())


def literal(text: str) -> str:
    """Plain text to put in Markdown, after other words on a line: as it is when Markdown reads it as
    the same words there (nearly always), else with its punctuation escaped."""
    if reads_as("x " + text) == " ".join(("x " + text).split()):
        return text
    return _ACTIVE.sub(lambda m: "\\" + m.group(0), text)


def _blocks(nodes: Iterable[SyntaxTreeNode], *, clean: bool = True) -> list[str]:
    out: list[str] = []
    for node in nodes:
        words = _block(node, clean).strip()
        if words and not (clean and _ONLY_MARKS.fullmatch(words)):
            out.append(words)
    return out


def _joined(items: list[str], sep: str) -> str:
    """Items one after the other: `sep` between them unless an item ends a sentence itself."""
    out = ""
    for item in items:
        if out:
            out += " " if out.endswith(_CLOSES) else sep
        out += item
    return out


def _block(node: SyntaxTreeNode, clean: bool) -> str:
    kind = node.type
    if kind in ("paragraph", "inline"):
        return _inline(node.children if kind == "paragraph" else [node], clean)
    if kind == "heading":
        words = _inline(node.children, clean).strip()
        return words if not clean or not words or words.endswith(_CLOSES) else words + ":"
    if kind in ("bullet_list", "ordered_list"):
        return _joined([" ".join(_blocks(item.children, clean=clean)) for item in node.children], "; ")
    if kind == "table":
        rows = [row for part in node.children for row in part.children]
        cells = [" · ".join(_inline(cell.children, clean) for cell in row.children) for row in rows]
        return _joined(cells, "; ")
    if kind in ("fence", "code_block"):
        return node.content
    if kind in ("hr", "html_block"):
        return ""
    return " ".join(_blocks(node.children, clean=clean)) if node.children else node.content


def _inline(nodes: Iterable[SyntaxTreeNode], clean: bool = True) -> str:
    parts: list[str] = []
    for node in nodes:
        if node.type == "text" and not clean:
            parts.append(node.content)
        elif node.type == "text":
            words = _RUN_IN_QUOTE.sub(" ", _STRAY_EMPHASIS.sub("", node.content))
            parts.append(_RUN_IN_RULE.sub(" —", words))
        elif node.type == "code_inline":
            parts.append(node.content)
        elif node.type in ("softbreak", "hardbreak"):
            parts.append(" ")
        elif node.type == "html_inline":
            continue
        elif node.children:  # emphasis, links (the label), images (the alt text), inline wrappers
            parts.append(_inline(node.children, clean))
        else:
            parts.append(node.content)
    return "".join(parts)
