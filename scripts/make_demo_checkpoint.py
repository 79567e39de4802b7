"""Write the seeded random start of `kronos-demo`: what scripts/make_demo_model.py trains.

    .venv/bin/python scripts/make_demo_checkpoint.py --out DIR   # DIR/tokenizer, DIR/model

Built with our own classes, so its folders have exactly the layout the hub serves
(`config.json` + `model.safetensors`) and go through the same checks as any entry. The
packaged demo (kronos_registry/data/demo/) is this start after fine-tuning on real candles;
rerun scripts/make_demo_model.py, not this, to remake it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # runnable from a plain checkout, installed or not

from kronos_registry.kronos import Kronos, KronosTokenizer, count_parameters  # noqa: E402

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder to write tokenizer/ and model/ into")
    args = parser.parse_args(argv)
    counts = write_demo(args.out)
    print(f"wrote {args.out}: tokenizer {counts['tokenizer']} and model {counts['model']} parameters")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
