"""The Python API: load a Kronos predictor by name, verified, online or offline.

    from kronos_registry import forecast, load_predictor
    result = forecast("kronos-small", "btc_5min.csv", pred_len=24, seed=1)   # as `predict -n 24 --seed 1`
    predictor = load_predictor("kronos-small")          # the official-compatible predictor
    frame = predictor.predict(df, x_ts, y_ts, pred_len=24)

``Registry`` is for programs that manage the store themselves; ``PredictorCache`` serves
applications that switch models at run time (one load per entry and device, thread-safe).
This is a face: it only parses arguments and calls the services below (docs/ARCHITECTURE.md).
"""

from __future__ import annotations

import os

import pandas as pd

from kronos_registry.services.many import forecast_frame
from kronos_registry.services.model_cache import ModelManager
from kronos_registry.services.registry import (
    PACKAGED_REGISTRY,
    Registry,
    load_module,
    normalise_device,
    repair_hint,
)


def evaluate(models, data, *, horizon: int, by: str | None = None, origins: int | None = None,
             every: int | None = None, lookback: int | None = None, samples: int = 1,
             quantiles=None, seed: int = 0, temperature: float = 1.0, top_p: float = 0.9, top_k: int = 0,
             baselines: str | list[str] | None = None, metrics: str | list[str] | None = None,
             columns: str | list[str] | None = None, allow_overlap: bool = False, keep: bool = True,
             device: str | None = None, registry: str | os.PathLike | Registry | None = None,
             store: str | os.PathLike | None = None, offline: bool | None = None, max_batch: int = 16):
    """Backtest registry models on candles against baselines; returns the report as a DataFrame.

    ``models``: a model name or a list of them. ``data``: a candle CSV path (one series), or with
    ``by`` a long CSV/Parquet table, or a DataFrame of either shape. Each of ``origins`` (default
    20, ``horizon`` bars apart over each series' tail) or every ``every`` bars back from the end is
    an origin: the model sees the ``lookback`` bars before it and is scored on the next
    ``horizon``, beside ``baselines`` ("naive", "drift", "seasonal:N", "random-walk") on the same
    windows. The frame has one row per model x column x metric x step (``step`` "all" is overall),
    plus a ``skill_mase`` row per model (its paired difference to the best baseline, a 95%
    interval, ``verdict``). ``frame.attrs`` holds ``runs`` (the stored records), ``verdicts``
    (sentences) and ``notes``. Same meaning as `kronos-registry eval` (see the README).
    """
    from kronos_registry.services.evaluation.data import frame_data, read_data
    from kronos_registry.services.evaluation.job import EvalSettings, run_evaluation
    from kronos_registry.services.evaluation.render import verdicts
    from kronos_registry.services.forecast import DEFAULT_QUANTILES
    from kronos_registry.services.registry import load_model

    names = [models] if isinstance(models, str) else list(models)
    reg = registry if isinstance(registry, Registry) else Registry(registry, store, offline=offline)
    joined = lambda value: value if value is None or isinstance(value, str) else ",".join(value)  # noqa: E731
    settings = EvalSettings(horizon=horizon, origins=origins, every=every, lookback=lookback, samples=samples,
                            quantiles=tuple(DEFAULT_QUANTILES if quantiles is None else quantiles), seed=seed,
                            temperature=temperature, top_p=top_p, top_k=top_k, baselines=joined(baselines),
                            metrics=joined(metrics), columns=joined(columns), allow_overlap=allow_overlap,
                            max_batch=max_batch)
    for name in names:
        reg.model_entry(name)  # an unknown name fails before the data is read
    found = frame_data(data, by) if isinstance(data, pd.DataFrame) else read_data(data, by)
    result = run_evaluation(reg, names, found, settings, load=lambda name: load_model(reg, name, device), keep=keep)
    report = result.report.copy()
    report.attrs.update(runs=list(result.records), verdicts=verdicts(result), notes=list(result.notes))
    return report


def forecast(name_or_predictor, candles, *, pred_len: int, lookback: int | None = None, samples: int = 1,
             seed: int | None = None, T: float = 1.0, top_k: int = 0, top_p: float = 0.9, quantiles=None,
             future_timestamps=None, device: str | None = None, registry: Registry | None = None):
    """Forecast one series exactly as ``kronos-registry predict`` does; returns a ``ForecastResult``.

    ``candles``: a CSV path, a ``Candles`` (``read_candles``) or a DataFrame with a timestamp
    column. The lookback is the CLI's (what fits the context with the forecast, unless
    ``lookback`` is given), the future timestamps continue the history (or are
    ``future_timestamps``), and the same seed gives the CLI's numbers. ``result.forecast`` is the
    mean frame, ``result.samples`` every path (samples > 1), ``result.quantile_frames()`` the
    ``quantiles`` (default 0.1, 0.5, 0.9), ``result.to_json()`` the body `serve` returns.
    """
    from kronos_registry.candles import Candles, read_candles, validate_frame
    from kronos_registry.services.forecast import DEFAULT_QUANTILES, ForecastParams, forecast_job, prepare_forecast
    from kronos_registry.services.registry import load_model

    params = ForecastParams(pred_len=pred_len, samples=samples, seed=seed, temperature=T, top_p=top_p, top_k=top_k,
                            lookback=lookback, quantiles=DEFAULT_QUANTILES if quantiles is None else quantiles,
                            future_timestamps=future_timestamps)
    params.check()
    if isinstance(candles, pd.DataFrame):
        candles = validate_frame(candles, source="DataFrame")
    elif not isinstance(candles, Candles):
        candles = read_candles(candles)
    if isinstance(name_or_predictor, str):
        reg, name = registry or Registry(), name_or_predictor
        predictor, artifact = load_model(reg, name, device), reg.status(name)
    else:
        predictor, name, artifact = name_or_predictor, "predictor", None
    job = prepare_forecast(candles, pred_len=pred_len, context=int(predictor.max_context), lookback=lookback,
                           future_timestamps=future_timestamps)
    return forecast_job(predictor, job, params, model=name, artifact=artifact)


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


__all__ = ["PACKAGED_REGISTRY", "PredictorCache", "Registry", "evaluate", "forecast", "forecast_frame", "load_module",
           "load_predictor",
           "normalise_device", "repair_hint"]
