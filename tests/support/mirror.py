"""Helpers for the suites that sync from a real mirror (olah): test_integration_olah,
test_faults, test_concurrency and test_crash.

``publish_checkpoint`` puts a checkpoint folder into a hub repo under a mirrors folder;
``isolated_env``/``isolate`` keep a subprocess (or this process) on our own store and caches,
loopback only; ``run_cli`` runs the real console script; ``published_problems`` re-hashes
everything a store has published.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Mapping

from registry.store import MANIFEST_NAME, Store
from tests.support.hubrepos import HubRepo, make_repo

REPO_ROOT = Path(__file__).resolve().parents[2]
CLI = Path(sys.executable).with_name("kronos-registry")
FILES = ("config.json", "model.safetensors")
# Settings of the person running the tests that must not leak into an isolated run.
_LEAKY_VARS = ("KRONOS_REGISTRY_", "HF_", "HUGGING_FACE_", "XDG_CACHE_HOME")


def publish_checkpoint(mirrors: Path, repo_id: str, folder: Path) -> tuple[HubRepo, str]:
    """A hub repo holding ``folder``'s config.json and model.safetensors (LFS) plus a README."""
    repo = make_repo(mirrors, repo_id)
    files = {name: (folder / name).read_bytes() for name in FILES}
    commit = repo.commit({**files, "README.md": f"# {repo_id}\n".encode()}, "upload checkpoint")
    return repo, commit


def isolated_env(tmp: Path, endpoint: str, **extra: str) -> dict:
    """An environment for a subprocess: our stores and caches under ``tmp``, loopback only."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(_LEAKY_VARS) and not k.lower().endswith("_proxy")}
    env.update(KRONOS_REGISTRY_HOME=str(tmp / "store"), HF_HOME=str(tmp / "hf-home"),
               HF_ENDPOINT=endpoint, NO_PROXY="127.0.0.1,localhost", HF_HUB_DISABLE_TELEMETRY="1",
               PYTHONPATH=str(REPO_ROOT))
    env.update(extra)
    return env


def isolate(monkeypatch, tmp: Path, endpoint: str, **extra: str) -> None:
    """The same isolation for code running in this test process (cwd included)."""
    for key in list(os.environ):
        if key.startswith(_LEAKY_VARS) or key.lower().endswith("_proxy"):
            monkeypatch.delenv(key, raising=False)
    for key, value in isolated_env(tmp, endpoint, **extra).items():
        if os.environ.get(key) != value:
            monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp)


def run_cli(args: list[str], env: Mapping[str, str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    """The real console script in its own process."""
    return subprocess.run([str(CLI), *args], env=dict(env), cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def published_problems(store: Store) -> list[str]:
    """Anything under objects/ that is not a complete, intact artifact (deep re-hash)."""
    problems = []
    if store.objects_dir.is_dir():
        for folder in sorted(store.objects_dir.iterdir()):
            if not (folder / MANIFEST_NAME).is_file():
                problems.append(f"{folder.name}: no {MANIFEST_NAME}")
            else:
                problems += [f"{folder.name}: {p}" for p in store.check(folder.name, deep=True)]
    return problems
