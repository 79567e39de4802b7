"""kronos-registry: load and serve Kronos candlestick models, verified, online or offline.

    from kronos_registry import load_predictor
    predictor = load_predictor("kronos-small")
"""

from __future__ import annotations

import importlib

from kronos_registry.kronos.locate import HubRequest, set_hub_resolver

__version__ = "0.1.0"

# Imported on first use: `import kronos_registry` stays cheap (no torch) for the CLI's help.
_LAZY = {
    "KronosTokenizer": "kronos_registry.kronos.tokenizer",
    "Kronos": "kronos_registry.kronos.model",
    "KronosPredictor": "kronos_registry.kronos.predictor",
    "load_predictor": "kronos_registry.api",
    "forecast": "kronos_registry.api",
    "evaluate": "kronos_registry.api",
    "Registry": "kronos_registry.api",
    "PredictorCache": "kronos_registry.api",
    "forecast_frame": "kronos_registry.services.many",
    "forecast_series": "kronos_registry.kronos.batch",
    "SeriesRequest": "kronos_registry.kronos.batch",
    "SeriesForecast": "kronos_registry.kronos.batch",
    "series_seed": "kronos_registry.kronos.batch",
    "finetune": "kronos_registry.services.training.finetune",
}

__all__ = [*_LAZY, "__version__"]


def _registry_hub_resolver(request: HubRequest):
    """Hub ids given to ``from_pretrained`` take the registry's way (services/pretrained.py)."""
    from kronos_registry.services.pretrained import pretrained_folder

    return pretrained_folder(request)


# The model code cannot reach the registry itself (docs/ARCHITECTURE.md); the package root,
# imported before any of its modules, plugs the registry in. Nothing of it loads until used.
set_hub_resolver(_registry_hub_resolver)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'kronos_registry' has no attribute {name!r}")
