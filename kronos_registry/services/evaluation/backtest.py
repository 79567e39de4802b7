"""Rolling-origin backtests: which windows to forecast, and every method's forecasts on them.

A *window* of a series is an origin ``o`` (the position of its first forecast bar), the
``lookback`` bars before it (positions ``o - L .. o - 1``: all the forecast may see) and the
``horizon`` bars from it (positions ``o .. o + H - 1``: the truth). :func:`plan_windows` places
them over each series' tail: ``--origins K`` puts K origins ``H`` bars apart ending at the last
possible one (their truths do not overlap); ``--every S`` puts one every S bars back from there.

Leakage-safe by construction: a method is handed a copy of the history slice and nothing else.
The model's forecast timestamps are continued from that history (as ``predict`` does), not
read from the truth, and a window's seed is derived from the timestamp of its last history bar
(``Window.name``), so no value, and no timestamp, at or after the origin reaches a forecast.

:func:`model_forecasts` sends all windows of a model through the batched core in one call (one
``SeriesRequest`` per window, seeded per (series, origin) with ``series_seed``: batch invariant,
so a window's forecast is what ``predict --seed`` gives on its history alone);
:func:`baseline_forecasts` runs a baseline on exactly the same windows.
"""

from __future__ import annotations

from typing import Callable, Mapping

import attrs
import numpy as np
import pandas as pd

from kronos_registry.candles import Candles
from kronos_registry.candles.columns import COLUMNS
from kronos_registry.kronos.batch import forecast_series, series_seed
from kronos_registry.services.evaluation.baselines import Baseline
from kronos_registry.services.evaluation.baselines import forecast as baseline_forecast
from kronos_registry.services.forecast import ForecastParams, prepare_forecast, series_request
from kronos_registry.services.lineage import SeriesSpan
from registry.errors import InputDataError

DEFAULT_ORIGINS = 20
MIN_HISTORY = 2           # the naive scale of MASE needs one bar-to-bar change


@attrs.frozen
class Window:
    """One forecast: series ``key``, first forecast bar at ``origin``, history ``origin - lookback ..``."""

    key: str
    origin: int
    lookback: int
    horizon: int
    made_at: str          # ISO-8601 timestamp of the last bar before the origin: when the forecast is made

    @property
    def name(self) -> str:
        """Unique within a run and stable across runs: what its seed is derived from. Built from
        the history's last bar, so not even the origin bar's timestamp reaches the forecast."""
        return f"{self.key}@{self.made_at}"


@attrs.frozen(eq=False)
class Plan:
    """The windows of a run over its series (see :func:`plan_windows`)."""

    series: Mapping[str, Candles]
    windows: tuple[Window, ...]
    horizon: int
    lookback: int
    step: int
    notes: tuple[str, ...] = ()

    def history_candles(self, w: Window) -> Candles:
        """The window's history only, as the candles package gives it (a copy)."""
        c = self.series[w.key]
        part = slice(w.origin - w.lookback, w.origin)
        return Candles(frame=c.frame.iloc[part].reset_index(drop=True).copy(),
                       timestamps=c.timestamps.iloc[part].reset_index(drop=True).copy(),
                       path=c.path, epoch_unit=c.epoch_unit)

    def history(self, w: Window) -> np.ndarray:
        """(lookback, 6) history values, oldest first (a copy)."""
        return self.series[w.key].frame[list(COLUMNS)].to_numpy(dtype=float)[w.origin - w.lookback:w.origin].copy()

    def truth(self, w: Window) -> np.ndarray:
        """(horizon, 6): what happened from the origin on."""
        return self.series[w.key].frame[list(COLUMNS)].to_numpy(dtype=float)[w.origin:w.origin + w.horizon]

    def truth_span(self, w: Window) -> SeriesSpan:
        stamps = self.series[w.key].timestamps
        return SeriesSpan(w.key, w.horizon, _iso(stamps.iloc[w.origin]), _iso(stamps.iloc[w.origin + w.horizon - 1]))

    def origins(self) -> list[str]:
        """The distinct origins (``made_at``), oldest first: the unit the skill bootstrap resamples
        and the cross-section an IC is taken over."""
        return sorted({w.made_at for w in self.windows})


def _iso(stamp) -> str:
    return pd.Timestamp(stamp).isoformat()


