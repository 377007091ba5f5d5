"""Start and stop a real Qdrant server binary on free 127.0.0.1 ports for integration tests."""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class QdrantServer:
    binary: str
    api_key: str | None = None
    url: str = ""
    grpc_port: int = 0
    # Distributed mode: this node's peer-to-peer port, and the first node's to join (None: it is first).
    p2p_port: int = 0
    bootstrap: int | None = None
    _proc: subprocess.Popen[bytes] | None = None
    _tmp: tempfile.TemporaryDirectory[str] | None = None
    _http: int = 0

    def start(self, timeout_s: float = 30.0) -> str:
        self._tmp = tempfile.TemporaryDirectory(prefix="qdrant-test-")
        self._http, self.grpc_port = free_port(), free_port()
        return self._launch(timeout_s)

    @property
    def cpu_s(self) -> float:
        """CPU seconds the running server process has used so far (0 when not running or without /proc)."""
        stat = Path(f"/proc/{self._proc.pid}/stat") if self._proc is not None else None
        if stat is None or not stat.exists():
            return 0.0
        fields = stat.read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def kill(self) -> None:
        """Stop the server but keep its data and ports, to `revive` it later."""
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(timeout=10)
            self._proc = None

    def revive(self, timeout_s: float = 30.0) -> str:
        return self._launch(timeout_s)

    def _launch(self, timeout_s: float) -> str:
        assert self._tmp is not None
        http, grpc = self._http, self.grpc_port
        env = dict(
            os.environ,
            QDRANT__SERVICE__HOST="127.0.0.1",
            QDRANT__SERVICE__HTTP_PORT=str(http),
            QDRANT__SERVICE__GRPC_PORT=str(grpc),
            QDRANT__STORAGE__STORAGE_PATH=str(Path(self._tmp.name, "storage")),
            QDRANT__STORAGE__SNAPSHOTS_PATH=str(Path(self._tmp.name, "snapshots")),
            QDRANT__LOG_LEVEL="WARN",
        )
        if self.api_key:
            env["QDRANT__SERVICE__API_KEY"] = self.api_key
        command = [self.binary, "--disable-telemetry"]
        if self.p2p_port:
            env["QDRANT__CLUSTER__ENABLED"] = "true"
            env["QDRANT__CLUSTER__P2P__PORT"] = str(self.p2p_port)
            command += ["--uri", f"http://127.0.0.1:{self.p2p_port}"]
            if self.bootstrap is not None:
                command += ["--bootstrap", f"http://127.0.0.1:{self.bootstrap}"]
        self._proc = subprocess.Popen(
            command,
            env=env,
            cwd=self._tmp.name,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.url = f"http://127.0.0.1:{http}"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"qdrant exited with {self._proc.returncode}")
            try:
                with urllib.request.urlopen(f"{self.url}/readyz", timeout=1) as r:
                    if r.status == 200:
                        return self.url
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("qdrant did not become ready")

    def kill_hard(self) -> None:
        """A crash: SIGKILL, data and ports kept for `revive`."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait(timeout=10)
            self._proc = None

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        if self._tmp is not None:
            self._tmp.cleanup()


def start_cluster(binary: str, nodes: int = 3) -> list[QdrantServer]:
    """`nodes` Qdrant processes in distributed mode on 127.0.0.1, the others joined to the first."""
    first = QdrantServer(binary, p2p_port=free_port())
    first.start()
    cluster = [first]
    try:
        for _ in range(nodes - 1):
            node = QdrantServer(binary, p2p_port=free_port(), bootstrap=first.p2p_port)
            node.start()
            cluster.append(node)
        wait_for_peers(first.url, nodes)
    except Exception:
        for node in cluster:
            node.stop()
        raise
    return cluster


def wait_for_peers(url: str, count: int, timeout_s: float = 30.0) -> None:
    import json

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/cluster", timeout=1) as r:
                peers = json.load(r)["result"]["peers"]
                if len(peers) == count:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the cluster at {url} did not reach {count} peers")
