"""Validating a candle table: find its columns, check every cell, and build :class:`Candles`.

Every reader (a CSV file, CSV text, JSON records, a DataFrame, one series of a long file)
ends in :func:`validate_table`, so one set of rules judges candles wherever they come from.
Column names are case-insensitive; ``open``, ``high``, ``low``, ``close`` and a timestamp
column are required; ``volume`` and ``amount`` are optional and filled the way the official
Kronos predictor fills them (:func:`fill_volume_and_amount`); other columns are ignored.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Sequence

import pandas as pd

from kronos_registry.candles.cells import (
    check_time_order,
    check_value_ranges,
    column_epoch_unit,
    parse_numbers,
    parse_timestamps,
)
from kronos_registry.candles.columns import (
    CANDLE_COLUMNS,
    OUTPUT_TIMESTAMP_COLUMN,
    PRICE_COLUMNS,
    TIMESTAMP_NAMES,
    find_timestamp_column,
)
from kronos_registry.candles.problems import Locate, ProblemLog, listed, path_text, raise_problems
from kronos_registry.candles.series import Candles
from registry.errors import InputDataError


def validate_table(table: pd.DataFrame, *, source: str, path: Path | None,
                   locate: Locate, min_rows: int) -> Candles:
    """A table of raw cells (strings or numbers) -> Candles, or one InputDataError listing what is
    wrong; ``source`` and ``path`` name the input in messages, ``locate`` names a row."""
    columns = resolve_columns(list(table.columns), source=source, path=path)
    log = ProblemLog()
    _check_row_count(len(table), min_rows, log)
    timestamp_column = columns[OUTPUT_TIMESTAMP_COLUMN]
    timestamps = parse_timestamps(table[timestamp_column], timestamp_column, log)
    check_time_order(timestamps, timestamp_column, log, locate)
    values = {name: parse_numbers(table[columns[name]], columns[name], log)
              for name in CANDLE_COLUMNS if name in columns}
    check_value_ranges(values, columns, log)
    if log.total:
        raise_problems(log, source=source, path=path, locate=locate)
    frame = fill_volume_and_amount(pd.DataFrame(values))[list(CANDLE_COLUMNS)].astype("float64")
    return Candles(frame=frame, timestamps=timestamps.rename(OUTPUT_TIMESTAMP_COLUMN), path=path,
                   epoch_unit=column_epoch_unit(table[timestamp_column]))


def _check_row_count(rows: int, min_rows: int, log: ProblemLog) -> None:
    if rows < min_rows:
        counted = "1 row" if rows == 1 else f"{rows} rows"
        log.add_table_problem(
            None,
            f"only {counted} of candles, but at least {min_rows} are needed",
            f"give at least {min_rows} rows of history (more history gives the model more context)",
        )


def validate_frame(df: pd.DataFrame, *, source: str = "DataFrame", min_rows: int = 2) -> Candles:
    """Validate a DataFrame of candles with the same rules as a candle CSV (``read_candles``).

    Rows are named by their 0-based position (``df.iloc[position]``), since a DataFrame has
    no lines. Without a timestamp column, a DatetimeIndex is used as the timestamps.
    """
    if not isinstance(df, pd.DataFrame):
        raise InputDataError(
            f"{source}: expected a pandas DataFrame of candles, got {type(df).__name__}",
            hint="pass a DataFrame with columns timestamps, open, high, low, close[, volume, amount]",
        )
    table = df.reset_index(drop=True)
    if isinstance(df.index, pd.DatetimeIndex) and find_timestamp_column(df.columns) is None:
        table.insert(0, OUTPUT_TIMESTAMP_COLUMN, df.index.to_numpy())
    return validate_table(
        table, source=source, path=None, locate=lambda position: f"position {position}", min_rows=min_rows
    )


def fill_volume_and_amount(frame: pd.DataFrame) -> pd.DataFrame:
    """Add missing ``volume``/``amount`` the way the official Kronos predictor does.

    Without ``volume``, both ``volume`` and ``amount`` become 0 (an ``amount`` column is then
    replaced too, as upstream does, so forecasts match the reference implementation).
    With ``volume`` but no ``amount``, ``amount = volume * mean(open, high, low, close)``.
    """
    filled = frame.copy()
    if "volume" not in filled.columns:
        filled["volume"] = 0.0
        filled["amount"] = 0.0
    elif "amount" not in filled.columns:
        filled["amount"] = filled["volume"] * filled[list(PRICE_COLUMNS)].mean(axis=1)
    return filled


def resolve_columns(columns: Sequence, *, source: str, path: Path | None) -> dict[str, str]:
    """Map each canonical name (timestamps, open, ..., amount present) to the table's column."""
    names = [str(name) for name in columns]
    _reject_duplicate_names(names, source=source, path=path)
    by_lower = {name.strip().lower(): name for name in names}
    resolved = {name: by_lower[name] for name in CANDLE_COLUMNS if name in by_lower}
    timestamp_column = find_timestamp_column(names)
    missing = [name for name in PRICE_COLUMNS if name not in resolved]
    if timestamp_column is None or missing:
        _raise_missing_columns(names, missing, timestamp_missing=timestamp_column is None,
                               source=source, path=path)
    resolved[OUTPUT_TIMESTAMP_COLUMN] = timestamp_column
    return resolved


def _reject_duplicate_names(names: list[str], *, source: str, path: Path | None) -> None:
    seen: dict[str, str] = {}
    for name in names:
        key = name.strip().lower()
        if key in seen and (key in CANDLE_COLUMNS or key in TIMESTAMP_NAMES):
            raise InputDataError(
                f"{source}: columns '{seen[key]}' and '{name}' are the same name "
                "(names are case-insensitive), so it is unclear which to use",
                path=path_text(path),
                field=name,
                hint=f"rename or remove one of the two '{key}' columns",
            )
        seen[key] = name


def _raise_missing_columns(names: list[str], missing: list[str], *, timestamp_missing: bool,
                           source: str, path: Path | None) -> None:
    found = listed(f"'{name}'" for name in names) or "none"
    lacking = [f"column(s) {', '.join(repr(name) for name in missing)}"] if missing else []
    if timestamp_missing:
        lacking.append(f"a timestamp column (accepted names: {', '.join(TIMESTAMP_NAMES)})")
    lowered = [name.strip().lower() for name in names]
    guesses = [_did_you_mean(name, names, lowered) for name in missing]
    if timestamp_missing:
        guesses.append(_did_you_mean_timestamp(names, lowered))
    hints = [guess for guess in guesses if guess]
    hints.append("name the header cells timestamps, open, high, low, close (case-insensitive)")
    if len(names) == 1 and any(sep in names[0] for sep in ";\t|"):
        hints.insert(0, "the header looks like one column: save the file with commas as separators")
    raise InputDataError(
        f"{source}: missing {' and '.join(lacking)}; found columns: {found}",
        path=path_text(path),
        field=missing[0] if missing else OUTPUT_TIMESTAMP_COLUMN,
        hint="; ".join(hints),
    )


def _did_you_mean(wanted: str, names: list[str], lowered: list[str]) -> str | None:
    close = difflib.get_close_matches(wanted, lowered, n=1, cutoff=0.6)
    if not close:
        return None
    return f"did you mean '{names[lowered.index(close[0])]}' for '{wanted}'?"


def _did_you_mean_timestamp(names: list[str], lowered: list[str]) -> str | None:
    for candidate in TIMESTAMP_NAMES:
        guess = _did_you_mean(candidate, names, lowered)
        if guess:
            return guess.replace(f"for '{candidate}'", "as the timestamp column")
    return None
