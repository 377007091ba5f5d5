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
    _proc: subprocess.Popen[bytes] | None = None
    _tmp: tempfile.TemporaryDirectory[str] | None = None
    _http: int = 0

    def start(self, timeout_s: float = 30.0) -> str:
        self._tmp = tempfile.TemporaryDirectory(prefix="qdrant-test-")
        self._http, self.grpc_port = free_port(), free_port()
        return self._launch(timeout_s)

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
        self._proc = subprocess.Popen(
            [self.binary, "--disable-telemetry"],
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

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        if self._tmp is not None:
            self._tmp.cleanup()
