"""Validated candles (:class:`Candles`) and the context the model sees of them (:func:`tail_lookback`).

Every reader in this package returns a ``Candles``; nothing else builds one, so a ``Candles``
always holds the six float64 columns, oldest bar first, with readable increasing timestamps.
"""

from __future__ import annotations

from pathlib import Path

import attrs
import numpy as np
import pandas as pd

from kronos_registry.candles.problems import path_text
from registry.errors import InputDataError


@attrs.frozen(eq=False)  # DataFrames have no single truth value, so no generated __eq__
class Candles:
    """Validated candles.

    ``frame`` holds the six float64 columns ``open, high, low, close, volume, amount`` with a
    0-based RangeIndex; ``timestamps`` is the matching datetime64 Series named
    ``timestamps``; ``path`` is the CSV it came from (None for a DataFrame);
    ``epoch_unit`` is 's' or 'ms' when the timestamps were Unix epoch numbers (UTC);
    ``notes`` what the reader assumed, for the person (an unnamed index read as timestamps).
    """

    frame: pd.DataFrame
    timestamps: pd.Series
    path: Path | None = None
    epoch_unit: str | None = None
    notes: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def source(self) -> str:
        return str(self.path) if self.path is not None else "DataFrame"


def tail_lookback(candles: Candles, lookback: int) -> Candles:
    """The last ``lookback`` rows of ``candles`` (the context the model sees)."""
    available = len(candles)
    if isinstance(lookback, bool) or not isinstance(lookback, (int, np.integer)) or lookback < 1:
        raise InputDataError(
            f"the lookback must be a whole number of at least 1, got {lookback!r}",
            path=path_text(candles.path),
            field="lookback",
            hint=f"pass a lookback between 1 and {available} (the rows in {candles.source})",
        )
    if lookback > available:
        raise InputDataError(
            f"{candles.source} has {available} rows, fewer than the lookback of {lookback}",
            path=path_text(candles.path),
            field="lookback",
            hint=f"use a lookback of at most {available}, or give a file with more history",
        )
    frame = candles.frame.iloc[-lookback:].reset_index(drop=True)
    timestamps = candles.timestamps.iloc[-lookback:].reset_index(drop=True)
    return Candles(frame=frame, timestamps=timestamps, path=candles.path, epoch_unit=candles.epoch_unit)
