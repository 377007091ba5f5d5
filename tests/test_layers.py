"""Imports point inward only, package by package: aisafety_bot -> adapters -> bot -> retrieval."""

from __future__ import annotations

import ast

from tests.conftest import ROOT

# What each package may import from the project's own packages.
ALLOWED = {
    "retrieval": {"retrieval"},
    "bot": {"bot", "retrieval"},
    "adapters": {"adapters", "bot", "retrieval"},
    "aisafety_bot": {"aisafety_bot", "adapters", "bot", "retrieval"},
}


def imports_of(package: str) -> dict[str, set[str]]:
    """Each module of `package` with the project packages it imports (at any depth, lazily or not)."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        names: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = names & set(ALLOWED)
    return found


def test_imports_point_inward_only() -> None:
    wrong = {
        module: sorted(used - ALLOWED[package])
        for package in ALLOWED
        for module, used in imports_of(package).items()
        if used - ALLOWED[package]
    }
    assert wrong == {}
    assert any("adapters" in used for used in imports_of("aisafety_bot").values())  # the root does wire them
