"""Start-up costs as a user meets them: whole processes, medians over repeated runs, in one run.

    python benchmarks/bench_startup.py [--shared ../shared] [--rounds 5] [--json]

Prints: median wall time of `aisafety-bot --help` and `aisafety-bot healthcheck` (nothing listening);
a full ingest of the shared corpus against an unchanged re-ingest of it (whole processes, the re-ingest
as a median); and the first question's retrieval time after start-up with and without the warm-up `run`
does before it reports ready, against the median of the questions after it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchmarks.common import QUESTIONS  # noqa: E402

SOURCES = ("aisafety.info.jsonl", "ai-safety-atlas.jsonl", "distill.jsonl")


def timed(env: dict[str, str], *args: str) -> float:
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "aisafety_bot", *args], env=env, capture_output=True, text=True
    )
    elapsed = time.monotonic() - started
    if proc.returncode not in (0, 1):
        raise SystemExit(f"aisafety-bot {' '.join(args)} failed: {proc.stderr[-500:]}")
    return elapsed


def first_question(env: dict[str, str], *, warm: bool) -> list[float]:
    """In a fresh process: open the store as `run` does, optionally warm up, then time each question's
    retrieval (query embedding + search)."""
    code = f"""
import asyncio, json, time
from aisafety_bot.runner import warm_up
from aisafety_bot.wiring import open_app
from bot.config import load_settings
async def main():
    with open_app(load_settings()) as app:
        core = app.core(use_llm=False)
        if {warm!r}:
            await warm_up(core)
        times = []
        for q in {QUESTIONS!r} * 2:
            started = time.monotonic()
            await core.retriever.search(q, k=8)
            times.append(time.monotonic() - started)
        print(json.dumps(times))
asyncio.run(main())
"""
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return list(json.loads(proc.stdout))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shared", default=str(ROOT.parent / "shared"))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    shared = Path(args.shared)
    tmp = Path(tempfile.mkdtemp(prefix="bench-startup-"))
    env = {
        **{
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("ANTHROPIC_", "QDRANT_", "DISCORD_", "SLACK_"))
        },
        "PYTHONPATH": str(ROOT),
        "HOME": str(tmp),
        "XDG_DATA_HOME": str(tmp / "data"),
        "QDRANT_PATH": str(tmp / "store"),
        "EMBEDDING_MODEL_PATH": str(shared / "models" / "all-MiniLM-L6-v2"),
        "SOURCES": ",".join(str(shared / "corpus" / s) for s in SOURCES),
        "HEALTH_PORT": "9",
    }
    os.chdir(tmp)
    results: dict[str, object] = {}
    results["help_s"] = statistics.median(timed(env, "--help") for _ in range(args.rounds))
    results["healthcheck_s"] = statistics.median(timed(env, "healthcheck") for _ in range(args.rounds))
    full = timed(env, "ingest")
    again = statistics.median(timed(env, "ingest") for _ in range(args.rounds))
    results["full_ingest_s"] = full
    results["unchanged_reingest_s"] = again
    results["reingest_ratio"] = again / full
    for warm in (False, True):
        firsts, laters = [], []
        for _ in range(max(3, args.rounds // 2)):
            times = first_question(env, warm=warm)
            firsts.append(times[0])
            laters.extend(times[1:])
        key = "warm" if warm else "cold"
        results[f"{key}_first_ms"] = 1000 * statistics.median(firsts)
        results[f"{key}_later_ms"] = 1000 * statistics.median(laters)
    if args.json:
        print(json.dumps(results))
        return
    r = results
    print(f"--help, median of {args.rounds}:        {r['help_s']:.2f} s")
    print(f"healthcheck, median of {args.rounds}:   {r['healthcheck_s']:.2f} s")
    print(
        f"full ingest {r['full_ingest_s']:.1f} s; unchanged re-ingest {r['unchanged_reingest_s']:.2f} s "
        f"({100 * float(r['reingest_ratio']):.1f}% of the full ingest)"  # type: ignore[arg-type]
    )
    for key in ("cold", "warm"):
        print(
            f"first question's retrieval, {key} start: {r[f'{key}_first_ms']:.0f} ms "
            f"(later questions: median {r[f'{key}_later_ms']:.1f} ms)"
        )


if __name__ == "__main__":
    main()
