from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.discord.render import (
    MESSAGE_LIMIT,
    Said,
    build_history,
    defuse,
    render,
    split_message,
    strip_mentions,
    thread_name,
    to_question,
)
from bot.models import Answer, Source

BOT = 4242
LINK = re.compile(r"\[[^\]\n]*\]\(<?[^)\s]*>?\)")


def test_strip_mentions_keeps_other_people() -> None:
    assert (
        strip_mentions(f"<@{BOT}> what is  corrigibility? cc <@99>", BOT) == "what is corrigibility? cc <@99>"
    )
    assert strip_mentions(f"<@!{BOT}>", BOT) == ""


def test_history_roles_and_bound() -> None:
    said = [
        Said(1, f"<@{BOT}> what is a mesa-optimizer?"),
        Said(BOT, "An optimizer inside [1]."),
        Said(2, ""),
    ]
    history = build_history(said, BOT)
    assert [(t.role, t.text) for t in history] == [
        ("user", "what is a mesa-optimizer?"),
        ("assistant", "An optimizer inside [1]."),
    ]
    many = [Said(1, f"m{i}") for i in range(50)]
    assert [t.text for t in build_history(many, BOT, limit=5)] == ["m45", "m46", "m47", "m48", "m49"]
    q = to_question(
        f"<@{BOT}> why would it do that?", bot_id=BOT, history=said, asker="1", place="c", community="dm"
    )
    assert q.text == "why would it do that?" and len(q.history) == 2 and q.community == "dm"


def test_thread_name_is_bounded() -> None:
    assert thread_name("short one") == "short one"
    long = thread_name("word " * 60)
    assert len(long) <= 100 and long.endswith("…")


def test_render_sources_without_previews_and_without_pings() -> None:
    answer = Answer(
        "Ping @everyone and @here and <@&123> and <@456> [1].",
        (Source(1, "a:1", "What is [AI] safety?", "https://aisafety.info/questions/1/x"),),
        "llm",
        read_next=(Source(1, "a:2", "Next", "https://aisafety.info/questions/2/y"),),
    )
    text = render(answer)
    assert "[1] [What is (AI) safety?](<https://aisafety.info/questions/1/x>)" in text
    assert "• [Next](<https://aisafety.info/questions/2/y>)" in text and "**Read next**" in text
    for ping in ("@everyone", "@here", "<@&123>", "<@456>"):
        assert ping not in text
    assert defuse("mail me@everyone.org") != "mail me@everyone.org"  # defused too; harmless


def test_split_prefers_paragraphs_and_keeps_links_whole() -> None:
    para = "A sentence here. " * 60
    link = "[A long title](<https://aisafety.info/questions/1234/some-long-slug>)"
    text = f"{para}\n\n{para}{link} {para}"
    parts = split_message(text)
    assert "".join(parts) == text
    assert all(len(p) <= MESSAGE_LIMIT for p in parts)
    assert parts[0].endswith("\n\n")
    assert any(link in p for p in parts)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.text(alphabet="abc XYZ.!?", min_size=1, max_size=80),
            st.sampled_from(["\n\n", "\n", ". ", "```py\nx = 1\n```"]),
            st.builds(
                lambda t, u: f"[{t}](<https://e.org/{u}>)",
                st.text("abc de", max_size=40),
                st.text("abc", max_size=60),
            ),
        ),
        max_size=120,
    ),
    st.integers(min_value=120, max_value=2000),
)
def test_split_never_exceeds_never_breaks_a_link_and_loses_nothing(parts: list[str], limit: int) -> None:
    text = "".join(parts)
    pieces = split_message(text, limit)
    assert "".join(pieces) == text
    assert all(len(p) <= limit for p in pieces)
    for m in LINK.finditer(text):
        if m.end() - m.start() < limit // 2:
            assert any(m.group(0) in p for p in pieces), m.group(0)
