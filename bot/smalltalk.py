"""Small talk addressed to the bot: a greeting, thanks, a check that it is there, a question about the bot
itself. Such a message is not a question for the library: it gets a short friendly reply at once, is
never searched, and counts as off-topic in the report (it is no article to write).

Only a whole message that is nothing but small talk is: "thanks, but why would it resist shutdown?" is a
question, and "hi, what is inner alignment?" too.
"""

from __future__ import annotations

import re
from typing import Literal

Kind = Literal["greeting", "thanks", "presence", "about"]

_NAME = r"(?:\s+(?:there|all|everyone|everybody|folks|team|friends?|guys|y'?all|bot|stampy))?"
_GREETING = (
    r"(?:hi|hii+|hello|hey|heya|hiya|howdy|yo|sup|greetings|gm|good\s+(?:morning|afternoon|evening|day)|"
    r"what'?s\s+up|how\s+are\s+you(?:\s+doing)?(?:\s+today)?|how'?s\s+it\s+going)"
)
_THANKS = r"(?:thanks|thank\s+you|thx|ty|tysm|cheers|much\s+appreciated|appreciate\s+it|great,?\s+thanks)"
_THANKS_TAIL = (
    r"(?:\s*,?\s*(?:so\s+much|a\s+lot|a\s+bunch|again|very\s+much|mate|bot|"
    r"(?:that|this|it)\s+(?:was|is|helps?|helped)(?:\s+(?:really|very|so|super))?"
    r"(?:\s+(?:helpful|useful|great|clear|interesting|good|nice))?))*"
)
_PRESENCE = (
    r"(?:are\s+you\s+(?:there|awake|alive|online|working)|you\s+there|anyone\s+(?:there|home)|"
    r"is\s+(?:this|the\s+bot)\s+(?:thing\s+)?(?:on|working)|ping|test|testing)"
)
_ABOUT = (
    r"(?:who\s+are\s+you|what\s+are\s+you|what\s+can\s+you\s+do|what\s+do\s+you\s+do|who\s+(?:made|built|"
    r"created)\s+you|are\s+you\s+(?:a\s+)?(?:bot|robot|human|real(?:\s+person)?|person|an?\s+ai|chatgpt|"
    r"claude)|help|how\s+do\s+(?:i|you)\s+use\s+(?:you|this(?:\s+bot)?))"
)
_END = r"[\s!.?,:;)(*~^-]*$"
_BODIES: tuple[tuple[Kind, str], ...] = (
    ("greeting", _GREETING),
    ("thanks", _THANKS + _THANKS_TAIL),
    ("presence", _PRESENCE),
    ("about", _ABOUT),
)
_PATTERNS = tuple((kind, re.compile(rf"^\W*{body}{_NAME}{_END}", re.IGNORECASE)) for kind, body in _BODIES)
# Emoji, Discord's custom emoji and user mentions say nothing of the message's kind.
_DECORATION = re.compile(r"<a?:\w+:\d+>|<@!?\d+>|<@[A-Z0-9]+>|[\U0001F000-\U0001FAFF\u2600-\u27BF\uFE0F]")

REPLIES: dict[Kind, str] = {
    "greeting": "Hello! Ask me a question about AI safety or alignment, for example: "
    "*What is the orthogonality thesis?*",
    "thanks": "Glad it helped! Ask me anything else about AI safety or alignment.",
    "presence": "I'm here. Ask me a question about AI safety or alignment, for example: "
    "*Why can't we just turn the AI off?*",
    "about": "I answer questions about AI safety and alignment from a library of articles "
    "(aisafety.info first, then textbooks and papers), and link the articles I used. Ask me one, for "
    "example: *What is the orthogonality thesis?*",
}


def small_talk(text: str) -> Kind | None:
    """The kind of small talk the whole message is, or None when it is (or holds) a question."""
    plain = " ".join(_DECORATION.sub(" ", text.replace("\u2019", "'")).split())
    if not plain or len(plain) > 80:
        return None
    for kind, pattern in _PATTERNS:
        if pattern.match(plain):
            return kind
    return None