def plan_windows(series: Mapping[str, Candles], *, horizon: int, context: int, lookback: int | None = None,
                 origins: int | None = None, every: int | None = None, min_history: int = MIN_HISTORY,
                 source: str = "the data") -> Plan:
    """Place the windows (see the module doc); InputDataError when a series leaves no origin.

    Without ``lookback``: the longest history that fits the model's context with the horizon
    (``context - H``), shortened so every series keeps its K origins (``--origins``) or half its
    bars for origins (``--every``), never below ``min_history``.
    """
    if origins is not None and every is not None:
        raise InputDataError("--origins and --every both place origins", field="origins",
                             hint="give one: --origins K (K origins over the tail) or --every S (one every S bars)")
    step = every if every is not None else horizon
    count = None if every is not None else (origins if origins is not None else DEFAULT_ORIGINS)
    shortest = min(series, key=lambda key: len(series[key]))
    notes = []
    if lookback is None:
        lookback = _default_lookback(len(series[shortest]), horizon, context, step, count)
        if lookback < context - horizon:
            notes.append(f"note: lookback {lookback} bars (less than the context allows), so that {shortest!r} "
                         f"({len(series[shortest])} bars) keeps its origins; --lookback sets it")
    if lookback < min_history:
        raise InputDataError(f"a lookback of {lookback} bar(s) is too short to score against", field="lookback",
                             hint=f"use --lookback {min_history} or more (the naive scale of MASE needs "
                                  "one bar-to-bar change; seasonal:N needs N bars)")
    if lookback + horizon > context:
        notes.append(f"note: lookback {lookback} + horizon {horizon} exceeds the model's context of {context}: "
                     "each step past it recomputes the whole window (slow, as upstream)")
    windows = []
    for key, candles in series.items():
        positions = _origins_of(len(candles), lookback, horizon, step, count)
        if not positions:
            raise _no_origin(key, len(candles), lookback, horizon, source)
        if count is not None and len(positions) < count:
            notes.append(f"note: series {key!r} has room for {len(positions)} of the {count} origins")
        stamps = candles.timestamps
        windows += [Window(key, o, lookback, horizon, _iso(stamps.iloc[o - 1])) for o in positions]
    windows.sort(key=lambda w: (w.made_at, w.key))
    return Plan(dict(series), tuple(windows), horizon, lookback, step, tuple(notes))


def _default_lookback(rows: int, horizon: int, context: int, step: int, count: int | None) -> int:
    room = rows - horizon - (count - 1) * step if count is not None else (rows - horizon) // 2
    return max(MIN_HISTORY, min(context - horizon, room)) if context > horizon else max(MIN_HISTORY, room)


def _origins_of(rows: int, lookback: int, horizon: int, step: int, count: int | None) -> list[int]:
    last = rows - horizon
    found = []
    origin = last
    while origin >= lookback and (count is None or len(found) < count):
        found.append(origin)
        origin -= step
    return sorted(found)


def _no_origin(key: str, rows: int, lookback: int, horizon: int, source: str) -> InputDataError:
    return InputDataError(
        f"{source}: series {key!r} has {rows} bars, fewer than one window of lookback {lookback} + horizon "
        f"{horizon} = {lookback + horizon} bars: no forecast origin is left in it", field="lookback",
        hint=f"lower --lookback (now {lookback}) or -n (now {horizon}), or give series {key!r} more history")


# --------------------------------------------------------------------------- forecasts


@attrs.frozen(eq=False)
class Forecasts:
    """One method's forecasts of every window of a plan, in the plan's window order."""

    name: str
    role: str                          # "model" or "baseline"
    point: np.ndarray                  # (windows, H, 6): the mean of the paths for sampled methods
    samples: np.ndarray | None = None  # (windows, S, H, 6)


def model_forecasts(predictor, plan: Plan, params: ForecastParams, *, name: str, seed: int, max_batch: int = 16,
                    progress: Callable[[int], None] | None = None) -> Forecasts:
    """Every window of ``plan`` through the batched core in one call (see the module doc)."""
    context = int(getattr(predictor, "max_context", 512))
    requests = []
    for w in plan.windows:
        job = prepare_forecast(plan.history_candles(w), pred_len=plan.horizon, context=context,
                               lookback=w.lookback)
        requests.append(series_request(job, params, key=w.name, seed=series_seed(seed, w.name)))
    results = forecast_series(predictor, requests, max_batch=max_batch, progress=progress)
    point = np.stack([r.forecast[list(COLUMNS)].to_numpy(dtype=float) for r in results])
    samples = None
    if params.samples > 1:
        samples = np.stack([np.asarray(r.samples, dtype=float) for r in results])
    return Forecasts(name, "model", point, samples)


def baseline_forecasts(baseline: Baseline, plan: Plan, *, samples: int, seed: int) -> Forecasts:
    """The baseline on exactly the plan's windows; a sampled one draws per window from its own seed."""
    points, paths = [], []
    for w in plan.windows:
        rng = np.random.default_rng(series_seed(seed, f"{baseline.name}/{w.name}")) if baseline.sampled else None
        point, drawn = baseline_forecast(baseline, plan.history(w), plan.horizon, samples=samples, rng=rng)
        points.append(point)
        paths.append(drawn)
    stacked = np.stack(paths) if baseline.sampled else None
    return Forecasts(baseline.name, "baseline", np.stack(points), stacked)


def windows_table(plan: Plan) -> list[dict]:
    """Per series: how many windows, the first and last origin (what a stored run records)."""
    by_key: dict[str, list[Window]] = {}
    for w in plan.windows:
        by_key.setdefault(w.key, []).append(w)
    stamps = {key: candles.timestamps for key, candles in plan.series.items()}
    return [{"series": key, "windows": len(ws), "first_origin": _iso(stamps[key].iloc[ws[0].origin]),
             "last_origin": _iso(stamps[key].iloc[ws[-1].origin])} for key, ws in by_key.items()]


__all__ = ["DEFAULT_ORIGINS", "Forecasts", "Plan", "Window", "baseline_forecasts", "model_forecasts",
           "plan_windows", "windows_table"]
