"""Time from call to ready predictor: `load_predictor` on a synced Kronos-base sized entry
versus the official `from_pretrained` of the same files, measured in one run.

    .venv/bin/python benchmarks/bench_load.py [--repeats 5] [--size base|small|mini]

Needs the official package (`pip install --no-deps kronos-model-arch==0.1.0` plus einops);
the weights are random (seeded) and written once to a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from kronos_registry import load_predictor
from kronos_registry.kronos import Kronos, KronosTokenizer

TOKENIZER_BASE = dict(d_in=6, d_model=256, n_heads=4, ff_dim=512, n_enc_layers=4, n_dec_layers=4,
                      ffn_dropout_p=0.0, attn_dropout_p=0.0, resid_dropout_p=0.0, s1_bits=10, s2_bits=10,
                      beta=0.05, gamma0=1.0, gamma=1.1, zeta=0.05, group_size=4)
MODELS = {
    "mini": dict(n_layers=4, d_model=256, n_heads=4, ff_dim=512, ffn_dropout_p=0.2, attn_dropout_p=0.0,
                 resid_dropout_p=0.2, token_dropout_p=0.0),
    "small": dict(n_layers=8, d_model=512, n_heads=8, ff_dim=1024, ffn_dropout_p=0.25, attn_dropout_p=0.1,
                  resid_dropout_p=0.25, token_dropout_p=0.1),
    "base": dict(n_layers=12, d_model=832, n_heads=16, ff_dim=2048, ffn_dropout_p=0.2, attn_dropout_p=0.0,
                 resid_dropout_p=0.2, token_dropout_p=0.0),
}


def write_checkpoints(root: Path, size: str) -> tuple[Path, Path]:
    torch.manual_seed(0)
    tokenizer_dir, model_dir = root / "tokenizer", root / "model"
    KronosTokenizer(**TOKENIZER_BASE).save_pretrained(tokenizer_dir)
    Kronos(s1_bits=10, s2_bits=10, learn_te=True, **MODELS[size]).save_pretrained(model_dir)
    return tokenizer_dir, model_dir


def write_registry(root: Path, tokenizer_dir: Path, model_dir: Path) -> Path:
    config = json.loads((model_dir / "config.json").read_text())
    path = root / "models.yaml"
    path.write_text(
        "schema: 1\n"
        "tokenizers:\n"
        f"  bench-tokenizer:\n    source: {tokenizer_dir}\n"
        "models:\n"
        f"  bench-model:\n    source: {model_dir}\n    tokenizer: bench-tokenizer\n"
        f"    context_length: 512\n    config: {json.dumps(config)}\n"
    )
    return path


def time_call(fn) -> float:
    started = time.perf_counter()
    predictor = fn()
    elapsed = time.perf_counter() - started
    del predictor
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--size", choices=sorted(MODELS), default="base")
    args = parser.parse_args()
    try:
        import model as official
    except ImportError:
        print("the official package is missing: pip install --no-deps kronos-model-arch==0.1.0 einops")
        return 2

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        tokenizer_dir, model_dir = write_checkpoints(root, args.size)
        registry = write_registry(root, tokenizer_dir, model_dir)
        store = root / "store"
        from kronos_registry import Registry

        Registry(registry, store).sync("bench-model")  # not timed: the benchmark is about loading

        def ours():
            return load_predictor("bench-model", registry=registry, store=store, device="cpu")

        def theirs():
            model = official.Kronos.from_pretrained(str(model_dir))
            tokenizer = official.KronosTokenizer.from_pretrained(str(tokenizer_dir))
            return official.KronosPredictor(model, tokenizer, device="cpu", max_context=512)

        ours(), theirs()  # warm the page cache and imports for both
        timings = {"official from_pretrained": [], "kronos-registry load_predictor": []}
        for _ in range(args.repeats):  # alternate so drift hits both alike
            timings["official from_pretrained"].append(time_call(theirs))
            timings["kronos-registry load_predictor"].append(time_call(ours))

    print(f"Kronos-{args.size} + Tokenizer-base, random weights, {args.repeats} repeats, median seconds")
    print(f"{'loader':<34}{'median s':>10}{'min s':>10}")
    for name, values in timings.items():
        print(f"{name:<34}{statistics.median(values):>10.3f}{min(values):>10.3f}")
    theirs_s = statistics.median(timings["official from_pretrained"])
    ours_s = statistics.median(timings["kronos-registry load_predictor"])
    print(f"ratio official/ours: {theirs_s / ours_s:.2f}x (above 1 means ours is faster)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
