"""The Discord adapter end to end: real discord.py against a fake gateway and REST API on 127.0.0.1,
with the real answer core, real embeddings and Qdrant, and the fake Anthropic API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import discord
import pytest
import pytest_asyncio
import yarl

from adapters.discord.client import USAGE, AiSafetyDiscord
from adapters.discord.invite import invite_url
from bot.conversation import Conversation
from bot.core import AnswerCore
from bot.platform import PlatformOptions
from retrieval.embeddings import FastEmbedder
from retrieval.index import StoreError, VectorStore
from retrieval.search import HybridRetriever
from service.anthropic_llm import AnthropicLLM
from service.feedback import FeedbackStore
from tests.fake_anthropic import FakeAnthropic, Reply
from tests.fake_discord import FakeDiscord

StartBot = Callable[..., Awaitable[AiSafetyDiscord]]


# Questions longer than this get a reply asking for a shorter one (MAX_QUESTION_CHARS, lowered for tests).
MAX_CHARS = 400
LONG_QUESTION = "Please read this carefully and then explain corrigibility. " * 12


def feedback_of(platform_bot: Any) -> FeedbackStore:
    """The answers store behind a platform's conversation (the adapters reach it only through that)."""
    store = platform_bot.conversation.store
    assert isinstance(store, FeedbackStore)
    return store


