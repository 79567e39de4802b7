"""The one model cache: resident predictors for every face that keeps models loaded.

A :class:`ModelManager` keeps loaded predictors by (entry name, device, context), bounded by
count and by bytes,
and unloads the least recently used first; one idle past its keep-alive is unloaded too.
Each entry is loaded once however many requests ask at the same time: the first starts the
load, the others wait for it and share its result, or its error. A failed load is not
remembered, so the next request tries again (a `sync` in between may have fixed it).

A predictor in use when it is unloaded stays alive for that use (Python holds it until the
forecast ends), so an unload never breaks a running request; it only stops new ones from
finding it.

The HTTP and MCP servers use it with keep-alive and byte bounds; the Python API's
``PredictorCache`` is a thin adapter over it (no keep-alive, a count bound).
"""

from __future__ import annotations

import threading
import time
from collections import Counter, OrderedDict
from concurrent.futures import Future
from datetime import datetime, timezone
from typing import Callable

import attrs


@attrs.define(eq=False)
class LoadedModel:
    """One resident predictor and its bookkeeping (times are epoch seconds)."""

    name: str
    artifact: str | None
    device: str
    bytes: int
    predictor: object
    loaded_at: float
    last_used: float
    load_seconds: float
    keep_alive: float | None = None
    max_context: int | None = None    # None: the entry's own context length
    device_asked: str | None = None   # the device the caller named (None: the manager's)

    @property
    def key(self) -> tuple:
        """What the manager keys it by: (name, device asked, max_context)."""
        return (self.name, self.device_asked, self.max_context)

    @property
    def expires_at(self) -> float | None:
        return None if self.keep_alive is None else self.last_used + self.keep_alive

    def info(self) -> dict:
        """JSON-able, as `GET /v1/loaded` shows it (Ollama's `ps`)."""
        return {"name": self.name, "artifact": self.artifact, "device": self.device, "bytes": self.bytes,
                "loaded_at": _iso(self.loaded_at), "last_used": _iso(self.last_used),
                "expires_at": _iso(self.expires_at), "load_seconds": round(self.load_seconds, 3)}


def _iso(epoch: float | None) -> str | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="seconds")


def predictor_bytes(predictor) -> int:
    """Bytes of the model's and tokenizer's parameters and buffers (what a load costs)."""
    total = 0
    for module in (predictor.model, predictor.tokenizer):
        for tensor in [*module.parameters(), *module.buffers()]:
            total += tensor.numel() * tensor.element_size()
    return total


