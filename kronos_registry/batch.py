"""Many series at once: the batched core every face shares (CLI, server, Python, Ray).

A :class:`SeriesRequest` is one series to forecast: its own history (any length up to the
model's context), its own ``pred_len``, sampling settings and seed. :func:`forecast_series`
forecasts a list of them in as few model passes as the shapes allow and returns one
:class:`SeriesForecast` per request, in the requests' order.

Batch invariance: a series' forecast depends only on (model, its candles, its timestamps,
pred_len, sampling settings, its seed). Every series draws from its own generator, so it
samples the same tokens whether it runs alone, in any batch, in any order; values agree up
to float rounding. A series run alone with seed S equals ``predictor.predict(..., seed=S)``.

:func:`series_seed` derives a stable per-series seed from a job seed and the series key
(``--seed S`` in the CLI), so reruns and reshuffles agree.

Pure torch/pandas: no CLI, no registry.
"""

from __future__ import annotations

import hashlib
from typing import Callable, Sequence

import attrs
import numpy as np
import pandas as pd

COLUMNS = ["open", "high", "low", "close", "volume", "amount"]


@attrs.frozen(eq=False)  # DataFrames have no single truth value, so no generated __eq__
class SeriesRequest:
    """One series to forecast.

    frame: history with columns open, high, low, close[, volume, amount] (validated, oldest
    first); timestamps: its timestamps (len == len(frame)); future: the forecast's timestamps
    (len == pred_len). Sampling settings as ``KronosPredictor.predict``. ``seed`` None draws
    from torch's global generator (not reproducible, not batch invariant).
    """

    key: str
    frame: pd.DataFrame
    timestamps: pd.Series
    future: pd.Series
    pred_len: int
    T: float = 1.0
    top_k: int = 0
    top_p: float = 0.9
    sample_count: int = 1
    seed: int | None = None


@attrs.frozen(eq=False)
class SeriesForecast:
    """The forecast of one series: the mean over samples (index = the future timestamps,
    columns open..amount, as ``predict`` gives) and, when sample_count > 1, every sampled
    path as an array (sample_count, pred_len, 6) in the input's units."""

    key: str
    forecast: pd.DataFrame
    samples: np.ndarray | None


