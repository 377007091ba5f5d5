from __future__ import annotations

import re
from pathlib import Path

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.slack.render import (
    SECTION_LIMIT,
    build_history,
    escape,
    neutralise,
    render_blocks,
    render_text,
    split_sections,
    to_mrkdwn,
    to_question,
)
from bot.models import Answer, Source
from tests.conftest import ROOT

BOT = "UBOT0001"
SLACK_LINK = re.compile(r"<https?://[^<>|\s]*\|[^<>]*>")


def test_event_to_question_and_history() -> None:
    history = [
        {"user": "U1", "text": f"<@{BOT}> what is a mesa-optimizer?", "ts": "1.0"},
        {"user": BOT, "text": "An optimizer inside a model [1].", "ts": "2.0"},
        {"user": "U2", "text": "", "ts": "3.0"},
    ]
    q = to_question(
        {"text": f"<@{BOT}|bot> why would it do that?", "user": "U1", "channel": "C1"},
        bot_user_id=BOT,
        history=history,
        community="slack:T1",
    )
    assert q.text == "why would it do that?" and q.asker == "slack:U1" and q.place == "slack:C1"
    assert [(t.role, t.text) for t in q.history] == [
        ("user", "what is a mesa-optimizer?"),
        ("assistant", "An optimizer inside a model [1]."),
    ]
    many = [{"user": "U1", "text": f"m{i}"} for i in range(40)]
    assert [t.text for t in build_history(many, BOT, limit=3)] == ["m37", "m38", "m39"]


def test_markdown_becomes_mrkdwn_and_untrusted_text_is_escaped() -> None:
    text = "**Bold** and [the FAQ](https://aisafety.info/q/1) but 1 < 2 & <!channel> <@U9>"
    out = to_mrkdwn(text, ["https://aisafety.info/q/1"])  # a library article: the bot links it
    assert out.startswith("*Bold* and <https://aisafety.info/q/1|the FAQ>")
    assert "1 &lt; 2 &amp; &lt;!channel&gt; &lt;@U9&gt;" in out
    # Without the library (a preview, a member's question) no address hides behind a label.
    assert to_mrkdwn(text).startswith("*Bold* and the FAQ (aisafety.info) but")
    assert escape("@channel @Here") == "@\u200bchannel @\u200bHere"
    assert "<!here>" not in neutralise("hi <!here> <!subteam^S1|@team> <@U123|bob>")


def test_blocks_have_sources_read_next_and_buttons() -> None:
    answer = Answer(
        "Answer [1].",
        (Source(1, "a:1", "What is <AI> safety?", "https://aisafety.info/questions/1/x"),),
        "llm",
        read_next=(Source(1, "a:2", "Next | one", "https://aisafety.info/questions/2/y"),),
    )
    blocks = render_blocks(answer, 7)
    texts = [b["text"]["text"] for b in blocks if b["type"] == "section"]
    assert texts[0] == "Answer [1]."
    assert "[1] <https://aisafety.info/questions/1/x|What is &lt;AI&gt; safety?>" in texts[1]
    assert "• <https://aisafety.info/questions/2/y|Next ¦ one>" in texts[1]
    assert blocks[-1]["elements"][0]["value"] == "7"
    assert render_blocks(answer, None)[-1]["type"] != "actions"
    assert "*Sources*" in render_text(answer) and "Answer [1]." in render_text(answer)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.text(alphabet="abc XYZ.!?*_", min_size=1, max_size=120),
            st.sampled_from(["\n\n", "\n", ". "]),
            st.builds(
                lambda t, u: f"[{t}](https://e.org/{u})",
                st.text("abc de", min_size=1, max_size=40),
                st.text("abc", max_size=80),
            ),
        ),
        max_size=200,
    )
)
def test_sections_never_exceed_never_break_a_link_and_lose_nothing(parts: list[str]) -> None:
    text = to_mrkdwn("".join(parts))
    sections = split_sections(text)
    assert all(len(s) <= SECTION_LIMIT for s in sections)
    # Only whitespace-only pieces are dropped: not one visible character is lost or reordered.
    assert re.sub(r"\s", "", "".join(sections)) == re.sub(r"\s", "", text)
    for m in SLACK_LINK.finditer(text):
        assert any(m.group(0) in s for s in sections)
    blocks = render_blocks(Answer("".join(parts), (), "llm"), 1)
    assert all(len(b["text"]["text"]) <= SECTION_LIMIT for b in blocks if b["type"] == "section")


