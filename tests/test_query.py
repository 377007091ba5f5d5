"""What is searched for a question (retrieval/query.py): the whole message, its question sentences given
as much weight, the shorthand spelled out; one batch for every question."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from retrieval.embeddings import Embedded, FastEmbedder, SparseVec
from retrieval.index import VectorStore
from retrieval.query import MESSAGE_WEIGHT, embed_questions, focus
from retrieval.search import HybridRetriever


def test_the_question_sentences_of_a_message_with_other_sentences() -> None:
    assert (
        focus("2nd year CS undergrad here. which classes should i take? is a math degree better?")
        == "which classes should i take? is a math degree better?"
    )
    assert focus("ok but why wouldnt sandboxing it work? no internet, air gapped, done") == (
        "ok but why wouldnt sandboxing it work?"
    )
    # Closing quotes and brackets after the question mark; sentences on their own lines.
    assert (
        focus('My friend said "why not just unplug it?" I had no answer.')
        == 'My friend said "why not just unplug it?"'
    )
    assert focus("Long story short\nhow do I start in alignment?") == "how do I start in alignment?"


def test_a_message_that_is_all_question_or_no_question_has_no_focus() -> None:
    assert focus("what is corrigibility?") is None
    assert focus("What is ELK? How does it relate to interpretability?") is None
    assert focus("tell me about mesa-optimizers. I keep hearing the word.") is None
    assert focus("") is None
    # The question is most of the message: searched as it is, without a second embedding.
    assert (
        focus("Quick question. What is the difference between inner and outer alignment in practice?") is None
    )


class Recording:
    """Vectors from the text alone (a seeded random unit vector per text), each batch recorded."""

    dim = 8

    def __init__(self) -> None:
        self.batches: list[list[str]] = []

    def vector(self, text: str) -> list[float]:
        v = np.random.default_rng(abs(hash(text)) % 2**32).normal(size=self.dim)
        return (v / np.linalg.norm(v)).tolist()

    def embed_passages(self, texts: Sequence[str]) -> list[Embedded]:
        return self.embed_queries(texts)

    def embed_queries(self, texts: Sequence[str]) -> list[Embedded]:
        self.batches.append(list(texts))
        return [Embedded(self.vector(t), SparseVec([len(t)], [1.0])) for t in texts]


def test_the_dense_vector_mixes_message_and_question_and_bm25_reads_the_whole_message() -> None:
    emb = Recording()
    chatty = "My uncle thinks it's all terminator stuff. Is ELK a real research problem?"
    plain = "what is a mesa-optimizer?"
    got = embed_questions(emb, [chatty, plain])

    whole = f"{chatty} (eliciting latent knowledge)"
    asked = "Is ELK a real research problem? (eliciting latent knowledge)"
    assert emb.batches == [[whole, asked, plain]]  # one batch, shorthand spelled out in both
    mixed = MESSAGE_WEIGHT * np.array(emb.vector(whole)) + (1 - MESSAGE_WEIGHT) * np.array(emb.vector(asked))
    assert np.allclose(got[0].dense, mixed / np.linalg.norm(mixed))
    assert abs(np.linalg.norm(got[0].dense) - 1) < 1e-9
    assert got[0].sparse == SparseVec([len(whole)], [1.0])
    assert got[1] == Embedded(emb.vector(plain), SparseVec([len(plain)], [1.0]))  # untouched
    assert embed_questions(emb, []) == []


async def test_a_preamble_on_another_subject_no_longer_decides_the_sources(
    embedder: FastEmbedder, slice_store: VectorStore
) -> None:
    question = "Why can't we just switch the AI off?"
    message = (
        "I've been reading about careers in interpretability research and about RLHF for weeks now. "
        f"{question}"
    )
    retriever = HybridRetriever(store=slice_store, embedder=embedder)
    found = [p.article_id for p in await retriever.search(message, k=3)]
    whole_only = retriever.search_embedded(embedder.embed_queries([message])[0], k=3)

    assert found[0] == "fixture:off-switch"
    assert whole_only[0].article_id != "fixture:off-switch"
