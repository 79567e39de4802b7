"""The forecast service below the long-running faces (HTTP server, MCP server).

:class:`ForecastService` answers "forecast these candles with model NAME" from many threads
at once. It checks the request (limits, entry, candles, parameters) before anything waits,
loads the model through the :class:`~kronos_registry.services.model_cache.ModelManager` (once, however
many ask), then queues the series on that model's lane. A lane is one worker thread: it
takes what arrived within ``batch_window_ms`` (at most ``max_batch``) and runs it as one
batch through the batched core. A face that announces requests as they arrive
(:meth:`ForecastService.arriving`, before it parses them) lets a lane wait a little longer,
up to ``ARRIVAL_WAIT`` windows, for forecasts that are still being read: concurrent clients
then share a batch even when reading a large body takes longer than the window. Batch
invariance (see ``kronos/batch.py``) means a response never
depends on its neighbours: each equals what ``kronos-registry predict`` gives for the same
inputs and seed. The queue is bounded; when full, :class:`OverloadedError` says when to
come back.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from concurrent.futures import Future

import attrs

from kronos_registry.candles import Candles
from kronos_registry.services.catalog import entry_info, show_info
from kronos_registry.services.cost import check_cost
from kronos_registry.services.errors import CancelledForecastError, OverloadedError
from kronos_registry.services.forecast import (
    ForecastParams,
    ForecastResult,
    Timing,
    draw_seed,
    prepare_forecast,
    run_forecast,
    series_request,
)
from kronos_registry.services.limits import Limits
from kronos_registry.services.model_cache import LoadedModel, ModelManager
from registry.errors import InputDataError, NotSyncedError

# How many batch windows a lane may wait, in all, for requests that have arrived but are still
# being parsed: long enough for a burst of clients to be read, short enough to bound latency.
ARRIVAL_WAIT = 10


@attrs.define(eq=False)
class _Waiting:
    """One queued series: its request, what it needs to render, and where its answer goes."""

    model: LoadedModel
    job: object
    params: ForecastParams
    seed: int
    queued_at: float
    cancel: threading.Event = attrs.field(factory=threading.Event)  # set when its client went away
    done: Future = attrs.field(factory=Future)

    def drop_if_cancelled(self) -> bool:
        """Answer a cancelled item (its waiter returns at once); True when it was cancelled."""
        if self.cancel.is_set() and not self.done.done():
            self.done.set_exception(CancelledForecastError())
        return self.cancel.is_set()


class ForecastService:
    def __init__(self, registry, *, manager: ModelManager | None = None, max_batch: int = 8,
                 batch_window_ms: float = 10.0, limits: Limits = Limits(), allow_sync: bool = True):
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        self.registry = registry
        self.manager = manager or ModelManager(registry)
        self.max_batch = max_batch
        self.batch_window = batch_window_ms / 1000
        self.limits = limits
        self.allow_sync = allow_sync
        self.batch_sizes: Counter = Counter()   # executed batches by size (GET /metrics reads it)
        self._lanes: dict[str, _Lane] = {}
        self._lock = threading.Lock()
        self._waiting = 0
        self._arriving = 0

    # ------------------------------------------------------------------ catalogue

    def models(self) -> list[dict]:
        """Every registry entry as `list --json` gives it, plus whether it is loaded."""
        return [{**entry_info(self.registry, entry), "loaded": self.manager.is_loaded(entry.name)}
                for entry in self.registry.entries()]

    def model_info(self, name: str) -> dict:
        """What `show --json` gives for ``name``, plus whether it is loaded."""
        return {**show_info(self.registry, name), "loaded": self.manager.is_loaded(name)}

    def load(self, name: str) -> LoadedModel:
        self.registry.model_entry(name)
        return self.manager.get(name)

    def unload(self, name: str) -> bool:
        self.registry.get(name)  # an unknown name is an error, not "was not loaded"
        return self.manager.unload(name)

    # ------------------------------------------------------------------ forecasting

    @contextlib.contextmanager
    def arriving(self):
        """Announce a forecast request before parsing it (see the module doc); pass what this
        yields as ``forecast(..., arrival=)``. Leaving the block ends the announcement too."""
        arrival = _Arrival(self)
        try:
            yield arrival
        finally:
            arrival.done()

    def forecast(self, model: str, candles: Candles, params: ForecastParams, *,
                 arrival: "_Arrival | None" = None, cancel: threading.Event | None = None) -> ForecastResult:
        """Forecast ``candles`` with ``model`` (blocking; thread-safe; see the module doc).

        Setting ``cancel`` (its client went away) drops the forecast from its queue, or stops its
        batch between decoding steps once every series in it is cancelled; the call then raises
        CancelledForecastError.
        """
        try:
            return self._forecast(model, candles, params, arrival, cancel or threading.Event())
        finally:
            if arrival is not None:
                arrival.done()

    def _forecast(self, model: str, candles: Candles, params: ForecastParams, arrival,
                  cancel: threading.Event) -> ForecastResult:
        entry = self.registry.model_entry(model)
        params.check(max_pred_len=self.limits.max_pred_len, max_samples=self.limits.max_samples)
        if len(candles) > self.limits.max_rows:
            raise InputDataError(f"{candles.source}: {len(candles)} candles, over this service's limit of "
                                 f"{self.limits.max_rows}", field="candles",
                                 hint=f"send at most the last {self.limits.max_rows} bars (the model sees at "
                                      f"most {entry.context_length or 512} of them anyway)")
        job = prepare_forecast(candles, pred_len=params.pred_len, context=entry.context_length or 512,
                               lookback=params.lookback, future_timestamps=params.future_timestamps)
        check_cost(rows=len(job.used.frame), pred_len=params.pred_len, samples=params.samples,
                   quantiles=len(params.quantiles) if params.samples > 1 else 0, limit=self.limits.max_cost)
        seed = draw_seed(params.seed)
        self._reserve()
        try:
            started = time.perf_counter()
            loaded = self._loaded(model)
            load_s = time.perf_counter() - started      # ~0 when it was resident
            waiting = _Waiting(loaded, job, params, seed, time.perf_counter(), cancel)
            lane = self._lane(model)
            if arrival is not None:
                arrival.done()              # queued now: no lane need wait for it any more
            lane.put(waiting)
            forecast, samples, timing = waiting.done.result()
        finally:
            self._release()
        return ForecastResult(model=model, artifact=loaded.artifact, job=job, forecast=forecast, samples=samples,
                              seed=seed, device=loaded.device, params=params,
                              timing=Timing(timing.queue_s, load_s, timing.forecast_s))

    def close(self) -> None:
        with self._lock:
            lanes, self._lanes = list(self._lanes.values()), {}
        for lane in lanes:
            lane.close()
        self.manager.close()

    # ------------------------------------------------------------------ inside

    def _loaded(self, name: str) -> LoadedModel:
        if not self.allow_sync and not self.manager.is_loaded(name) and self.registry.status(name) is None:
            raise NotSyncedError(name, str(self.registry.store.root),
                                 reason="this service does not sync; run `kronos-registry sync " + name + "`")
        return self.manager.get(name)

    def _reserve(self) -> None:
        with self._lock:
            if self._waiting >= self.limits.max_queue:
                raise OverloadedError(self._waiting, retry_after=1)
            self._waiting += 1

    def waiting(self) -> int:
        """Forecasts queued or running now."""
        with self._lock:
            return self._waiting

    def _release(self) -> None:
        with self._lock:
            self._waiting -= 1

    def _lane(self, model: str) -> "_Lane":
        with self._lock:
            lane = self._lanes.get(model)
            if lane is None:
                lane = self._lanes[model] = _Lane(model, self)
            return lane

    def _announce(self, count: int) -> None:
        with self._lock:
            self._arriving += count

    def still_arriving(self) -> bool:
        """Whether announced requests are still being parsed (a lane may wait for them)."""
        with self._lock:
            return self._arriving > 0

    def _batch_done(self, size: int) -> None:
        with self._lock:
            self.batch_sizes[size] += 1


class _Arrival:
    """One announced request, counted until it is queued (or fails)."""

    def __init__(self, service: ForecastService):
        self._service = service
        self._open = True
        service._announce(1)

    def done(self) -> None:
        if self._open:
            self._open = False
            self._service._announce(-1)


@attrs.frozen
class _Done:
    queue_s: float
    forecast_s: float


class _Lane:
    """One model's queue and the worker thread that empties it in batches."""

    def __init__(self, model: str, service: ForecastService):
        self.model = model
        self.service = service
        self._items: list[_Waiting] = []
        self._ready = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"kronos-batch-{model}", daemon=True)
        self._thread.start()

    def put(self, item: _Waiting) -> None:
        with self._ready:
            self._items.append(item)
            self._ready.notify()

    def close(self) -> None:
        with self._ready:
            self._closed = True
            self._ready.notify()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            if batch:
                self._forecast(batch)

    def _next_batch(self) -> list[_Waiting] | None:
        service = self.service
        with self._ready:
            while not self._items and not self._closed:
                self._ready.wait()
            if self._closed:
                return None
            # Wait out the window for neighbours, unless the batch is already full; then, while
            # announced requests are still being read, a little longer (ARRIVAL_WAIT windows).
            started = time.perf_counter()
            deadline = started + service.batch_window
            latest = started + ARRIVAL_WAIT * service.batch_window
            while len(self._items) < service.max_batch and not self._closed:
                now = time.perf_counter()
                if now >= deadline and not (now < latest and service.still_arriving()):
                    break
                self._ready.wait(max(deadline - now, 0.001) if now < deadline else 0.002)
            # Abandoned requests leave the queue here, before they cost a decoding step.
            self._items = [item for item in self._items if not item.drop_if_cancelled()]
            batch, self._items = self._items[:service.max_batch], self._items[service.max_batch:]
            return batch

    def _forecast(self, batch: list[_Waiting]) -> None:
        from kronos_registry.kronos.batch import GenerationStopped, forecast_series

        started = time.perf_counter()
        by_predictor: dict[int, list[_Waiting]] = {}
        for item in batch:  # a model reloaded between requests: each runs on the copy it got
            by_predictor.setdefault(id(item.model.predictor), []).append(item)
        for items in by_predictor.values():
            predictor = items[0].model.predictor
            requests = [series_request(it.job, it.params, seed=it.seed, key=str(i)) for i, it in enumerate(items)]
            try:
                results = forecast_series(predictor, requests, max_batch=self.service.max_batch,
                                          should_stop=lambda: all(it.cancel.is_set() for it in items))
            except GenerationStopped:  # every client of this batch went away
                for item in items:
                    item.drop_if_cancelled()
                continue
            except Exception:  # noqa: BLE001 - one bad series must not fail its neighbours
                results = None
            finished = time.perf_counter()
            for i, item in enumerate(items):
                if results is None:
                    self._forecast_alone(predictor, item, started)
                    continue
                done = _Done(started - item.queued_at, finished - started)
                item.done.set_result((results[i].forecast, results[i].samples, done))
        self.service._batch_done(len(batch))

    def _forecast_alone(self, predictor, item: _Waiting, started: float) -> None:
        if item.drop_if_cancelled():
            return
        try:
            forecast, samples = run_forecast(predictor, item.job, item.params, seed=item.seed)
        except Exception as error:  # noqa: BLE001 - handed to the request that caused it
            item.done.set_exception(error)
            return
        done = _Done(started - item.queued_at, time.perf_counter() - started)
        item.done.set_result((forecast, samples, done))


__all__ = ["ForecastService", "Limits", "OverloadedError"]
