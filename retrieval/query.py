"""What is searched for a member's question: its words with the field's shorthand spelled out
(`retrieval.glossary`), and, when the message wraps its question in other sentences ("2nd year CS
undergrad here. which classes should i prioritize if i wanna work on AGI safety? is a math degree
better?"), a dense vector that gives the question sentences as much weight as the whole message.

Members' messages are chatty: half of the project's check questions carry a preamble, an aside or a
story around the question. The whole message's embedding averages over all of it, and the preamble
pulls it towards articles about the preamble's subject. Mixing in the question sentences' own embedding
keeps the context (the undergrad, the uncle, the news segment) and puts the weight back on what is asked.
BM25 still reads every word of the message. On the project's own questions (5-fold cross-validation,
four fold seeds) the mix raised hit@5 0.936 -> 0.943, hit@1 0.795 -> 0.802, MRR 0.850 -> 0.856; a weight
of 0.3 or 0.7 on the whole message did less (BENCHMARKS.md).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from retrieval.embeddings import Embedded, Embedder
from retrieval.glossary import expand

# The whole message's share of the dense vector; the question sentences have the rest.
MESSAGE_WEIGHT = 0.5
# The question sentences are embedded on their own only when they are under this share of the message's
# words: where they are most of it, the mix changed no cross-validated figure (a threshold of 0.9 or
# 0.75 gave 0.942-0.943 / 0.802 / 0.856, 0.6 gave 0.943 / 0.800 / 0.856) and cost a second embedding.
MAX_FOCUS_SHARE = 0.75

# A sentence ends at . ! or ? (with any closing quote or bracket after it) and a space, or at a line end.
_SENTENCE = re.compile(r"(?<=[.!?])\s+|(?<=[.!?][\"'”’)\]])\s+|\n+")
_CLOSERS = " \t\"'”’)]*_"


def focus(question: str) -> str | None:
    """The question sentences of a message that also holds other sentences (the sentences ending in a
    question mark, in order); None when every sentence is a question or none is, or when they make up
    most of the message (`MAX_FOCUS_SHARE` of its words or more)."""
    sentences = [s.strip() for s in _SENTENCE.split(question.strip()) if s.strip()]
    asked = " ".join(s for s in sentences if s.rstrip(_CLOSERS).endswith("?"))
    if not asked or len(asked.split()) >= MAX_FOCUS_SHARE * len(question.split()):
        return None
    return asked


def embed_questions(embedder: Embedder, questions: Sequence[str]) -> list[Embedded]:
    """The search vectors of these questions, embedded in one batch: each question's dense vector is
    the whole message's mixed with its question sentences' (`focus`), its BM25 terms the whole
    message's."""
    texts: list[str] = []
    parts: list[tuple[int, int | None]] = []
    for question in questions:
        texts.append(expand(question))
        asked = focus(question)
        if asked is None:
            parts.append((len(texts) - 1, None))
        else:
            texts.append(expand(asked))
            parts.append((len(texts) - 2, len(texts) - 1))
    vectors = embedder.embed_queries(texts) if texts else []
    out = []
    for whole, asked_at in parts:
        message = vectors[whole]
        if asked_at is None:
            out.append(message)
            continue
        mixed = MESSAGE_WEIGHT * np.asarray(message.dense) + (1 - MESSAGE_WEIGHT) * np.asarray(
            vectors[asked_at].dense
        )
        norm = float(np.linalg.norm(mixed))
        dense = (mixed / norm).tolist() if norm > 0 else list(message.dense)
        out.append(Embedded(dense, message.sparse))
    return out
