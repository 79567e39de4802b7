"""Writing a forecast CSV: a ``timestamps`` column, then the six candle columns.

The file reads back with ``read_candles``, so a forecast can be the next run's history.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from kronos_registry.candles.columns import CANDLE_COLUMNS, OUTPUT_TIMESTAMP_COLUMN
from registry.errors import InputDataError


def write_forecast(path: str | os.PathLike, timestamps: Sequence | pd.Series, frame: pd.DataFrame,
                   extra: Mapping[str, Sequence] | None = None) -> Path:
    """Write a forecast CSV: ``timestamps`` then open, high, low, close, volume, amount, then the
    ``extra`` columns (quantiles, say). A path of ``-`` writes to standard output.

    Missing parent folders are created. Returns the path written.
    """
    out_path = Path(path)
    stamps = pd.Series(pd.DatetimeIndex(timestamps), name=OUTPUT_TIMESTAMP_COLUMN)
    missing = [name for name in CANDLE_COLUMNS if name not in frame.columns]
    if missing:
        raise InputDataError(
            f"cannot write {out_path}: the forecast lacks column(s) {', '.join(missing)}",
            path=str(out_path),
            field=missing[0],
            hint="pass a frame with columns " + ", ".join(CANDLE_COLUMNS),
        )
    if len(stamps) != len(frame):
        raise InputDataError(
            f"cannot write {out_path}: {len(stamps)} timestamps for {len(frame)} forecast rows",
            path=str(out_path),
            field=OUTPUT_TIMESTAMP_COLUMN,
            hint="give exactly one timestamp per forecast row (see future_timestamps)",
        )
    table = frame[list(CANDLE_COLUMNS)].reset_index(drop=True).astype("float64")
    table.insert(0, OUTPUT_TIMESTAMP_COLUMN, stamps)
    for name, values in (extra or {}).items():
        table[name] = np.asarray(values, dtype="float64")
    if str(path) == "-":  # the Unix convention: data on stdout, the summary stays on stderr
        table.to_csv(sys.stdout, index=False, lineterminator="\n")
        sys.stdout.flush()
        return out_path
    try:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(out_path, index=False, lineterminator="\n")
    except OSError as exc:
        raise InputDataError(
            f"cannot write {out_path}: {exc.strerror or exc}",
            path=str(out_path),
            hint="choose an output path in a folder you can write to",
        ) from exc
    return out_path
