"""The fork server ("zygote") behind ``tests.support.forkserver``: run as a script, never imported.

    python zygote.py SOCKET SCRIPT_DIR MODULE...

It imports the heavy, environment-independent MODULEs once (torch, pandas, ...), says on
stdout which environment variables those imports read, then serves requests on the Unix
socket SOCKET until its stdin (the test session's lifeline) reaches end of file.

A request is one JSON line ``{"script", "argv", "env", "cwd", "umask"}`` sent with three file
descriptors (stdin, stdout, stderr of the call). For each, the zygote forks a child that makes
itself look like a fresh ``python SCRIPT ARGV...``: the three descriptors on 0/1/2 and new
sys.std* streams over them, os.environ replaced wholesale, the cwd, umask, sys.argv; then runs
SCRIPT as __main__ and exits the way the interpreter would (non-daemon threads joined, atexit
handlers run, streams flushed, the SystemExit code). The zygote answers ``pid N`` at once and
``status S`` (os.waitpid's raw status) when the child ends.

Only the standard library is imported here before the preload, and SCRIPT_DIR replaces
sys.path[0], so the modules resolve exactly as they would for SCRIPT.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import sys

# Modules that read these at import time or load C libraries that do (OpenMP, BLAS, jemalloc,
# glibc's malloc, the locale behind sys.std* encodings): a call whose environment differs from
# the zygote's on any of them must exec. Python-level reads are also traced (see _Tracing).
FROZEN_PREFIXES = ("PYTHON", "LD_", "OMP_", "GOMP_", "KMP_", "MKL_", "OPENBLAS_", "GOTO_", "BLIS_",
                   "NUMEXPR_", "MALLOC_", "GLIBC_", "JE_", "ARROW_", "TORCH", "PYTORCH_", "CUDA_",
                   "NVIDIA_", "DNNL_", "ONEDNN_", "NUMPY_", "NPY_", "PANDAS_", "TQDM_", "LC_")
FROZEN_KEYS = ("LANG", "LANGUAGE", "TZ", "TMPDIR", "HOME", "PATH")
# ... except these, read at each use: sys.breakpointhook() reads PYTHONBREAKPOINT when
# breakpoint() is called (ray.init sets it in the test session's own environment), and
# torch._inductor reads TORCHINDUCTOR_CACHE_DIR when it compiles (an in-process test that
# imports it sets it in the session's environment; the CLI never compiles).
LAZY_KEYS = ("PYTHONBREAKPOINT", "TORCHINDUCTOR_CACHE_DIR")

# Iterating os.environ at import reads every variable; these sites are known to keep only
# variables with the given prefix (tqdm's envwrap: TQDM_*), anything else stops the zygote.
_KNOWN_ITERATIONS = {os.path.join("tqdm", "utils.py"): "TQDM_"}

# Native threads allowed to exist at fork: jemalloc (pyarrow's allocator, loaded by pandas)
# starts a purging thread and registers pthread_atfork handlers that take its locks around
# fork() and reset that thread's state in the child (jemalloc's background_thread_postfork_child).
_FORK_SAFE_THREADS = {"jemalloc_bg_thd"}


class _Tracing(os._Environ):  # type: ignore[name-defined]
    """os.environ that records what imports read (it shares the real one's storage)."""

    def __init__(self, real):
        super().__init__(real._data, real.encodekey, real.decodekey, real.encodevalue, real.decodevalue)
        self.read: set[str] = set()
        self.iterated_by: set[str] = set()

    def __getitem__(self, key):
        if "_collections_abc" not in sys._getframe(1).f_code.co_filename:
            self.read.add(key)  # (items() and values() look every key up: __iter__ records those)
        return super().__getitem__(key)

    def __contains__(self, key):
        self.read.add(key)
        return super().__contains__(key)

    def get(self, key, default=None):
        self.read.add(key)
        return super().get(key, default)

    def __iter__(self):
        frame = sys._getframe(1)
        while frame is not None and (frame.f_code.co_filename.endswith("os.py")
                                     or "_collections_abc" in frame.f_code.co_filename):
            frame = frame.f_back
        self.iterated_by.add(frame.f_code.co_filename if frame is not None else "?")
        return super().__iter__()


def preload(modules: list[str]) -> dict:
    """Import the modules, tracing what they read from os.environ; refuse unsafe states."""
    import importlib

    real = os.environ
    tracing = _Tracing(real)
    os.environ = tracing
    try:
        for name in modules:
            importlib.import_module(name)
    finally:
        os.environ = real  # the same storage: modules that kept a reference see every change
    prefixes = list(FROZEN_PREFIXES)
    for site in tracing.iterated_by:
        known = [prefix for tail, prefix in _KNOWN_ITERATIONS.items() if site.endswith(tail)]
        if not known:
            raise SystemExit(f"zygote: {site} iterated os.environ while importing; cannot tell what it read")
        prefixes += known
    threads = _native_threads()
    if len(threads) > 1 + sum(name in _FORK_SAFE_THREADS for name in threads):
        raise SystemExit(f"zygote: threads running after the preload, fork is unsafe: {threads}")
    return {"frozen_keys": sorted(tracing.read | set(FROZEN_KEYS)), "frozen_prefixes": prefixes,
            "lazy_keys": sorted(set(LAZY_KEYS) - tracing.read),
            "threads": threads, "modules": modules}


def _native_threads() -> list[str]:
    names = []
    for task in sorted(os.listdir("/proc/self/task")):
        try:
            with open(f"/proc/self/task/{task}/comm") as comm:
                names.append(comm.read().strip())
        except OSError:
            names.append("?")
    return names


# ----------------------------------------------------------------------------------------------
# The serving loop (single-threaded: SIGCHLD wakes select through a pipe)
# ----------------------------------------------------------------------------------------------


def serve(listener: socket.socket) -> None:
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # a handler, so the wakeup fd hears it
    children: dict[int, socket.socket] = {}
    lifeline = sys.stdin.fileno()
    while True:
        try:
            ready, _, _ = select.select([listener, lifeline, wake_r], [], [], 1.0)
        except InterruptedError:
            ready = []
        if lifeline in ready and not os.read(lifeline, 4096):
            break  # the test session is gone
        if wake_r in ready:
            os.read(wake_r, 4096)
        if listener in ready:
            _accept(listener, children, [listener.fileno(), lifeline, wake_r, wake_w])
        _reap(children)
    for pid in children:  # the session ended mid-call: its children go with it
        _kill(pid)


def _accept(listener, children, inherited_fds) -> None:
    conn, _ = listener.accept()
    conn.settimeout(30)
    try:
        request, fds = _receive(conn)
    except (OSError, ValueError) as error:
        print(f"zygote: bad request: {error}", file=sys.stderr, flush=True)
        conn.close()
        return
    pid = os.fork()
    if pid == 0:
        others = [c.fileno() for c in children.values()] + [conn.fileno()] + inherited_fds
        _child(request, fds, others)  # never returns
    for fd in fds:
        os.close(fd)
    children[pid] = conn
    try:
        conn.sendall(f"pid {pid}\n".encode())
    except OSError:
        pass  # the client went away; the child still gets reaped


def _receive(conn: socket.socket) -> tuple[dict, list[int]]:
    data, fds, _flags, _addr = socket.recv_fds(conn, 1 << 20, 3)
    try:
        while not data.endswith(b"\n"):
            more = conn.recv(1 << 20)
            if not more:
                raise ValueError("request cut short")
            data += more
        if len(fds) != 3:
            raise ValueError(f"expected 3 file descriptors, got {len(fds)}")
        return json.loads(data), fds
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise


def _reap(children: dict[int, socket.socket]) -> None:
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        conn = children.pop(pid, None)
        if conn is None:
            continue
        try:
            conn.sendall(f"status {status}\n".encode())
        except OSError:
            pass
        conn.close()


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


# ----------------------------------------------------------------------------------------------
# The child: become a fresh `python SCRIPT ARGV...`
# ----------------------------------------------------------------------------------------------


def _child(request: dict, fds: list[int], inherited: list[int]) -> None:
    code = 1
    try:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for fd in inherited:
            _close(fd)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)  # dup2 makes 0/1/2 inheritable, as in a fresh process
        for fd in set(fds) - {0, 1, 2}:
            _close(fd)
        os.chdir(request["cwd"])
        os.umask(request["umask"])
        os.environ.clear()
        os.environ.update(request["env"])
        _fresh_state()
        _fresh_stdio()
        sys.argv = [request["script"], *request["argv"]]
        code = _run_script(request["script"])
    except BaseException:  # noqa: BLE001 - a broken set-up must still end this process
        try:
            import traceback

            traceback.print_exc()
        finally:
            os._exit(1)
    _exit_like_python(code)


