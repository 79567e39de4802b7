"""Baselines: the forecasts a model must beat, computed on exactly the model's windows.

Each one sees the same history window the model sees (the ``lookback`` bars before the origin,
all six columns, oldest first) and forecasts the same ``H`` bars:

- ``naive``: every step repeats the last bar, ŷₜ₊ₕ = yₜ (a random walk's best point forecast).
- ``drift``: the line through the window's first and last bar, ŷₜ₊ₕ = yₜ + h (yₜ - y₁)/(L - 1).
- ``seasonal:N``: the bar one season back, ŷₜ₊ₕ = yₜ₊ₕ₋ₖₙ with k = ⌈h/N⌉ (N = 48 is one day of
  5-minute A-share bars); needs a lookback of at least N.
- ``random-walk`` (only with ``--samples``): sampled paths that replay the window's own bar-to-bar
  changes in a random order, drawn with replacement (a bootstrap, seeded per window): each
  step multiplies a positive column by one historical ratio hₛ/hₛ₋₁, or adds one historical
  difference to a column that is ever 0 or below; one draw moves all six columns together.
  Its point forecast is the mean of its paths, like a model's.

Only numpy.
"""

from __future__ import annotations

import difflib

import attrs
import numpy as np

from registry.errors import InputDataError

NAIVE, DRIFT, SEASONAL, RANDOM_WALK = "naive", "drift", "seasonal", "random-walk"
KINDS = (NAIVE, DRIFT, SEASONAL, RANDOM_WALK)
DEFAULT_BASELINES = (NAIVE, DRIFT)          # random-walk joins them when samples are drawn


@attrs.frozen
class Baseline:
    """One baseline as asked for: its kind and, for ``seasonal``, the period in bars."""

    kind: str
    period: int | None = None

    @property
    def name(self) -> str:
        return f"{SEASONAL}:{self.period}" if self.kind == SEASONAL else self.kind

    @property
    def sampled(self) -> bool:
        return self.kind == RANDOM_WALK

    def min_history(self) -> int:
        return self.period if self.kind == SEASONAL else 2


def parse_baselines(text: str | None, *, samples: int) -> tuple[Baseline, ...]:
    """'naive,drift,seasonal:48' -> Baselines (None: the defaults, plus random-walk with samples).

    InputDataError (field ``baselines``) names an unknown one with a suggestion.
    """
    if text is None:
        chosen = [Baseline(kind) for kind in DEFAULT_BASELINES]
        return tuple(chosen + ([Baseline(RANDOM_WALK)] if samples > 1 else []))
    found: dict[str, Baseline] = {}
    for part in (p.strip().lower() for p in text.split(",")):
        if not part:
            continue
        baseline = _one(part, samples)
        found.setdefault(baseline.name, baseline)
    if not found:
        raise InputDataError("--baselines is empty", field="baselines",
                             hint=f"name one or more of {', '.join(KINDS)} (seasonal as seasonal:N)")
    return tuple(found.values())


def _one(part: str, samples: int) -> Baseline:
    kind, _, period = part.partition(":")
    if kind == "rw":
        kind = RANDOM_WALK
    if kind not in KINDS:
        close = difflib.get_close_matches(kind, KINDS, n=1)
        guess = f"did you mean {close[0]}? " if close else ""
        raise InputDataError(f"unknown baseline '{part}'", field="baselines",
                             hint=f"{guess}choose from {', '.join(KINDS)} (seasonal as seasonal:N, N bars per season)")
    if kind == SEASONAL:
        if not period.isdigit() or int(period) < 1:
            raise InputDataError(f"the seasonal baseline needs a period in bars, got '{part}'", field="baselines",
                                 hint="write seasonal:N, e.g. seasonal:48 for one day of 5-minute A-share bars")
        return Baseline(SEASONAL, int(period))
    if period:
        raise InputDataError(f"the {kind} baseline takes no ':{period}'", field="baselines",
                             hint=f"write {kind}")
    if kind == RANDOM_WALK and samples < 2:
        raise InputDataError("the random-walk baseline is a distribution: it needs --samples N (N > 1)",
                             field="baselines", hint="add --samples 20, or leave random-walk out")
    return Baseline(kind)


# --------------------------------------------------------------------------- the forecasts


def naive(history: np.ndarray, horizon: int) -> np.ndarray:
    """(L, C) -> (H, C): the last bar, repeated."""
    return np.repeat(np.asarray(history, dtype=float)[-1:], horizon, axis=0)


def drift(history: np.ndarray, horizon: int) -> np.ndarray:
    """(L, C) -> (H, C): the last bar plus h times the window's mean step."""
    h = np.asarray(history, dtype=float)
    slope = (h[-1] - h[0]) / (len(h) - 1)
    return h[-1] + np.arange(1, horizon + 1)[:, None] * slope


def seasonal_naive(history: np.ndarray, horizon: int, period: int) -> np.ndarray:
    """(L, C) -> (H, C): step h takes the bar k·N bars before it, k = ⌈h/N⌉ (L >= N)."""
    h = np.asarray(history, dtype=float)
    if len(h) < period:
        raise ValueError(f"seasonal:{period} needs at least {period} bars of history, got {len(h)}")
    steps = np.arange(1, horizon + 1)
    back = steps - period * np.ceil(steps / period).astype(int)     # in (-N, 0]: offset from the end
    return h[len(h) - 1 + back]


def random_walk(history: np.ndarray, horizon: int, samples: int, rng: np.random.Generator) -> np.ndarray:
    """(L, C) -> (samples, H, C): bootstrapped bar-to-bar changes (see the module doc)."""
    h = np.asarray(history, dtype=float)
    positive = (h > 0).all(axis=0)
    ratios = np.where(positive, h[1:] / np.where(positive, h[:-1], 1.0), 0.0)
    diffs = np.where(positive, 0.0, h[1:] - h[:-1])
    draws = rng.integers(0, len(h) - 1, size=(samples, horizon))
    growth = np.cumprod(np.where(positive, ratios[draws], 1.0), axis=1)
    shift = np.cumsum(diffs[draws], axis=1)
    return np.where(positive, h[-1] * growth, h[-1] + shift)


def forecast(baseline: Baseline, history: np.ndarray, horizon: int, *, samples: int,
             rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """One window -> (point forecast (H, C), sampled paths (samples, H, C) or None)."""
    if baseline.kind == NAIVE:
        return naive(history, horizon), None
    if baseline.kind == DRIFT:
        return drift(history, horizon), None
    if baseline.kind == SEASONAL:
        return seasonal_naive(history, horizon, int(baseline.period)), None
    paths = random_walk(history, horizon, samples, rng if rng is not None else np.random.default_rng(0))
    return paths.mean(axis=0), paths


__all__ = ["Baseline", "DEFAULT_BASELINES", "KINDS", "RANDOM_WALK", "drift", "forecast", "naive",
           "parse_baselines", "random_walk", "seasonal_naive"]