@pytest_asyncio.fixture
async def fake_discord(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeDiscord]:
    fake = FakeDiscord()
    await fake.start()
    monkeypatch.setattr(discord.http.Route, "BASE", fake.api_base)
    monkeypatch.setattr(discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY", fake.gateway_url)
    yield fake
    await fake.stop()


@pytest_asyncio.fixture
async def start_bot(
    fake_discord: FakeDiscord,
    slice_store: VectorStore,
    embedder: FastEmbedder,
    llm_server: FakeAnthropic,
    tmp_path: Path,
) -> AsyncIterator[StartBot]:
    clients: list[tuple[AiSafetyDiscord, asyncio.Task[None]]] = []
    feedback = FeedbackStore(tmp_path / "feedback.sqlite3")

    async def start(**options: Any) -> AiSafetyDiscord:
        llm = AnthropicLLM(
            api_key="k", model="claude-test", base_url=llm_server.url, timeout_s=5, max_retries=1
        )
        core = AnswerCore(
            retriever=HybridRetriever(store=slice_store, embedder=embedder),
            llm=llm,
            max_question_chars=MAX_CHARS,
        )
        opts = PlatformOptions(**{"edit_interval_s": 0.2, "rate_limit_per_minute": 0, **options})
        conversation = Conversation.in_process(
            "discord", core=core, store=feedback, options=opts, usage=USAGE
        )
        client = AiSafetyDiscord(conversation=conversation, guild_ready_timeout=0.2)
        task = asyncio.create_task(client.start("fake-token"))
        clients.append((client, task))
        async with asyncio.timeout(20):
            while not client.is_ready():
                if task.done():
                    task.result()  # the client died: show why
                await asyncio.sleep(0.02)
        return client

    yield start
    for client, task in clients:
        await client.close()
        task.cancel()
    feedback.close()


def bot_posts(fake: FakeDiscord, channel: int | str) -> list[dict[str, Any]]:
    return [
        r.body for r in fake.calls("POST", f"/channels/{channel}/messages") if r.path.endswith("/messages")
    ]


def final_texts(fake: FakeDiscord, channel: int | str) -> list[str]:
    """What the bot shows in a channel now: its messages after all edits."""
    return [
        m["content"] for m in fake.messages.get(int(channel), []) if m["author"]["id"] == str(fake.bot_id)
    ]


async def asked(fake: FakeDiscord, question: str, channel: int | None = None) -> dict[str, Any]:
    """A member mentions the bot with `question`; returns their message once the cited answer is shown."""
    msg = await fake.user_says(channel or fake.channel_id, mention(fake, question))
    await fake.wait_for(lambda: any("**Sources**" in t for t in final_texts(fake, msg["id"])))
    return msg


def mention(fake: FakeDiscord, text: str) -> str:
    return f"<@{fake.bot_id}> {text}"


async def test_mention_starts_a_thread_and_streams_a_cited_answer(
    start_bot: StartBot, fake_discord: FakeDiscord, llm_server: FakeAnthropic
) -> None:
    fake = fake_discord
    llm_server.script.append(
        Reply(
            text="The orthogonality thesis says intelligence and goals vary independently [1]. " * 3,
            chunk_delay_s=0.03,
        )
    )
    await start_bot()
    msg = await asked(fake, "what is the orthogonality thesis?")
    thread = msg["id"]

    create = fake.calls("POST", f"/channels/{fake.channel_id}/messages/{thread}/threads")
    assert create and create[0].body["name"] == "what is the orthogonality thesis?"
    assert fake.calls("POST", f"/channels/{thread}/typing")
    posts = bot_posts(fake, thread)
    edits = fake.calls("PATCH", f"/channels/{thread}/messages/")
    assert len(posts) == 1 and len(edits) >= 2  # one reply, streamed by editing it
    assert len(posts[0]["content"]) < len(edits[-1].body["content"])
    final = edits[-1].body
    assert (
        "[1] [What is the orthogonality thesis?](<https://example.org/articles/orthogonality>)"
        in final["content"]
    )
    assert final["flags"] & 4  # link previews suppressed
    assert "aisafety:fb:" in str(final["components"])
    for body in posts:
        assert body["allowed_mentions"] == {"parse": []}
        assert body["flags"] & 4


async def test_follow_up_in_the_thread_uses_its_history(
    start_bot: StartBot, fake_discord: FakeDiscord, llm_server: FakeAnthropic
) -> None:
    fake = fake_discord
    await start_bot()
    llm_server.script.append(Reply(text="Intelligence and goals are independent [1]."))
    msg = await asked(fake, "what is the orthogonality thesis?")
    thread = msg["id"]

    llm_server.requests.clear()
    llm_server.script += [
        Reply(text="exceptions to the orthogonality thesis"),
        Reply(text="It mostly holds [1]."),
    ]
    await fake.user_says(int(thread), "are there any goals where it doesn't hold though?")
    await fake.wait_for(lambda: any("It mostly holds" in t for t in final_texts(fake, thread)))
    condense = llm_server.requests[0].body["messages"][0]["content"]
    assert "what is the orthogonality thesis?" in condense  # the thread's first question
    assert "Intelligence and goals are independent" in condense  # and the bot's answer
    assert len(fake.calls("POST", f"/channels/{fake.channel_id}/messages/")) == 1  # no second thread

    llm_server.script += [
        Reply(text="which goals break the orthogonality thesis"),
        Reply(text="Some goals are incoherent [1]."),
    ]
    await fake.user_says(int(thread), "which ones?")
    await fake.wait_for(lambda: any("incoherent" in t for t in final_texts(fake, thread)))
    # The thread's opening message was fetched once, not again for the second follow-up.
    assert len(fake.calls("GET", f"/channels/{fake.channel_id}/messages/{thread}")) == 1


async def test_reply_to_the_bot_and_dm_are_answered(
    start_bot: StartBot, fake_discord: FakeDiscord, llm_server: FakeAnthropic
) -> None:
    fake = fake_discord
    client = await start_bot()
    earlier = fake.message(fake.other_channel_id, fake.bot_user, "Quantilizers pick among good actions [1].")
    fake.messages.setdefault(fake.other_channel_id, []).append(earlier)
    llm_server.script += [
        Reply(text="would keeping only the top few percent of actions make quantilizers safer?"),  # condensed
        Reply(text="Cutting the top helps [1]."),
    ]
    await fake.user_says(
        fake.other_channel_id, "would chopping off the top few percent make them safer?", referenced=earlier
    )
    await fake.wait_for(
        lambda: any("Cutting the top helps" in t for t in final_texts(fake, fake.other_channel_id))
    )
    assert not fake.calls("POST", f"/channels/{fake.other_channel_id}/messages/")  # answered in place
    # The message replied to is the conversation: the follow-up is condensed with it.
    assert "Quantilizers pick among good actions" in llm_server.requests[0].body["messages"][0]["content"]

    dm = 700000000000000009
    fake.channels[dm] = {"id": str(dm), "type": 1, "last_message_id": None}
    llm_server.script.append(Reply(text="A mesa-optimizer is a learned optimizer [1]."))
    await fake.user_says(dm, "what is a mesa-optimizer?", guild=False)
    await fake.wait_for(lambda: any("learned optimizer" in t for t in final_texts(fake, dm)))
    assert fake.calls("GET", f"/channels/{dm}/messages")  # the DM's recent messages are the history
    # The reply in a server's channel belongs to that server; the DM to no community's view.
    # Stored after it was posted (the answers database never holds an answer back).
    stored = await fake.wait_for(
        lambda: (
            len(rows := feedback_of(client).rows(only_voted=False)) == 2
            and {r.place: r.community for r in rows}
        )
    )
    assert stored == {f"discord:{fake.other_channel_id}": f"discord:{fake.guild_id}", f"discord:{dm}": "dm"}


async def test_bots_and_unaddressed_messages_are_ignored_and_empty_mentions_get_help(
    start_bot: StartBot, fake_discord: FakeDiscord
) -> None:
    fake = fake_discord
    await start_bot()
    await fake.user_says(fake.channel_id, "just chatting, no mention")
    await fake.user_says(fake.channel_id, mention(fake, "hi"), author=fake.user(5, "otherbot", bot=True))
    msg = await fake.user_says(fake.channel_id, mention(fake, ""))
    await fake.wait_for(lambda: any("mention me" in t for t in final_texts(fake, msg["id"])))
    assert (
        len(fake.calls("POST", f"/channels/{fake.channel_id}/messages/")) == 1
    )  # only for the empty mention


async def test_slash_ask_public_and_private(
    start_bot: StartBot, fake_discord: FakeDiscord, llm_server: FakeAnthropic
) -> None:
    fake = fake_discord
    await start_bot()
    for private in (False, True):
        llm_server.script.append(Reply(text="Takeoff is the move to superintelligence [1]."))
        iid = fake.new_id()
        await fake.dispatch("INTERACTION_CREATE", slash_ask(fake, iid, "what is AI takeoff?", private))
        await fake.wait_for(lambda iid=iid: fake.calls("POST", f"/webhooks/{fake.app_id}/token-{iid}"))
        defer = fake.calls("POST", f"/interactions/{iid}/token-{iid}/callback")[0].body
        follow = fake.calls("POST", f"/webhooks/{fake.app_id}/token-{iid}")[0].body
        assert defer["type"] == 5
        assert bool((defer.get("data") or {}).get("flags", 0) & 64) is private
        assert bool(follow["flags"] & 64) is private
        assert "Takeoff is the move" in follow["content"] and "**Sources**" in follow["content"]
        assert follow["allowed_mentions"] == {"parse": []}


async def test_slash_help_explains_usage_privately(start_bot: StartBot, fake_discord: FakeDiscord) -> None:
    fake = fake_discord
    await start_bot()
    iid = fake.new_id()
    await fake.dispatch(
        "INTERACTION_CREATE", _interaction(fake, iid, 2, {"id": "2", "name": "help", "type": 1})
    )
    reply = await fake.wait_for(lambda: fake.calls("POST", f"/interactions/{iid}/token-{iid}/callback"))
    assert reply[0].body["type"] == 4 and reply[0].body["data"]["flags"] & 64
    assert "/ask" in reply[0].body["data"]["content"]


async def test_feedback_click_is_recorded_and_survives_a_restart(
    start_bot: StartBot, fake_discord: FakeDiscord, llm_server: FakeAnthropic
) -> None:
    fake = fake_discord
    client = await start_bot()
    llm_server.script.append(Reply(text="Goals and intelligence are independent [1]."))
    msg = await asked(fake, "what is the orthogonality thesis?")
    answer_msg = next(m for m in fake.messages[int(msg["id"])] if m["components"])
    custom_up = answer_msg["components"][0]["components"][0]["custom_id"]
    answer_id = int(custom_up.split(":")[2])

    await fake.dispatch("INTERACTION_CREATE", click(fake, custom_up, answer_msg))
    await fake.wait_for(
        lambda: (
            fake.calls("POST", "/interactions/")
            and any(r.body["type"] == 4 for r in fake.calls("POST", "/interactions/"))
        )
    )
    ack = [r.body for r in fake.calls("POST", "/interactions/") if r.body["type"] == 4][-1]
    assert "Thanks" in ack["data"]["content"] and ack["data"]["flags"] & 64
    rows = feedback_of(client).rows()
    assert rows[0].answer_id == answer_id and rows[0].up == 1
    assert rows[0].question == "what is the orthogonality thesis?" and rows[0].sources

    await client.close()
    restarted = await start_bot()
    before = len(fake.calls("POST", "/interactions/"))
    await fake.dispatch("INTERACTION_CREATE", click(fake, custom_up.replace(":up", ":down"), answer_msg))
    await fake.wait_for(lambda: len(fake.calls("POST", "/interactions/")) > before)
    row = feedback_of(restarted).rows()[0]
    assert row.community == f"discord:{fake_discord.guild_id}"  # the server it was asked in
    assert (row.up, row.down) == (0, 1)  # the same member changed their vote


async def test_long_answers_are_split_and_nothing_can_ping(
    start_bot: StartBot, fake_discord: FakeDiscord, llm_server: FakeAnthropic
) -> None:
    fake = fake_discord
    await start_bot()
    long = " ".join(f"Sentence {i} about the orthogonality thesis [1]." for i in range(120))
    llm_server.script.append(Reply(text=f"Hey @everyone and @here, <@&123> <@456>! {long}"))
    msg = await asked(fake, "@everyone what is the orthogonality thesis?")
    thread = msg["id"]
    shown = final_texts(fake, thread)
    assert len(shown) >= 2 and all(len(t) <= 2000 for t in shown)
    joined = "".join(shown)
    assert "Sentence 119" in joined and "Sentence 0 " in joined
    for ping in ("@everyone", "@here", "<@&123>", "<@456>"):
        assert ping not in joined
    for r in fake.requests:
        if r.method in ("POST", "PATCH") and isinstance(r.body, dict) and "content" in r.body:
            assert r.body.get("allowed_mentions") == {"parse": []}, r.path
    assert (
        fake.calls("POST", f"/channels/{fake.channel_id}/messages/{thread}/threads")[0]
        .body["name"]
        .startswith("@")
    )


async def test_failures_still_get_a_reply(
    start_bot: StartBot, fake_discord: FakeDiscord, llm_server: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = fake_discord
    client = await start_bot()
    llm_server.default = Reply(status=500)
    try:
        msg = await fake.user_says(fake.channel_id, mention(fake, "what is a mesa-optimizer?"))
        await fake.wait_for(
            lambda: (
                "From the library's articles" in "".join(final_texts(fake, msg["id"]))
                and "**Sources**" in "".join(final_texts(fake, msg["id"]))
            )
        )
    finally:
        llm_server.default = Reply()

    async def broken(query: str, *, k: int = 5) -> Any:
        raise StoreError("Qdrant request failed: ConnectError")

    monkeypatch.setattr(client.conversation.core.retriever, "search", broken)
    msg = await fake.user_says(fake.channel_id, mention(fake, "what is a mesa-optimizer?"))
    await fake.wait_for(
        lambda: any(t.startswith("Sorry, something went wrong") for t in final_texts(fake, msg["id"]))
    )
    iid = fake.new_id()  # /ask too: the deferred reply is followed by the apology
    await fake.dispatch("INTERACTION_CREATE", slash_ask(fake, iid, "what is a mesa-optimizer?", True))
    follow = await fake.wait_for(lambda: fake.calls("POST", f"/webhooks/{fake.app_id}/token-{iid}"))
    assert follow[0].body["content"].startswith("Sorry, something went wrong")
    assert follow[0].body["flags"] & 64


async def test_rest_429_is_retried(
    start_bot: StartBot, fake_discord: FakeDiscord, llm_server: FakeAnthropic
) -> None:
    fake = fake_discord
    await start_bot()
    llm_server.script.append(Reply(text="Mesa-optimizers are learned optimizers [1]."))
    msg = await fake.user_says(fake.channel_id, mention(fake, "what is a mesa-optimizer?"))
    fake.rate_limit_once.add(f"POST /channels/{msg['id']}/messages")
    await fake.wait_for(lambda: any("**Sources**" in t for t in final_texts(fake, msg["id"])))
    assert len(bot_posts(fake, msg["id"])) == 2  # the 429 and its retry


async def test_metrics_after_a_mention(
    start_bot: StartBot, fake_discord: FakeDiscord, llm_server: FakeAnthropic
) -> None:
    from bot.observability import Observer
    from service.metrics import Metrics

    fake = fake_discord
    client = await start_bot()
    metrics = Metrics()
    client.conversation.core.observer = Observer(metrics)
    llm_server.script.append(Reply(text="Mesa-optimizers are learned optimizers [1]."))
    await asked(fake, "what is a mesa-optimizer?")
    await fake.wait_for(lambda: b'outcome="llm",platform="discord"' in metrics.render())
    text = metrics.render().decode()
    assert 'aisafety_questions_total{outcome="llm",platform="discord"} 1.0' in text
    assert 'aisafety_answer_latency_seconds_count{stage="done"} 1.0' in text


async def test_gateway_drop_is_survived(
    start_bot: StartBot, fake_discord: FakeDiscord, llm_server: FakeAnthropic
) -> None:
    fake = fake_discord
    await start_bot()
    await fake.drop_gateway()
    await fake.wait_for(lambda: fake.resumes + fake.identifies >= 2, within=30)
    llm_server.script.append(Reply(text="Quantilizers are safer optimizers [1]."))
    msg = await fake.user_says(fake.channel_id, mention(fake, "what are quantilizers?"))
    await fake.wait_for(lambda: any("Quantilizers are safer" in t for t in final_texts(fake, msg["id"])))


async def test_rate_limit_and_allow_list(
    start_bot: StartBot, fake_discord: FakeDiscord, llm_server: FakeAnthropic
) -> None:
    fake = fake_discord
    await start_bot(rate_limit_per_minute=1, allowed_channels=frozenset({str(fake.channel_id)}))
    await fake.user_says(fake.other_channel_id, mention(fake, "what is a mesa-optimizer?"))
    first = await fake.user_says(fake.channel_id, mention(fake, "what is a mesa-optimizer?"))
    await fake.wait_for(lambda: any("**Sources**" in t for t in final_texts(fake, first["id"])))
    second = await fake.user_says(fake.channel_id, mention(fake, "and what are quantilizers?"))
    await fake.wait_for(
        lambda: any("slow down" in t.lower() or "faster than" in t for t in final_texts(fake, second["id"]))
    )
    assert not fake.calls("POST", f"/channels/{fake.other_channel_id}/")  # not on the allow list: ignored


def test_invite_url_has_exactly_the_needed_permissions() -> None:
    url = yarl.URL(invite_url(123))
    assert url.query["client_id"] == "123"
    assert set(url.query["scope"].split()) == {"bot", "applications.commands"}
    perms = discord.Permissions(int(url.query["permissions"]))
    # VIEW_CHANNEL, SEND_MESSAGES, READ_MESSAGE_HISTORY, CREATE_PUBLIC_THREADS, SEND_MESSAGES_IN_THREADS
    assert perms.value == (1 << 10) | (1 << 11) | (1 << 16) | (1 << 35) | (1 << 38)


def _member(fake: FakeDiscord) -> dict[str, Any]:
    return {
        "user": fake.user(111, "alice"),
        "roles": [],
        "joined_at": "2024-01-01T00:00:00+00:00",
        "deaf": False,
        "mute": False,
        "flags": 0,
        "permissions": "1071698660928",
    }


def _interaction(fake: FakeDiscord, iid: int, kind: int, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(iid),
        "application_id": str(fake.app_id),
        "type": kind,
        "data": data,
        "guild_id": str(fake.guild_id),
        "channel_id": str(fake.channel_id),
        "channel": {
            "id": str(fake.channel_id),
            "type": 0,
            "guild_id": str(fake.guild_id),
            "name": "ask-the-bot",
            "position": 0,
            "permission_overwrites": [],
            "nsfw": False,
            "parent_id": None,
        },
        "member": _member(fake),
        "token": f"token-{iid}",
        "version": 1,
        "locale": "en-US",
        "guild_locale": "en-US",
        "app_permissions": "1071698660928",
        "entitlements": [],
        "authorizing_integration_owners": {"0": str(fake.guild_id)},
        "context": 0,
        "attachment_size_limit": 8388608,
    }


def slash_ask(fake: FakeDiscord, iid: int, question: str, private: bool) -> dict[str, Any]:
    options = [
        {"name": "question", "type": 3, "value": question},
        {"name": "private", "type": 5, "value": private},
    ]
    return _interaction(fake, iid, 2, {"id": "1", "name": "ask", "type": 1, "options": options})


def click(fake: FakeDiscord, custom_id: str, message: dict[str, Any]) -> dict[str, Any]:
    payload = _interaction(fake, fake.new_id(), 3, {"custom_id": custom_id, "component_type": 2})
    payload["message"] = message
    return payload


async def test_slash_commands_are_synced_on_purpose(fake_discord: FakeDiscord) -> None:
    from adapters.discord.client import sync_commands

    names = await sync_commands("fake-token")
    assert sorted(names) == ["aisafety-report", "aisafety-settings", "ask", "help"]  # admins': commands.py
    put = fake_discord.calls("PUT", f"/applications/{fake_discord.app_id}/commands")
    assert len(put) == 1
    ask = next(c for c in put[0].body if c["name"] == "ask")
    assert [(o["name"], o["type"], o.get("required", False)) for o in ask["options"]] == [
        ("question", 3, True),
        ("private", 5, False),
    ]
    assert not fake_discord.identifies  # REST only, no gateway session


async def test_a_too_long_question_is_declined_on_mentions_and_slash_ask(
    start_bot: StartBot, fake_discord: FakeDiscord, llm_server: FakeAnthropic
) -> None:
    fake = fake_discord
    await start_bot()
    assert len(LONG_QUESTION) > MAX_CHARS
    msg = await fake.user_says(fake.channel_id, mention(fake, LONG_QUESTION))
    texts = await fake.wait_for(lambda: [t for t in final_texts(fake, msg["id"]) if "too long" in t])
    assert f"the limit is {MAX_CHARS}" in texts[0] and "shorter" in texts[0]

    iid = fake.new_id()
    await fake.dispatch("INTERACTION_CREATE", slash_ask(fake, iid, LONG_QUESTION, False))
    follow = await fake.wait_for(lambda: fake.calls("POST", f"/webhooks/{fake.app_id}/token-{iid}"))
    assert "too long" in follow[0].body["content"]
    assert llm_server.requests == []  # nothing that long reached the model


async def test_a_broken_stream_and_a_failed_typing_indicator_still_give_the_answer_in_one_message(
    start_bot: StartBot, fake_discord: FakeDiscord, llm_server: FakeAnthropic
) -> None:
    fake = fake_discord
    fake.fail_typing = True  # POST /channels/{id}/typing answers 404
    await start_bot()
    llm_server.script.append(
        Reply(
            text="Shutting down a capable agent is hard because it may resist [1].",
            chunk_delay_s=0.1,
            break_after=5,
        )
    )
    msg = await asked(fake, "why can't we just turn it off?")
    thread = msg["id"]
    assert fake.calls("POST", f"/channels/{thread}/typing")  # tried, failed, and the answer went on
    shown = final_texts(fake, thread)
    # The streamed preview became the retrieval-only answer: no fragment left, no separate apology.
    assert shown[0].startswith("*The answer was cut off")
    assert not any(t.startswith("Shutting") or "Sorry, something went wrong" in t for t in shown)


async def test_a_link_to_another_site_is_shown_unmasked(
    start_bot: StartBot, fake_discord: FakeDiscord, llm_server: FakeAnthropic
) -> None:
    fake = fake_discord
    await start_bot()
    llm_server.script.append(Reply(text="Read [the official page](https://evil.example.com/phish) [1]."))
    msg = await asked(fake, "what is the orthogonality thesis?")
    shown = "\n".join(final_texts(fake, msg["id"]))
    edits = " ".join(str(c.body) for c in fake.calls("PATCH", f"/channels/{msg['id']}/messages/"))
    assert "the official page (evil.example.com)" in shown
    assert "evil.example.com/phish" not in shown + edits  # not in the answer, nor in any preview


async def test_an_answer_whose_preview_cannot_be_edited_is_posted_anew(
    start_bot: StartBot, fake_discord: FakeDiscord, llm_server: FakeAnthropic
) -> None:
    fake = fake_discord
    await start_bot()
    fake.fail_edits = True  # the preview was deleted, or Discord refuses the edit
    llm_server.script.append(
        Reply(text="Goals and intelligence are independent of each other [1].", chunk_delay_s=0.1)
    )
    msg = await fake.user_says(fake.channel_id, mention(fake, "what is the orthogonality thesis?"))
    texts = await fake.wait_for(lambda: [t for t in final_texts(fake, msg["id"]) if "**Sources**" in t])
    assert "independent of each other [1]" in texts[0]
    # The stuck preview was deleted once the answer was posted anew: no partial answer is left beside it.
    await fake.wait_for(lambda: [r for r in fake.requests if r.method == "DELETE" and "/messages/" in r.path])
    left = final_texts(fake, msg["id"])
    assert len(left) == 1 and "**Sources**" in left[0]


async def test_ask_a_human_mentions_the_role_once_per_answer_and_nothing_else(
    start_bot: StartBot, fake_discord: FakeDiscord, llm_server: FakeAnthropic
) -> None:
    from bot.platform import HANDOFF_ALREADY, HANDOFF_ASKED, handoff_message

    fake = fake_discord
    await start_bot(handoff="777000111")
    llm_server.script.append(Reply(text="Goals and intelligence are independent [1]."))
    msg = await asked(fake, "what is the orthogonality thesis?")
    thread = int(msg["id"])
    answer_msg = next(m for m in fake.messages[thread] if m["components"])
    buttons = answer_msg["components"][0]["components"]
    assert [b.get("label") or b["emoji"]["name"] for b in buttons] == ["👍", "👎", "Ask a human"]

    def press(user: int, message: dict[str, Any] = answer_msg) -> dict[str, Any]:
        payload = click(fake, "aisafety:handoff", message)
        payload["channel_id"] = str(thread)
        payload["channel"] = dict(payload["channel"], id=str(thread), type=11, parent_id=str(fake.channel_id))
        payload["member"] = dict(payload["member"], user=dict(payload["member"]["user"], id=str(user)))
        return payload

    def followups() -> list[str]:
        return [r.body.get("content", "") for r in fake.calls("POST", "/webhooks/")]

    await fake.dispatch("INTERACTION_CREATE", press(4242))
    await fake.wait_for(lambda: HANDOFF_ASKED in followups())
    calls = [
        r.body
        for r in fake.calls("POST", f"/channels/{thread}/messages")
        if "a human" in r.body.get("content", "")
    ]
    assert [c["content"] for c in calls] == [handoff_message("<@&777000111>")]
    assert calls[0]["allowed_mentions"] == {"parse": [], "roles": [777000111]}  # that role, no one else

    await fake.dispatch("INTERACTION_CREATE", press(4343))
    await fake.wait_for(lambda: HANDOFF_ALREADY in followups())
    assert (
        len(
            [
                r
                for r in fake.calls("POST", f"/channels/{thread}/messages")
                if "a human" in r.body.get("content", "")
            ]
        )
        == 1
    )
    # A click naming a message the bot never posted (a member's, with a copied button) calls no one.
    from bot.platform import HANDOFF_NOT_OURS

    forged = dict(answer_msg, id=str(fake.new_id()), author=dict(answer_msg["author"], id="4242", bot=False))
    await fake.dispatch("INTERACTION_CREATE", press(4444, forged))
    await fake.wait_for(lambda: HANDOFF_NOT_OURS in followups())
    assert (
        len(
            [
                r
                for r in fake.calls("POST", f"/channels/{thread}/messages")
                if "a human" in r.body.get("content", "")
            ]
        )
        == 1
    )
    # Every other message of the bot allows no mention at all.
    for r in fake.requests:
        if r.method in ("POST", "PATCH") and isinstance(r.body, dict) and "content" in r.body:
            if "a human" not in r.body["content"] and "/webhooks/" not in r.path:
                assert r.body.get("allowed_mentions") == {"parse": []}, r.path


async def test_a_feedback_click_whose_answer_id_is_out_of_range_is_told_it_failed(
    start_bot: StartBot, fake_discord: FakeDiscord, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    from bot.platform import VOTE_FAILED, VOTE_LOST

    fake = fake_discord
    client = await start_bot()
    message = {
        "id": str(fake.new_id()),
        "channel_id": str(fake.channel_id),
        "author": {
            "id": str(fake.bot_id),
            "username": "bot",
            "discriminator": "0",
            "avatar": None,
            "bot": True,
        },
        "content": "an answer",
        "timestamp": "2024-01-01T00:00:00+00:00",
        "edited_timestamp": None,
        "tts": False,
        "mention_everyone": False,
        "mentions": [],
        "mention_roles": [],
        "attachments": [],
        "embeds": [],
        "pinned": False,
        "type": 0,
        "components": [],
    }

    def said() -> list[str]:
        return [
            r.body["data"]["content"] for r in fake.calls("POST", "/interactions/") if r.body["type"] == 4
        ]

    def pressed(custom_id: str) -> dict[str, Any]:
        """A click on a message that carries a button with `custom_id` (discord.py checks that it does)."""
        button = {"type": 2, "style": 2, "custom_id": custom_id, "emoji": {"name": "👍"}}
        return click(fake, custom_id, dict(message, components=[{"type": 1, "components": [button]}]))

    with caplog.at_level(logging.INFO):
        for n, answer in enumerate((str(10**23), "0", str(2**63), "00000000000000000000001", "x1"), 1):
            await fake.dispatch("INTERACTION_CREATE", pressed(f"aisafety:fb:{answer}:up"))
            await fake.wait_for(lambda n=n: len(said()) >= n)
    assert said() == [VOTE_FAILED] * 5  # told, privately, and nothing was looked up
    assert all(r.body["data"]["flags"] & 64 for r in fake.calls("POST", "/interactions/"))
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert "OverflowError" not in caplog.text and "Traceback" not in caplog.text
    # The largest id the answers store holds is looked up, and not found.
    await fake.dispatch("INTERACTION_CREATE", pressed(f"aisafety:fb:{2**63 - 1}:down"))
    await fake.wait_for(lambda: len(said()) == 6)
    assert said()[-1] == VOTE_LOST
    assert feedback_of(client).rows() == []
