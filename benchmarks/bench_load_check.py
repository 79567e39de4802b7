"""What the load-time integrity check costs on a Kronos-base sized entry (409 MB of weights).

    .venv/bin/python benchmarks/bench_load_check.py [--repeats 5] [--size base|small|mini]

Syncs a random-weight checkpoint (built with our own classes, in a temporary folder that is
deleted afterwards) and times, on the stored model object:

- ``sizes``: the older cheap check (manifest, names, sizes: ``Store.check``);
- ``snapshot``: what every load now does (``registry.store.snapshot.open_snapshot``): sizes, the
  small files hashed whole, the safetensors header hashed; the weights' stat as recorded;
- ``snapshot, stat changed``: the same after the weights' mtime moved (a copy, an edit):
  the whole weights file is hashed;
- ``load_predictor``: a whole load, for scale.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_load import write_checkpoints, write_registry  # noqa: E402

from kronos_registry import Registry  # noqa: E402
from registry.store.snapshot import open_snapshot  # noqa: E402


def median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--size", choices=["base", "small", "mini"], default="base")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-load-check-") as tmp:
        root = Path(tmp)
        tokenizer_dir, model_dir = write_checkpoints(root / "src", args.size)
        registry = Registry(write_registry(root, tokenizer_dir, model_dir), root / "store", offline=True)
        registry.sync("bench-model")
        artifact = registry.status("bench-model")
        store = registry.store
        weights = store.object_dir(artifact) / "model.safetensors"

        def snapshot():
            with open_snapshot(store, artifact):
                pass

        rows = [("sizes (Store.check)", median_ms(lambda: store.check(artifact), args.repeats)),
                ("snapshot (every load)", median_ms(snapshot, args.repeats))]
        info = weights.stat()
        os.utime(weights, ns=(info.st_atime_ns, info.st_mtime_ns + 10**9))
        rows.append(("snapshot, stat changed (full hash)", median_ms(snapshot, max(1, args.repeats // 2))))
        os.utime(weights, ns=(info.st_atime_ns, info.st_mtime_ns))
        rows.append(("load_predictor (whole load)",
                     median_ms(lambda: registry.load_predictor("bench-model"), max(1, args.repeats // 2))))
        print(f"Kronos-{args.size}: weights {weights.stat().st_size / 1e6:.0f} MB; median of {args.repeats}")
        for label, ms in rows:
            print(f"  {label:<36} {ms:9.1f} ms")


if __name__ == "__main__":
    main()
