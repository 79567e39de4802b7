"""The report: every metric of every method, per horizon step and overall, as rows.

One row per (method, column, metric, step), ``step`` 1..H or ``"all"`` (every step of every
window together). The values come from ``metrics.py`` only. Which metric applies where:

- ``mae``, ``rmse``, ``mase``: each column asked for (close by default);
- ``direction``, ``ic``, ``rank_ic``: the close (they are about its change from the last bar);
  IC and RankIC per origin across its series (at least 5), then averaged over origins;
- with samples: ``crps`` and ``pinball_q<q>`` (a point forecast counts as one sample, so
  baselines get them too), ``coverage_<1-2q>`` and ``calibration_q<q>`` (sampled methods only).

:func:`origin_losses` gives the per-origin loss the skill test pairs (``skill.py``).
"""

from __future__ import annotations

import difflib

import numpy as np

from kronos_registry.candles.columns import COLUMNS
from kronos_registry.services.evaluation import metrics as m
from kronos_registry.services.evaluation.backtest import Forecasts, Plan
from registry.errors import InputDataError

POINT_METRICS = ("mae", "rmse", "mase", "direction", "ic", "rank_ic")
SAMPLE_METRICS = ("crps", "pinball", "coverage")
METRICS = POINT_METRICS + SAMPLE_METRICS
CLOSE_ONLY = ("direction", "ic", "rank_ic")
ALL = "all"


def parse_metrics(text: str | None, *, samples: int, series: int) -> tuple[str, ...]:
    """'mae,mase' -> the metrics to compute (None: every one that applies); InputDataError naming
    an unknown one, a sample metric without samples, or IC without enough series."""
    if text is None:
        chosen = [x for x in POINT_METRICS if x not in ("ic", "rank_ic") or series >= m.MIN_IC_SERIES]
        return tuple(chosen + (list(SAMPLE_METRICS) if samples > 1 else []))
    chosen = []
    for name in (part.strip().lower().replace("-", "_") for part in text.split(",")):
        if not name:
            continue
        if name not in METRICS:
            close = difflib.get_close_matches(name, METRICS, n=1)
            guess = f"did you mean {close[0]}? " if close else ""
            raise InputDataError(f"unknown metric '{name}'", field="metrics",
                                 hint=f"{guess}choose from {', '.join(METRICS)}")
        if name in SAMPLE_METRICS and samples < 2:
            raise InputDataError(f"{name} scores a distribution of sampled paths", field="metrics",
                                 hint="add --samples N (N > 1), or leave it out")
        if name in ("ic", "rank_ic") and series < m.MIN_IC_SERIES:
            raise InputDataError(f"{name} correlates forecasts across series at each origin: it needs at least "
                                 f"{m.MIN_IC_SERIES} series, the data has {series}", field="metrics",
                                 hint="give a long table with --by COLUMN and 5 or more series, or leave it out")
        chosen.append(name)
    if not chosen:
        raise InputDataError("--metrics is empty", field="metrics", hint=f"name one or more of {', '.join(METRICS)}")
    return tuple(dict.fromkeys(chosen))


def parse_columns(text: str | None) -> tuple[str, ...]:
    if text is None:
        return ("close",)
    chosen = [c.strip().lower() for c in text.split(",") if c.strip()]
    for c in chosen:
        if c not in COLUMNS:
            close = difflib.get_close_matches(c, COLUMNS, n=1)
            guess = f"did you mean {close[0]}? " if close else ""
            raise InputDataError(f"unknown column '{c}'", field="columns",
                                 hint=f"{guess}choose from {', '.join(COLUMNS)}")
    return tuple(dict.fromkeys(chosen or ["close"]))


def central_intervals(quantiles) -> list[tuple[float, float]]:
    """Pairs (q, 1 - q), q < 0.5, both among ``quantiles``: the central intervals to cover."""
    qs = {round(float(q), 10) for q in quantiles}
    return sorted((q, round(1 - q, 10)) for q in qs if q < 0.5 and round(1 - q, 10) in qs)


class _Column:
    """One column of one method over the plan's windows: truth, forecast, last value, scale."""

    def __init__(self, plan: Plan, f: Forecasts, column: str):
        j = COLUMNS.index(column)
        histories = np.stack([plan.history(w)[:, j] for w in plan.windows])      # (W, L)
        self.truth = np.stack([plan.truth(w)[:, j] for w in plan.windows])       # (W, H)
        self.point = f.point[:, :, j]
        self.last = histories[:, -1]
        self.scale = m.naive_scale(histories)
        # (W, H, S): the paths; a point forecast is one sample
        self.paths = f.samples[:, :, :, j].transpose(0, 2, 1) if f.samples is not None else self.point[..., None]
        self.sampled = f.samples is not None


