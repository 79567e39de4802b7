"""Forecast metrics, defined once: each function's formula is in its docstring.

In the style of scikit-learn's ``sklearn.metrics``: one plain function per metric, arrays in,
a float out, inputs checked once on the way in (:func:`_check_same_shape`), no state. The
backtest (``backtest.py``) and the report (``scoring.py``) call these and nothing else, so a
number in a report means what its docstring here says.

Notation: ``y`` is what happened, ``ŷ`` the forecast, ``n`` the number of values averaged
over (windows x steps, or windows for one step); ``y₀`` is the last close before the origin.

Only numpy: cheap to import.
"""

from __future__ import annotations

import numpy as np

# Cross-sectional correlations of fewer series say more about the draw than about the model.
MIN_IC_SERIES = 5


def _check_same_shape(y_true, y_pred, *, names=("y_true", "y_pred")) -> tuple[np.ndarray, np.ndarray]:
    """Both as float arrays of one shape, non-empty and finite; ValueError naming the culprit."""
    a, b = np.asarray(y_true, dtype=float), np.asarray(y_pred, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"{names[0]} has shape {a.shape} but {names[1]} has shape {b.shape}")
    if a.size == 0:
        raise ValueError(f"{names[0]} is empty: nothing to score")
    for name, values in zip(names, (a, b)):
        if not np.isfinite(values).all():
            raise ValueError(f"{name} holds NaN or infinite values")
    return a, b


# --------------------------------------------------------------------------- point forecasts


def mean_absolute_error(y_true, y_pred) -> float:
    """MAE = (1/n) Σ |yᵢ - ŷᵢ|, in the units of the column."""
    y, f = _check_same_shape(y_true, y_pred)
    return float(np.mean(np.abs(y - f)))


def root_mean_squared_error(y_true, y_pred) -> float:
    """RMSE = √( (1/n) Σ (yᵢ - ŷᵢ)² ), in the units of the column; weighs large misses more than MAE."""
    y, f = _check_same_shape(y_true, y_pred)
    return float(np.sqrt(np.mean((y - f) ** 2)))


def naive_scale(history) -> np.ndarray:
    """The in-sample naive one-step MAE of each history: s = 1/(L-1) Σₜ₌₂..L |hₜ - hₜ₋₁|.

    ``history`` is (..., L) with L >= 2, oldest first; returns (...). A flat history gives 0,
    for which MASE is undefined (the scorer leaves such windows out and says so).
    """
    h = np.asarray(history, dtype=float)
    if h.shape[-1] < 2:
        raise ValueError(f"a history needs at least 2 bars for the naive scale, got {h.shape[-1]}")
    if not np.isfinite(h).all():
        raise ValueError("history holds NaN or infinite values")
    return np.mean(np.abs(np.diff(h, axis=-1)), axis=-1)


def mean_absolute_scaled_error(y_true, y_pred, scale) -> float:
    """MASE = (1/n) Σ |yᵢ - ŷᵢ| / sᵢ, sᵢ = :func:`naive_scale` of the history window i was forecast from.

    Scale-free (Hyndman and Koehler, 2006): 1 is the in-sample error of "tomorrow equals today"
    over the history, so series of any price level average together, and below 1 means smaller
    errors than that. ``scale`` broadcasts against ``y_true`` and must be positive.
    """
    y, f = _check_same_shape(y_true, y_pred)
    s = np.broadcast_to(np.asarray(scale, dtype=float), y.shape)
    if not (np.isfinite(s).all() and (s > 0).all()):
        raise ValueError("scale must be positive and finite (a flat history has no naive error to scale by)")
    return float(np.mean(np.abs(y - f) / s))


def direction_hit_rate(last, y_true, y_pred) -> float:
    """Share of right calls of the close's direction from the last close before the origin.

    With Δ = y - y₀ and Δ̂ = ŷ - y₀: hit = 1 when sign(Δ̂) = sign(Δ), 0.5 when Δ̂ = 0 (no call: a
    coin's score), 0 otherwise; the rate is the mean hit over the values whose Δ ≠ 0 (a close
    that did not move has no direction to call). 0.5 is no skill; NaN when nothing moved.
    """
    y, f = _check_same_shape(y_true, y_pred)
    y0 = np.broadcast_to(np.asarray(last, dtype=float), y.shape)
    actual, called = np.sign(y - y0), np.sign(f - y0)
    moved = actual != 0
    if not moved.any():
        return float("nan")
    hits = np.where(called == 0, 0.5, (called == actual).astype(float))
    return float(np.mean(hits[moved]))


# --------------------------------------------------------------------------- across series


def _cross_section(predicted, realised) -> tuple[np.ndarray, np.ndarray]:
    p, r = _check_same_shape(predicted, realised, names=("predicted", "realised"))
    if p.ndim != 1:
        raise ValueError(f"one cross-section is a 1-d array (one value per series), got shape {p.shape}")
    if p.size < MIN_IC_SERIES:
        raise ValueError(f"an IC needs at least {MIN_IC_SERIES} series at an origin, got {p.size}")
    return p, r


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    da, db = a - a.mean(), b - b.mean()
    denominator = np.sqrt(np.sum(da * da) * np.sum(db * db))
    return float(np.sum(da * db) / denominator) if denominator > 0 else float("nan")


