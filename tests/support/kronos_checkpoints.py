"""Tiny Kronos checkpoints built with our own classes: the same files the hub serves.

Shapes are small so tests stay fast, but the quantizer keeps 10+10 bits so that both
published group sizes (4 for Tokenizer-base, 5 for Tokenizer-2k) divide the code length.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

TINY_TOKENIZER = dict(
    d_in=6, d_model=16, n_heads=2, ff_dim=32, n_enc_layers=1, n_dec_layers=1,
    ffn_dropout_p=0.0, attn_dropout_p=0.0, resid_dropout_p=0.0,
    s1_bits=10, s2_bits=10, beta=0.05, gamma0=1.0, gamma=1.1, zeta=0.05, group_size=4,
)
TINY_TOKENIZER_2K = {**TINY_TOKENIZER, "group_size": 5}
TINY_MODEL = dict(
    s1_bits=10, s2_bits=10, n_layers=2, d_model=32, n_heads=2, ff_dim=64,
    ffn_dropout_p=0.0, attn_dropout_p=0.0, resid_dropout_p=0.0, token_dropout_p=0.0, learn_te=True,
)


def build(role: str, config: dict, seed: int = 0) -> torch.nn.Module:
    from kronos_registry.kronos import Kronos, KronosTokenizer

    torch.manual_seed(seed)
    cls = KronosTokenizer if role == "tokenizer" else Kronos
    return cls(**config).eval()


def write_checkpoint(folder: Path, role: str, config: dict, seed: int = 0) -> Path:
    """Write config.json + model.safetensors for a freshly initialised module; returns folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    module = build(role, config, seed)
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    state = {name: tensor.contiguous() for name, tensor in module.state_dict().items()}
    save_file(state, str(folder / "model.safetensors"))
    return folder


def param_count(role: str, config: dict) -> int:
    return sum(p.numel() for p in build(role, config).parameters())


def tokenizer_checkpoint(folder: Path, group_size: int = 4, seed: int = 0) -> Path:
    return write_checkpoint(folder, "tokenizer", {**TINY_TOKENIZER, "group_size": group_size}, seed)


def model_checkpoint(folder: Path, seed: int = 1, **overrides) -> Path:
    return write_checkpoint(folder, "model", {**TINY_MODEL, **overrides}, seed)
