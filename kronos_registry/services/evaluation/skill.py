"""Luck versus skill: is a model's loss really below the best baseline's, or within the noise?

For each origin t (all series forecast from it together) take the model's mean scaled loss
Lₘ,ₜ and the best baseline's L_b,ₜ (``scoring.origin_losses``: MASE, or CRPS over the naive
scale), and their paired difference dₜ = Lₘ,ₜ - L_b,ₜ; the best baseline is the one with the
lowest mean loss over these origins. The estimate is d̄ = (1/T) Σ dₜ; negative is better.

Its 95% interval comes from a circular block bootstrap over origins (Politis and Romano,
1992): resample T differences as ⌈T/b⌉ runs of b consecutive origins (wrapping around), take
the mean, 2,000 times, seeded; the interval is the 2.5th to 97.5th percentile. Blocks keep
the dependence between neighbouring origins (a market regime, overlapping truths): b is
max(⌈T^(1/3)⌉, ⌈H/step⌉), at most T.

Verdict: "better" when the interval lies below 0, "worse" when above, "no detectable
difference" when it holds 0, and "too few origins" below 5 origins (no interval is honest then).
"""

from __future__ import annotations

import math
from typing import Sequence

import attrs
import numpy as np

from kronos_registry.services.evaluation.backtest import Forecasts, Plan
from kronos_registry.services.evaluation.scoring import origin_losses

RESAMPLES = 2000
LEVEL = 0.95
MIN_ORIGINS = 5
BETTER, WORSE, SAME, TOO_FEW = "better", "worse", "no detectable difference", "too few origins"


@attrs.frozen
class Skill:
    """A model against the best baseline on one loss."""

    model: str
    loss: str                  # "mase" or "crps"
    against: str               # the best baseline
    model_loss: float          # mean over origins
    baseline_loss: float
    difference: float          # model - baseline; negative: the model's loss is lower
    low: float
    high: float
    origins: int
    block: int
    verdict: str

    def to_dict(self) -> dict:
        return attrs.asdict(self)


def block_length(origins: int, horizon: int, step: int) -> int:
    return max(1, min(origins, max(math.ceil(origins ** (1 / 3)), math.ceil(horizon / max(step, 1)))))


def bootstrap_interval(differences, *, block: int, seed: int, resamples: int = RESAMPLES,
                       level: float = LEVEL) -> tuple[float, float]:
    """The percentile interval of the mean of ``differences`` under a circular block bootstrap."""
    d = np.asarray(differences, dtype=float)
    T = len(d)
    rng = np.random.default_rng(seed)
    runs = math.ceil(T / block)
    starts = rng.integers(0, T, size=(resamples, runs))
    index = (starts[:, :, None] + np.arange(block)).reshape(resamples, -1)[:, :T] % T
    means = d[index].mean(axis=1)
    tail = (1 - level) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(low), float(high)


def verdict(low: float, high: float, origins: int) -> str:
    if origins < MIN_ORIGINS:
        return TOO_FEW
    if high < 0:
        return BETTER
    if low > 0:
        return WORSE
    return SAME


def compare(plan: Plan, model: Forecasts, baselines: Sequence[Forecasts], *, loss: str, seed: int) -> Skill | None:
    """``model`` against the best of ``baselines`` on ``loss`` (see the module doc); None without baselines."""
    if not baselines:
        return None
    mine = origin_losses(plan, model, loss=loss)
    theirs = {b.name: origin_losses(plan, b, loss=loss) for b in baselines}
    best = min(theirs, key=lambda name: _mean(theirs[name]))
    keep = np.isfinite(mine) & np.isfinite(theirs[best])
    d = (mine - theirs[best])[keep]
    T = int(keep.sum())
    if T == 0:
        return Skill(model.name, loss, best, math.nan, math.nan, math.nan, math.nan, math.nan, 0, 0, TOO_FEW)
    block = block_length(T, plan.horizon, plan.step)
    low, high = bootstrap_interval(d, block=block, seed=seed) if T >= 2 else (math.nan, math.nan)
    return Skill(model.name, loss, best, float(mine[keep].mean()), float(theirs[best][keep].mean()),
                 float(d.mean()), low, high, T, block, verdict(low, high, T))


def _mean(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if len(finite) else math.inf


__all__ = ["BETTER", "SAME", "Skill", "TOO_FEW", "WORSE", "block_length", "bootstrap_interval", "compare", "verdict"]
