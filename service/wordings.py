"""Which questions are one question asked in other words, for the report's tables.

Two questions' `likeness` is the cosine of their vectors, plus SHARED_WORDS times the share of their
content words in common (each word weighted by how rare the library makes it, `retrieval.vocabulary`),
less CONTRAST when the words only one of them has and the words only the other has are alternatives the
library names side by side ("inner" and "outer" alignment) or two names ("Anthropic", "OpenAI").

Questions are grouped by average linkage: two groups join while the mean likeness between their
questions reaches SAME_QUESTION, so a wording joins the group of the question it shares most with, and
one close pair does not chain two questions together. SHARED_WORDS, SAME_QUESTION and CONTRAST_SEEN (and
the two used when the library's vocabulary cannot be read) are chosen by cross-validation by topic on
benchmarks/data/wording_pairs.jsonl (`benchmarks/wordings.py`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import numpy as np

from retrieval.vocabulary import EMPTY, Vocabulary, stem, tokens

SHARED_WORDS = 0.5
SAME_QUESTION = 0.77
# The same two without the library's vocabulary (the index unreadable: every word weighs the same).
SHARED_WORDS_PLAIN = 0.4
SAME_QUESTION_PLAIN = 0.79
CONTRAST_SEEN = 5  # times the library sets two words side by side before they tell questions apart
CONTRAST = 1.0  # taken off the likeness of two questions so told apart: never one question
BLOCK = 512  # questions compared at once when looking for candidate groups (memory: BLOCK x questions)
Embed = Callable[[Sequence[str]], list[list[float]]]

# Words that say nothing of what a question is about.
FILLER = frozenset(
    """a an the is are was were be been do does did doesn don what whats how why when who which where can
    could would should will i me my we us you your it its to of in on for and or but not no with about from
    by as at that this there their they them just so like please explain tell mean means meaning simple
    simply terms term someone anyone any some ai isn isnt cant can't couldn couldnt isn't don't doesn't
    couldn't won't wouldn't aren't""".split()
)


def wording(question: str) -> str:
    """What a question's vector is made of: its words without case, and with the field's shorthand spelled
    out (`retrieval.glossary`), so that "RLHF" and "reinforcement learning from human feedback" meet."""
    from retrieval.glossary import expand

    return expand(" ".join(question.split()))


@functools.lru_cache(maxsize=8192)
def content_words(question: str) -> frozenset[str]:
    """A question's content words (its shorthand spelled out too), as stems, without filler."""
    words = (w.removesuffix("'s") for w in tokens(wording(question)))
    return frozenset(stem(w) for w in words if w not in FILLER and len(w) >= 2)


