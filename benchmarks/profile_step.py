"""Where one cached decode step's time goes (Kronos-small shapes, random weights, greedy).

    PYTHONPATH=. .venv/bin/python benchmarks/profile_step.py
    PYTHONPATH=. .venv/bin/python benchmarks/profile_step.py --lookback 384 --steps 64 --threads 1
    PYTHONPATH=. .venv/bin/python benchmarks/profile_step.py --compile    # the torch.compile experiment

Prints, per generated token (one cached step, batch 1):
  * wall ms of a step: (time of lookback+1+n steps - time of lookback+1 step) / n, median of runs
  * the weights-streaming floor: bytes of weights a step reads / measured memory copy bandwidth
  * operator count per step and each category's share of the operators' self CPU time
    (torch.profiler; categories by op name, the two token heads by their weight's shape)
  * Python / dispatch overhead: wall per step minus the operators' self time, unprofiled wall
    taken as the truth (the profiler itself inflates both a little)

`--compile` is a measurement, not a library path: it replaces generate.py's layer stack of
a cached step (`_cached_layers`) with `torch.compile(..., dynamic=True)` (inductor's CPU code
generation), prints the seconds the first forecast spends compiling, then the wall per step
(no profile; the compiled kernels do not fall into the categories). Run it beside a plain
run: docs/PERFORMANCE.md has the numbers and why the library does not compile.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict

import torch

from kronos_registry.kronos import PUBLISHED_CONFIGS, Kronos
from kronos_registry.kronos.generate import generate_tokens


def copy_bandwidth(nbytes: int = 256 * 2**20, reps: int = 5) -> float:
    """Bytes per second of a large tensor copy (read + write counted), best of reps."""
    a = torch.ones(nbytes // 4)      # touched: untouched pages would read as the zero page
    b = torch.zeros_like(a)
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        b.copy_(a)
        best = min(best, time.perf_counter() - t0)
    return 2 * nbytes / best


def step_bytes(model: Kronos) -> int:
    """Weights one cached step reads: every matrix but the embedding tables (two rows each)
    and the frozen time tables (one row each)."""
    skip = ("embedding.emb_s1", "embedding.emb_s2", "time_emb.")
    return sum(p.numel() * p.element_size() for n, p in model.named_parameters() if not n.startswith(skip))


def inputs(model, lookback, steps, seed=0):
    g = torch.Generator().manual_seed(seed)
    v1, v2 = 2 ** model.s1_bits, 2 ** model.s2_bits
    s1 = torch.randint(0, v1, (1, lookback), generator=g)
    s2 = torch.randint(0, v2, (1, lookback), generator=g)
    total = lookback + steps
    stamp = torch.stack([torch.arange(total) % 60, torch.arange(total) // 12 % 24, torch.zeros(total),
                         torch.ones(total), torch.ones(total)], -1)[None].float()
    return s1, s2, stamp


def run(model, lookback, pred):
    s1, s2, stamp = inputs(model, lookback, pred)
    t0 = time.perf_counter()
    generate_tokens(model, s1, s2, stamp, pred, top_k=1, top_p=1.0)
    return time.perf_counter() - t0


def step_ms(model, lookback, n, reps):
    """Median wall ms of one cached step: a long run minus a prefill-only run."""
    run(model, lookback, 4)
    per = []
    for _ in range(reps):
        short = run(model, lookback, 1)
        long = run(model, lookback, 1 + n)
        per.append((long - short) / n * 1e3)
    return statistics.median(per), min(per), max(per)


def category(ev, head_rows: int, d: int) -> str:
    name = ev.key if hasattr(ev, "key") else ev.name
    if name in ("aten::linear", "aten::addmm", "aten::mm", "aten::matmul"):
        shapes = getattr(ev, "input_shapes", None) or []
        if any(s == [head_rows, d] for s in shapes):
            return "token heads + cross k/v (three 1024 x d linears)"
        return "matmuls (layers, embedding fusion, cross q/kv/out)"
    if "attention" in name or name.startswith("aten::_scaled_dot") or "bmm" in name:
        return "attention (SDPA)"
    if name in ("aten::topk", "aten::softmax", "aten::_softmax", "aten::multinomial", "aten::masked_fill",
                "aten::div", "aten::lt", "aten::sort", "aten::cumsum", "aten::scatter", "aten::gt"):
        return "sampling"
    if name in ("aten::copy_", "aten::index", "aten::select", "aten::slice", "aten::cat", "aten::view",
                "aten::reshape", "aten::unsqueeze", "aten::transpose", "aten::as_strided", "aten::empty",
                "aten::roll", "aten::index_select", "aten::embedding", "aten::fill_", "aten::clone",
                "aten::_unsafe_view", "aten::expand", "aten::contiguous", "aten::squeeze", "aten::alias",
                "aten::empty_strided", "aten::resize_", "aten::narrow", "aten::_reshape_alias"):
        return "copies / views / indexing"
    return "elementwise + norms (rms_norm, silu, mul, add, addcmul)"


def profile(model, lookback, n):
    """Per cached step: (op count, {category: self CPU us}) from a long run minus a short one."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as prof

    def one(pred):
        s1, s2, stamp = inputs(model, lookback, pred)
        with prof(activities=[ProfilerActivity.CPU], record_shapes=True) as p:
            generate_tokens(model, s1, s2, stamp, pred, top_k=1, top_p=1.0)
        # top-level operators only (what Python calls); self time over all of them and their children
        count = sum(1 for ev in p.events() if ev.cpu_parent is None)
        cats = defaultdict(float)
        for ev in p.key_averages(group_by_input_shape=True):
            cats[category(ev, 2 ** model.s1_bits, model.d_model)] += ev.self_cpu_time_total
        return count, cats

    c_short, t_short = one(1)
    c_long, t_long = one(1 + n)
    cats = {k: (t_long[k] - t_short.get(k, 0.0)) / n for k in t_long}
    return (c_long - c_short) / n, cats


