"""The forecast's timestamps when the user gives them: a CSV file or a request's list.

They are checked as the history's timestamps are (readable, strictly increasing), and
must number ``pred_len`` and start after the history's last bar. When none are given, the
forecast's timestamps are inferred from the history (``timestamps.py``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from kronos_registry.candles.cells import check_time_order, parse_timestamps
from kronos_registry.candles.columns import OUTPUT_TIMESTAMP_COLUMN, TIMESTAMP_NAMES, find_timestamp_column
from kronos_registry.candles.problems import Locate, ProblemLog, listed, path_text, raise_problems
from kronos_registry.candles.reading import read_csv_table
from kronos_registry.candles.timestamps import epoch_unit
from registry.errors import InputDataError


def read_future_timestamps(path: str | os.PathLike, *, pred_len: int, after) -> pd.Series:
    """The forecast's timestamps from a CSV: one timestamp column (named like the candles'
    one, or the file's only column; the header line may be left out), ``pred_len`` rows,
    strictly increasing, the first later than ``after`` (the last history bar)."""
    csv_path = Path(path)
    table, line_numbers = read_csv_table(csv_path)
    column = find_timestamp_column(table.columns)
    if column is None and len(table.columns) == 1:
        column = table.columns[0]
        if _looks_like_timestamp(column):  # no header line: the first line is a timestamp too
            table = pd.DataFrame({column: [column, *table[column]]}, dtype=object)
            line_numbers = [line_numbers[0] - 1 if line_numbers else 1, *line_numbers]
    if column is None:
        raise InputDataError(
            f"{csv_path}: no timestamp column among {listed(map(repr, table.columns))}",
            path=str(csv_path), field=OUTPUT_TIMESTAMP_COLUMN,
            hint=f"give the future timestamps in one column named one of {', '.join(TIMESTAMP_NAMES)}")
    return _checked_future(table[column], column, pred_len=pred_len, after=after, source=str(csv_path),
                           path=csv_path, locate=lambda position: f"line {line_numbers[position]}",
                           pred_len_name="--pred-len")


def future_timestamps_from_values(values: Sequence, *, pred_len: int, after,
                                  source: str = "future_timestamps") -> pd.Series:
    """The forecast's timestamps given as a list (an HTTP or MCP request), with the checks of
    :func:`read_future_timestamps`; a problem names the item as ``source[i]``."""
    if not isinstance(values, (list, tuple)):
        raise InputDataError(f"{source}: expected a list of timestamps", field=source,
                             hint=f"give {pred_len} timestamps after the last candle, oldest first")
    column = pd.Series([None if v is None else str(v) for v in values], dtype=object)
    return _checked_future(column, source, pred_len=pred_len, after=after, source=source, path=None,
                           locate=lambda position: f"{source}[{position}]", pred_len_name="pred_len")


def _checked_future(column: pd.Series, name: str, *, pred_len: int, after, source: str, path: Path | None,
                    locate: Locate, pred_len_name: str) -> pd.Series:
    log = ProblemLog()
    stamps = parse_timestamps(column, name, log)
    check_time_order(stamps, name, log, locate)
    if log.total:
        raise_problems(log, source=source, path=path, locate=locate)
    if len(stamps) != pred_len:
        raise InputDataError(
            f"{source} has {len(stamps)} future timestamp(s), but {pred_len_name} is {pred_len}",
            path=path_text(path), field=str(name),
            hint=f"give exactly {pred_len} timestamps (one per forecast bar), or set {pred_len_name} "
                 f"{len(stamps)}")
    last = pd.Timestamp(after)
    if stamps.iloc[0] <= last:
        raise InputDataError(
            f"{source}: {locate(0)}: the first future timestamp {stamps.iloc[0]} is not after "
            f"the last history bar {last}",
            path=path_text(path), field=str(name),
            hint="list only the bars after the history's last one, oldest first")
    return stamps.rename(OUTPUT_TIMESTAMP_COLUMN).reset_index(drop=True)


def _looks_like_timestamp(cell: str) -> bool:
    text = str(cell).strip()
    if not text or text.lower() in TIMESTAMP_NAMES:
        return False
    try:
        number = float(text)
    except ValueError:
        return not pd.isna(pd.to_datetime(text, errors="coerce", format="mixed"))
    return epoch_unit(np.array([number])) is not None