def series_seed(seed: int, key: str) -> int:
    """A stable per-series seed from a job seed and the series key (63-bit, blake2b)."""
    h = hashlib.blake2b(f"{int(seed)}\x00{key}".encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(h, "big") & ((1 << 63) - 1)


def forecast_series(predictor, requests: Sequence[SeriesRequest], *, max_batch: int = 16,
                    progress: Callable[[int], None] | None = None) -> list[SeriesForecast]:
    """Forecast every request; results in the requests' order.

    Requests are grouped into batches of at most ``max_batch`` series (mixed history
    lengths, pred_lens and sampling settings share a batch where the result is exact).
    ``progress(n)`` is called after each batch with the number of series it finished.
    """
    requests = list(requests)
    out: list[SeriesForecast | None] = [None] * len(requests)
    for req_i, req in enumerate(requests):
        out[req_i] = _forecast_one(predictor, req)
        if progress is not None:
            progress(1)
    return out  # type: ignore[return-value]


def _forecast_one(predictor, req: SeriesRequest) -> SeriesForecast:
    """The reference: one series through ``predict``."""
    frame, samples = predictor.predict(req.frame, req.timestamps, req.future, req.pred_len, T=req.T,
                                       top_k=req.top_k, top_p=req.top_p, sample_count=req.sample_count,
                                       verbose=False, return_samples=True, seed=req.seed)
    frame.index = pd.DatetimeIndex(req.future, name="timestamps")
    return SeriesForecast(req.key, frame, samples if req.sample_count > 1 else None)


# --------------------------------------------------------------------------- long-format Python API


def forecast_frame(name_or_predictor, data, *, by: str = "symbol", pred_len: int, lookback: int | None = None,
                   T: float = 1.0, top_k: int = 0, top_p: float = 0.9, sample_count: int = 1,
                   seed: int | None = None, quantiles: Sequence[float] | None = None, max_batch: int = 16,
                   device: str | None = None, progress: Callable[[int], None] | None = None) -> pd.DataFrame:
    """Forecast many series from Python; returns one long DataFrame.

    name_or_predictor: a registry entry name (loaded with ``load_predictor``) or a
    ``KronosPredictor``. data: a long DataFrame with a key column ``by`` (one row per bar:
    timestamps, open, high, low, close[, volume, amount]), or a dict {key: DataFrame}.
    Each series is validated as a single-series DataFrame would be (an ``InputDataError``
    names the series), its lookback chosen and future timestamps continued as the CLI does.
    ``seed`` seeds each series from (seed, its key) (see :func:`series_seed`).

    Returns columns ``<by>, timestamps, open, high, low, close, volume, amount`` and, when
    sample_count > 1, ``{col}_q{q}`` quantile columns for every column and each of
    ``quantiles`` (default 0.1, 0.5, 0.9), series in first-appearance (or dict) order.
    """
    from .candles import validate_frame
    from .forecast import prepare_forecast

    if isinstance(name_or_predictor, str):
        from .api import load_predictor
        predictor = load_predictor(name_or_predictor, device=device)
    else:
        predictor = name_or_predictor
    if isinstance(data, dict):
        groups = [(str(k), v) for k, v in data.items()]
    elif isinstance(data, pd.DataFrame):
        if by not in data.columns:
            raise ValueError(f"the DataFrame has no key column {by!r} (columns: {list(data.columns)}); "
                             f"pass by= the column that names each series")
        groups = [(str(k), g.drop(columns=[by])) for k, g in data.groupby(by, sort=False)]
    else:
        raise TypeError(f"data must be a DataFrame with a {by!r} column or a dict of DataFrames, "
                        f"got {type(data).__name__}")
    context = int(getattr(predictor, "max_context", 512))
    requests = []
    for key, frame in groups:
        candles = validate_frame(frame, source=f"series {key!r}")
        job = prepare_forecast(candles, pred_len=pred_len, context=context, lookback=lookback)
        requests.append(SeriesRequest(
            key=key, frame=job.used.frame, timestamps=job.used.timestamps,
            future=pd.Series(pd.DatetimeIndex(job.future.timestamps), name="timestamps"), pred_len=pred_len,
            T=T, top_k=top_k, top_p=top_p, sample_count=sample_count,
            seed=None if seed is None else series_seed(seed, key)))
    results = forecast_series(predictor, requests, max_batch=max_batch, progress=progress)
    return long_frame(results, by=by, quantiles=quantiles)


def long_frame(results: Sequence[SeriesForecast], *, by: str = "symbol",
               quantiles: Sequence[float] | None = None) -> pd.DataFrame:
    """SeriesForecasts -> one long DataFrame (see :func:`forecast_frame` for the columns)."""
    qs = [0.1, 0.5, 0.9] if quantiles is None else [float(q) for q in quantiles]
    parts = []
    for r in results:
        part = pd.DataFrame({by: r.key, "timestamps": np.asarray(r.forecast.index)})
        for c in COLUMNS:
            part[c] = r.forecast[c].to_numpy()
        if r.samples is not None and qs:
            qv = np.quantile(r.samples, qs, axis=0)                 # (Q, pred_len, 6)
            for j, c in enumerate(COLUMNS):
                for qi, q in enumerate(qs):
                    part[f"{c}_q{q:g}"] = qv[qi, :, j]
        parts.append(part)
    if not parts:
        return pd.DataFrame(columns=[by, "timestamps", *COLUMNS])
    return pd.concat(parts, ignore_index=True)


__all__ = ["SeriesRequest", "SeriesForecast", "forecast_series", "series_seed", "forecast_frame", "long_frame"]
