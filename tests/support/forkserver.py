"""Run a Python script as a real process forked from a warm zygote instead of a fresh exec.

Starting `kronos-registry` costs seconds of imports (torch, pandas) and milliseconds of work.
One zygote per test session (tests/support/zygote.py) imports those modules once; each call
forks a child of it that takes the call's environment (wholesale), cwd, argv and the three
standard streams, runs the script as __main__ and exits with its own exit code. The child is
a separate process: its exit code, streams, files, signals and crashes are real.

    server = shared_server(env)            # None when the zygote cannot serve this env
    done = server.run(script, args, env=env, cwd=cwd, timeout=120)   # CompletedProcess

Exec (``subprocess.run``) stays the rule wherever a fork would change what is tested: the
caller decides (see tests/support/cli.py), and ``run`` raises ``Unavailable`` when the zygote
cannot serve (it died, failed to start, or the environment differs from the zygote's in a
variable that the preloaded modules or their C libraries read at start-up: PYTHONPATH,
OMP_NUM_THREADS, HOME, LANG, ...; the zygote traces the Python-level reads of its preload).

The zygote lives as long as the test session: its stdin is a pipe from this process, and at
end of file (this process exited or crashed) it kills any child still running and exits.
A zygote that died is started again on the next call.
"""

from __future__ import annotations

import atexit
import json
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Mapping, Sequence

ZYGOTE = Path(__file__).with_name("zygote.py")
# Heavy and environment-independent at import (checked by the zygote's trace): torch, numpy,
# pandas (with pyarrow), safetensors, and the small libraries the CLI imports first. Not
# huggingface_hub (its constants read HF_HOME, HF_HUB_OFFLINE, HF_ENDPOINT... at import),
# not matplotlib (reads MPLCONFIGDIR and HOME), not kronos_registry or registry (they import
# huggingface_hub): the child imports those after its environment is set.
PRELOAD = ("numpy", "torch", "pandas", "safetensors.torch", "click", "attrs", "yaml", "filelock")
START_TIMEOUT = 300  # seconds for the zygote's imports on a busy two-core machine
MAX_STARTS = 3  # a zygote that keeps dying is given up: the rest of the session execs


class Unavailable(Exception):
    """The zygote cannot run this call; the caller execs instead (before anything ran)."""


