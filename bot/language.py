"""Is a question written in English? A small, dependency-free check, good enough to choose between
searching the question as it is and translating it first.

The library and its embedding model are English. A question in another language is searched with an
English query (written by the language model), or, without one, gets a reply that says so instead of
a false "the articles don't cover that".
"""

from __future__ import annotations

import re
import unicodedata

_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)

# The most frequent function words of English; a sentence of four words or more uses some of them.
ENGLISH = frozenset(
    """a an the is are was were be been being do does did have has had i you he she it we they me him her
    us them my your his its our their this that these those what which who whom whose why how when where
    can could would should will shall may might must not no and or but if of to in on at by for with
    about from into than then there here as so just also only any some all more most very such why""".split()
)
# Function words of other languages written in Latin script that English never uses as words.
OTHER = frozenset(
    """le la les des une est sont pourquoi comment quoi qui que qu dans pour avec sur pas ne peut être
    el los las por qué porque cómo es una del con para según también está son
    der die das und ist nicht warum wie was wir ein eine mit für kann auf dem den
    il lo gli perché come che sono della di un non
    o os um uma não por que como é são
    het een niet waarom hoe wat zijn van en ik
    czy jest nie jak dlaczego się""".split()
)


def looks_english(text: str) -> bool:
    """False for text mostly in a non-Latin script, or Latin-script text whose function words are those
    of another language; True otherwise (short or ambiguous text counts as English)."""
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return True
    latin = sum(1 for c in letters if "LATIN" in unicodedata.name(c, ""))
    if latin / len(letters) < 0.5:
        return False
    words = [w.lower() for w in _WORD.findall(text)]
    if len(words) < 3:
        return True
    english = sum(w in ENGLISH for w in words)
    other = sum(w in OTHER and w not in ENGLISH for w in words)
    return not (other >= 2 and other > english)
