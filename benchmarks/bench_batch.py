"""Many series at once: the batched core against one-by-one and against the official code.

    .venv/bin/python benchmarks/bench_batch.py                        # the issue's sizes
    .venv/bin/python benchmarks/bench_batch.py --series-b 16 --official-subset 2 --len-a 128   # smaller

One run, one Kronos-small-shaped checkpoint with random weights (seeded), synthetic
random-walk candles (seeded), greedy sampling (top_k=1) so every implementation must
produce the same tokens (outputs are compared, rtol 1e-4):

(a) `--series-a` series (16) of equal length `--len-a` (256), pred `--pred` (32): the official
    `KronosPredictor.predict_batch` against ours (`forecast_series`, one batch).
(b) `--series-b` series (64) of lengths drawn uniformly from 64..480, pred 32: series per
    second of ours batched (`forecast_series`, `--max-batch` 16), ours one-by-one
    (`KronosPredictor.predict` per series) and the official `predict` one-by-one, the last
    timed on the first `--official-subset` series (8) and reported per series (it recomputes
    the whole context every step, so its cost per series does not depend on the others).
Wall seconds are what is compared; each worker's CPU seconds (user + system) are printed
too, since on a shared machine wall time also measures the neighbours.

(c) peak memory of each: growth of the worker's resident set during the timed part
    (VmHWM after minus VmRSS before, the high-water mark reset through
    /proc/self/clear_refs; weights loaded before, so not counted).

Each (part, implementation) runs in a fresh subprocess that loads the checkpoint and
warms up on a tiny forecast first. `--device cuda` runs both on a GPU (peak memory is
then torch.cuda.max_memory_allocated). The official package (top-level `model`) must
be importable.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODEL, TOKENIZER, CONTEXT = "kronos-small", "kronos-tokenizer-base", 512


def _series(i, n):
    from bench_predict import synthetic_candles  # same folder: run as a script, it is on sys.path

    return synthetic_candles(n, seed=1000 + i)


def workload(part, args):
    """-> list of (key, history frame, history timestamps, future timestamps)."""
    import numpy as np
    if part == "a":
        lens = [args.len_a] * args.series_a
    else:
        lens = np.random.default_rng(7).integers(64, 481, args.series_b).tolist()
    out = []
    for i, n in enumerate(lens):
        df, ts = _series(i, n + args.pred)
        out.append((f"S{i:03d}", df.iloc[:n], ts.iloc[:n], ts.iloc[n:].reset_index(drop=True)))
    return out


# --------------------------------------------------------------------------- worker


class _Peak:
    def __init__(self, device):
        self.cuda = device.startswith("cuda")

    def start(self):
        import torch
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.before = torch.cuda.memory_allocated()
            return
        self.before = self._mem()["VmRSS"]
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")

    def stop(self):
        import torch
        if self.cuda:
            torch.cuda.synchronize()
            return torch.cuda.max_memory_allocated() - self.before
        return self._mem()["VmHWM"] - self.before

    @staticmethod
    def _mem():
        from bench_predict import _mem  # VmRSS and VmHWM of this process, in bytes

        return _mem()


def worker(part, impl, ckpt, out_npy, args):
    import gc
    import resource

    import numpy as np
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    ckpt = Path(ckpt)
    if impl == "official":
        from model import Kronos, KronosPredictor, KronosTokenizer
        from safetensors.torch import load_file

        def load(cls, folder):
            m = cls(**json.loads((folder / "config.json").read_text()))
            m.load_state_dict(load_file(str(folder / "model.safetensors")), strict=True)
            return m.eval()
        predictor = KronosPredictor(load(Kronos, ckpt / MODEL), load(KronosTokenizer, ckpt / TOKENIZER),
                                    device=args.device, max_context=CONTEXT)
    else:
        from kronos_registry import Kronos, KronosPredictor, KronosTokenizer
        predictor = KronosPredictor(Kronos.from_pretrained(ckpt / MODEL),
                                    KronosTokenizer.from_pretrained(ckpt / TOKENIZER),
                                    device=args.device, max_context=CONTEXT)
    from kronos_registry.kronos.batch import SeriesRequest, forecast_series

    work = workload(part, args)
    if impl == "official" and part == "b":
        work = work[:args.official_subset]
    pred = args.pred
    k0, df0, ts0, fut0 = work[0]
    predictor.predict(df0.iloc[-32:], ts0.iloc[-32:], fut0.iloc[:2], 2, top_k=1, verbose=False)  # warm-up
    gc.collect()
    torch.manual_seed(0)
    peak = _Peak(args.device)
    peak.start()
    t0 = time.perf_counter()
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    if impl == "official" and part == "a":
        frames = predictor.predict_batch([w[1] for w in work], [w[2] for w in work], [w[3] for w in work], pred,
                                         top_k=1, verbose=False)
    elif impl == "ours-prefill":  # one step each: the history through the transformer + tokenizer
        frames = [predictor.predict(df, ts, fut.iloc[:1], 1, top_k=1, verbose=False) for _, df, ts, fut in work]
    elif impl in ("official", "ours-single"):
        frames = [predictor.predict(df, ts, fut, pred, top_k=1, verbose=False) for _, df, ts, fut in work]
    else:  # ours-batched
        reqs = [SeriesRequest(k, df, ts, fut, pred, top_k=1, seed=i) for i, (k, df, ts, fut) in enumerate(work)]
        frames = [r.forecast for r in forecast_series(predictor, reqs, max_batch=args.max_batch)]
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    np.save(out_npy, np.stack([f.to_numpy() for f in frames]))
    print(json.dumps({"seconds": seconds, "cpu_seconds": cpu, "series": len(work), "peak_bytes": peak.stop(),
                      "load": os.getloadavg()[0]}))


# --------------------------------------------------------------------------- driver


def run_worker(part, impl, ckpt, tmp, argv):
    import numpy as np
    npy = Path(tmp) / f"{part}-{impl}.npy"
    cmd = [sys.executable, __file__, *argv, "--worker", part, impl, str(ckpt), str(npy)]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO,
                         env={**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"})
    if res.returncode != 0:
        raise SystemExit(f"{impl} worker failed on part {part}:\n{res.stderr[-3000:]}")
    out = json.loads(res.stdout.strip().splitlines()[-1])
    print(f"  part {part}, {impl}: {out['series']} series in {out['seconds']:.2f} s "
          f"(cpu {out['cpu_seconds']:.2f} s, load avg {out['load']:.1f})", flush=True)
    return out, np.load(npy)


def _same(a, b):
    import numpy as np
    n = min(len(a), len(b))
    return bool(np.allclose(a[:n], b[:n], rtol=1e-4, atol=1e-5 * np.abs(b[:n]).max()))


BATCH_GOAL = 3.0   # issue 22: mixed-length batches at least 3x ours one-by-one


def batch_bound(one_s, prefill_s, batched_s, n, max_batch):
    """Amdahl for (b): the prefill (history through the transformer) is compute-bound and
    costs the same batched or not; only the generated steps can share their weight reads.
    Even with a batch step as cheap as a single one, batched time >= prefill + groups x one
    series' steps, so the gain is at most one_s / that."""
    decode_one = max(one_s - prefill_s, 0.0)      # all n series' generated steps, one by one
    groups = -(-n // max_batch)
    best = prefill_s + decode_one * groups / n
    return [f"    bound: one-by-one {one_s:.2f} s = prefill + tokenizer {prefill_s:.2f} s (measured: pred 1 each) "
            f"+ steps {decode_one:.2f} s; batched >= {prefill_s:.2f} + {decode_one * groups / n:.2f} s "
            f"({groups} batches) -> at most {one_s / best:.1f}x on this device (measured "
            f"{one_s / batched_s:.1f}x); the prefill share {prefill_s / one_s:.0%} is what batching cannot remove "
            "here; on a GPU the prefill is a fraction of it and the bound rises"]


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--series-a", type=int, default=16)
    ap.add_argument("--len-a", type=int, default=256)
    ap.add_argument("--series-b", type=int, default=64)
    ap.add_argument("--official-subset", type=int, default=8, help="official one-by-one: time this many series")
    ap.add_argument("--pred", type=int, default=32)
    ap.add_argument("--max-batch", type=int, default=16)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads in the workers (0: torch's default)")
    ap.add_argument("--parts", default="a,b")
    ap.add_argument("--worker", nargs=4, metavar=("PART", "IMPL", "CKPT", "NPY"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker(*args.worker, args=args)
    shared = list(argv)

    import torch
    try:
        import model  # noqa: F401
    except ImportError:
        raise SystemExit("the official package is missing: pip install --no-deps kronos-model-arch==0.1.0 einops")
    from kronos_registry.kronos import PUBLISHED_CONFIGS, Kronos, KronosTokenizer
    print(f"torch threads: {torch.get_num_threads()}, cpu count: {os.cpu_count()}, device: {args.device}, "
          f"load avg at start: {os.getloadavg()[0]:.1f}")
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    MiB = 2 ** 20
    lines, failed = [], False
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / "ckpt"
        for i, (name, cls) in enumerate(((TOKENIZER, KronosTokenizer), (MODEL, Kronos))):
            torch.manual_seed(1234 + i)
            cls(**PUBLISHED_CONFIGS[name]).eval().save_pretrained(ckpt / name)
        if "a" in parts:
            off, off_y = run_worker("a", "official", ckpt, tmp, shared)
            ours, our_y = run_worker("a", "ours-batched", ckpt, tmp, shared)
            same = _same(our_y, off_y)
            failed |= not same
            lines += [f"(a) {args.series_a} series x length {args.len_a}, pred {args.pred}, greedy:",
                      f"    official predict_batch  {off['seconds']:8.2f} s   peak {off['peak_bytes'] / MiB:8.1f} MiB",
                      f"    ours forecast_series    {ours['seconds']:8.2f} s   peak {ours['peak_bytes'] / MiB:8.1f} MiB",
                      f"    speed-up {off['seconds'] / ours['seconds']:.1f}x; same forecasts: {'yes' if same else 'NO'}"]
        if "b" in parts:
            bat, bat_y = run_worker("b", "ours-batched", ckpt, tmp, shared)
            one, one_y = run_worker("b", "ours-single", ckpt, tmp, shared)
            pre, _ = run_worker("b", "ours-prefill", ckpt, tmp, shared)
            off, off_y = run_worker("b", "official", ckpt, tmp, shared)
            same1, same2 = _same(bat_y, one_y), _same(off_y, bat_y)
            failed |= not (same1 and same2)
            rate = lambda r: r["series"] / r["seconds"]  # noqa: E731
            lines += [f"(b) {args.series_b} series, lengths 64..480, pred {args.pred}, greedy "
                      f"(max_batch {args.max_batch}):",
                      f"    ours batched            {rate(bat):8.2f} series/s   peak {bat['peak_bytes'] / MiB:8.1f} MiB",
                      f"    ours one-by-one         {rate(one):8.2f} series/s   peak {one['peak_bytes'] / MiB:8.1f} MiB",
                      f"    official one-by-one     {rate(off):8.2f} series/s   peak {off['peak_bytes'] / MiB:8.1f} MiB"
                      f"   (timed on the first {off['series']} series)",
                      f"    batched vs ours one-by-one {rate(bat) / rate(one):.1f}x, vs official one-by-one "
                      f"{rate(bat) / rate(off):.1f}x; same forecasts: batched = one-by-one {'yes' if same1 else 'NO'}, "
                      f"official = ours {'yes' if same2 else 'NO'}",
                      f"    goal >= {BATCH_GOAL:.0f}x over one-by-one: {'met' if rate(bat) / rate(one) >= BATCH_GOAL else 'short'}",
                      *batch_bound(one["seconds"], pre["seconds"], bat["seconds"], args.series_b, args.max_batch)]
    print()
    print("\n".join(lines))
    print("peak = growth of resident memory (CPU) or of allocated CUDA memory during the timed part, weights excluded")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