class ForkServer:
    """A zygote process started with ``base_env`` for the scripts in ``script_dir``."""

    def __init__(self, base_env: Mapping[str, str], script_dir: Path, preload: Sequence[str] = PRELOAD,
                 python: str = sys.executable):
        self.base_env = dict(base_env)
        # sys.path[0] of `python SCRIPT` is the script's folder with symlinks resolved
        self.script_dir = Path(os.path.realpath(script_dir))
        self.python = python
        self.preload = tuple(preload)
        self._lock = threading.Lock()
        self._process: subprocess.Popen | None = None
        self._socket_path: str | None = None
        self._frozen_keys: frozenset[str] = frozenset()
        self._frozen_prefixes: tuple[str, ...] = ()
        self._lazy_keys: frozenset[str] = frozenset()
        self._folder = tempfile.mkdtemp(prefix="kronos-zygote-")
        self.failure: str | None = None  # why the zygote could not start (then every call execs)
        self.report: dict = {}
        self.starts = 0

    # --- life cycle -----------------------------------------------------------------------

    def _ensure_started(self) -> None:
        with self._lock:
            if self._process is not None and self._process.poll() is None:
                return
            if self.failure is None and self.starts >= MAX_STARTS:
                self.failure = f"the zygote died {self.starts} times (see {self._folder}/zygote.log)"
            if self.failure is not None:
                raise Unavailable(self.failure)
            self.starts += 1
            self._start()

    def _start(self) -> None:
        os.makedirs(self._folder, exist_ok=True)
        self._socket_path = os.path.join(self._folder, f"zygote-{time.monotonic_ns()}.sock")
        log = open(os.path.join(self._folder, "zygote.log"), "ab")
        try:
            self._process = subprocess.Popen(
                [self.python, str(ZYGOTE), self._socket_path, str(self.script_dir), *self.preload],
                env=self.base_env, cwd=self._folder, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=log)
        finally:
            log.close()
        line = _read_line(self._process.stdout, START_TIMEOUT)
        self._process.stdout.close()
        if not line:
            self._process.kill()
            self._process.wait()
            self.failure = f"the zygote did not start (see {self._folder}/zygote.log)"
            raise Unavailable(self.failure)
        self.report = json.loads(line)
        self._frozen_keys = frozenset(self.report["frozen_keys"])
        self._frozen_prefixes = tuple(self.report["frozen_prefixes"])
        self._lazy_keys = frozenset(self.report["lazy_keys"])

    def close(self) -> None:
        """End the zygote (closing its lifeline) and wait for it; keep its log only if it failed."""
        with self._lock:
            process, self._process = self._process, None
        if process is not None:
            try:
                process.stdin.close()
                process.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                process.kill()
                process.wait()
        if self.failure is None:
            shutil.rmtree(self._folder, ignore_errors=True)

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    # --- calls ----------------------------------------------------------------------------

    def serves(self, env: Mapping[str, str]) -> bool:
        """Whether a child with ``env`` behaves as a fresh process would (see the module doc)."""
        self._ensure_started()
        return not self.start_up_differences(env)

    def start_up_differences(self, env: Mapping[str, str]) -> list[str]:
        """The start-up variables in which ``env`` differs from the zygote's environment."""
        self._ensure_started()
        keys = {k for k in {*env, *self.base_env} if k not in self._lazy_keys
                and (k in self._frozen_keys or k.startswith(self._frozen_prefixes))}
        return sorted(k for k in keys if env.get(k) != self.base_env.get(k))

    def run(self, script: str | Path, args: Sequence[str], *, env: Mapping[str, str], cwd: str | Path,
            timeout: float | None = None, umask: int | None = None) -> subprocess.CompletedProcess:
        """Like ``subprocess.run([python, script, *args], capture_output=True, text=True, ...)``.

        The child's umask is ``umask``, else this process's own now (as an exec'd child's)."""
        differences = self.start_up_differences(env)
        if differences:
            raise Unavailable(f"the environment differs from the zygote's in {', '.join(differences)}")
        command = [str(script), *args]
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        try:
            try:
                conn = self._connect()
            except Unavailable:
                os.close(out_r)
                os.close(err_r)
                raise
            try:
                request = {"script": str(script), "argv": list(args), "env": dict(env), "cwd": str(cwd),
                           "umask": current_umask() if umask is None else umask}
                socket.send_fds(conn, [json.dumps(request).encode() + b"\n"], [0, out_w, err_w])
            except OSError as error:
                conn.close()
                os.close(out_r)
                os.close(err_r)
                raise Unavailable(f"the zygote did not take the call: {error}") from error
        finally:
            os.close(out_w)
            os.close(err_w)
        return _wait(conn, command, out_r, err_r, timeout)

    def _connect(self) -> socket.socket:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            conn.connect(self._socket_path)
        except OSError as error:
            conn.close()
            raise Unavailable(f"the zygote is not listening: {error}") from error
        return conn