class ModelManager:
    """Loaded predictors by name: at most ``max_models`` and ``max_bytes`` (None: no byte
    bound), each unloaded ``keep_alive`` seconds after its last use (None: never)."""

    def __init__(self, registry, *, max_models: int = 2, max_bytes: int | None = None,
                 keep_alive: float | None = 300.0, device: str | None = None,
                 clock: Callable[[], float] = time.time):
        if max_models < 1:
            raise ValueError(f"max_models must be at least 1, got {max_models}")
        if max_bytes is not None and max_bytes < 1:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        if keep_alive is not None and keep_alive < 0:
            raise ValueError(f"keep_alive must be 0 or more seconds, got {keep_alive}")
        self.registry = registry
        self.max_models = max_models
        self.max_bytes = max_bytes
        self.keep_alive = keep_alive
        self.device = device
        self.loads: Counter = Counter()           # by entry name
        self.loads_by_key: Counter = Counter()    # by (name, device asked, max_context)
        self.unloads: Counter = Counter()
        self._clock = clock
        self._models: OrderedDict[tuple, LoadedModel] = OrderedDict()   # least recently used first
        self._loading: dict[tuple, Future] = {}
        self._lock = threading.Lock()
        self._listeners: list[Callable[[str, LoadedModel], None]] = []
        self._stop = threading.Event()
        self._reaper: threading.Thread | None = None

    # ------------------------------------------------------------------ use

    def get(self, name: str, *, device: str | None = None, max_context: int | None = None) -> LoadedModel:
        """The loaded model ``name``, loading it first if needed (see the module doc).

        ``device`` (else the manager's) and ``max_context`` (else the entry's) are part of the
        key: the same entry on two devices is two resident models.
        """
        key = (name, device, max_context)
        with self._lock:
            model = self._models.get(key)
            if model is not None:
                self._touch(model)
                return model
            pending = self._loading.get(key)
            owner = pending is None
            if owner:
                pending = self._loading[key] = Future()
        if not owner:
            return self._touched(pending.result())   # raises the load's error, if it failed
        try:
            model = self._load(name, device, max_context)
        except BaseException as error:
            with self._lock:
                del self._loading[key]
            pending.set_exception(error)
            raise
        with self._lock:
            del self._loading[key]
            self._models[key] = model
            evicted = self._evict(keep=key)
        pending.set_result(model)
        self._emit("load", model)
        for old in evicted:
            self._emit("unload", old)
        return model

    def unload(self, name: str) -> bool:
        """Unload ``name`` (on every device); False when it was not loaded."""
        with self._lock:
            models = [self._models.pop(key) for key in [k for k in self._models if k[0] == name]]
            self.unloads[name] += len(models)
        for model in models:
            self._emit("unload", model)
        return bool(models)

    def loaded(self) -> list[LoadedModel]:
        """Loaded models, most recently used first."""
        with self._lock:
            return list(reversed(self._models.values()))

    def is_loaded(self, name: str) -> bool:
        with self._lock:
            return any(key[0] == name for key in self._models)

    def loaded_bytes(self) -> int:
        with self._lock:
            return sum(m.bytes for m in self._models.values())

    def add_listener(self, listener: Callable[[str, LoadedModel], None]) -> None:
        """``listener(event, model)`` after each "load" and "unload" (metrics, logs)."""
        self._listeners.append(listener)

    # ------------------------------------------------------------------ keep-alive

    def expire(self) -> list[str]:
        """Unload every model idle past its keep-alive; -> their names."""
        now = self._clock()
        with self._lock:
            lapsed = [m for m in self._models.values() if m.expires_at is not None and m.expires_at <= now]
            for model in lapsed:
                del self._models[model.key]
                self.unloads[model.name] += 1
        for model in lapsed:
            self._emit("unload", model)
        return [m.name for m in lapsed]

    def start(self, interval: float | None = None) -> None:
        """Expire models in a background thread (every ``interval`` s: a tenth of the keep-alive,
        within 0.1..5 s)."""
        if self.keep_alive is None or self._reaper is not None:
            return
        every = interval if interval is not None else min(5.0, max(0.1, self.keep_alive / 10))

        def run():
            while not self._stop.wait(every):
                self.expire()

        self._reaper = threading.Thread(target=run, name="kronos-keep-alive", daemon=True)
        self._reaper.start()

    def close(self) -> None:
        self._stop.set()
        if self._reaper is not None:
            self._reaper.join(timeout=5)
            self._reaper = None

    # ------------------------------------------------------------------ inside

    def _load(self, name: str, device: str | None, max_context: int | None) -> LoadedModel:
        started = time.perf_counter()
        options = {} if max_context is None else {"max_context": max_context}
        predictor = self.registry.load_predictor(name, device=device or self.device, **options)
        seconds = time.perf_counter() - started
        now = self._clock()
        self.loads[name] += 1
        self.loads_by_key[(name, device, max_context)] += 1
        return LoadedModel(name=name, artifact=self.registry.status(name), device=str(predictor.device),
                           bytes=predictor_bytes(predictor), predictor=predictor, loaded_at=now, last_used=now,
                           load_seconds=seconds, keep_alive=self.keep_alive, max_context=max_context,
                           device_asked=device)

    def _touch(self, model: LoadedModel) -> None:
        """Mark used now (caller holds the lock)."""
        model.last_used = self._clock()
        if model.key in self._models:
            self._models.move_to_end(model.key)

    def _touched(self, model: LoadedModel) -> LoadedModel:
        with self._lock:
            self._touch(model)
        return model

    def _evict(self, *, keep: tuple) -> list[LoadedModel]:
        """Unload least recently used models (never ``keep``) until within both bounds."""
        evicted = []
        while len(self._models) > 1 and (len(self._models) > self.max_models or self._over_bytes()):
            victim = next(n for n in self._models if n != keep)
            evicted.append(self._models.pop(victim))
            self.unloads[victim[0]] += 1
        return evicted

    def _over_bytes(self) -> bool:
        return self.max_bytes is not None and sum(m.bytes for m in self._models.values()) > self.max_bytes

    def _emit(self, event: str, model: LoadedModel) -> None:
        for listener in self._listeners:
            listener(event, model)


__all__ = ["ModelManager", "LoadedModel", "predictor_bytes"]
