"""What the library's own text says about words, for telling wordings of one question from different
questions (the report's grouping, `service.wordings`):

- how many passages use each word (its stem), so that a word every article uses ("alignment", "safety")
  counts for little when two questions are compared and a rare one ("inner", "boxing") for much;
- which words the library names side by side as alternatives ("inner and outer", "debate or
  amplification"): two questions that differ by such a pair are two questions, however close their
  vectors are;
- which words the library writes as names (capitalised in mid-sentence: "Anthropic", "OpenAI"): two
  questions each naming someone the other does not are about different people.

It is computed from the passages of the live index (`from_texts`), kept with the index (the embedded
store writes it beside its article catalogue) and rebuilt when the index changes. No list of words is
written by hand: a deployment's library, not this project's, decides.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import snowballstemmer

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
# "inner and outer", "debate or amplification", "RLHF vs. debate", "reward/utility": two words the
# library sets side by side as alternatives. Stems are compared, so plural and tense do not matter.
_SIDE_BY_SIDE = re.compile(
    r"\b([a-z][a-z0-9'-]+)\s*(?:,\s*|\s+)(?:and|or|vs\.?|versus)\s+([a-z][a-z0-9'-]+)"
    r"|\b([a-z][a-z0-9'-]+)\s*/\s*([a-z][a-z0-9'-]+)"
)
# A word after a lower-case word or a comma is in mid-sentence: capitalised there, it is a name.
_MID_SENTENCE = re.compile(r"(?<=[a-z0-9,;] )([A-Za-z][A-Za-z0-9'-]+)")
# A word the library writes capitalised at least this share of the times it appears mid-sentence, and
# at least NAME_SEEN times, is a name.
NAME_SHARE = 0.8
NAME_SEEN = 3
# Pairs seen side by side fewer times than this are not kept (chance, not a contrast the library makes).
KEEP_PAIRS = 2
_BRITISH = re.compile(r"(?<=[a-z]{3})is(e|es|ed|er|ers|ing|ation|ations)$")

_stemmer = snowballstemmer.stemmer("english")


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """A word's stem, lower case, British -ise spellings as -ize ("optimiser" and "optimizers" meet),
    without a possessive 's."""
    word = word.lower().strip("'-").removesuffix("'s")
    return str(_stemmer.stemWord(_BRITISH.sub(r"iz\1", word)))


def tokens(text: str) -> list[str]:
    """A text's words, lower case, in order; hyphenated words are their parts ("mesa-optimizer")."""
    return _WORD.findall(text.lower().replace("\u2019", "'"))


def stems(text: str) -> list[str]:
    """Every word's stem in order."""
    return [stem(w) for w in tokens(text)]


@dataclass(frozen=True)
class Vocabulary:
    """Passage counts of stems, pairs set side by side, and names, from the library's text."""

    passages: int = 0
    df: Mapping[str, int] = field(default_factory=dict)
    pairs: Mapping[frozenset[str], int] = field(default_factory=dict)
    names: frozenset[str] = frozenset()

    @classmethod
    def from_texts(cls, texts: Iterable[str]) -> Vocabulary:
        df: Counter[str] = Counter()
        pairs: Counter[frozenset[str]] = Counter()
        capital: Counter[str] = Counter()
        lower: Counter[str] = Counter()
        n = 0
        for text in texts:
            if not text.strip():
                continue
            n += 1
            df.update(set(stems(text)))
            low = text.lower()
            for m in _SIDE_BY_SIDE.finditer(low):
                a, b = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
                sa, sb = stem(a), stem(b)
                if sa != sb:
                    pairs[frozenset((sa, sb))] += 1
            for m in _MID_SENTENCE.finditer(text):
                word = m.group(1)
                (capital if word[0].isupper() else lower)[stem(word)] += 1
        names = frozenset(
            s for s, c in capital.items() if c >= NAME_SEEN and c >= NAME_SHARE * (c + lower.get(s, 0))
        )
        return cls(n, dict(df), {p: c for p, c in pairs.items() if c >= KEEP_PAIRS}, names)

    def idf(self, word: str) -> float:
        """How rare a stem is in the library (1.0 for every word when there is no library)."""
        if not self.passages:
            return 1.0
        return math.log((self.passages + 1) / (self.df.get(word, 0) + 0.5))

    def side_by_side(self, a: str, b: str) -> int:
        """How often the library sets these two stems side by side as alternatives."""
        return self.pairs.get(frozenset((a, b)), 0)

    def contrast(self, only_a: Iterable[str], only_b: Iterable[str], *, seen: int) -> bool:
        """Whether the words only one question has and the words only the other has make them two
        questions: a pair the library sets side by side at least `seen` times, or a name on each side."""
        only_a, only_b = set(only_a), set(only_b)
        if only_a & self.names and only_b & self.names:
            return True
        return any(self.side_by_side(x, y) >= seen for x in only_a for y in only_b)

    def to_json(self) -> dict[str, Any]:
        return {
            "passages": self.passages,
            "df": dict(self.df),
            "pairs": [[*sorted(p), c] for p, c in self.pairs.items()],
            "names": sorted(self.names),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Vocabulary:
        return cls(
            int(data.get("passages", 0)),
            {str(k): int(v) for k, v in dict(data.get("df", {})).items()},
            {frozenset((str(a), str(b))): int(c) for a, b, c in data.get("pairs", [])},
            frozenset(str(n) for n in data.get("names", [])),
        )


EMPTY = Vocabulary()