def current_umask() -> int:
    """This process's umask, read without setting it (os.umask would race with other threads)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    raise Unavailable("no Umask line in /proc/self/status")


def _read_line(stream, timeout: float) -> bytes:
    """One line from a pipe, or b"" at end of file or after ``timeout`` seconds."""
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        if not selector.select(timeout):
            return b""
    return stream.readline()


def _wait(conn: socket.socket, command: list[str], out_r: int, err_r: int,
          timeout: float | None) -> subprocess.CompletedProcess:
    """Collect the child's streams and status. At the deadline, or when this thread is
    interrupted (pytest-timeout, Ctrl-C), kill the child first, as subprocess.run does."""
    deadline = None if timeout is None else time.monotonic() + timeout
    chunks: dict[int, list[bytes]] = {out_r: [], err_r: []}
    control = [b""]
    status = None
    try:
        with selectors.DefaultSelector() as selector:
            for fd in (out_r, err_r, conn.fileno()):
                selector.register(fd, selectors.EVENT_READ)
            while status is None or out_r in selector.get_map() or err_r in selector.get_map():
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise subprocess.TimeoutExpired(command, timeout, b"".join(chunks[out_r]),
                                                    b"".join(chunks[err_r]))
                for key, _ in selector.select(left):
                    data = os.read(key.fd, 65536)
                    if key.fd == conn.fileno():
                        control[0] += data
                        pid, status = _parse_control(control[0])
                        if not data:
                            selector.unregister(key.fd)
                            if status is None:
                                _lost_zygote(pid)
                    elif data:
                        chunks[key.fd].append(data)
                    else:
                        selector.unregister(key.fd)
    except BaseException:
        if status is None:
            _kill_child(conn, control)
        raise
    finally:
        conn.close()
        os.close(out_r)
        os.close(err_r)
    return subprocess.CompletedProcess(command, os.waitstatus_to_exitcode(status), _text(chunks[out_r]),
                                       _text(chunks[err_r]))


def _parse_control(control: bytes) -> tuple[int | None, int | None]:
    pid = status = None
    for line in control.decode().splitlines(keepends=True):
        if not line.endswith("\n"):
            break
        word, value = line.split()
        if word == "pid":
            pid = int(value)
        elif word == "status":
            status = int(value)
    return pid, status


def _kill_child(conn: socket.socket, control: list[bytes]) -> None:
    """SIGKILL the child, then wait (briefly) for the zygote to say it has reaped it."""
    conn.settimeout(10)
    try:
        while b"\n" not in control[0]:  # forked but not yet said: the pid line is on its way
            more = conn.recv(4096)
            if not more:
                return
            control[0] += more
        pid, _ = _parse_control(control[0])
        if pid is not None:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        while b"status" not in control[0]:
            more = conn.recv(4096)
            if not more:
                return
            control[0] += more
    except OSError:
        pass


def _lost_zygote(pid: int | None) -> None:
    """The zygote died mid-call: its child's exit code is lost, so the call cannot stand."""
    if pid is not None:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    raise RuntimeError(f"the fork server died while child {pid} ran; its exit code is lost "
                       "(rerun with KRONOS_TEST_EXEC=1 to take the zygote out)")


def _text(chunks: list[bytes]) -> str:
    # subprocess.run(text=True): the locale's encoding, universal newlines
    import io

    return io.TextIOWrapper(io.BytesIO(b"".join(chunks))).read()


# ----------------------------------------------------------------------------------------------
# One zygote per test session (per base environment)
# ----------------------------------------------------------------------------------------------

_servers: dict[str, ForkServer] = {}
_servers_lock = threading.Lock()


def shared_server(base_env: Mapping[str, str], script: Path) -> ForkServer:
    """The session's zygote for the scripts beside ``script``, started with ``base_env`` on first use.

    It runs under the interpreter of the script's ``#!`` line, as the script itself would.

    Later calls share it whatever their environment: ``ForkServer.serves`` sends a call whose
    start-up variables differ (say, os.environ changed by a test) to exec instead.
    """
    script = Path(script)
    with _servers_lock:
        server = _servers.get(str(script.parent))
        if server is None:
            server = _servers[str(script.parent)] = ForkServer(base_env, script.parent,
                                                               python=script_interpreter(script))
        return server


def script_interpreter(script: Path) -> str:
    """The Python named on the script's ``#!`` line (this one when it names none that exists)."""
    with open(script, "rb") as file:
        first = file.readline().decode(errors="replace").strip()
    if first.startswith("#!"):
        words = first[2:].split()
        if len(words) == 1 and os.access(words[0], os.X_OK):
            return words[0]
    return sys.executable


@atexit.register
def _close_all() -> None:
    for server in list(_servers.values()):
        server.close()
