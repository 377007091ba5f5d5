"""The deployment files agree with the code: service names, ports and the variables the settings read."""

from __future__ import annotations

import asyncio
import os
import re
import sys

import yaml
from aiohttp import web

from bot.config import Settings
from service.health import add_health_routes, serve
from service.metrics import Metrics
from tests.conftest import ROOT
from tests.qdrant_server import free_port

FIELDS = {name.upper() for name in Settings.model_fields}


def test_compose_matches_the_settings() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"qdrant", "ingest", "bot"}
    image = services["qdrant"]["image"]
    assert re.fullmatch(r"qdrant/qdrant:v\d+\.\d+\.\d+", image), "pin the Qdrant image"
    assert "QDRANT__SERVICE__API_KEY" in services["qdrant"]["environment"]
    assert any(v.endswith(":/qdrant/storage") for v in services["qdrant"]["volumes"])
    for name in ("ingest", "bot"):
        env = services[name]["environment"]
        assert set(env) <= FIELDS, set(env) - FIELDS
        assert env["QDRANT_URL"] == "http://qdrant:6333"
        assert services[name]["env_file"] == ".env"
    assert services["ingest"]["command"] == ["ingest"]
    assert services["bot"]["depends_on"]["ingest"]["condition"] == "service_completed_successfully"
    bot_env = services["bot"]["environment"]
    ports = {p.split(":")[-1] for p in services["bot"]["ports"]}
    assert ports == {bot_env["HEALTH_PORT"], bot_env["SLACK_HTTP_PORT"]}
    assert int(bot_env["HEALTH_PORT"]) == Settings.model_fields["health_port"].default
    assert int(bot_env["SLACK_HTTP_PORT"]) == Settings.model_fields["slack_http_port"].default


def test_dockerfile_and_env_example_match_the_settings() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    exposed = set(re.search(r"^EXPOSE (.+)$", dockerfile, re.M).group(1).split())  # type: ignore[union-attr]
    assert exposed == {"8080", "3000"}
    assert re.search(r"^USER \d+$", dockerfile, re.M), "run as a non-root user"
    assert "HEALTHCHECK" in dockerfile and '"healthcheck"' in dockerfile
    env_vars = set(re.findall(r"^ENV ([A-Z_]+)=", dockerfile, re.M)) | set(
        re.findall(r"^\s+([A-Z_]+)=", dockerfile, re.M)
    )
    assert {"EMBEDDING_CACHE_DIR", "QDRANT_PATH", "FEEDBACK_DB"} <= env_vars & FIELDS
    example = set(re.findall(r"^#?\s*([A-Z_]+)=", (ROOT / ".env.example").read_text(), re.M))
    assert example <= FIELDS, example - FIELDS
    assert ".env" in (ROOT / ".dockerignore").read_text().split()


async def test_healthcheck_command(monkeypatch: object) -> None:
    port = free_port()
    runner = await serve(
        add_health_routes(web.Application(), checks={}, metrics=Metrics()), "127.0.0.1", port
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DISCORD_"))}
    env.update(HEALTH_PORT=str(port), PYTHONPATH=str(ROOT))

    async def run() -> int:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "aisafety_bot",
            "healthcheck",
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        return await proc.wait()

    try:
        assert await run() == 0
    finally:
        await runner.cleanup()
    assert await run() == 1


def test_the_default_install_is_the_whole_product() -> None:
    """`pip install .` (what `make run` and the Dockerfile do) brings both platforms and the terminal
    renderer; no extra is needed for the README's Discord and Slack steps."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {re.split(r"[<>=!~\[ ]", d, maxsplit=1)[0].lower() for d in project["dependencies"]}
    assert {"discord.py", "slack-bolt", "rich", "anthropic", "fastembed"} <= names
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "pip install . " in dockerfile or "pip install .\n" in dockerfile
    makefile = (ROOT / "Makefile").read_text()
    assert "pip install --quiet -e .\n" in makefile  # `make run` installs the default set


def test_compose_gives_answers_in_flight_time_to_finish() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    grace = compose["services"]["bot"]["stop_grace_period"]
    assert grace.endswith("s") and int(grace[:-1]) > Settings.model_fields["shutdown_grace_s"].default


def test_the_scale_out_compose_matches_the_settings_and_the_load_balancer() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.scale.yml").read_text())
    services = compose["services"]
    assert {"redis", "postgres", "qdrant-1", "qdrant-2", "qdrant-3", "ingest", "bot", "lb"} == set(services)
    bot = services["bot"]
    assert bot["deploy"]["replicas"] >= 2 and bot["command"] == ["run"]
    env = bot["environment"]
    assert set(env) <= FIELDS, set(env) - FIELDS
    assert env["REDIS_URL"].startswith("redis://redis:") and env["DATABASE_URL"].startswith("postgresql://")
    # Searches survive a node down (two copies or more), and every one of the three nodes holds a copy.
    copies, shards = int(env["QDRANT_REPLICATION"]), int(env["QDRANT_SHARDS"])
    assert copies >= 2 and shards * copies >= 3
    for name in ("qdrant-1", "qdrant-2", "qdrant-3"):
        node = services[name]
        assert node["environment"]["QDRANT__CLUSTER__ENABLED"] == "true"
        assert node["environment"]["QDRANT__TELEMETRY_DISABLED"] == "true"
        assert re.fullmatch(r"qdrant/qdrant:v\d+\.\d+\.\d+", node["image"])
    assert (
        "--bootstrap" in services["qdrant-2"]["command"]
        and "--bootstrap" not in services["qdrant-1"]["command"]
    )
    nginx = (ROOT / "deploy" / "nginx.conf").read_text()
    assert services["lb"]["image"].startswith("nginx:")
    assert f"server bot:{env['SLACK_HTTP_PORT']}" in nginx and "location = /slack/events" in nginx
    assert re.search(r"proxy_next_upstream [^;]*http_503", nginx)  # a stopping replica passes events on
