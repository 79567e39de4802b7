"""A real `kronos-registry serve` process on 127.0.0.1, for tests of the HTTP face.

    server = ServeProcess(cli, ["--preload", "kronos-demo"]).start()
    with server.client() as http:
        assert http.get("/healthz").status_code == 200
    server.stop()

It runs with the ``Cli``'s environment (its own store, HF home, offline, one thread), logs
to a file (shown in failure messages), and is stopped (SIGTERM, then SIGKILL) by ``stop``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Sequence

import httpx

from tests.support.cli import Cli, console_script
from tests.support.processes import stop_process


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ServeProcess:
    def __init__(self, cli: Cli, args: Sequence[str] = (), *, port: int | None = None, token: str | None = None,
                 log: Path | None = None, env: dict[str, str] | None = None):
        self.cli = cli
        self.env = dict(env or {})
        self.args = [str(a) for a in args]
        self.port = port or free_port()
        self.token = token
        self.log = log or cli.root / f"serve-{self.port}.log"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 90) -> "ServeProcess":
        command = [*console_script(), "serve", "--port", str(self.port), "--offline", *self.args]
        if self.token:
            command += ["--token", self.token]
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(command, cwd=self.cli.cwd, env=self.cli.env(self.env), stdout=log,
                                            stderr=subprocess.STDOUT)
        self.wait_until_up(timeout)
        return self

    def wait_until_up(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the server exited with {self.process.returncode}:\n{self.log_text()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"the server did not answer /healthz within {timeout} s:\n{self.log_text()}")

    def wait_until_ready(self, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            answer = httpx.get(f"{self.url}/readyz", timeout=5)
            if answer.status_code == 200 or time.monotonic() > deadline:
                return answer.json()
            time.sleep(0.2)

    def client(self, *, token: str | None | bool = True, timeout: float = 120) -> httpx.Client:
        """An HTTP client on this server; ``token=True`` sends the server's token (if any)."""
        use = self.token if token is True else token or None
        headers = {"Authorization": f"Bearer {use}"} if use else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def log_text(self) -> str:
        try:
            return Path(self.log).read_text(errors="replace")[-6000:]
        except OSError:
            return "(no log)"

    def kill9(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
