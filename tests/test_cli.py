"""The `aisafety-bot` commands, run as a user runs them: a subprocess with settings in the environment."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import sys
from pathlib import Path

import pytest

from tests.conftest import clean_env, write_jsonl
from tests.fake_anthropic import FakeAnthropic, Reply
from tests.fixture_articles import rows as fixture_rows

KEY = "sk-ant-cli-secret-456"
SLUGS = ["orthogonality", "mesa-optimizers", "quantilizers", "off-switch"]
QUANTILIZER_TITLE = "What are quantilizers?"


@pytest.fixture
def env(tmp_path: Path, model_env: dict[str, str]) -> dict[str, str]:
    source = write_jsonl(tmp_path / "small.jsonl", fixture_rows(*SLUGS))
    return clean_env(QDRANT_PATH=str(tmp_path / "store"), SOURCES=str(source), **model_env)


async def run(env: dict[str, str], *args: str, stdin: str = "") -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "aisafety_bot",
        *args,
        env=env,
        cwd=env["QDRANT_PATH"].rsplit("/", 1)[0],
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin.encode()), timeout=180)
    return int(proc.returncode or 0), out.decode(), err.decode()


async def test_first_ask_ingests_then_answers_with_sources(
    env: dict[str, str], llm_server: FakeAnthropic
) -> None:
    llm_server.script.append(Reply(text="A quantilizer picks randomly among the top actions [1]."))
    env = dict(env, ANTHROPIC_API_KEY=KEY, ANTHROPIC_BASE_URL=llm_server.url, ANTHROPIC_MODEL="claude-test")
    code, out, err = await run(env, "ask", "what are quantilizers?", "--json")
    assert code == 0, err
    assert "ingesting" in err and "4 added" in err
    data = json.loads(out)
    assert data["mode"] == "llm" and data["answer"].endswith("[1].") and data["coverage"] == "covered"
    assert data["sources"][0] == {
        "n": 1,
        "id": "fixture:quantilizers",
        "title": QUANTILIZER_TITLE,
        "url": data["sources"][0]["url"],
    }
    assert data["sources"][0]["url"].startswith("https://example.org/articles/quantilizers")

    # The second run finds the index and does not ingest again; plain output lists numbered sources.
    llm_server.script.append(Reply(text="It picks among the top actions [1]."))
    code, out, err = await run(env, "ask", "what are quantilizers?")
    assert code == 0 and "ingesting" not in err
    assert f"[1] {QUANTILIZER_TITLE}" in out and "https://example.org/articles/quantilizers" in out


async def test_ingest_search_and_eval_json(env: dict[str, str], tmp_path: Path) -> None:
    code, out, _ = await run(env, "ingest", "--json")
    assert code == 0
    assert json.loads(out) == {
        "added": 4,
        "updated": 0,
        "unchanged": 0,
        "deleted": 0,
        "skipped": 0,
        "chunks": json.loads(out)["chunks"],
    }
    code, out, _ = await run(env, "ingest", "--json")
    assert json.loads(out)["unchanged"] == 4 and json.loads(out)["chunks"] == 0

    code, out, _ = await run(env, "search", "what is a mesa optimizer", "--k", "3", "--json")
    rows = json.loads(out)
    assert code == 0 and len(rows) == 3 and len({r["id"] for r in rows}) == 3
    assert set(rows[0]) == {"id", "title", "url", "score", "text"}
    assert rows[0]["id"] == "fixture:mesa-optimizers"

    questions = tmp_path / "eval.jsonl"
    questions.write_text(
        '{"q": "whats a mesa optimizer", "relevant": ["fixture:mesa-optimizers"], "kind": "paraphrase"}\n'
        '{"q": "why not just unplug it", "relevant": ["fixture:off-switch"], "kind": "skeptic"}\n'
        '{"q": "best pancake recipe with buttermilk", "relevant": [], "kind": "offtopic"}\n'
    )
    code, out, _ = await run(env, "eval", str(questions), "--json")
    assert code == 0 and json.loads(out)["abstained_offtopic"] == 1.0  # the calibrated decision
    # The fixed cosine rule (ABSTAIN_BELOW), so that every figure is known on this four-article library.
    code, out, _ = await run({**env, "ABSTAIN_BELOW": "0.25"}, "eval", str(questions), "--json")
    result = json.loads(out)
    assert code == 0
    assert set(result) == {
        "questions",
        "k",
        "hit_rate",
        "hit_at_1",
        "mrr",
        "offtopic",
        "abstained_offtopic",
        "false_abstain",
        "close_answerable",
        "close_offtopic",
        "by_kind",
    }
    assert set(result["by_kind"]) == {"paraphrase", "skeptic", "offtopic"}
    assert (
        result["by_kind"]["skeptic"]["hit_rate"] == 1.0
        and result["by_kind"]["offtopic"]["abstained_offtopic"] == 1.0
    )
    assert result["questions"] == 3 and result["k"] == 5 and result["hit_rate"] == 1.0
    assert result["offtopic"] == 1 and result["abstained_offtopic"] == 1.0 and result["false_abstain"] == 0.0
    assert result["close_answerable"] == 0.0 and result["close_offtopic"] == 0.0  # no close band on this rule
    code, out, _ = await run(env, "eval", str(questions))
    assert "skeptic" in out and "hit@5" in out


async def test_chat_keeps_the_conversation(env: dict[str, str]) -> None:
    code, out, err = await run(
        env,
        "chat",
        stdin="what are quantilizers?\nwould chopping off the top few percent make them safer?\n/quit\n",
    )
    assert code == 0, err
    assert out.count("Sources:") == 2
    # The follow-up alone says nothing of quantilizers; with the conversation it finds the same article.
    for sources in out.split("Sources:")[1:]:
        assert sources.strip().startswith(f"[1] {QUANTILIZER_TITLE}")


async def test_run_without_tokens_chats_on_a_terminal_only(env: dict[str, str]) -> None:
    # Piped questions (or none, as in a container with the tokens blank): a bad setting, said at once,
    # before the index or the model is opened. `chat` and `ask` take questions on standard input.
    code, out, err = await run(env, "run", stdin="what are quantilizers?\n/quit\n")
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, err
    assert "DISCORD_TOKEN" in err and "SLACK_BOT_TOKEN" in err and "aisafety-bot chat" in err
    assert not await asyncio.to_thread(os.path.exists, env["QDRANT_PATH"])

    # On a terminal (a pseudo-terminal here), as `make run` is: the chat.
    controller, terminal = pty.openpty()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "aisafety_bot",
        "run",
        env=env,
        cwd=env["QDRANT_PATH"].rsplit("/", 1)[0],
        stdin=terminal,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    os.close(terminal)
    try:
        os.write(controller, b"/quit\n")
        out_bytes, err_bytes = await asyncio.wait_for(proc.communicate(), timeout=180)
    finally:
        os.close(controller)
    assert proc.returncode == 0, err_bytes.decode()
    assert "Ask about AI safety" in out_bytes.decode()


async def test_bad_settings_say_how_to_fix_them(env: dict[str, str]) -> None:
    code, _, err = await run(dict(env, QDRANT_URL="localhost:6333"), "search", "x")
    assert code == 2 and "QDRANT_URL" in err and "http://" in err
    code, _, err = await run(dict(env, QDRANT_URL="http://qdrant-1:6333,qdrant-2:6333"), "search", "x")
    assert code == 2 and "QDRANT_URL" in err and "separated by commas" in err and "Traceback" not in err
    code, _, err = await run(dict(env, EMBEDDING_MODEL_PATH="/nonexistent"), "search", "x")
    assert code == 2 and "EMBEDDING_MODEL_PATH" in err and "model.onnx" in err
    code, _, err = await run(dict(env, SOURCES="/nonexistent.jsonl"), "search", "x")
    assert code == 1 and "does not exist" in err


async def test_secrets_never_reach_output(env: dict[str, str], llm_server: FakeAnthropic) -> None:
    llm_server.default = Reply(status=401)
    try:
        env = dict(env, ANTHROPIC_API_KEY=KEY, ANTHROPIC_BASE_URL=llm_server.url)
        code, out, err = await run(env, "-vv", "ask", "what is the orthogonality thesis?")
    finally:
        llm_server.default = Reply()
    assert code == 0 and "From the library's articles" in out and "ANTHROPIC" not in out
    assert "auth" in err and "check ANTHROPIC_API_KEY" in err  # the operator's reason, in the log
    assert KEY not in out and KEY not in err


async def test_discord_invite_and_feedback_commands(env: dict[str, str], tmp_path: Path) -> None:
    import base64

    from bot.models import Answer, Source
    from service.feedback import FeedbackStore

    token = base64.b64encode(b"123456789012345678").decode().rstrip("=") + ".Gx.secret-part"
    code, out, err = await run(dict(env, DISCORD_TOKEN=token), "discord-invite")
    assert code == 0, err
    assert "client_id=123456789012345678" in out and "scope=bot+applications.commands" in out
    assert "secret-part" not in out + err
    code, _, err = await run(env, "discord-invite")
    assert code == 2 and "DISCORD_APPLICATION_ID" in err

    db = tmp_path / "feedback.sqlite3"
    store = FeedbackStore(db)
    answer = Answer(
        "Quantilizers [1].",
        (Source(1, "aisafety.info:6449", "Quantilizers", "https://aisafety.info/q/6449"),),
        "llm",
    )
    aid = store.record_answer(
        platform="discord",
        community="discord:1",
        place="discord:1",
        asker="discord:2",
        question="what are quantilizers?",
        answer=answer,
    )
    store.record_answer(
        platform="discord",
        community="discord:1",
        place="discord:1",
        asker="discord:2",
        question="unvoted",
        answer=answer,
    )
    store.record_vote(aid, voter="discord:3", vote="down")
    store.close()
    code, out, _ = await run(dict(env, FEEDBACK_DB=str(db)), "feedback", "--json")
    rows = json.loads(out)
    assert code == 0 and len(rows) == 1
    assert (
        rows[0]["question"] == "what are quantilizers?"
        and rows[0]["down"] == 1
        and rows[0]["sources"][0]["n"] == 1
    )
    code, out, _ = await run(dict(env, FEEDBACK_DB=str(db)), "feedback", "--all")
    assert "unvoted" in out and "👎 1" in out


async def test_json_logs_from_dotenv(env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("LOG_FORMAT=json\n")
    code, _, err = await run(env, "-v", "search", "what is a mesa optimizer", "--json")
    assert code == 0
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert lines and all({"time", "level", "logger", "message"} <= set(line) for line in lines)


async def test_report_and_feedback_of_one_community(env: dict[str, str], tmp_path: Path) -> None:
    from bot.models import Answer, Source
    from service.feedback import FeedbackStore

    db = tmp_path / "feedback.sqlite3"
    store = FeedbackStore(db)
    answer = Answer("Quantilizers [1].", (Source(1, "fixture:quantilizers", "Q", "https://e.org/q"),), "llm")
    for community, question in (
        ("discord:1", "what are quantilizers?"),
        ("slack:T9", "are quantilizers safe?"),
        ("slack:T9", "who made quantilizers?"),
    ):
        aid = store.record_answer(
            platform=community.split(":")[0],
            community=community,
            place="p",
            asker="a",
            question=question,
            answer=answer,
        )
        store.record_vote(aid, voter="v", vote="down")
    store.close()
    env = dict(env, FEEDBACK_DB=str(db))

    code, out, err = await run(env, "feedback", "--json", "--community", "slack:T9")
    assert code == 0, err
    assert sorted(r["question"] for r in json.loads(out)) == [
        "are quantilizers safe?",
        "who made quantilizers?",
    ]
    code, out, _ = await run(env, "feedback", "--json")
    assert len(json.loads(out)) == 3  # the operator's view: every community

    code, out, err = await run(env, "report", "--format", "json", "--community", "discord:1")
    assert code == 0, err
    mine = json.loads(out)
    assert mine["answers"] == 1 and [d["question"] for d in mine["downvoted"]] == ["what are quantilizers?"]
    code, out, _ = await run(env, "report", "--format", "json")
    assert json.loads(out)["answers"] == 3

    code, _, err = await run(env, "report", "--community", "my server")
    assert code == 2 and "argument --community: 'my server' is not a community" in err
    assert len(err.splitlines()) == 1
