"""The Kronos family: our implementation of the architecture, its predictor and its artifact checks.

    config.py        the config schema (TokenizerConfig, KronosConfig), its one validator, PUBLISHED_CONFIGS
    layers.py        norms, rotary attention, SwiGLU, the transformer block, the BSQ quantiser
    tokenizer.py     KronosTokenizer: candles <-> hierarchical tokens
    model.py         Kronos: the decoder over those tokens; fused_weights for generation
    locate.py        where a checkpoint's files are (a folder, or a hub id via the registered resolver)
    checkpoint.py    save_pretrained / from_pretrained, CheckpointError, building without initialising
    architecture.py  what a config builds, without weights: shapes, parameter count
    generate.py      KV-cached sampling;  predictor.py  KronosPredictor (pandas in, pandas out)
    batch.py         many series at once, batch invariant
    checks*.py       the artifact checks the registry runs at sync and verify

Names are imported on first use, so ``import kronos_registry`` stays free of torch.
See docs/ARCHITECTURE.md for where this floor sits.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "Kronos": "kronos_registry.kronos.model",
    "KronosTokenizer": "kronos_registry.kronos.tokenizer",
    "KronosPredictor": "kronos_registry.kronos.predictor",
    "CheckpointError": "kronos_registry.kronos.locate",
    "set_hub_resolver": "kronos_registry.kronos.locate",
    "HubRequest": "kronos_registry.kronos.locate",
    "PUBLISHED_CONFIGS": "kronos_registry.kronos.config",
    "TokenizerConfig": "kronos_registry.kronos.config",
    "KronosConfig": "kronos_registry.kronos.config",
    "count_parameters": "kronos_registry.kronos.architecture",
    "fused_weights": "kronos_registry.kronos.model",
}

__all__ = list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'kronos_registry.kronos' has no attribute {name!r}")
