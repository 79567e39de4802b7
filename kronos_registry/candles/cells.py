"""Reading and checking the cells of a candle table: numbers, timestamps, time order, value ranges.

Each function reads one column (or checks several), logs every wrong cell in a
:class:`~kronos_registry.candles.problems.ProblemLog`, and returns what it could read, so
that validation reports all problems at once. Timestamp cells are date-times or Unix epoch
numbers (see ``timestamps.py`` for how the unit is told).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from kronos_registry.candles.columns import CANDLE_COLUMNS, PRICE_COLUMNS
from kronos_registry.candles.problems import Locate, ProblemLog
from kronos_registry.candles.timestamps import epoch_to_datetime, epoch_unit

# Cells that mean "no value" in exported spreadsheets; reported as missing, not as text.
_MISSING_TOKENS = frozenset({"", "nan", "na", "n/a", "null", "none", "-", "#n/a"})


def _as_clean_text(values: pd.Series) -> pd.Series:
    return values.astype("string").str.strip()


def _missing_mask(text: pd.Series) -> np.ndarray:
    return (text.isna() | text.str.lower().isin(_MISSING_TOKENS)).to_numpy(dtype=bool)


def parse_numbers(values: pd.Series, column: str, log: ProblemLog) -> np.ndarray:
    """The column as float64; empty, non-numeric and infinite cells are logged."""
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        numbers = values.to_numpy(dtype="float64", na_value=np.nan)
        missing = np.isnan(numbers)
        text = values.astype("string")
    else:
        text = _as_clean_text(values)
        numbers = pd.to_numeric(text, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        missing = _missing_mask(text)
    not_numeric = np.isnan(numbers) & ~missing
    log.add_cells(np.flatnonzero(missing), column, lambda _: "missing value (empty cell or NaN)",
                  "fill in the value or delete the row")
    log.add_cells(np.flatnonzero(not_numeric), column,
                  lambda position: f"{text.iloc[position]!r} is not a number",
                  "write a plain number such as 12.34 (no units, currency signs or thousands separators)")
    log.add_cells(np.flatnonzero(np.isinf(numbers)), column, lambda _: "infinite value",
                  "replace it with the real finite value")
    return numbers


def parse_timestamps(values: pd.Series, column: str, log: ProblemLog) -> pd.Series:
    """The column as datetime64; empty and unparseable cells are logged and become NaT."""
    if pd.api.types.is_datetime64_any_dtype(values):
        parsed = values.reset_index(drop=True)
        missing = parsed.isna().to_numpy()
        text = values.astype("string")
    else:
        text = _as_clean_text(values).reset_index(drop=True)
        missing = _missing_mask(text)
        parsed = _parse_epoch(text, missing, column, log)
        if parsed is None:
            parsed = _to_datetime_lenient(text.mask(missing), column, log)
    unparseable = parsed.isna().to_numpy() & ~missing
    log.add_cells(np.flatnonzero(missing), column, lambda _: "empty timestamp",
                  "fill in the bar's date and time or delete the row")
    log.add_cells(np.flatnonzero(unparseable), column,
                  lambda position: f"{text.iloc[position]!r} is not a date and time",
                  "write timestamps like 2024-01-02 09:30:00 (ISO 8601)")
    return parsed


def column_epoch_unit(values: pd.Series) -> str | None:
    """'s' or 'ms' when the column was read as Unix time (see _parse_epoch), else None."""
    if pd.api.types.is_datetime64_any_dtype(values):
        return None
    text = _as_clean_text(values)
    missing = _missing_mask(text)
    numbers = pd.to_numeric(text.mask(missing), errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    if not (~missing).any() or np.isnan(numbers[~missing]).any():
        return None
    return epoch_unit(numbers[~missing])


def _parse_epoch(text: pd.Series, missing: np.ndarray, column: str, log: ProblemLog) -> pd.Series | None:
    """Unix time, when every filled cell is a plain number in the seconds or milliseconds range.

    Other numbers (e.g. 20240102) are left to the date parser. A column that mixes the two
    ranges is one problem: which unit a cell is in would be a guess.
    """
    numbers = pd.to_numeric(text.mask(missing), errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    filled = ~missing
    if not filled.any() or np.isnan(numbers[filled]).any():
        return None
    unit = epoch_unit(numbers[filled])
    if unit is not None:
        return epoch_to_datetime(numbers, unit)
    units = {epoch_unit(numbers[i:i + 1]) for i in np.flatnonzero(filled)}
    if units == {"s", "ms"}:
        log.add_table_problem(column, "the epoch timestamps mix seconds and milliseconds",
                              "write every timestamp in one unit (Unix seconds or milliseconds)")
        return pd.Series(pd.NaT, index=text.index, dtype="datetime64[ns]")
    return None


def _to_datetime_lenient(text: pd.Series, column: str, log: ProblemLog) -> pd.Series:
    """Parse as ISO 8601, then retry the other cells one by one.

    ISO 8601 (with or without a time, a space or a 'T') is fast and unambiguous for the
    usual file; the retry still accepts other spellings such as '01/02/2024 09:30'.
    """
    try:
        parsed = pd.to_datetime(text, errors="coerce", format="ISO8601")
        retry = parsed.isna() & text.notna()
        if retry.any():
            parsed = parsed.astype(object)
            parsed[retry] = pd.to_datetime(text[retry], errors="coerce", format="mixed")
            parsed = pd.to_datetime(parsed)
        return parsed
    except (ValueError, TypeError, OverflowError) as exc:
        log.add_table_problem(column, f"the timestamps cannot be read together: {exc}",
                              "write every timestamp in one format and one time zone")
        return pd.Series(pd.NaT, index=text.index, dtype="datetime64[ns]")


def check_time_order(timestamps: pd.Series, column: str, log: ProblemLog,
                      locate: Locate) -> None:
    """Each timestamp must be later than the previous readable one."""
    positions = np.flatnonzero(timestamps.notna().to_numpy())
    if len(positions) < 2:
        return
    ticks = pd.DatetimeIndex(timestamps.iloc[positions]).asi8
    steps = np.diff(ticks)
    if np.all(steps < 0):  # a whole file newest-first: one message, not one per row
        log.add_table_problem(column, "the timestamps run newest first",
                              "sort the rows oldest first (ascending time)")
        return
    previous = dict(zip(positions[1:], positions[:-1]))
    log.add_cells(positions[1:][steps == 0], column,
                  lambda position: f"duplicate timestamp, same as {locate(previous[position])}",
                  "remove the repeated bar")
    log.add_cells(positions[1:][steps < 0], column,
                  lambda position: (f"{timestamps.iloc[position]} is earlier than "
                                    f"{timestamps.iloc[previous[position]]} on {locate(previous[position])}"),
                  "sort the rows oldest first (ascending time)")


def check_value_ranges(values: dict[str, np.ndarray], columns: dict[str, str], log: ProblemLog) -> None:
    for name in CANDLE_COLUMNS:
        if name not in values:
            continue
        column_values = values[name]
        kind = "price" if name in PRICE_COLUMNS else name
        log.add_cells(np.flatnonzero(column_values < 0), columns[name],
                      lambda position, v=column_values, k=kind: f"negative {k} {v[position]:g}",
                      "prices, volume and amount cannot be negative: check the sign or the source data")
    high, low = values["high"], values["low"]
    log.add_cells(np.flatnonzero(high < low), columns["high"],
                  lambda position: f"high {high[position]:g} is below low {low[position]:g}",
                  "check the bar: high must be at least low (are the two columns swapped?)")