def test_manifest_has_exactly_what_the_bot_uses() -> None:
    manifest = yaml.safe_load((ROOT / "slack-app-manifest.yml").read_text())
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    events = set(manifest["settings"]["event_subscriptions"]["bot_events"])
    commands = {c["command"] for c in manifest["features"]["slash_commands"]}
    source = "".join(p.read_text() for p in sorted((ROOT / "adapters" / "slack").glob("*.py")))
    # Web API calls: self.client.X(...) in the bot, client.X(...) in the start-up checks.
    methods = set(re.findall(r"(?:\bself\.client|(?<![.\w])client)\.(\w+)\(", source))
    needs = {
        "auth_test": set(),
        "apps_connections_open": set(),  # Socket Mode, with the app-level token's connections:write
        "chat_postMessage": {"chat:write"},
        "chat_update": {"chat:write"},
        "chat_delete": {"chat:write"},  # a placeholder left beside an answer posted anew
        "chat_postEphemeral": {"chat:write"},
        "conversations_replies": {"channels:history", "groups:history"},
        "conversations_history": {"im:history"},
        "users_info": {"users:read"},  # /aisafety-settings and /aisafety-report: is the member an admin
    }
    assert methods == set(needs), "a new Web API method: add it (and its scope) here and to the manifest"
    listeners = set(re.findall(r'self\.app\.(?:event|command)\("([^"]+)"\)', source))
    # app_uninstalled / tokens_revoked: a workspace that removes the app is forgotten (OAuth installs).
    assert listeners == {"app_mention", "message", "/ask", "app_uninstalled", "tokens_revoked"}
    admin_commands = set(re.findall(r'\bapp\.command\("([^"]+)"\)', source)) - listeners
    assert admin_commands == {"/aisafety-settings", "/aisafety-report"}  # adapters/slack/commands.py
    assert commands == {"/ask"} | admin_commands
    slash = {"/ask"} | admin_commands
    assert scopes == set().union(*needs.values()) | {"app_mentions:read", "commands"}
    assert events == {
        "app_mention",
        "message.channels",
        "message.groups",
        "message.im",
        "app_uninstalled",
        "tokens_revoked",
    }
    assert listeners - slash <= {e.split(".")[0] for e in events}
    assert manifest["settings"]["interactivity"]["is_enabled"] is True  # the 👍 / 👎 buttons
    assert Path(ROOT / "slack-app-manifest.yml").exists()


def test_abstentions_get_no_feedback_buttons() -> None:
    nearest = (Source(1, "a:1", "Nearest", "https://aisafety.info/questions/1/x"),)
    blocks = render_blocks(
        Answer("The articles I know don't cover that.", (), "abstain", read_next=nearest), 5
    )
    assert all(b["type"] != "actions" for b in blocks)
    assert "*Nearest articles*" in blocks[-1]["text"]["text"]


def test_link_urls_cannot_break_out_of_a_slack_link() -> None:
    answer = Answer(
        "See [the page](https://example.org/a%3Cb%3Ec|d).",
        (Source(1, "a:1", "A <b> | c", "https://example.org/a<b>c|d"),),
        "llm",
    )
    text = render_text(answer)
    assert "See <https://example.org/a%3Cb%3Ec%7Cd|the page>." in text  # the model's link to it, rebuilt
    assert "[1] <https://example.org/a%3Cb%3Ec%7Cd|A &lt;b&gt; ¦ c>" in text
    assert to_mrkdwn("[the page](https://example.org/a<b>c|d)") == "the page (example.org)"


def test_markdown_is_written_as_mrkdwn() -> None:
    text = "A *point* and ~~not~~ `code <x>`:\n\n- one\n- two\n\n1. first\n\n> quoted\n\n```py\nx < 1\n```"
    assert to_mrkdwn(text) == (
        "A _point_ and ~not~ `code &lt;x&gt;`:\n\n• one\n• two\n\n1. first\n\n> quoted\n\n```\nx &lt; 1\n```"
    )
