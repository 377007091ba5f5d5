"""`report` and `feedback` while the bot runs on the embedded default store, which it holds locked."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from bot.models import Answer, Source
from service.feedback import FeedbackStore
from tests.conftest import clean_env, cli, write_jsonl
from tests.fixture_articles import BASE
from tests.fixture_articles import rows as fixture_rows

SLUGS = ["orthogonality", "mesa-optimizers", "quantilizers"]


def test_report_and_feedback_while_the_bot_runs(tmp_path: Path, model_env: dict[str, str]) -> None:
    source = write_jsonl(tmp_path / "articles.jsonl", fixture_rows(*SLUGS))
    db = tmp_path / "feedback.sqlite3"
    env = clean_env(
        HOME=str(tmp_path),
        QDRANT_PATH=str(tmp_path / "store"),
        FEEDBACK_DB=str(db),
        SOURCES=str(source),
        PYTHONUNBUFFERED="1",
        **model_env,
    )
    ortho = Source(1, "fixture:orthogonality", "What is the orthogonality thesis?", BASE + "orthogonality")
    store = FeedbackStore(db)
    answer_id = store.record_answer(
        platform="slack",
        community="slack:1",
        place="slack:C1",
        asker="slack:U1",
        question="what is the orthogonality thesis?",
        answer=Answer("Independent [1].", (ortho,), "llm"),
    )
    store.record_vote(answer_id, voter="slack:U2", vote="down")
    store.close()

    # The bot: the terminal chat (what `run` is on a terminal without platform tokens); it ingests, then
    # waits for a question.
    bot = subprocess.Popen(
        [sys.executable, "-m", "aisafety_bot", "chat"],
        env=env,
        cwd=tmp_path,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert bot.stdout is not None
        started = time.monotonic()
        line = ""
        while "Ask about AI safety" not in line:
            line = bot.stdout.readline()
            assert line or bot.poll() is None, bot.stderr.read() if bot.stderr else ""
            assert time.monotonic() - started < 120

        report = cli(env, "report", "--format", "json")
        assert report.returncode == 0, report.stderr
        data = json.loads(report.stdout)
        assert (
            data["answers"] == 1 and data["downvoted"][0]["question"] == "what is the orthogonality thesis?"
        )
        # What the report needs from the index comes from the catalogue, read without the store's lock.
        assert {a["id"] for a in data["never_cited"]} == {"fixture:mesa-optimizers", "fixture:quantilizers"}
        assert all(a["url"].startswith(BASE) for a in data["never_cited"])

        feedback = cli(env, "feedback", "--json")
        assert feedback.returncode == 0, feedback.stderr
        assert json.loads(feedback.stdout)[0]["down"] == 1

        # Commands that need the index itself keep the clear message.
        search = cli(env, "search", "what are quantilizers?")
        assert search.returncode == 1 and "in use by another aisafety-bot process" in search.stderr
        assert "Traceback" not in search.stderr
    finally:
        _, err = bot.communicate("/quit\n", timeout=60)
    assert bot.returncode == 0, err
