"""One training step, ours against the official modules: equal loss, speed, peak memory.

    .venv/bin/python benchmarks/bench_train.py                      # Kronos-small, batch 16, 100 tokens
    .venv/bin/python benchmarks/bench_train.py --seq 512 --steps 5  # the whole context
    .venv/bin/python benchmarks/bench_train.py --device cuda

A step is what fine-tuning repeats: forward, backward, gradient-norm clipping and the
optimiser. For the predictor (Kronos-small shapes, the published dropouts, train mode):
tokens (batch, seq + 1) in, the teacher-forced two-token loss (``kronos/losses.py``
``predictor_loss`` for ours; the official model called with ``use_teacher_forcing=True`` and
its ``DualHead.compute_loss``), AdamW betas (0.9, 0.95), weight decay 0.1 (ours:
``services/training/optim.py``; theirs: ``torch.optim.AdamW``, as the official scripts), clip
3.0. For the tokenizer (Tokenizer-base shapes): normalised candles in,
``(mse(s1 recon) + mse(full recon) + bsq) / 2``, clip 2.0.

Both start from the same weights (the official module's, copied into ours) and see the same
batch; the first step runs with the same random seed, so dropout draws the same masks and
the losses must agree (1e-5). Then ``--warmup`` steps, then ``--steps`` timed steps (median
wall time). Each implementation runs in a fresh subprocess, so peak memory is its own:
the resident set's growth from the first step on (gradients, optimiser moments, activations;
the weights are loaded before) on the CPU (VmHWM after minus VmRSS before,
the high-water mark reset through /proc/self/clear_refs), torch.cuda.max_memory_allocated
on a GPU. Printed: both losses, seconds per step, ours/official speed ratio, peak memory.
The official package (top-level ``model``, kronos-model-arch) must be importable.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SMALL = "kronos-small"
TOKENIZER = "kronos-tokenizer-base"


def _peak_start(device: str) -> int:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        return torch.cuda.memory_allocated()
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")
    return _status()["VmRSS"]


def _peak_stop(device: str, before: int) -> int:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - before
    return _status()["VmHWM"] - before


def _status() -> dict[str, int]:
    found = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0]) * 1024
    return found


# --------------------------------------------------------------------------- the two steps


def _batch(stage: str, args):
    import torch

    g = torch.Generator().manual_seed(1)
    if stage == "tokenizer":
        return (torch.randn(args.batch, args.seq, 6, generator=g),)
    vocab = 2 ** 10
    s1 = torch.randint(0, vocab, (args.batch, args.seq + 1), generator=g)
    s2 = torch.randint(0, vocab, (args.batch, args.seq + 1), generator=g)
    stamps = torch.stack([torch.randint(0, k, (args.batch, args.seq + 1), generator=g)
                          for k in (60, 24, 7, 32, 13)], dim=-1).float()
    return s1, s2, stamps


def _official_step(stage: str, module, optimiser, batch, clip: float):
    import torch
    import torch.nn.functional as F

    if stage == "tokenizer":
        (x,) = batch
        (coarse, full), bsq, _, _ = module(x)
        loss = (F.mse_loss(coarse, x) + F.mse_loss(full, x) + bsq) / 2
    else:
        s1, s2, stamps = batch
        s1_logits, s2_logits = module(s1[:, :-1], s2[:, :-1], stamps[:, :-1], use_teacher_forcing=True,
                                      s1_targets=s1[:, 1:])
        loss = module.head.compute_loss(s1_logits, s2_logits, s1[:, 1:], s2[:, 1:])[0]
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(module.parameters(), clip)
    optimiser.step()
    return loss.item()


def _our_step(stage: str, module, optimiser, batch, clip: float):
    import torch

    from kronos_registry.kronos.losses import predictor_loss, tokenizer_loss

    loss = tokenizer_loss(module, batch[0]).loss if stage == "tokenizer" else predictor_loss(module, *batch).loss
    optimiser.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(module.parameters(), clip)
    optimiser.step(1e-5)
    return loss.item()


def worker(stage: str, impl: str, weights: str, args) -> dict:
    import model as official
    import torch

    from kronos_registry.kronos.config import PUBLISHED_CONFIGS
    from kronos_registry.kronos.model import Kronos
    from kronos_registry.kronos.tokenizer import KronosTokenizer
    from kronos_registry.services.training.optim import AdamW

    torch.set_num_threads(args.threads)
    config = PUBLISHED_CONFIGS[TOKENIZER if stage == "tokenizer" else SMALL]
    classes = (official.KronosTokenizer, official.Kronos) if impl == "official" else (KronosTokenizer, Kronos)
    module = classes[0 if stage == "tokenizer" else 1](**config)
    module.load_state_dict(torch.load(weights, weights_only=True))
    module = module.to(args.device).train()
    batch = tuple(t.to(args.device) for t in _batch(stage, args))
    clip = 2.0 if stage == "tokenizer" else 3.0
    if impl == "official":
        optimiser = torch.optim.AdamW(module.parameters(), lr=1e-5, betas=(0.9, 0.95), weight_decay=0.1)
        step = lambda: _official_step(stage, module, optimiser, batch, clip)  # noqa: E731
    else:
        optimiser = AdamW(module.parameters(), betas=(0.9, 0.95), weight_decay=0.1)
        step = lambda: _our_step(stage, module, optimiser, batch, clip)  # noqa: E731
    before = _peak_start(args.device)     # weights and batch are in memory; gradients, moments, activations not
    torch.manual_seed(7)
    first = step()
    for _ in range(args.warmup):
        step()
    times = []
    for _ in range(args.steps):
        started = time.perf_counter()
        step()
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
    return {"loss": first, "seconds": statistics.median(times), "peak": _peak_stop(args.device, before)}


def _weights(stage: str, folder: Path) -> str:
    import model as official
    import torch

    from kronos_registry.kronos.model import PUBLISHED_CONFIGS

    torch.manual_seed(0)
    if stage == "tokenizer":
        module = official.KronosTokenizer(**PUBLISHED_CONFIGS[TOKENIZER])
        with torch.no_grad():  # spread the weights so the codes vary (the default init keeps many near 0)
            for p in module.parameters():
                if p.dim() == 2:
                    p.normal_(0, p.shape[1] ** -0.5)
    else:
        module = official.Kronos(**PUBLISHED_CONFIGS[SMALL])
    path = folder / f"{stage}.pt"
    torch.save(module.state_dict(), path)
    return str(path)


def _run_worker(stage: str, impl: str, weights: str, argv: list[str]) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, __file__, *argv, "--worker", f"{stage}:{impl}:{weights}"],
                          capture_output=True, text=True, env=env, timeout=3600)
    if done.returncode != 0:
        sys.exit(f"{impl} {stage} worker failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stage", choices=["predictor", "tokenizer", "both"], default="both")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seq", type=int, default=100, help="tokens per window (lookback 90 + horizon 10)")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=max(1, min(os.cpu_count() or 1, 16)))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args, _ = parser.parse_known_args()
    if args.worker:
        stage, impl, weights = args.worker.split(":", 2)
        print(json.dumps(worker(stage, impl, weights, args)))
        return
    argv = sys.argv[1:]
    stages = ["predictor", "tokenizer"] if args.stage == "both" else [args.stage]
    print(f"one training step, batch {args.batch} x {args.seq} tokens, {args.device}, {args.threads} threads, "
          f"median of {args.steps} after {args.warmup} warm-up steps")
    with tempfile.TemporaryDirectory() as temp:
        for stage in stages:
            weights = _weights(stage, Path(temp))
            theirs = _run_worker(stage, "official", weights, argv)
            ours = _run_worker(stage, "ours", weights, argv)
            diff = abs(ours["loss"] - theirs["loss"])
            shape = SMALL if stage == "predictor" else TOKENIZER
            print(f"\n{stage} ({shape})")
            print(f"  loss      official {theirs['loss']:.6f}  ours {ours['loss']:.6f}  |diff| {diff:.2e} "
                  f"({'equal' if diff <= 1e-5 else 'DIFFERENT'} at 1e-5)")
            print(f"  step      official {theirs['seconds'] * 1e3:.1f} ms  ours {ours['seconds'] * 1e3:.1f} ms  "
                  f"speed ratio {theirs['seconds'] / ours['seconds']:.2f}x (goal >= 1.2x)")
            print(f"  peak mem  official {theirs['peak'] / 2**20:.0f} MiB  ours {ours['peak'] / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
