"""Forecast values made into valid candles: the rule every face's forecast follows.

The model predicts each of the six columns on its own, so a sampled bar (or an average of
bars) can have its low above its open or close, its high below them, or a negative volume.
:func:`valid_candles` fixes that without moving what a forecast is mostly read for:

- open and close are kept as predicted;
- high is raised to at least max(open, close), low lowered to at most min(open, close)
  (so low <= open, close <= high, and low <= high);
- volume and amount are clipped at 0.

Applied to every sampled path and again to their mean (``kronos/batch.py``). Means and
quantiles of valid paths are valid too (each is monotone in every path), so the quantile
bands a face shows are candles as well.

Pure numpy, no imports of the engine, so the model family can use it.
"""

from __future__ import annotations

import numpy as np

from kronos_registry.candles.columns import COLUMNS

OPEN, HIGH, LOW, CLOSE, VOLUME, AMOUNT = (COLUMNS.index(name) for name in
                                          ("open", "high", "low", "close", "volume", "amount"))


def valid_candles(values: np.ndarray) -> np.ndarray:
    """Candles (..., 6) in COLUMNS order -> a copy that obeys the rule above."""
    out = np.array(values, copy=True)
    body_top = np.maximum(out[..., OPEN], out[..., CLOSE])
    body_bottom = np.minimum(out[..., OPEN], out[..., CLOSE])
    out[..., HIGH] = np.maximum(out[..., HIGH], body_top)
    out[..., LOW] = np.minimum(out[..., LOW], body_bottom)
    out[..., [VOLUME, AMOUNT]] = np.maximum(out[..., [VOLUME, AMOUNT]], 0)
    return out


def invalid_rows(values: np.ndarray) -> np.ndarray:
    """A boolean mask over the rows (..., 6) that break the rule (for checks and tests)."""
    v = np.asarray(values)
    return ((v[..., LOW] > np.minimum(v[..., OPEN], v[..., CLOSE]))
            | (v[..., HIGH] < np.maximum(v[..., OPEN], v[..., CLOSE]))
            | (v[..., VOLUME] < 0) | (v[..., AMOUNT] < 0))


__all__ = ["invalid_rows", "valid_candles"]
