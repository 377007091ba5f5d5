"""The deployment files agree with the code: service names, ports and the variables the settings read."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import yaml
from aiohttp import web

from bot.config import Settings
from service.health import add_health_routes, serve
from service.metrics import Metrics
from tests.conftest import ROOT, need
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
    assert services["lb"]["volumes"] == ["./deploy/nginx.conf:/etc/nginx/nginx.conf:ro"]
    # The replicas are found by name at request time (a variable in proxy_pass, and Docker's DNS), on
    # the port they listen on; /slack/ and /admin/ are routed, nothing else.
    assert f"set $bots bot:{env['SLACK_HTTP_PORT']};" in nginx and "resolver 127.0.0.11 " in nginx
    assert not re.search(
        r"^\s*upstream\s", nginx, re.M
    )  # a name in an upstream block is resolved once, at start
    routes = re.findall(r"^\s*location ([^{]+?)\s*\{\s*(proxy_pass http://\$bots;|return 404;)", nginx, re.M)
    assert routes == [
        ("/slack/", "proxy_pass http://$bots;"),
        ("/admin/", "proxy_pass http://$bots;"),
        ("/", "return 404;"),
    ]
    assert re.search(r"proxy_next_upstream [^;]*http_503", nginx)  # a stopping replica passes events on


def _published(ports: list[str]) -> list[tuple[str, str, str]]:
    """A compose file's `ports`, as (host address, host port, container port)."""
    return [tuple(p.rsplit(":", 2)) if p.count(":") == 2 else ("", *p.split(":")) for p in ports]  # type: ignore[misc]


def test_published_ports_are_on_this_host_only_and_errors_are_not_retried_for_ever() -> None:
    """A port published on every interface would put /metrics, /admin/ and plain HTTP on the internet;
    a bot restarted for ever (`unless-stopped`) on a bad setting fills no log and never stops."""
    for name in ("docker-compose.yml", "docker-compose.scale.yml"):
        services = yaml.safe_load((ROOT / name).read_text())["services"]
        published = {s: _published(spec["ports"]) for s, spec in services.items() if "ports" in spec}
        assert published, name
        for service, ports in published.items():
            assert all(host == "127.0.0.1" for host, _, _ in ports), (name, service, ports)
        policy, _, limit = services["bot"]["restart"].partition(":")
        assert policy == "on-failure" and 1 <= int(limit) <= 20, (name, services["bot"]["restart"])
        assert services["ingest"]["restart"] == "no"


# -- the load balancer, checked with Debian's nginx --------------------------------------------------


def nginx_binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)
    if found is None:
        need(
            "Debian's nginx, to check deploy/nginx.conf",
            "apt-get install nginx (CI's .ci/run installs it; nothing is started by the package here)",
        )
    return found


def nginx_copy(folder: Path, **swap: str) -> list[str]:
    """deploy/nginx.conf with nginx's own files in `folder` (Debian's defaults are under /var), and the
    replacements `swap` (old text: new text, each required to be there): the nginx command line for it."""
    text = (ROOT / "deploy" / "nginx.conf").read_text()
    for old, new in swap.items():
        assert old in text, old
        text = text.replace(old, new)
    own = "".join(f"    {kind}_temp_path {folder}/{kind};\n" for kind in TEMP_PATHS)
    text = text.replace("http {\n", f"http {{\n{own}    access_log {folder}/access.log;\n", 1)
    conf = folder / "nginx.conf"
    conf.write_text(text)
    return [nginx_binary(), "-p", str(folder), "-c", str(conf), "-e", str(folder / "error.log")]


TEMP_PATHS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


def test_nginx_accepts_the_load_balancer_config(tmp_path: Path) -> None:
    command = nginx_copy(tmp_path)
    checked = subprocess.run(
        [*command, "-g", f"pid {tmp_path}/nginx.pid;", "-t"], capture_output=True, text=True, timeout=30
    )
    assert checked.returncode == 0 and "test is successful" in checked.stderr, checked.stderr
    # The check can fail: the same file with an unknown variable is refused.
    broken = tmp_path / "broken"
    broken.mkdir()
    command = nginx_copy(broken, **{"set $bots ": "set $elsewhere "})
    refused = subprocess.run(
        [*command, "-g", f"pid {broken}/nginx.pid;", "-t"], capture_output=True, text=True, timeout=30
    )
    assert refused.returncode != 0 and 'unknown "bots" variable' in refused.stderr, refused.stderr


