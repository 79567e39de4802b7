"""Crash safety: `kronos-registry sync` killed with SIGKILL at more than twenty moments, spread
over a sync measured first (tokenizer, model download, verification, publish).

After each kill: nothing partial is visible (every objects/<id> has its MANIFEST.json and passes
the deep re-hash), no stale lock blocks the next sync (it succeeds, with a 3 s lock timeout,
within its normal time), and `verify --deep` exits 0.

The killed process is the real console script; each kill aims at a point inside a phase that
the store shows (staging, files in staging, manifest, object, ref), and the phase actually seen
at the kill is recorded. To keep the suite short, the sync and verify after each kill run in one
long-lived helper process through the CLI's own ``main`` (the same code, its exit codes intact),
the next round's process starts while they run, and the console script verifies the last
round's store again, offline.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import attrs
import pytest

from registry.store import Store
from tests.support.faultproxy import FaultProxy
from tests.support.kronos_checkpoints import TINY_MODEL, model_checkpoint, tokenizer_checkpoint
from tests.support.mirror import CLI, isolated_env, publish_checkpoint, published_problems, run_cli
from tests.support.olah import require_olah, running_olah
from tests.support.registry_files import model_keys, registry_yaml, tokenizer_keys

# Kronos-mini's shape (16 MB of weights): hashing and checking it takes measurable time.
BIG_MODEL = {**TINY_MODEL, "d_model": 256, "n_heads": 4, "ff_dim": 512, "n_layers": 4}
DOWNLOAD_S = 1.0  # the throttle makes the weights' download last about this long
LOCK_TIMEOUT_S = "3"
# The phases of a sync as the store shows them, in order, and how many kills aim at each.
PHASES = ("tokenizer", "download", "verify", "publish", "finishing")
KILLS = {"tokenizer": 2, "download": 7, "verify": 7, "publish": 3, "finishing": 2}

CHECKER = textwrap.dedent("""
    import json, os, sys, time
    from kronos_registry.cli import main
    import huggingface_hub.file_download, kronos_registry.kronos.checks, kronos_registry.kronos.model, torch
    import kronos_registry.kronos.tokenizer
    torch.nn.Embedding(2, 2, device="meta")  # pay torch's one-off meta-device import now

    protocol, sys.stdout = sys.stdout, sys.stderr  # the CLI's own output goes to the log
    print(json.dumps({"ready": True}), file=protocol, flush=True)
    for line in sys.stdin:
        job = json.loads(line)
        os.environ.update(job["env"])
        started = time.monotonic()
        try:
            main(job["args"])
            code = 0
        except SystemExit as done:
            code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
        print(json.dumps({"rc": code, "seconds": time.monotonic() - started}), file=protocol, flush=True)
""")


@attrs.frozen
class Layout:
    """Where one round's store and HF cache live, and what its artifacts are called."""

    root: Path
    model_id: str

    @property
    def store(self) -> Path:
        return self.root / "store"

    def phase(self) -> str:
        """Which part of the sync the store shows right now (see PHASES)."""
        if not (self.store / "locks").exists():
            return "starting"  # imports; nothing written yet
        if (self.store / "objects" / self.model_id).exists():
            # Renamed into place; the entry's ref is written next, then the process exits.
            refs = self.store / "refs"
            return "finishing" if refs.exists() and any(refs.rglob("big.json")) else "publish"
        staging = self.store / "staging" / self.model_id
        if (staging / "MANIFEST.json").exists():
            return "publish"  # manifest written, files being fsynced before the rename
        if (staging / "model.safetensors").exists():
            return "verify"  # every file in staging: checks and hashes running
        return "download" if staging.exists() else "tokenizer"

    def reached(self, phase: str) -> bool:
        current = self.phase()
        return current != "starting" and PHASES.index(current) >= PHASES.index(phase)


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    require_olah()
    root = tmp_path_factory.mktemp("crash-hub")
    mirrors = root / "mirrors"
    _, tok = publish_checkpoint(mirrors, "TestOrg/Tokenizer-k", tokenizer_checkpoint(root / "t"))
    big = model_checkpoint(root / "m", seed=21, **BIG_MODEL)
    _, mod = publish_checkpoint(mirrors, "TestOrg/Kronos-big", big)
    text = registry_yaml(
        {"tok": tokenizer_keys(f"hf://TestOrg/Tokenizer-k@{tok}")},
        {"big": model_keys(f"hf://TestOrg/Kronos-big@{mod}", "tok", BIG_MODEL)},
    )
    model_id = f"hf--TestOrg--Kronos-big--{mod}"
    with running_olah(mirrors, root / "olah") as server:
        yield server, text, model_id, (big / "model.safetensors").stat().st_size