def score(plan: Plan, forecasts: list[Forecasts], *, metrics, columns, quantiles, notes: list[str]) -> list[dict]:
    """Every applicable metric of every method (see the module doc) -> report rows."""
    rows: list[dict] = []
    flat_noted = set()
    for f in forecasts:
        for column in columns:
            data = _Column(plan, f, column)
            flat = int((data.scale == 0).sum())
            if flat and column not in flat_noted:
                flat_noted.add(column)
                notes.append(f"note: {flat} of {len(plan.windows)} windows have a flat {column} history: MASE "
                             "leaves them out (no naive error to scale by)")
            for metric, step, value, count in _column_metrics(plan, data, column, metrics, quantiles):
                rows.append({"model": f.name, "role": f.role, "column": column, "metric": metric, "step": step,
                             "value": value, "windows": count})
    return rows


def _steps(horizon: int):
    yield ALL, slice(None)
    for h in range(horizon):
        yield h + 1, slice(h, h + 1)


def _column_metrics(plan: Plan, d: _Column, column: str, metrics, quantiles):
    W = len(plan.windows)
    scaled = d.scale > 0
    for step, part in _steps(plan.horizon):
        y, f = d.truth[:, part], d.point[:, part]
        if "mae" in metrics:
            yield "mae", step, m.mean_absolute_error(y, f), W
        if "rmse" in metrics:
            yield "rmse", step, m.root_mean_squared_error(y, f), W
        if "mase" in metrics and scaled.any():
            yield "mase", step, m.mean_absolute_scaled_error(y[scaled], f[scaled], d.scale[scaled][:, None]), \
                int(scaled.sum())
        if column == "close" and "direction" in metrics:
            yield "direction", step, m.direction_hit_rate(d.last[:, None], y, f), W
        if column == "close":
            for name, fn in (("ic", m.information_coefficient), ("rank_ic", m.rank_information_coefficient)):
                if name in metrics:
                    value, origins = _mean_ic(plan, d, part, fn)
                    if origins:
                        yield name, step, value, origins
        if "crps" in metrics:
            yield "crps", step, m.crps_ensemble(y, d.paths[:, part]), W
        qs = np.quantile(d.paths[:, part], list(quantiles), axis=-1) if quantiles else []
        level = {round(float(q), 10): qs[i] for i, q in enumerate(quantiles)}
        if "pinball" in metrics:
            for q in quantiles:
                yield f"pinball_q{q:g}", step, m.pinball_loss(y, level[round(float(q), 10)], float(q)), W
        if "coverage" in metrics and d.sampled:
            for lo, hi in central_intervals(quantiles):
                yield f"coverage_{1 - 2 * lo:g}", step, m.interval_coverage(y, level[lo], level[hi]), W
            for q in quantiles:
                yield f"calibration_q{q:g}", step, m.quantile_calibration(y, level[round(float(q), 10)]), W


def _mean_ic(plan: Plan, d: _Column, part: slice, fn) -> tuple[float, int]:
    """Mean over origins (with >= 5 series) and the steps in ``part`` of the cross-sectional IC."""
    by_origin: dict[str, list[int]] = {}
    for i, w in enumerate(plan.windows):
        by_origin.setdefault(w.made_at, []).append(i)
    values, origins = [], 0
    for rows in by_origin.values():
        if len(rows) < m.MIN_IC_SERIES:
            continue
        origins += 1
        last = d.last[rows][:, None]
        predicted, realised = d.point[rows][:, part] / last - 1, d.truth[rows][:, part] / last - 1
        values += [fn(predicted[:, h], realised[:, h]) for h in range(predicted.shape[1])]
    finite = [v for v in values if np.isfinite(v)]
    return (float(np.mean(finite)) if finite else float("nan")), origins


def origin_losses(plan: Plan, f: Forecasts, *, loss: str = "mase", column: str = "close") -> np.ndarray:
    """The mean scaled loss of each origin (``plan.origins()`` order), over its series and steps.

    ``mase``: |y - ŷ| / s; ``crps``: CRPS / s (s the window's naive scale), so series of any price
    level weigh alike. Windows with a flat history (s = 0) are left out; an origin with none
    left is NaN.
    """
    d = _Column(plan, f, column)
    if loss == "mase":
        per_value = np.abs(d.truth - d.point)
    else:
        per_value = m.crps_ensemble(d.truth, d.paths, average=False)
    per_window = np.where(d.scale > 0, per_value.mean(axis=1) / np.where(d.scale > 0, d.scale, 1), np.nan)
    index = {origin: i for i, origin in enumerate(plan.origins())}
    sums, counts = np.zeros(len(index)), np.zeros(len(index))
    for i, w in enumerate(plan.windows):
        if np.isfinite(per_window[i]):
            sums[index[w.made_at]] += per_window[i]
            counts[index[w.made_at]] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


__all__ = ["ALL", "METRICS", "central_intervals", "origin_losses", "parse_columns", "parse_metrics", "score"]
