"""A plain clone has no ../shared: what needs it skips with one line saying how to provide it, and with
CI=true that skip is a failure instead."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import ROOT


def _pytest(tmp_path: object, **env: str) -> subprocess.CompletedProcess[str]:
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in {"CI", "AISAFETY_SHARED", "EMBEDDING_MODEL_PATH", "HF_HUB_OFFLINE"}
    }
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/test_sources.py",
            "tests/test_embeddings.py",
        ],
        cwd=ROOT,
        env={**base, "AISAFETY_SHARED": str(tmp_path), "HF_HUB_OFFLINE": "1", **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_without_shared_files_tests_skip_with_one_line_each_reason(tmp_path: object) -> None:
    run = _pytest(tmp_path)
    assert run.returncode == 0, run.stdout[-2000:]
    lines = [line for line in run.stdout.splitlines() if line.startswith("SKIPPED")]
    assert any("shared corpus" in line and "AISAFETY_SHARED" in line for line in lines), run.stdout
    assert any("embedding model" in line and "EMBEDDING_MODEL_PATH" in line for line in lines), run.stdout
    assert len(lines) == 2  # one line per reason, not one per test
    assert " passed" in run.stdout.splitlines()[-1]  # the tests on the project's own data still ran


def test_with_ci_true_a_missing_shared_file_fails_the_run(tmp_path: object) -> None:
    run = _pytest(tmp_path, CI="true")
    assert run.returncode != 0
    assert "CI=true: a missing file or service fails the run" in run.stdout
    assert "skipped" not in run.stdout.splitlines()[-1]
