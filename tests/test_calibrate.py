"""The rescoring weights' fit (benchmarks/calibrate.py) is the one minimum of its loss, whatever the
order of the data: a refit on an equivalent store gives the same weights."""

from __future__ import annotations

import importlib.util
import os
import random
from types import ModuleType

import numpy as np
import pytest

from bot.evaluate import EvalItem
from retrieval.rescoring import RANK_FEATURES, Candidate
from tests.conftest import ROOT


def _calibrate(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    # The script sets HF_HUB_OFFLINE when it is unset; put back whatever was there for the other tests.
    monkeypatch.setenv("HF_HUB_OFFLINE", os.environ.get("HF_HUB_OFFLINE", "1"))
    spec = importlib.util.spec_from_file_location("calibrate", ROOT / "benchmarks" / "calibrate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _questions(seed: int = 7) -> list[tuple[EvalItem, list[Candidate], np.ndarray]]:
    """60 questions of 15 candidates each; the answer is the candidate a hidden linear score puts first.
    Like the real features (reciprocal ranks, scores and their products), they are strongly correlated:
    16 of them mixed from 4 underlying ones, where a descent stopped early is far from the minimum."""
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(4, len(RANK_FEATURES)))
    hidden = rng.normal(size=len(RANK_FEATURES))
    data = []
    for q in range(60):
        x = rng.normal(size=(15, 4)) @ mixing + rng.normal(scale=0.05, size=(15, len(RANK_FEATURES)))
        found = [Candidate(f"q{q}-a{i}", 0, {}, {}, {}) for i in range(15)]
        best = int(np.argmax(x @ hidden + rng.normal(scale=0.5, size=15)))
        item = EvalItem(f"question {q}", (), frozenset({found[best].article_id}), "synthetic")
        data.append((item, found, x))
    return data


def _loss_and_gradient(model: dict, data: list, l2: float) -> tuple[float, np.ndarray]:
    w = np.array(model["weights"])
    mean, scale = np.array(model["mean"]), np.array(model["scale"])
    total, grad = 0.0, l2 * w
    for item, found, x in data:
        z = (x - mean) / scale
        s = z @ w
        p = np.exp(s - s.max())
        p /= p.sum()
        t = np.array([c.article_id in item.relevant for c in found], dtype=float)
        t /= t.sum()
        total += float(np.log(np.exp(s - s.max()).sum()) + s.max() - t @ s)
        grad = grad + z.T @ (p - t) / len(data)
    return total / len(data) + 0.5 * l2 * float(w @ w), grad


def test_the_fit_is_the_minimum_and_does_not_depend_on_the_order_of_the_data(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calibrate = _calibrate(monkeypatch)
    data = _questions()
    model = calibrate.fit_ranking(data, 0.01)
    loss, grad = _loss_and_gradient(model, data, 0.01)
    assert np.abs(grad).max() < 1e-6  # converged, not stopped on the way
    # Any small move raises the loss.
    for direction in np.eye(len(RANK_FEATURES))[:4]:
        moved = dict(model, weights=(np.array(model["weights"]) + 1e-3 * direction).tolist())
        assert _loss_and_gradient(moved, data, 0.01)[0] > loss
    # The same questions in another order, each with its candidates shuffled: the same weights.
    shuffled = []
    rng = random.Random(3)
    for item, found, x in rng.sample(data, len(data)):
        order = rng.sample(range(len(found)), len(found))
        shuffled.append((item, [found[i] for i in order], x[order]))
    again = calibrate.fit_ranking(shuffled, 0.01)
    assert np.allclose(again["weights"], model["weights"], atol=1e-6)
    # It learned the hidden order: the answer first on most questions, and a stronger penalty shrinks it.
    first = sum(
        found[int(np.argmax(((x - model["mean"]) / model["scale"]) @ model["weights"]))].article_id
        in item.relevant
        for item, found, x in data
    )
    assert first >= 40
    assert np.linalg.norm(calibrate.fit_ranking(data, 1.0)["weights"]) < np.linalg.norm(model["weights"])
