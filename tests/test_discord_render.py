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
    render_preview,
    split_message,
    strip_mentions,
    thread_name,
    to_markdown,
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


def test_thread_name_is_shown_as_typed_but_cannot_link_or_ping() -> None:
    name = thread_name("[Official answer](https://evil.example/phish) @everyone <@1>?")
    assert name == "[Official answer]\u200b(https://evil.example/phish) @\u200beveryone <\u200b@1>?"


def test_the_models_markdown_is_kept_and_only_link_and_mention_syntax_is_escaped() -> None:
    text = (
        "**Bold**, *it*, ~~no~~ and `a <b>` [1][2]. See [the page](https://evil.example/p).\n\n"
        "- one\n- two\n  - nested\n\n3. third\n\n> quoted [x](<https://evil.example/q>)\n\n"
        "```py\nx = [1](2)  # <@1>\n```\n\nC:\\dir and `` a`b ``"
    )
    assert to_markdown(text) == (
        "**Bold**, *it*, ~~no~~ and `a <\u200bb>` [1][2]. See the page (evil.example).\n\n"
        "- one\n- two\n  - nested\n\n3. third\n\n> quoted x (evil.example)\n\n"
        "```py\nx = [1]\u200b(2)  # <\u200b@1>\n```\n\nC:\\\\dir and ``a`b``"
    )


def test_a_preview_is_one_message_with_no_masked_link() -> None:
    assert (
        render_preview("Read [the FAQ](https://aisafety.info/q/1) [1].")
        == "Read the FAQ (aisafety.info) [1]."
    )
    long = render_preview("[a](b) " + "<@1> " * 1000)
    assert len(long) <= MESSAGE_LIMIT and long.endswith(" …") and "<@1>" not in long


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


def test_source_links_cannot_be_broken_by_their_title_or_address() -> None:
    answer = Answer(
        "Text [1].",
        (Source(1, "a:1", "A [b] <@1> `c` \\", "https://example.org/a b(c)<d>"),),
        "llm",
    )
    assert "[1] [A (b) <\u200b@1> \\`c\\` \\\\](<https://example.org/a%20b%28c%29%3Cd%3E>)" in render(answer)


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
