"""KronosPredictor: candles in a DataFrame in, forecast candles in a DataFrame out.

Same constructor, methods and defaults as the official predictor, so existing code
switches by changing one import. Additions (keyword-only, off by default):

- `return_samples=True` also returns every sampled path, not only their mean;
- `seed=` or `generator=` for reproducible sampling without touching torch's global RNG;
- `device=None` picks cuda, then mps, then cpu.

Normalisation is the official one: per series and per column, (x - mean) / (std + 1e-5),
clipped to +-clip, undone on the way out (``normalise`` / ``denormalise``, the only place
either is written). ``prepare`` validates and normalises one series; the batched core
(batch.py) builds on it. Generation is KV-cached (see generate.py); a series is tokenized
and prefilled once however many samples are drawn from it.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch

from kronos_registry.candles import repair
from kronos_registry.candles.columns import PRICE_COLUMNS, QUANTITY_COLUMNS
from kronos_registry.kronos.generate import autoregressive_forecast

PRICE_COLS = list(PRICE_COLUMNS)
VOL_COL, AMT_COL = QUANTITY_COLUMNS
TIME_COLS = ["minute", "hour", "weekday", "day", "month"]
# Added to each column's std before dividing by it, as upstream does: a constant column
# (volume 0 throughout) normalises to 0 instead of NaN.
STD_EPS = 1e-5


def history_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and std of a history (L, 6): the statistics a forecast is scaled by.

    Fine-tuning (services/training) computes them from each window's history part only, so
    training sees candles scaled exactly as a forecast from that history would.
    """
    return np.mean(x, axis=0), np.std(x, axis=0)


def scale(x: np.ndarray, mean: np.ndarray, std: np.ndarray, clip: float) -> np.ndarray:
    """(x - mean) / (std + 1e-5), clipped to +-clip: the candles as the model sees them."""
    return np.clip((x - mean) / (std + STD_EPS), -clip, clip)


