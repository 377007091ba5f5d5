from __future__ import annotations

import itertools
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from retrieval.chunking import MAX_WORDS, chunk_document
from retrieval.documents import Document
from retrieval.sources import read_source
from tests.conftest import need_corpus


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text)


def _trailing_heading_words(text: str) -> set[str]:
    """A heading with nothing under it at the very end of an article has no passage to sit in."""
    lines = [line for line in text.strip().split("\n") if line.strip()]
    return set(_words(lines[-1])) if lines and lines[-1].startswith("#") else set()


def test_real_corpus_chunks_are_within_bounds() -> None:
    sizes = []
    corpus = need_corpus()
    for name in ("aisafety.info.jsonl", "ai-safety-atlas.jsonl", "distill.jsonl"):
        for item in read_source(str(corpus / name)):
            assert isinstance(item, tuple)
            doc = item[1]
            chunks = chunk_document(doc)
            assert [c.index for c in chunks] == list(range(len(chunks)))
            sizes += [len(c.text.split()) for c in chunks]
            # Nothing is lost: every word of the article is in some passage.
            kept = doc.title + " " + " ".join(f"{c.heading} {c.text}" for c in chunks)
            assert set(_words(doc.text)) - set(_words(kept)) <= _trailing_heading_words(doc.text)
    assert max(sizes) <= MAX_WORDS + 5
    multi = [s for s in sizes if s >= 100]
    assert len(multi) / len(sizes) > 0.75  # mostly 100-250-word passages; short answers stay whole


def test_headings_start_passages_and_overlap_is_small() -> None:
    def section(tag: str) -> str:
        return " ".join(f"Sentence number {i} says something about {tag}." for i in range(40))

    text = f"# Intro\n\n{section('goals')}\n\n# Second part\n\n{section('agents')}\n\n{section('values')}"
    chunks = chunk_document(Document("d", "Title", "https://e.org", text))
    assert chunks[0].heading == "Intro"
    # The second section starts a passage, or is announced by its heading inside one.
    assert any(
        (c.heading == "Second part" and c.text.startswith("Sentence number 0"))
        or "Second part:\n\nSentence number 0 says something about agents" in c.text
        for c in chunks
    )
    # Consecutive passages of the same section share a little text (overlap), not a lot.
    same = [(a, b) for a, b in itertools.pairwise(chunks) if a.heading == b.heading]
    assert same
    for a, b in same:
        sentences_a = re.split(r"(?<=\.)\s+", a.text)
        sentences_b = re.split(r"(?<=\.)\s+", b.text)
        assert sentences_b[0] in sentences_a  # overlap: the next passage repeats the last sentences
        assert 1 <= len(set(sentences_a) & set(sentences_b)) <= 6


def test_embed_text_carries_title_and_heading() -> None:
    chunks = chunk_document(Document("d", "What is X?", "u", "## Details\n\nSome words about X."))
    assert chunks[0].embed_text("What is X?").startswith("What is X? — Details\n\n")


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.text(alphabet=st.characters(categories=("L", "N")), min_size=1, max_size=12),
            st.sampled_from(["\n\n", ". ", "\n## Heading\n", "! "]),
        ),
        min_size=1,
        max_size=900,
    )
)
def test_no_word_is_lost_and_no_passage_is_huge(parts: list[str]) -> None:
    text = " ".join(parts)
    doc = Document("d", "T", "u", text)
    chunks = chunk_document(doc)
    if not text.strip():
        return
    joined = " ".join(c.text for c in chunks)
    body_words = [w for w in _words(text) if w != "Heading"]
    assert set(body_words) <= set(_words(joined))
    assert all(len(c.text.split()) <= MAX_WORDS + 2 for c in chunks)