def _close(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


def _fresh_state() -> None:
    """Undo what the preload left that a fresh process would not share with its siblings."""
    import tempfile

    tempfile.tempdir = None  # recomputed from TMPDIR on first use
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed()  # numpy's legacy global generator: from OS entropy, as on import
    # (random reseeds itself after fork; torch's default generator has a fixed seed anyway)


def _fresh_stdio() -> None:
    """sys.stdin/stdout/stderr over fds 0/1/2, built as CPython's create_stdio builds them."""
    buffered = not sys.__stdout__.write_through  # False under -u or PYTHONUNBUFFERED, as for us
    for fd, name, mode in ((0, "stdin", "r"), (1, "stdout", "w"), (2, "stderr", "w")):
        old = getattr(sys, f"__{name}__")
        buffering = -1 if buffered or mode == "r" else 0
        binary = open(fd, mode + "b", buffering=buffering, closefd=False)
        raw = binary.raw if buffering else binary
        line = buffered and (raw.isatty() or fd == 2)
        stream = type(old)(binary, encoding=old.encoding, errors=old.errors, newline="\n",
                           line_buffering=line, write_through=not buffered)
        stream.mode = mode
        setattr(sys, name, stream)
        setattr(sys, f"__{name}__", stream)


def _run_script(script: str) -> int:
    import runpy

    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as exit_:
        return _system_exit_code(exit_)
    except KeyboardInterrupt:
        sys.excepthook(*sys.exc_info())
        return -signal.SIGINT
    except BaseException:  # noqa: BLE001 - what the interpreter does with an uncaught exception
        sys.excepthook(*sys.exc_info())
        return 1
    return 0


def _system_exit_code(exit_: SystemExit) -> int:
    code = exit_.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def _exit_like_python(code: int) -> None:
    """Py_FinalizeEx's order: join non-daemon threads, atexit, flush stdout/stderr, exit."""
    import atexit
    import threading

    try:
        threading._shutdown()  # type: ignore[attr-defined]
    except BaseException:  # noqa: BLE001
        pass
    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
    except BaseException:  # noqa: BLE001 - CPython reports it and exits 120
        code = 120
    try:
        sys.stderr.flush()
    except BaseException:  # noqa: BLE001
        pass
    if code == -signal.SIGINT:  # an uncaught KeyboardInterrupt ends the process by SIGINT
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    os._exit(code & 0xFF)


def main(argv: list[str]) -> None:
    socket_path, script_dir, *modules = argv
    sys.path[0] = script_dir  # resolve imports as the script would, not from tests/support
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the test session; EOF ends us
    report = preload(modules)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(socket_path)
    listener.listen(64)
    print(json.dumps(report), flush=True)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)  # the report pipe is done; children get their own stdout anyway
    os.close(devnull)
    serve(listener)


if __name__ == "__main__":
    main(sys.argv[1:])
