"""Eight real processes sync and load the same entries at the same moment, through a counting
proxy in front of a real mirror (olah): all succeed, every file crosses the wire once, and
`kronos-registry verify --deep` finds the store clean afterwards."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest

from registry.store import Store
from tests.support.faultproxy import FaultProxy
from tests.support.kronos_checkpoints import model_checkpoint, tokenizer_checkpoint
from tests.support.mirror import isolated_env, publish_checkpoint, published_problems, run_cli
from tests.support.olah import require_olah, running_olah
from tests.support.registry_files import model_keys, registry_yaml, tokenizer_keys

PROCESSES = 8
# Slow enough that the first download is still running when the others ask for the lock.
THROTTLE_BYTES_PER_S = 1_000_000

# Each worker imports first, says it is ready, then waits for the common start signal, so
# that all of them really ask at the same moment. Half sync then load, half only load (which
# syncs what is missing): two different ways into the same store.
WORKER = textwrap.dedent("""
    import json, os, sys, time
    from pathlib import Path
    from kronos_registry import Registry
    # The heavy imports (torch, huggingface_hub) before the start, so the race is the sync's.
    import huggingface_hub, huggingface_hub.file_download, safetensors.torch
    import kronos_registry.kronos.checks, kronos_registry.kronos.model, kronos_registry.kronos.predictor
    import kronos_registry.kronos.tokenizer
    import torch

    index, name, mode, registry_path, signal_dir = sys.argv[1:6]
    signals = Path(signal_dir)
    (signals / f"ready-{index}").touch()
    while not (signals / "go").exists():
        time.sleep(0.005)
    started = time.monotonic()
    waits = []
    registry = Registry(registry_path, on_wait=lambda wait: waits.append(wait.artifact_id))
    fetched = []
    if mode == "sync":
        result = registry.sync(name)
        fetched = [r.artifact_id for r in (result.tokenizer, result) if r.fetched]
    predictor = registry.load_predictor(name)
    print(json.dumps({"index": int(index), "name": name, "mode": mode, "fetched": fetched,
                      "waited_for": waits, "seconds": time.monotonic() - started,
                      "params": sum(p.numel() for p in predictor.model.parameters())}))
""")


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    require_olah()
    root = tmp_path_factory.mktemp("concurrency-hub")
    mirrors = root / "mirrors"
    _, tok = publish_checkpoint(mirrors, "TestOrg/Tokenizer-c", tokenizer_checkpoint(root / "t"))
    _, a = publish_checkpoint(mirrors, "TestOrg/Kronos-ca", model_checkpoint(root / "a", seed=11))
    _, b = publish_checkpoint(mirrors, "TestOrg/Kronos-cb", model_checkpoint(root / "b", seed=12))
    text = registry_yaml(
        {"tok": tokenizer_keys(f"hf://TestOrg/Tokenizer-c@{tok}")},
        {"model-a": model_keys(f"hf://TestOrg/Kronos-ca@{a}", "tok"),
         "model-b": model_keys("hf://TestOrg/Kronos-cb@main", "tok")},
    )
    with running_olah(mirrors, root / "olah") as server:
        yield server, text


def start_workers(env: dict, registry_path: Path, signals: Path) -> list[subprocess.Popen]:
    plan = [("model-a", "sync"), ("model-b", "load")] * (PROCESSES // 2)
    return [subprocess.Popen([sys.executable, "-c", WORKER, str(i), name, mode, str(registry_path), str(signals)],
                             env=env, cwd=registry_path.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
            for i, (name, mode) in enumerate(plan)]


def wait_until_ready(workers: list[subprocess.Popen], signals: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while len(list(signals.glob("ready-*"))) < len(workers):
        dead = [w for w in workers if w.poll() is not None]
        assert not dead, dead[0].stderr.read()
        assert time.monotonic() < deadline, "workers did not start in time"
        time.sleep(0.05)


def test_eight_processes_sync_and_load_the_same_entries_fetching_each_file_once(hub, tmp_path):
    server, text = hub
    registry_path = tmp_path / "models.yaml"
    registry_path.write_text(text)
    signals = tmp_path / "signals"
    signals.mkdir()
    with FaultProxy(server.url) as proxy:
        proxy.throttle(THROTTLE_BYTES_PER_S, match="/resolve/")
        env = isolated_env(tmp_path, proxy.url, KRONOS_REGISTRY_LOCK_TIMEOUT="120")
        workers = start_workers(env, registry_path, signals)
        wait_until_ready(workers, signals)
        proxy.reset_counters()
        (signals / "go").touch()
        outputs = [w.communicate(timeout=180) for w in workers]
        gets = Counter(e.path for e in proxy.exchanges if e.method == "GET" and "/resolve/" in e.path)

    failures = [(w.returncode, err[-2000:]) for w, (_, err) in zip(workers, outputs) if w.returncode != 0]
    assert not failures, failures
    reports = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    fetched = Counter(artifact for r in reports for artifact in r["fetched"])
    waited = sum(1 for r in reports if r["waited_for"])
    print(f"\n{PROCESSES} processes; GETs per file at the proxy: {dict(gets)}; "
          f"{waited} waited for a lock; seconds from the start signal: "
          f"{sorted(round(r['seconds'], 1) for r in reports)}")

    # tokenizer + two models, two files each: every one fetched from the mirror exactly once.
    assert len(gets) == 6 and set(gets.values()) == {1}, gets
    assert all(count == 1 for count in fetched.values())
    assert len({r["params"] for r in reports if r["name"] == "model-a"}) == 1
    assert waited >= 1  # they really overlapped: someone found the lock taken

    store = Store(tmp_path / "store")
    assert len(store.list_artifacts()) == 3 and published_problems(store) == []
    done = run_cli(["--registry", str(registry_path), "verify", "--deep", "tok", "model-a", "model-b"],
                   env, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