def compiled(model, args):
    """Wall per step with the cached layer stack compiled; the first forecast pays the compile."""
    import kronos_registry.kronos.generate as gen

    gen._cached_layers = torch.compile(gen._cached_layers, dynamic=True)
    t0 = time.perf_counter()
    run(model, args.lookback, 4)
    first = time.perf_counter() - t0
    again = run(model, args.lookback, 4)
    med, lo, hi = step_ms(model, args.lookback, args.steps, args.reps)
    print(f"{args.model}, lookback {args.lookback}, {args.steps} cached steps, torch threads "
          f"{torch.get_num_threads()}, torch {torch.__version__}, torch.compile(dynamic=True) of the layer stack")
    print(f"compile           {first - again:6.2f} s   (first 4-step forecast {first:.2f} s - the same again {again:.2f} s)")
    print(f"wall per step     {med:6.2f} ms  (runs {lo:.2f}..{hi:.2f})")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="kronos-small")
    ap.add_argument("--lookback", type=int, default=384)
    ap.add_argument("--steps", type=int, default=64)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: leave torch's default)")
    ap.add_argument("--compile", action="store_true", help="torch.compile the cached layer stack (experiment)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = Kronos(**PUBLISHED_CONFIGS[args.model]).eval()
    if args.compile:
        return compiled(model, args)
    bw = copy_bandwidth()
    nbytes = step_bytes(model)
    floor = nbytes / (bw / 2) * 1e3   # a step reads its weights once: bytes / read bandwidth
    med, lo, hi = step_ms(model, args.lookback, args.steps, args.reps)
    ops, cats = profile(model, args.lookback, args.steps)
    busy = sum(cats.values()) / 1e3
    print(f"{args.model}, lookback {args.lookback}, {args.steps} cached steps, torch threads "
          f"{torch.get_num_threads()}, torch {torch.__version__}")
    print(f"copy bandwidth {bw / 1e9:.1f} GB/s (read+write); weights read per step {nbytes / 2**20:.1f} MiB")
    print(f"wall per step     {med:6.2f} ms  (runs {lo:.2f}..{hi:.2f})")
    print(f"weights floor     {floor:6.2f} ms  (bytes per step / read bandwidth = copy bandwidth / 2)")
    print(f"ops per step      {ops:6.0f}      ({med * 1e3 / max(ops, 1):.1f} us wall per op)")
    print(f"ops' self time    {busy:6.2f} ms  (profiled)")
    print(f"python/dispatch   {max(med - busy, 0):6.2f} ms  (wall - ops' self time; the profiler inflates ops)")
    for k, v in sorted(cats.items(), key=lambda kv: -kv[1]):
        print(f"  {k:55s} {v / 1e3:6.2f} ms  {100 * v / 1e3 / busy:5.1f}%")


if __name__ == "__main__":
    main()