class FakeDNS(asyncio.DatagramProtocol):
    """Docker's embedded DNS as nginx's resolver sees it: `names` maps a service to its replicas'
    addresses (A records); any other name does not exist."""

    def __init__(self) -> None:
        self.names: dict[str, list[str]] = {}
        self.queries: list[str] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        labels, at = [], 12
        while data[at]:
            labels.append(data[at + 1 : at + 1 + data[at]].decode())
            at += 1 + data[at]
        question = data[12 : at + 5]
        name, qtype = ".".join(labels).lower(), int.from_bytes(data[at + 1 : at + 3], "big")
        self.queries.append(name)
        found = name in self.names
        addresses = self.names.get(name, []) if qtype == 1 else []
        header = data[:2] + (0x8180 | (0 if found else 3)).to_bytes(2, "big")
        header += (1).to_bytes(2, "big") + len(addresses).to_bytes(2, "big") + bytes(4)
        answers = b"".join(
            b"\xc0\x0c\x00\x01\x00\x01" + (1).to_bytes(4, "big") + b"\x00\x04" + socket.inet_aton(a)
            for a in addresses
        )
        assert self.transport is not None
        self.transport.sendto(header + question + answers, addr)


async def _replica(host: str, port: int, stopping: set[str]) -> web.AppRunner:
    """A bot replica as nginx sees it: says who it is and what it was asked; 503 while stopping."""

    async def handle(request: web.Request) -> web.Response:
        await request.read()
        if host in stopping:
            return web.Response(status=503)
        return web.Response(text=f"{host} {request.method} {request.path_qs}")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


async def test_nginx_routes_slack_and_the_report_page_to_every_replica_even_those_added_later(
    tmp_path: Path,
) -> None:
    """The scale-out load balancer, run by Debian's nginx against a fake of Docker's DNS: replicas that
    `--scale` adds get requests without a reload, a stopping replica's events go to another, and only
    /slack/ and /admin/ reach the bot."""
    loop = asyncio.get_running_loop()
    dns = FakeDNS()
    transport, _ = await loop.create_datagram_endpoint(lambda: dns, local_addr=("127.0.0.1", 0))
    dns_port = transport.get_extra_info("sockname")[1]
    first, added = "127.0.0.2", "127.0.0.3"  # the whole of 127/8 is this host
    dns.names["bot"] = [first]
    bot_port, lb_port = free_port(), free_port()
    stopping: set[str] = set()
    replicas = [await _replica(host, bot_port, stopping) for host in (first, added)]
    command = nginx_copy(
        tmp_path,
        **{
            "resolver 127.0.0.11 valid=10s": f"resolver 127.0.0.1:{dns_port} valid=1s",
            "listen 3000;": f"listen 127.0.0.1:{lb_port};",
            "set $bots bot:3000;": f"set $bots bot:{bot_port};",
        },
    )
    nginx = await asyncio.create_subprocess_exec(
        *command, "-g", f"daemon off; pid {tmp_path}/nginx.pid;", stderr=asyncio.subprocess.PIPE
    )
    base = f"http://127.0.0.1:{lb_port}"
    try:
        async with aiohttp.ClientSession() as http:

            async def ask(method: str, path: str) -> tuple[int, str]:
                async with http.request(method, base + path, data=b"{}" if method == "POST" else None) as r:
                    return r.status, await r.text()

            for _ in range(100):
                try:
                    await ask("GET", "/")
                    break
                except aiohttp.ClientConnectionError:
                    assert nginx.returncode is None, await nginx.stderr.read()  # type: ignore[union-attr]
                    await asyncio.sleep(0.05)
            assert await ask("POST", "/slack/events") == (200, f"{first} POST /slack/events")
            # Slack installs by OAuth: the install page, and Slack's redirect back with its query.
            assert await ask("GET", "/slack/install") == (200, f"{first} GET /slack/install")
            redirect = "/slack/oauth_redirect?code=c0de&state=5tate"
            assert await ask("GET", redirect) == (200, f"{first} GET {redirect}")
            assert await ask("GET", "/admin/") == (200, f"{first} GET /admin/")
            assert await ask("GET", "/admin/report.json") == (200, f"{first} GET /admin/report.json")
            for path in ("/", "/metrics", "/healthz", "/readyz", "/administrator", "/slackers"):
                assert (await ask("GET", path))[0] == 404, path
            for path in ("/admin", "/slack"):  # relative: nginx's port is not the public one
                async with http.get(base + path, allow_redirects=False) as r:
                    assert (r.status, r.headers["Location"]) == (301, path + "/")
            assert "bot" in dns.queries

            # `docker compose up --scale bot=2`: the DNS answers with a second replica, nginx uses it.
            dns.names["bot"] = [first, added]
            answered: set[str] = set()
            deadline = time.monotonic() + 15
            while added not in answered and time.monotonic() < deadline:
                status, text = await ask("POST", "/slack/events")
                assert status == 200
                answered.add(text.split()[0])
                await asyncio.sleep(0.05)
            assert answered == {first, added}

            # A replica stopping (SIGTERM) answers 503: Slack's events go to the other one.
            stopping.add(first)
            for _ in range(10):
                assert await ask("POST", "/slack/events") == (200, f"{added} POST /slack/events")
    finally:
        if nginx.returncode is None:
            nginx.terminate()
        await nginx.wait()
        for runner in replicas:
            await runner.cleanup()
        transport.close()
