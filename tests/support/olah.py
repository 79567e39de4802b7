"""Run olah (a self-hosted Hugging Face mirror) on loopback for the tests.

olah lives in its own venv (``.venv-olah``) because its dependencies clash with ours.
``start_olah(mirrors, workdir)`` writes an ``olah.toml`` that serves the git repos under
``mirrors/models/ORG/REPO`` in offline mode (it never calls huggingface.co), starts it on
a free 127.0.0.1 port, and waits until it answers HTTP. ``stop_olah`` ends that process
only. ``dead_endpoint()`` gives a loopback URL where nothing listens.

Module fixtures skip first (before building their hub), then serve it for their tests:

    @pytest.fixture(scope="module")
    def hub(tmp_path_factory):
        require_olah()
        root = tmp_path_factory.mktemp("my-hub")
        ...  # publish repos under root / "mirrors"
        with running_olah(root / "mirrors", root / "olah") as server:
            yield server
"""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import time
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Iterator

import attrs
import pytest

from tests.support.processes import stop_process

ROOT = Path(__file__).resolve().parents[2]
OLAH_CLI = ROOT / ".venv-olah" / "bin" / "olah-cli"


def olah_missing_reason() -> str | None:
    """Why the olah tests cannot run here, or None when they can."""
    if not OLAH_CLI.exists():
        return (f"olah is not installed at {OLAH_CLI}; create it with "
                "`python -m venv .venv-olah && .venv-olah/bin/pip install olah`")
    return None


def require_olah() -> None:
    """Skip the calling test or fixture, with the reason, when olah is not installed."""
    reason = olah_missing_reason()
    if reason:
        pytest.skip(reason)


def free_port() -> int:
    """A loopback port free right now (the OS picks it)."""
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def dead_endpoint() -> str:
    """A loopback URL that refuses connections: a port that was free a moment ago."""
    return f"http://127.0.0.1:{free_port()}"


@attrs.frozen
class OlahServer:
    url: str
    port: int
    mirrors: Path
    workdir: Path
    process: subprocess.Popen = attrs.field(repr=False)

    def log_tail(self, chars: int = 4000) -> str:
        """The end of olah's output, for failure messages."""
        log = self.workdir / "olah.out"
        return log.read_text(errors="replace")[-chars:] if log.exists() else ""


def _config_text(mirrors: Path, workdir: Path, port: int) -> str:
    # Paths are written as TOML literal strings ('...'): no escapes to worry about.
    return "\n".join([
        "[basic]",
        'host = "127.0.0.1"',
        f"port = {port}",
        f"repos-path = '{workdir / 'repos'}'",
        f"mirrors-path = ['{mirrors}']",
        f'mirror-netloc = "127.0.0.1:{port}"',
        f'mirror-lfs-netloc = "127.0.0.1:{port}"',
        "",
        "[accessibility]",
        "offline = true",
        "",
    ])


def _answers_http(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        try:
            conn.request("GET", "/api/whoami-v2")
            conn.getresponse().read()
            return True
        finally:
            conn.close()
    except OSError:
        return False


def start_olah(mirrors: Path, workdir: Path, *, timeout: float = 60.0) -> OlahServer:
    """Start olah serving ``mirrors``; return once it answers HTTP (or raise with its log)."""
    reason = olah_missing_reason()
    if reason:
        raise RuntimeError(reason)
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = workdir / "olah.toml"
    config.write_text(_config_text(Path(mirrors), workdir, port))
    out = open(workdir / "olah.out", "wb")
    # Drop any HF_ENDPOINT/proxy settings of the caller: olah must not reach out anywhere.
    env = {k: v for k, v in os.environ.items() if not k.upper().endswith("_PROXY")}
    process = subprocess.Popen(
        [str(OLAH_CLI), "-c", str(config), "--log-path", str(workdir / "logs")],
        cwd=workdir, stdout=out, stderr=subprocess.STDOUT, env=env,
    )
    out.close()
    server = OlahServer(url=f"http://127.0.0.1:{port}", port=port, mirrors=Path(mirrors),
                        workdir=workdir, process=process)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"olah exited with {process.returncode}:\n{server.log_tail()}")
        if _answers_http(port):
            return server
        time.sleep(0.2)
    stop_olah(server)
    raise RuntimeError(f"olah did not answer on port {port} within {timeout:g} s:\n{server.log_tail()}")


def stop_olah(server: OlahServer) -> None:
    """End the olah process we started (terminate, then kill if it lingers)."""
    stop_process(server.process, timeout=10)


@contextmanager
def running_olah(mirrors: Path, workdir: Path, *, timeout: float = 60.0) -> Iterator[OlahServer]:
    """olah serving ``mirrors`` for the ``with`` block, stopped after it (skips when not installed)."""
    require_olah()
    server = start_olah(mirrors, workdir, timeout=timeout)
    try:
        yield server
    finally:
        stop_olah(server)