def normalise(x: np.ndarray, clip: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Candles (L, 6) -> (normalised and clipped candles, per-column mean, per-column std)."""
    mean, std = history_stats(x)
    return scale(x, mean, std, clip), mean, std


def denormalise(z: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Normalised candles (..., 6) -> the input's units: the inverse of ``normalise`` (unclipped)."""
    return z * (std + STD_EPS) + mean


class SlidingContextWarning(UserWarning):
    """``predict`` was given more history than fits the context with the forecast."""


class PreparedSeries(NamedTuple):
    """One series validated and normalised as the model reads it (see ``KronosPredictor.prepare``)."""

    x: np.ndarray        # (L, 6) normalised, clipped candles
    x_stamp: np.ndarray  # (L, 5) time features of the history
    y_stamp: np.ndarray  # (pred_len, 5) time features of the forecast
    mean: np.ndarray     # (6,) per column, for denormalise
    std: np.ndarray      # (6,)

    def denormalise(self, z: np.ndarray) -> np.ndarray:
        """Normalised candles (..., 6) of this series -> its units."""
        return denormalise(z, self.mean, self.std)


def default_device() -> str:
    """cuda if present, else Apple's mps, else cpu."""
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def calc_time_stamps(timestamps) -> pd.DataFrame:
    """Series or DatetimeIndex of timestamps -> (minute, hour, weekday, day, month) frame."""
    if isinstance(timestamps, pd.Series):
        t = pd.to_datetime(timestamps).dt
    else:
        t = pd.DatetimeIndex(timestamps)
    return pd.DataFrame({"minute": np.asarray(t.minute), "hour": np.asarray(t.hour),
                         "weekday": np.asarray(t.day_of_week), "day": np.asarray(t.day),
                         "month": np.asarray(t.month)})


class KronosPredictor:
    def __init__(self, model, tokenizer, device=None, max_context=512, clip=5):
        self.device = device if device is not None else default_device()
        self.tokenizer = tokenizer.to(self.device)
        self.model = model.to(self.device)
        self.max_context = max_context
        self.clip = clip
        self.price_cols = list(PRICE_COLS)
        self.vol_col = VOL_COL
        self.amt_vol = AMT_COL
        self.time_cols = list(TIME_COLS)

    # ------------------------------------------------------------------ core

    def _generator(self, seed, generator):
        if seed is not None and generator is not None:
            raise ValueError("pass either seed or generator, not both")
        if seed is not None:
            return torch.Generator(device=self.device).manual_seed(int(seed))
        return generator

    def sample(self, x, x_stamp, y_stamp, pred_len, T=1.0, top_k=0, top_p=0.9, sample_count=1,
               verbose=False, generator=None, *, progress=None) -> np.ndarray:
        """Normalised arrays (B, L, 6), (B, L, 5), (B, pred_len, 5) -> every sampled path,
        normalised, (B, sample_count, pred_len, 6) float32 (``progress``: see generate_tokens)."""
        as_t = lambda a: torch.from_numpy(np.asarray(a, dtype=np.float32)).to(self.device)  # noqa: E731
        z = autoregressive_forecast(self.tokenizer, self.model, as_t(x), as_t(x_stamp), as_t(y_stamp),
                                    self.max_context, pred_len, self.clip, T, top_k, top_p, sample_count,
                                    verbose, generator, progress=progress)
        return z.float().cpu().numpy()

    def generate(self, x, x_stamp, y_stamp, pred_len, T, top_k, top_p, sample_count, verbose, generator=None):
        """As the official method: normalised mean forecast (B, pred_len, 6)."""
        return np.mean(self.sample(x, x_stamp, y_stamp, pred_len, T, top_k, top_p, sample_count, verbose,
                                   generator), axis=1)

    # ------------------------------------------------------------------ pandas

    def prepare(self, df, x_timestamp, y_timestamp, pred_len, where="") -> PreparedSeries:
        """Validate one series and normalise it as ``predict`` does.

        ``df`` holds open, high, low, close (volume and amount are filled in as upstream does
        when absent); ``x_timestamp`` has one entry per row, ``y_timestamp`` ``pred_len``.
        ``where`` is added to error messages to name the series. Raises ValueError.
        """
        if not isinstance(df, pd.DataFrame):
            raise ValueError(f"Input{where} must be a pandas DataFrame.")
        if int(pred_len) < 1:
            raise ValueError(f"pred_len must be at least 1, got {pred_len}.")
        if int(pred_len) > self.max_context:  # only the last max_context steps are decoded
            raise ValueError(f"pred_len {pred_len} exceeds the model's context of {self.max_context} bars.")
        missing = [c for c in self.price_cols if c not in df.columns]
        if missing:
            raise ValueError(f"Price columns {self.price_cols} not found in DataFrame{where} (missing {missing}).")
        df = df.copy()
        if self.vol_col not in df.columns:
            df[self.vol_col] = 0.0
            df[self.amt_vol] = 0.0
        if self.amt_vol not in df.columns:
            df[self.amt_vol] = df[self.vol_col] * df[self.price_cols].mean(axis=1)
        cols = self.price_cols + [self.vol_col, self.amt_vol]
        if df[cols].isnull().values.any():
            raise ValueError(f"Input DataFrame{where} contains NaN values in price or volume columns.")
        x = df[cols].values.astype(np.float32)
        x_stamp = calc_time_stamps(x_timestamp).values.astype(np.float32)
        y_stamp = calc_time_stamps(y_timestamp).values.astype(np.float32)
        if len(x) == 0:
            raise ValueError(f"Input DataFrame{where} is empty.")
        if x.shape[0] != x_stamp.shape[0]:
            raise ValueError(f"Inconsistent lengths{where}: df has {x.shape[0]} rows, x_timestamp {x_stamp.shape[0]}.")
        if y_stamp.shape[0] != pred_len:
            raise ValueError(f"y_timestamp{where} has {y_stamp.shape[0]} entries; it must equal pred_len={pred_len}.")
        x, mean, std = normalise(x, self.clip)
        return PreparedSeries(x, x_stamp, y_stamp, mean, std)

    def _warn_if_sliding(self, rows: int, pred_len: int) -> None:
        """Say so when history + forecast pass the context: upstream's sliding window then
        recomputes every step (slow) and the forecast differs from the CLI's default lookback."""
        if rows + int(pred_len) > self.max_context:
            warnings.warn(f"{rows} history rows + pred_len {pred_len} exceed the model's context of "
                          f"{self.max_context}: every step past it recomputes the whole window (slow, as "
                          f"upstream). Pass the last {max(1, self.max_context - int(pred_len))} rows, or use "
                          "kronos_registry.forecast(), which chooses the lookback as the CLI does.",
                          SlidingContextWarning, stacklevel=3)

    def frame(self, z, series: PreparedSeries, index, *, valid: bool = False) -> pd.DataFrame:
        """A normalised forecast (pred_len, 6) of ``series`` -> a frame in its units, indexed by ``index``
        (with ``valid``, made valid candles: see ``candles/repair.py``)."""
        values = series.denormalise(z)
        return pd.DataFrame(repair.valid_candles(values) if valid else values,
                            columns=self.price_cols + [self.vol_col, self.amt_vol], index=index)

    def outputs(self, z, series: PreparedSeries, index, *, valid: bool = False) -> tuple[pd.DataFrame, np.ndarray]:
        """Sampled paths (S, pred_len, 6), normalised -> (their mean as a frame, every path in the units).

        ``valid`` makes each path and the mean valid candles (the registry's faces always ask;
        the official-compatible ``predict`` only when told, as upstream returns them raw).
        """
        paths = series.denormalise(z)
        mean = self.frame(np.mean(z, axis=0), series, index, valid=valid)
        return mean, repair.valid_candles(paths) if valid else paths

    def predict(self, df, x_timestamp, y_timestamp, pred_len, T=1.0, top_k=0, top_p=0.9, sample_count=1,
                verbose=True, *, return_samples=False, seed=None, generator=None, valid_candles=False):
        """Forecast `pred_len` candles after `df` (mean of `sample_count` sampled paths).

        With return_samples=True returns (mean_frame, samples) where samples is an array
        (sample_count, pred_len, 6) of every path in the input's units. With
        valid_candles=True every bar obeys low <= open, close <= high and volume, amount >= 0
        (``candles/repair.py``); off by default, as upstream.
        """
        series = self.prepare(df, x_timestamp, y_timestamp, pred_len)
        self._warn_if_sliding(series.x.shape[0], pred_len)
        z = self.sample(series.x[None], series.x_stamp[None], series.y_stamp[None], pred_len, T, top_k, top_p,
                        sample_count, verbose, self._generator(seed, generator))[0]   # (S, pred_len, 6)
        out, paths = self.outputs(z, series, y_timestamp, valid=valid_candles)
        return (out, paths) if return_samples else out

    def predict_batch(self, df_list, x_timestamp_list, y_timestamp_list, pred_len, T=1.0, top_k=0, top_p=0.9,
                      sample_count=1, verbose=True, *, return_samples=False, seed=None, generator=None):
        """Forecast several series in one batch (equal history lengths, as officially).

        Returns a list of frames, or (frames, list of (sample_count, pred_len, 6) arrays)
        with return_samples=True.
        """
        if not all(isinstance(v, (list, tuple)) for v in (df_list, x_timestamp_list, y_timestamp_list)):
            raise ValueError("df_list, x_timestamp_list, y_timestamp_list must be list or tuple types.")
        if not (len(df_list) == len(x_timestamp_list) == len(y_timestamp_list)):
            raise ValueError("df_list, x_timestamp_list, y_timestamp_list must have consistent lengths.")
        if not df_list:
            return ([], []) if return_samples else []
        prepared = [self.prepare(d, xt, yt, pred_len, where=f" at index {i}")
                    for i, (d, xt, yt) in enumerate(zip(df_list, x_timestamp_list, y_timestamp_list))]
        lens = [p.x.shape[0] for p in prepared]
        if len(set(lens)) != 1:
            raise ValueError(f"Parallel prediction requires all series to have consistent historical lengths, got: {lens}")
        self._warn_if_sliding(lens[0], pred_len)
        stack = lambda j: np.stack([p[j] for p in prepared]).astype(np.float32)  # noqa: E731
        z = self.sample(stack(0), stack(1), stack(2), pred_len, T, top_k, top_p, sample_count, verbose,
                        self._generator(seed, generator))                     # (B, S, pred_len, 6)
        frames, paths = zip(*(self.outputs(z[i], p, y_timestamp_list[i]) for i, p in enumerate(prepared)))
        return (list(frames), list(paths)) if return_samples else list(frames)


__all__ = ["KronosPredictor", "PreparedSeries", "SlidingContextWarning", "calc_time_stamps", "default_device",
           "denormalise", "history_stats", "normalise", "scale"]
