"""Sync speed against a local mirror: a ~100 MB registry entry synced by the registry engine
versus a plain `huggingface_hub.snapshot_download` of the same repo at the same commit, both
from the same olah on 127.0.0.1 in the same run, each with a fresh Hugging Face cache (and a
fresh store); then the deep re-hash of the stored object in MB/s.

    .venv/bin/python benchmarks/bench_sync.py [--mb 100] [--repeats 3]

The entry is generic (registry.loader.Loader with the engine's generic checks: required
files, safetensors header, sha256 against the hub's record). Needs olah in .venv-olah.
The registry's time includes what snapshot_download does not do: hashing every file,
comparing with the hub's sha256, fsync and the atomic publish.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# Read by huggingface_hub when it is imported: set before anything imports it.
os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
os.environ.pop("HF_TOKEN", None)  # a mirror on loopback needs none; keep it out of requests

from registry.loader import Loader  # noqa: E402
from registry.sources import Endpoints  # noqa: E402
from registry.spec import load_registry  # noqa: E402
from registry.store import Store  # noqa: E402
from tests.support.hubrepos import make_repo  # noqa: E402
from tests.support.olah import olah_missing_reason, start_olah, stop_olah  # noqa: E402

REPO = "Bench/Big-model"
ENTRY = "big"


def write_repo(mirrors: Path, megabytes: int) -> tuple[str, int]:
    """A repo with config.json and one float32 tensor of ``megabytes`` MB (LFS); its commit and size."""
    import numpy as np
    from safetensors.numpy import save

    values = np.random.default_rng(0).standard_normal(megabytes * 1_000_000 // 4, dtype=np.float32)
    weights = save({"weight": values})
    config = json.dumps({"d_model": 1, "note": "benchmark"}).encode()
    commit = make_repo(mirrors, REPO).commit({"config.json": config, "model.safetensors": weights})
    return commit, len(weights) + len(config)


def write_registry(folder: Path, commit: str) -> Path:
    path = folder / "models.yaml"
    path.write_text(f"schema: 1\ntokenizers:\n  {ENTRY}:\n    source: hf://{REPO}@{commit}\nmodels: {{}}\n")
    return path


def time_registry_sync(registry_file: Path, endpoint: str, work: Path) -> tuple[float, Store, str]:
    """One sync into a fresh store through a fresh HF cache."""
    os.environ["HF_HUB_CACHE"] = str(work / "hf-cache")
    spec = load_registry(registry_file, default_path=registry_file, env={}, cwd=work)
    store = Store(work / "store")
    loader = Loader(spec, store, offline=False, endpoints=Endpoints(urls=(endpoint,)))
    started = time.perf_counter()
    result = loader.sync(ENTRY)
    elapsed = time.perf_counter() - started
    assert result.fetched, "the benchmark must measure a real download"
    return elapsed, store, result.artifact_id


def time_snapshot_download(commit: str, endpoint: str, work: Path) -> float:
    from huggingface_hub import snapshot_download

    started = time.perf_counter()
    snapshot_download(REPO, revision=commit, cache_dir=str(work / "hf-cache"), endpoint=endpoint)
    return time.perf_counter() - started


def time_deep_check(store: Store, artifact_id: str) -> float:
    started = time.perf_counter()
    problems = store.check(artifact_id, deep=True)
    elapsed = time.perf_counter() - started
    assert not problems, problems
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=100, help="size of the weights file in MB")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    reason = olah_missing_reason()
    if reason:
        sys.exit(f"cannot run: {reason}")

    with tempfile.TemporaryDirectory(prefix="bench-sync-") as tmp:
        root = Path(tmp)
        commit, size = write_repo(root / "mirrors", args.mb)
        registry_file = write_registry(root, commit)
        server = start_olah(root / "mirrors", root / "olah")
        try:
            sync_s, plain_s, deep_s = [], [], []
            for i in range(args.repeats):
                # Alternate which goes first, so neither always meets a warmer page cache.
                runs = [("sync", root / f"sync-{i}"), ("plain", root / f"plain-{i}")]
                for kind, work in (runs if i % 2 == 0 else runs[::-1]):
                    work.mkdir()
                    if kind == "sync":
                        elapsed, store, artifact_id = time_registry_sync(registry_file, server.url, work)
                        sync_s.append(elapsed)
                        deep_s.append(time_deep_check(store, artifact_id))
                    else:
                        plain_s.append(time_snapshot_download(commit, server.url, work))
                    shutil.rmtree(work)
        finally:
            stop_olah(server)
    report(size, sync_s, plain_s, deep_s, args)


def report(size: int, sync_s: list, plain_s: list, deep_s: list, args) -> None:
    mb = size / 1e6
    sync, plain, deep = (statistics.median(v) for v in (sync_s, plain_s, deep_s))
    rows = [
        ("entry size", f"{mb:.1f} MB (config.json + model.safetensors)"),
        ("registry sync (Loader.sync, fresh store + HF cache)", f"{sync:.2f} s  ({mb / sync:.0f} MB/s)"),
        ("snapshot_download (fresh HF cache)", f"{plain:.2f} s  ({mb / plain:.0f} MB/s)"),
        ("ratio sync / snapshot_download", f"{sync / plain:.2f}x"),
        ("deep verify (Store.check(deep=True))", f"{deep:.2f} s  ({mb / deep:.0f} MB/s)"),
    ]
    width = max(len(label) for label, _ in rows)
    print(f"bench_sync: medians of {args.repeats} runs, olah on 127.0.0.1, {os.cpu_count()} CPUs")
    print(f"{'measure'.ljust(width)}  value")
    print(f"{'-' * width}  {'-' * 40}")
    for label, value in rows:
        print(f"{label.ljust(width)}  {value}")
    print("runs (s): sync " + ", ".join(f"{v:.2f}" for v in sync_s) + "; snapshot_download "
          + ", ".join(f"{v:.2f}" for v in plain_s) + "; deep verify " + ", ".join(f"{v:.2f}" for v in deep_s))


if __name__ == "__main__":
    main()
