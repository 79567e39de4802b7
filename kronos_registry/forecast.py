"""One forecast job, shared by every face: candles -> lookback -> future timestamps.

:func:`prepare_forecast` decides what the model sees and when the forecast's bars fall,
and records why, so that the CLI (and later the server) can say it in a summary:

- Lookback: by default as much history as fits the model's context together with the
  forecast (``context - pred_len``, at most the rows). Then every generated step reuses
  the key/value cache. A longer explicit ``lookback`` is honoured with upstream's
  sliding window: each step past the context recomputes the whole window (much slower).
- Future timestamps: read from a file when given (validated), else continued from the
  history (its interval or daily session, business days when it has no weekend bars;
  see ``timestamps.py``).
- Gaps: steps in the used history longer than the bar interval (closures of a session
  or weekends of a business-day series are not gaps), counted.

Pure pandas: nothing here imports torch.
"""

from __future__ import annotations

import os

import attrs
import pandas as pd

from .candles import Candles, read_future_timestamps, tail_lookback
from .timestamps import FutureTimes, Gaps, find_gaps, infer_interval, is_business_daily, plan_future


@attrs.frozen(eq=False)
class ForecastInput:
    """What the model sees, the forecast's timestamps, and the reasons, for the summary."""

    candles: Candles          # the whole history given
    used: Candles             # the last `lookback` rows of it
    lookback_reason: str
    future: FutureTimes
    gaps: Gaps | None
    notes: tuple[str, ...] = ()


def default_lookback(rows: int, context: int, pred_len: int) -> int:
    """The most history that fits the context with the forecast: min(rows, context - pred_len).

    A forecast as long as the context fits nothing; then all rows up to the context.
    """
    fits = context - pred_len
    return min(rows, fits) if fits >= 1 else min(rows, context)


def choose_lookback(rows: int, context: int, pred_len: int, lookback: int | None) -> tuple[int, str, list[str]]:
    """-> (lookback, why, notes for the person) for an explicit or default lookback."""
    notes: list[str] = []
    if lookback is None:
        chosen = default_lookback(rows, context, pred_len)
        if context - pred_len < 1:
            why = f"the forecast of {pred_len} bars is not shorter than the {context}-bar context"
            notes.append(f"note: --pred-len {pred_len} is at least the model's context of {context}: steps past "
                         "the context recompute the whole window (slow)")
        elif chosen < context - pred_len:
            why = "all rows"
        else:
            why = f"default: context {context} - pred_len {pred_len}"
        return chosen, why, notes
    if lookback > context:
        notes.append(f"note: a lookback of {lookback} exceeds the model's context of {context}; "
                     f"the model sees the last {context} bars")
    if min(lookback, rows) + pred_len > context:
        notes.append(f"note: lookback {lookback} + pred-len {pred_len} exceeds the context of {context}: "
                     f"steps past it recompute the whole window (slow, as upstream); without --lookback "
                     f"the default {default_lookback(rows, context, pred_len)} keeps every step cached")
    return lookback, "--lookback", notes


def prepare_forecast(candles: Candles, *, pred_len: int, context: int, lookback: int | None = None,
                     future_file: str | os.PathLike | None = None) -> ForecastInput:
    """Choose the lookback, make the future timestamps and look for gaps (see the module doc)."""
    chosen, why, notes = choose_lookback(len(candles), context, pred_len, lookback)
    used = tail_lookback(candles, chosen)
    last = used.timestamps.iloc[-1]
    if future_file is not None:
        stamps = read_future_timestamps(future_file, pred_len=pred_len, after=last)
        future = FutureTimes(stamps, f"from {future_file}")
    else:
        future = plan_future(candles.timestamps, pred_len)  # all the history: more evidence, same last bar
    gaps = None
    if len(used) >= 2:
        interval = future.interval or infer_interval(used.timestamps)
        business = future.business_days or is_business_daily(pd.DatetimeIndex(used.timestamps), interval)
        gaps = find_gaps(used.timestamps, interval, business_days=business, session=future.session)
    return ForecastInput(candles, used, why, future, gaps, tuple(notes))
