"""Run `kronos-registry` as a real subprocess, isolated from the machine it runs on.

Each ``Cli`` owns a store (``KRONOS_REGISTRY_HOME``), a Hugging Face home (``HF_HOME``) and a
working directory, all under a temporary folder, so no test sees the user's store, hub cache,
token or ``./models.yaml``. Offline by default: a test that wants the network path (a dead
endpoint) says so.

    cli = Cli(tmp_path)
    result = cli("list", "--json")
    assert result.code == 0, result.output

``synced_demo(root)`` is a Cli whose store already holds the packaged demo entries.

Fork server. Most of a call's time would be imports (torch, pandas: seconds) before
milliseconds of work, so a call normally runs as a child forked from a session-wide zygote
that has those imports done (tests/support/forkserver.py, zygote.py). The child is a real,
separate process with the call's environment (wholesale), cwd, argv and its own stdout and
stderr pipes; it runs the installed console script's code as __main__ and exits with its real
exit code; a timeout SIGKILLs it, as subprocess.run does. huggingface_hub, kronos_registry and
registry are imported in the child, after its environment is set.

A call execs the console script for real (``subprocess.run``) instead when:

- ``KRONOS_TEST_EXEC=1`` is in the test session's environment (the whole run execs: use it to
  check that the zygote changes no outcome, or when debugging one),
- the test is marked ``@pytest.mark.real_exec`` (a few test_cli.py cases, so the installed
  script's own start-up stays covered on every run), or runs inside ``exec_only()``,
- ``module=True`` (``python -m kronos_registry``: what a fresh interpreter imports is tested),
- the call's environment differs from the zygote's in a variable read at interpreter or
  library start-up (PYTHONPATH, as for an injected sitecustomize or a hidden module;
  OMP_NUM_THREADS, HOME, LANG, LD_*, ...: see ForkServer.serves),
- the console script is not installed, or the zygote cannot start (then every call execs).

``Result.via`` says which way a call ran ("fork" or "exec").
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Mapping

import attrs

from tests.support.forkserver import Unavailable, shared_server

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGE_DIR = REPO_ROOT / "kronos_registry"
SAMPLE_CSV = PACKAGE_DIR / "data" / "sample_candles.csv"
# The packaged demo entries (a tiny random model and its tokenizer, shipped in the package).
DEMO = "kronos-demo"
DEMO_TOKENIZER = "kronos-demo-tokenizer"
DEMO_MODEL_DIR = PACKAGE_DIR / "data" / "demo" / "model"
DEMO_TOKENIZER_DIR = PACKAGE_DIR / "data" / "demo" / "tokenizer"

# Settings of the machine that would leak into a test: the user's store, registry, hub
# cache, endpoint, token and offline switches.
_SCRUBBED_PREFIXES = ("KRONOS_REGISTRY_", "HF_", "HUGGINGFACE_")
_exec_only = 0  # > 0 inside exec_only(): every call execs
calls: Counter[str] = Counter()  # "fork" / "exec": how the session's calls ran (see conftest)
exec_reasons: Counter[str] = Counter()  # why the zygote declined a call


@contextlib.contextmanager
def exec_only():
    """Every Cli call in this block execs the console script (no fork server)."""
    global _exec_only
    _exec_only += 1
    try:
        yield
    finally:
        _exec_only -= 1


def forking_enabled() -> bool:
    return _exec_only == 0 and os.environ.get("KRONOS_TEST_EXEC", "") in ("", "0")


def console_script() -> list[str]:
    """The installed `kronos-registry` next to this Python, else `python -m kronos_registry`."""
    script = Path(sys.executable).parent / "kronos-registry"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "kronos_registry"]


@attrs.frozen
class Result:
    code: int
    stdout: str
    stderr: str
    seconds: float
    via: str = "exec"  # "fork": a child of the session's zygote; "exec": a fresh interpreter

    @property
    def output(self) -> str:
        """Both streams, for assertion messages and for text that may go to either."""
        return f"{self.stdout}\n{self.stderr}"


class Cli:
    """A `kronos-registry` with its own store, HF home and working directory."""

    def __init__(self, root: Path, *, store: Path | None = None, offline: bool = True,
                 env: Mapping[str, str] | None = None):
        self.root = Path(root)
        self.store = Path(store) if store is not None else self.root / "store"
        self.cwd = self.root / "cwd"
        self.hf_home = self.root / "hf-home"
        self.cwd.mkdir(parents=True, exist_ok=True)
        self.offline = offline
        self.extra_env = dict(env or {})

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        env = base_env()
        env.update(KRONOS_REGISTRY_HOME=str(self.store), HF_HOME=str(self.hf_home))
        if self.offline:
            env.update(KRONOS_REGISTRY_OFFLINE="1", HF_HUB_OFFLINE="1")
        env.update(self.extra_env)
        env.update(extra or {})
        return env

    def __call__(self, *args: str, env: Mapping[str, str] | None = None, timeout: float = 120,
                 module: bool = False, umask: int | None = None) -> Result:
        """Run the CLI; ``umask`` sets the child's (the test process keeps its own)."""
        command = [sys.executable, "-m", "kronos_registry"] if module else console_script()
        args = [str(arg) for arg in args]
        call_env = self.env(env)
        started = time.monotonic()
        done = None if module else _forked(command, args, call_env, self.cwd, timeout, umask)
        via = "fork"
        if done is None:
            via = "exec"
            set_umask = None if umask is None else (lambda: os.umask(umask))
            done = subprocess.run([*command, *args], cwd=self.cwd, env=call_env,
                                  capture_output=True, text=True, timeout=timeout, preexec_fn=set_umask)
        calls[via] += 1
        return Result(done.returncode, done.stdout, done.stderr, time.monotonic() - started, via)

    def object_ids(self) -> list[str]:
        """The artifacts published in this store (the folders under objects/), sorted."""
        return sorted(p.name for p in (self.store / "objects").iterdir())

    def clone(self, root: Path) -> "Cli":
        """A Cli over a copy of this one's store (cheaper than syncing again)."""
        copy = Cli(root, offline=self.offline, env=self.extra_env)
        if self.store.exists():
            shutil.copytree(self.store, copy.store, symlinks=True)
        return copy


def base_env() -> dict[str, str]:
    """The machine's environment without its registry settings, as every call starts from."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUBBED_PREFIXES)}
    env.update(
        # One thread: two cores are shared with other test processes, and an oversubscribed
        # OpenMP pool can make a tiny model 30x slower.
        OMP_NUM_THREADS="1",
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
        COLUMNS="120",
    )
    return env


def _forked(command: list[str], args: list[str], env: dict[str, str], cwd: Path,
            timeout: float, umask: int | None) -> subprocess.CompletedProcess | None:
    """The call run by the session's zygote, or None where it must exec (see the module doc)."""
    if not forking_enabled() or len(command) != 1:  # not the installed script: python -m
        return None
    script = Path(command[0])
    try:
        return shared_server(base_env(), script).run(script, args, env=env, cwd=cwd, timeout=timeout,
                                                        umask=umask)
    except Unavailable as why:
        exec_reasons[str(why)] += 1
        return None


def synced_demo(root: Path) -> Cli:
    """A Cli whose store holds kronos-demo and its tokenizer, synced through the CLI."""
    runner = Cli(root)
    result = runner("sync", DEMO)
    assert result.code == 0, result.output
    return runner