class Checker:
    """A long-lived process that runs CLI commands through ``kronos_registry.cli.main``."""

    def __init__(self, env: dict, cwd: Path):
        self.log = open(cwd / "checker.log", "w")
        self.process = subprocess.Popen([sys.executable, "-c", CHECKER], env=env, cwd=cwd, text=True,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log)
        assert json.loads(self.process.stdout.readline())["ready"], self.tail()

    def run(self, args: list[str], env: dict) -> dict:
        self.process.stdin.write(json.dumps({"args": args, "env": env}) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        assert line, f"the checker died:\n{self.tail()}"
        return json.loads(line)

    def tail(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text()[-3000:]

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=30)
        self.log.close()


def round_env(base: dict, layout: Layout, endpoint: str) -> dict:
    return {**base, "KRONOS_REGISTRY_HOME": str(layout.store), "HF_HOME": str(layout.root / "hf-home"),
            "HF_ENDPOINT": endpoint}


def start_sync(registry: Path, env: dict, layout: Layout) -> subprocess.Popen:
    layout.root.mkdir(exist_ok=True)
    return subprocess.Popen([str(CLI), "--registry", str(registry), "sync", "big"], env=env, cwd=layout.root,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def wait_for(process: subprocess.Popen, layout: Layout, phase: str, timeout: float = 60) -> None:
    """Poll the store until the sync reaches ``phase`` (or a later one) or ends."""
    deadline = time.monotonic() + timeout
    while not layout.reached(phase) and process.poll() is None:
        assert time.monotonic() < deadline, f"the sync never reached {phase}"
        time.sleep(0.001)


def measure_phases(registry: Path, env: dict, layout: Layout) -> dict[str, float]:
    """One undisturbed sync: how long each phase lasted, in seconds."""
    process = start_sync(registry, env, layout)
    wait_for(process, layout, "tokenizer")
    anchor, began = time.monotonic(), {}
    while process.poll() is None:
        began.setdefault(layout.phase(), time.monotonic() - anchor)
        time.sleep(0.001)
    assert process.returncode == 0, process.stderr.read()
    began["end"] = time.monotonic() - anchor
    starts = [began.get(phase) for phase in (*PHASES, "end")]
    # A phase too short to be seen lasted zero seconds, ending where the next one began.
    for i in range(len(starts) - 2, -1, -1):
        starts[i] = starts[i + 1] if starts[i] is None else starts[i]
    return {phase: starts[i + 1] - starts[i] for i, phase in enumerate(PHASES)}


def kill_plan(durations: dict[str, float]) -> list[tuple[str, float]]:
    """(phase, seconds into it) for each kill, spread evenly inside each phase."""
    return [(phase, durations[phase] * (i + 0.5) / count)
            for phase, count in KILLS.items() for i in range(count)]


def assert_nothing_partial(layout: Layout) -> None:
    store = Store(layout.store)
    assert published_problems(store) == []
    # The killed process's locks died with it: each is free at once. Lock files stay where
    # they are (tidy=False), so the next sync meets exactly what the kill left.
    for lock in sorted((layout.store / "locks").glob("*.lock")):
        with store.lock(lock.name.removesuffix(".lock"), timeout=0, tidy=False):
            pass


def test_kill_9_at_twenty_moments_never_leaves_a_partial_or_blocking_store(hub, tmp_path):
    server, text, model_id, weights_size = hub
    registry = tmp_path / "models.yaml"
    registry.write_text(text)
    base = isolated_env(tmp_path, server.url, KRONOS_REGISTRY_LOCK_TIMEOUT=LOCK_TIMEOUT_S)

    def layout(name: str) -> Layout:
        return Layout(tmp_path / name, model_id)

    with FaultProxy(server.url) as slow, FaultProxy(server.url) as fast:
        slow.throttle(weights_size / DOWNLOAD_S, match="Kronos-big/resolve/")
        checker = Checker(base, tmp_path)
        try:
            normal = checker.run(["--registry", str(registry), "sync", "big"],
                                 round_env(base, layout("normal"), fast.url))
            assert normal["rc"] == 0, checker.tail()
            durations = measure_phases(registry, round_env(base, layout("measure"), slow.url), layout("measure"))
            plan = kill_plan(durations)
            observed = run_rounds(plan, registry, base, layout, slow.url, fast.url, checker, normal["seconds"])
        finally:
            checker.close()

    killed = [phase for phase in observed if phase is not None]
    print(f"\nphase durations of the measured sync (s): { {k: round(v, 3) for k, v in durations.items()} }; "
          f"a normal sync after a kill: {normal['seconds']:.2f} s")
    print(f"kills of a running sync: {len(killed)} of {len(plan)}; phase seen at each kill: {dict(Counter(killed))}")
    assert len(killed) >= 20
    assert {"download", "verify"} <= set(killed), Counter(killed)
    assert set(killed) & {"publish", "finishing"}, Counter(killed)

    # The console script agrees on the last round's store, with no network at all.
    last = layout(f"round-{len(plan) - 1}")
    env = {**round_env(base, last, fast.url), "KRONOS_REGISTRY_OFFLINE": "1"}
    done = run_cli(["--registry", str(registry), "verify", "--deep", "tok", "big"], env, last.root)
    assert done.returncode == 0, done.stdout + done.stderr


def run_rounds(plan, registry: Path, base: dict, layout, slow_url: str, fast_url: str, checker: Checker,
               normal_s: float) -> list[str | None]:
    """Each round: kill a sync as planned, then check, sync and verify its store.

    The next round's process starts right after a kill, so its imports overlap the checks.
    """
    observed = []
    pending = start_sync(registry, round_env(base, layout("round-0"), slow_url), layout("round-0"))
    for index, (phase, offset) in enumerate(plan):
        current, process = layout(f"round-{index}"), pending
        seen = kill_at(process, current, phase, offset)
        if index + 1 < len(plan):
            following = layout(f"round-{index + 1}")
            pending = start_sync(registry, round_env(base, following, slow_url), following)
        check_after_kill(index, seen, current, registry, round_env(base, current, fast_url), checker, normal_s)
        observed.append(seen)
        if index:  # keep the disk small: only the last round's store is looked at again
            shutil.rmtree(layout(f"round-{index - 1}").root)
    return observed


def kill_at(process: subprocess.Popen, layout: Layout, phase: str, offset: float) -> str | None:
    """SIGKILL ``offset`` s after the sync reaches ``phase``; the phase seen then (None: it had ended)."""
    wait_for(process, layout, phase)
    time.sleep(offset)
    seen = None
    if process.poll() is None:  # not reaped yet, so the pid is still this process's
        seen = layout.phase()
        os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=10)
    process.stderr.close()
    return seen


def check_after_kill(index: int, seen: str | None, layout: Layout, registry: Path, env: dict,
                     checker: Checker, normal_s: float) -> None:
    assert_nothing_partial(layout)
    after = checker.run(["--registry", str(registry), "sync", "big"], env)
    assert after["rc"] == 0, f"round {index} (killed in {seen}): sync failed\n{checker.tail()}"
    assert after["seconds"] < 3 * normal_s + 2, f"round {index}: the next sync took {after['seconds']:.1f} s"
    verified = checker.run(["--registry", str(registry), "verify", "--deep", "tok", "big"], env)
    assert verified["rc"] == 0, f"round {index} (killed in {seen}): verify --deep failed\n{checker.tail()}"
    assert_nothing_partial(layout)
    print(f"round {index}: killed in {seen}; next sync {after['seconds']:.2f} s, "
          f"verify --deep {verified['seconds']:.2f} s")