class Wordings:
    """The questions of one report with their unit vectors, compared in the light of the library's
    vocabulary. Reads like the dict of vectors it wraps (`in`, `[]`, `get`). The constants can be given
    (`benchmarks/wordings.py` chooses them so)."""

    def __init__(
        self,
        vectors: dict[str, np.ndarray],
        vocabulary: Vocabulary = EMPTY,
        *,
        shared_words: float | None = None,
        same_question: float | None = None,
        contrast_seen: int = CONTRAST_SEEN,
    ):
        plain = not vocabulary.passages
        self.vectors = vectors
        self.vocabulary = vocabulary
        if shared_words is None:
            shared_words = SHARED_WORDS_PLAIN if plain else SHARED_WORDS
        if same_question is None:
            same_question = SAME_QUESTION_PLAIN if plain else SAME_QUESTION
        self.shared_words = shared_words
        self.same_question = same_question
        self.contrast_seen = contrast_seen

    def __contains__(self, question: object) -> bool:
        return question in self.vectors

    def __getitem__(self, question: str) -> np.ndarray:
        return self.vectors[question]

    def get(self, question: str) -> np.ndarray | None:
        return self.vectors.get(question)

    def shared(self, a: frozenset[str], b: frozenset[str]) -> float:
        """The weighted share of content words two questions have in common (1.0 when neither has any)."""
        every = a | b
        if not every:
            return 1.0
        idf = self.vocabulary.idf
        return sum(idf(w) for w in a & b) / sum(idf(w) for w in every)

    def told_apart(self, a: frozenset[str], b: frozenset[str]) -> bool:
        return self.vocabulary.contrast(a - b, b - a, seen=self.contrast_seen)

    def likeness(self, a: str, b: str) -> float:
        """How much two questions are one question; compared with `same_question`."""
        wa, wb = content_words(a), content_words(b)
        score = float(self.vectors[a] @ self.vectors[b]) + self.shared_words * self.shared(wa, wb)
        return score - CONTRAST if self.told_apart(wa, wb) else score

    def same(self, a: str, b: str) -> bool:
        """Whether two questions are one question asked in other words (taken alone, as a pair)."""
        return self.likeness(a, b) >= self.same_question

    def groups(self, texts: Sequence[str]) -> list[list[int]]:
        """Distinct questions (all known here) grouped by average linkage of `likeness`: each group as
        positions in `texts`, groups in the order of their first question."""
        out: list[list[int]] = []
        for part in self._candidates(texts):
            out += cut(part, self.merges(texts, part), self.same_question) if len(part) > 1 else [part]
        return sorted((sorted(g) for g in out), key=lambda g: g[0])

    def _candidates(self, texts: Sequence[str]) -> list[list[int]]:
        """Questions that may end in one group: joined by any pair whose likeness, before CONTRAST, reaches
        SAME_QUESTION (average linkage joins two groups only through such a pair)."""
        n = len(texts)
        if n == 0:
            return []
        vectors = np.stack([self.vectors[t] for t in texts]).astype(np.float32)
        words = [content_words(t) for t in texts]
        column = {w: k for k, w in enumerate(sorted(set().union(*words)))}
        present = np.zeros((n, max(1, len(column))), dtype=np.float32)
        for i, ws in enumerate(words):
            for w in ws:
                present[i, column[w]] = 1.0
        idf = np.ones(present.shape[1], dtype=np.float32)
        for w, k in column.items():
            idf[k] = self.vocabulary.idf(w)
        weighted = present * idf
        total = weighted.sum(axis=1)
        parent = list(range(n))

        def root(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        for start in range(0, n, BLOCK):
            end = min(n, start + BLOCK)
            both = weighted[start:end] @ present.T
            either = total[start:end, None] + total[None, :] - both
            shared = np.where(either > 0, both / np.maximum(either, 1e-9), 1.0)
            upper = vectors[start:end] @ vectors.T + self.shared_words * shared
            for i, j in zip(*np.nonzero(upper >= self.same_question), strict=True):
                a, b = root(int(i) + start), root(int(j))
                if a != b:
                    parent[max(a, b)] = min(a, b)
        parts: dict[int, list[int]] = {}
        for i in range(n):
            parts.setdefault(root(i), []).append(i)
        return list(parts.values())

    def merges(
        self, texts: Sequence[str], part: Sequence[int], floor: float | None = None
    ) -> list[tuple[float, int, int]]:
        """Average linkage of `part` (positions in `texts`): every merge as (mean likeness between the two
        groups, a question of each), best first, until the best mean falls below `floor` (SAME_QUESTION
        by default). The means only fall, so cutting the list at any threshold gives that threshold's
        groups (`cut`)."""
        floor = self.same_question if floor is None else floor
        m = len(part)
        sums = np.zeros((m, m))
        for x in range(m):
            for y in range(x + 1, m):
                sums[x, y] = sums[y, x] = self.likeness(texts[part[x]], texts[part[y]])
        size = np.ones(m)
        alive = np.ones(m, dtype=bool)
        out: list[tuple[float, int, int]] = []
        for _ in range(m - 1):
            mean = sums / np.outer(size, size)
            mean[~alive, :] = -np.inf
            mean[:, ~alive] = -np.inf
            np.fill_diagonal(mean, -np.inf)
            x, y = divmod(int(np.argmax(mean)), m)
            if mean[x, y] < floor:
                break
            out.append((float(mean[x, y]), part[x], part[y]))
            x, y = min(x, y), max(x, y)
            sums[x, :] += sums[y, :]
            sums[:, x] += sums[:, y]
            size[x] += size[y]
            alive[y] = False
        return out


def cut(part: Sequence[int], merges: Sequence[tuple[float, int, int]], threshold: float) -> list[list[int]]:
    """The groups of `part` after the merges whose mean likeness reaches `threshold`."""
    parent = {p: p for p in part}

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    for mean, a, b in merges:
        if mean < threshold:
            break
        ra, rb = root(a), root(b)
        parent[max(ra, rb)] = min(ra, rb)
    groups: dict[int, list[int]] = {}
    for p in part:
        groups.setdefault(root(p), []).append(p)
    return list(groups.values())


def embed_questions(questions: Sequence[str], embed: Embed, vocabulary: Vocabulary | None = None) -> Wordings:
    """Each distinct question's unit vector, embedded once for every section of the report."""
    texts = sorted({q for q in questions if q.strip()})
    if not texts:
        return Wordings({}, vocabulary or EMPTY)
    vectors = np.asarray(embed([wording(t) for t in texts]), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True) + 1e-9
    return Wordings(dict(zip(texts, vectors, strict=True)), vocabulary or EMPTY)
