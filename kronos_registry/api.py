"""The Python API: load a Kronos predictor by name, verified, online or offline.

    from kronos_registry import load_predictor
    predictor = load_predictor("kronos-small")          # syncs on first use when online
    forecast = predictor.predict(df, x_ts, y_ts, pred_len=24)

``Registry`` is for programs that manage the store themselves; ``PredictorCache`` serves
applications that switch models at run time (one load per entry and device, thread-safe).
This is a face: it only parses arguments and calls the services below (docs/ARCHITECTURE.md).
"""

from __future__ import annotations

import os

from kronos_registry.services.many import forecast_frame
from kronos_registry.services.model_cache import ModelManager
from kronos_registry.services.registry import (
    PACKAGED_REGISTRY,
    Registry,
    load_module,
    normalise_device,
    repair_hint,
)


def load_predictor(name: str, *, device: str | None = None, registry: str | os.PathLike | None = None,
                   store: str | os.PathLike | None = None, offline: bool | None = None,
                   max_context: int | None = None):
    """Load the Kronos predictor registered as ``name`` (see ``Registry`` for the arguments)."""
    return Registry(registry, store, offline=offline).load_predictor(name, device=device, max_context=max_context)


class PredictorCache:
    """A bounded, thread-safe cache of predictors keyed by entry, device and context.

    Concurrent requests for the same key load it once; the others wait for that load.
    ``loads`` counts the loads per key (what a test or a metrics endpoint wants to see).
    A thin adapter over the servers' ``ModelManager`` (the one model cache), without keep-alive.
    """

    def __init__(self, registry: Registry | None = None, *, max_size: int = 3):
        if max_size < 1:
            raise ValueError("max_size must be at least 1")
        self.registry = registry or Registry()
        self.max_size = max_size
        self._manager = ModelManager(self.registry, max_models=max_size, keep_alive=None)

    @property
    def loads(self):
        return self._manager.loads_by_key

    def get(self, name: str, *, device: str | None = None, max_context: int | None = None):
        device = normalise_device(device)  # get(n) and get(n, device="cpu") on a CPU machine: one load
        return self._manager.get(name, device=device, max_context=max_context).predictor

    def __len__(self) -> int:
        return len(self._manager.loaded())


__all__ = ["PACKAGED_REGISTRY", "PredictorCache", "Registry", "forecast_frame", "load_module", "load_predictor",
           "normalise_device", "repair_hint"]
