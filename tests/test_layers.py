"""Imports point inward only, package by package: aisafety_bot -> adapters, service -> bot -> retrieval;
the answer core (`bot/`) imports no I/O library, and the adapters reach stored state only through the
ports the conversation service hands them."""

from __future__ import annotations

import ast

from tests.conftest import ROOT

# What each package may import from the project's own packages.
ALLOWED = {
    "retrieval": {"retrieval"},
    "bot": {"bot", "retrieval"},
    "service": {"service", "bot", "retrieval"},
    "adapters": {"adapters", "bot", "retrieval"},
    "aisafety_bot": {"aisafety_bot", "adapters", "service", "bot", "retrieval"},
}
# Libraries that talk to the network, a database or a metrics server: none of them in the answer core.
IO_LIBRARIES = {
    "aiohttp",
    "anthropic",
    "discord",
    "httpx",
    "prometheus_client",
    "psycopg",
    "qdrant_client",
    "qdrant_edge",
    "redis",
    "requests",
    "slack_bolt",
    "slack_sdk",
    "socket",
    "sqlite3",
    "urllib.request",
    "http.client",
}
# The modules of `bot/` that hold stored state: adapters get them through the conversation service.
STATE_MODULES = {"bot.ports", "bot.ratelimit"}


def modules_imported(package: str) -> dict[str, set[str]]:
    """Each module of `package` with every module it imports (at any depth, lazily or not), in full."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        names: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
        found[str(path.relative_to(ROOT))] = names
    return found


def imports_of(package: str) -> dict[str, set[str]]:
    """Each module of `package` with the project packages it imports."""
    return {
        m: {n.split(".")[0] for n in used} & set(ALLOWED) for m, used in modules_imported(package).items()
    }


def test_imports_point_inward_only() -> None:
    wrong = {
        module: sorted(used - ALLOWED[package])
        for package in ALLOWED
        for module, used in imports_of(package).items()
        if used - ALLOWED[package]
    }
    assert wrong == {}
    assert any("adapters" in used for used in imports_of("aisafety_bot").values())  # the root does wire them


def _is_io(module: str) -> bool:
    return any(module == lib or module.startswith(lib + ".") for lib in IO_LIBRARIES)


def test_the_answer_core_imports_no_io_library() -> None:
    found = {module: sorted(n for n in used if _is_io(n)) for module, used in modules_imported("bot").items()}
    assert {m: libs for m, libs in found.items() if libs} == {}
    # The check can fail: the service side does import them.
    assert any(_is_io(n) for used in modules_imported("service").values() for n in used)


def test_adapters_reach_stored_state_only_through_the_conversation_service() -> None:
    found = {
        module: sorted(used & STATE_MODULES | {n for n in used if n.startswith("service")})
        for module, used in modules_imported("adapters").items()
    }
    assert {m: mods for m, mods in found.items() if mods} == {}