def information_coefficient(predicted, realised) -> float:
    """IC: Pearson's correlation, across the series at one origin, of predicted and realised returns.

    IC = Σ (pᵢ - p̄)(rᵢ - r̄) / √( Σ (pᵢ - p̄)² Σ (rᵢ - r̄)² ), with pᵢ = ŷᵢ/y₀ᵢ - 1 and rᵢ = yᵢ/y₀ᵢ - 1
    for series i. Needs >= 5 series (:data:`MIN_IC_SERIES`); NaN when either side is constant
    (a forecast of no change ranks nothing). The report averages it over origins.
    """
    p, r = _cross_section(predicted, realised)
    return _pearson(p, r)


def _ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties sharing their mean rank."""
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values), dtype=float)
    ranks[order] = np.arange(1, len(values) + 1)
    sorted_values = values[order]
    start = 0
    for end in range(1, len(values) + 1):
        if end == len(values) or sorted_values[end] != sorted_values[start]:
            ranks[order[start:end]] = (start + 1 + end) / 2
            start = end
    return ranks


def rank_information_coefficient(predicted, realised) -> float:
    """RankIC: Spearman's correlation across series at one origin, the IC of the returns' ranks.

    RankIC = IC(rank(p), rank(r)), ties given their mean rank; insensitive to outliers and to
    any monotone transform of the forecast. Same requirements as :func:`information_coefficient`.
    """
    p, r = _cross_section(predicted, realised)
    return _pearson(_ranks(p), _ranks(r))


# --------------------------------------------------------------------------- sampled forecasts


def crps_ensemble(y_true, samples, *, average: bool = True):
    """CRPS of sampled paths, the energy-form estimator (the CRPS of the samples' empirical law).

    For one value y and m samples x₁..xₘ:  CRPS = (1/m) Σᵢ |xᵢ - y| - (1/(2m²)) Σᵢ Σⱼ |xᵢ - xⱼ|;
    averaged over values. Lower is better, in the column's units; for one sample (a point
    forecast) it is the absolute error, so point forecasts and baselines compare on it directly.
    ``samples`` is (..., m) with the leading shape of ``y_true``. The second sum is taken over
    sorted samples: Σᵢ Σⱼ |xᵢ - xⱼ| = 2 Σₖ (2k - m - 1) x₍ₖ₎. ``average=False`` returns each
    value's CRPS (an array shaped like ``y_true``) instead of their mean.
    """
    x = np.asarray(samples, dtype=float)
    y, _ = _check_same_shape(y_true, x[..., 0] if x.ndim else x, names=("y_true", "samples[..., 0]"))
    if not np.isfinite(x).all():
        raise ValueError("samples hold NaN or infinite values")
    m = x.shape[-1]
    spread_to_truth = np.mean(np.abs(x - y[..., None]), axis=-1)
    weights = 2 * np.arange(1, m + 1) - m - 1
    pairwise = 2 * np.sum(np.sort(x, axis=-1) * weights, axis=-1)
    values = spread_to_truth - pairwise / (2 * m * m)
    return float(np.mean(values)) if average else values


def pinball_loss(y_true, y_quantile, q: float) -> float:
    """Pinball (quantile) loss at level q: (1/n) Σ max(q (yᵢ - ŷᵢ), (q - 1)(yᵢ - ŷᵢ)).

    ŷ is the forecast's q-quantile (over sampled paths: numpy's linear interpolation). Lower is
    better; minimised in expectation by the true q-quantile. q must lie strictly in (0, 1).
    """
    if not 0 < q < 1:
        raise ValueError(f"q must lie strictly between 0 and 1, got {q}")
    y, f = _check_same_shape(y_true, y_quantile, names=("y_true", "y_quantile"))
    diff = y - f
    return float(np.mean(np.maximum(q * diff, (q - 1) * diff)))


def interval_coverage(y_true, lower, upper) -> float:
    """Coverage of a central interval: (1/n) Σ 1[lᵢ <= yᵢ <= uᵢ].

    The interval between the forecast's q- and (1-q)-quantiles has nominal coverage 1 - 2q;
    well-calibrated forecasts cover that share, a narrower band covers less.
    """
    y, lo = _check_same_shape(y_true, lower, names=("y_true", "lower"))
    _, hi = _check_same_shape(y_true, upper, names=("y_true", "upper"))
    if (lo > hi).any():
        raise ValueError("lower exceeds upper for some values")
    return float(np.mean((lo <= y) & (y <= hi)))


def quantile_calibration(y_true, y_quantile) -> float:
    """Share of values at or below the forecast's q-quantile: (1/n) Σ 1[yᵢ <= ŷᵢ]; q when calibrated."""
    y, f = _check_same_shape(y_true, y_quantile, names=("y_true", "y_quantile"))
    return float(np.mean(y <= f))


__all__ = ["MIN_IC_SERIES", "crps_ensemble", "direction_hit_rate", "information_coefficient", "interval_coverage",
           "mean_absolute_error", "mean_absolute_scaled_error", "naive_scale", "pinball_loss",
           "quantile_calibration", "rank_information_coefficient", "root_mean_squared_error"]
