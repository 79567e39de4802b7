"""Write the tiny `kronos-demo` checkpoint that ships in the wheel.

    .venv/bin/python scripts/make_demo_checkpoint.py          # (re)write the files
    .venv/bin/python scripts/make_demo_checkpoint.py --check  # exit 1 if they are stale

The demo lets `kronos-registry predict kronos-demo ...` run on a fresh machine with no
network. Its weights are RANDOM (a fixed seed, no training): its forecasts mean nothing.
It is built with our own classes, so its files have exactly the layout the hub serves
(`config.json` + `model.safetensors`), and it goes through the same checks as any entry.

Run it again after changing the architecture's parameter layout, then update the
`params:` of the two demo entries in kronos_registry/models.yaml (the script prints them).
"""

from __future__ import annotations

import argparse
import filecmp
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # runnable from a plain checkout, installed or not

from kronos_registry.kronos import Kronos, KronosTokenizer, count_parameters  # noqa: E402

DEMO_DIR = ROOT / "kronos_registry" / "data" / "demo"
SEED = 20240601

# 10 + 10 bits like the published tokenizers, so the demo exercises the real code paths
# (hierarchical tokens, group_size 4); every other size is as small as it gets.
TOKENIZER_CONFIG = dict(
    d_in=6, d_model=32, n_heads=4, ff_dim=64, n_enc_layers=2, n_dec_layers=2,
    ffn_dropout_p=0.0, attn_dropout_p=0.0, resid_dropout_p=0.0,
    s1_bits=10, s2_bits=10, beta=0.05, gamma0=1.0, gamma=1.1, zeta=0.05, group_size=4,
)
MODEL_CONFIG = dict(
    s1_bits=10, s2_bits=10, n_layers=2, d_model=64, n_heads=4, ff_dim=128,
    ffn_dropout_p=0.0, attn_dropout_p=0.0, resid_dropout_p=0.0, token_dropout_p=0.0, learn_te=True,
)


def build(cls, config: dict, seed: int) -> torch.nn.Module:
    # A private generator state per module: the tokenizer's bytes do not depend on the model's.
    torch.manual_seed(seed)
    return cls(**config).eval()


def write_demo(out_dir: Path) -> dict[str, int]:
    """Write tokenizer/ and model/ under ``out_dir``; return each one's parameter count."""
    tokenizer = build(KronosTokenizer, TOKENIZER_CONFIG, SEED)
    model = build(Kronos, MODEL_CONFIG, SEED + 1)
    for name, module in (("tokenizer", tokenizer), ("model", model)):
        folder = module.save_pretrained(out_dir / name)
        for path in folder.iterdir():
            path.chmod(0o644)  # safetensors writes 0600; the files ship in a wheel for everyone
    return {"tokenizer": count_parameters(tokenizer), "model": count_parameters(model)}


def same_files(a: Path, b: Path) -> bool:
    names = [f"{role}/{name}" for role in ("tokenizer", "model") for name in ("config.json", "model.safetensors")]
    return all((a / n).is_file() and (b / n).is_file() and filecmp.cmp(a / n, b / n, shallow=False) for n in names)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare with the files in the package")
    parser.add_argument("--out", type=Path, default=DEMO_DIR, help=f"folder to write (default {DEMO_DIR})")
    args = parser.parse_args(argv)

    if args.check:
        with tempfile.TemporaryDirectory() as tmp:
            write_demo(Path(tmp))
            if not same_files(Path(tmp), args.out):
                print(f"{args.out} is stale: run scripts/make_demo_checkpoint.py", file=sys.stderr)
                return 1
        print(f"{args.out} is up to date")
        return 0

    counts = write_demo(args.out)
    total = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"wrote {args.out} ({total / 1e6:.2f} MB)")
    print(f"  kronos-demo-tokenizer params: {counts['tokenizer']}")
    print(f"  kronos-demo           params: {counts['model']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
