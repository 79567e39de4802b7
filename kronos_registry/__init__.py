"""kronos-registry: load and serve Kronos candlestick models, verified, online or offline.

    from kronos_registry import load_predictor
    predictor = load_predictor("kronos-small")
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# Imported on first use: `import kronos_registry` stays cheap (no torch) for the CLI's help.
_LAZY = {
    "KronosTokenizer": "kronos_registry.kronos.model",
    "Kronos": "kronos_registry.kronos.model",
    "KronosPredictor": "kronos_registry.kronos.predictor",
    "load_predictor": "kronos_registry.api",
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


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'kronos_registry' has no attribute {name!r}")
