"""Run `kronos-registry` as a real subprocess, isolated from the machine it runs on.

Each ``Cli`` owns a store (``KRONOS_REGISTRY_HOME``), a Hugging Face home (``HF_HOME``) and a
working directory, all under a temporary folder, so no test sees the user's store, hub cache,
token or ``./models.yaml``. Offline by default: a test that wants the network path (a dead
endpoint) says so.

    cli = Cli(tmp_path)
    result = cli("list", "--json")
    assert result.code == 0, result.output

``synced_demo(root)`` is a Cli whose store already holds the packaged demo entries.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Mapping

import attrs

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
        env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUBBED_PREFIXES)}
        env.update(
            KRONOS_REGISTRY_HOME=str(self.store),
            HF_HOME=str(self.hf_home),
            # One thread: two cores are shared with other test processes, and an oversubscribed
            # OpenMP pool can make a tiny model 30x slower.
            OMP_NUM_THREADS="1",
            PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
            COLUMNS="120",
        )
        if self.offline:
            env.update(KRONOS_REGISTRY_OFFLINE="1", HF_HUB_OFFLINE="1")
        env.update(self.extra_env)
        env.update(extra or {})
        return env

    def __call__(self, *args: str, env: Mapping[str, str] | None = None, timeout: float = 120,
                 module: bool = False) -> Result:
        command = [sys.executable, "-m", "kronos_registry"] if module else console_script()
        started = time.monotonic()
        done = subprocess.run([*command, *map(str, args)], cwd=self.cwd, env=self.env(env),
                              capture_output=True, text=True, timeout=timeout)
        return Result(done.returncode, done.stdout, done.stderr, time.monotonic() - started)

    def object_ids(self) -> list[str]:
        """The artifacts published in this store (the folders under objects/), sorted."""
        return sorted(p.name for p in (self.store / "objects").iterdir())

    def clone(self, root: Path) -> "Cli":
        """A Cli over a copy of this one's store (cheaper than syncing again)."""
        copy = Cli(root, offline=self.offline, env=self.extra_env)
        if self.store.exists():
            shutil.copytree(self.store, copy.store, symlinks=True)
        return copy


def synced_demo(root: Path) -> Cli:
    """A Cli whose store holds kronos-demo and its tokenizer, synced through the CLI."""
    runner = Cli(root)
    result = runner("sync", DEMO)
    assert result.code == 0, result.output
    return runner
