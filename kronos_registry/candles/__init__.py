"""Candle (OHLCV) input and output: read, validate, and write the CSVs that `predict` uses.

A candle CSV has a header line and one row per bar::

    timestamps,open,high,low,close,volume,amount
    2024-01-02 09:30:00,100.0,100.4,99.8,100.2,1200,120240

Column names are case-insensitive. The timestamp column may be called any of
``timestamps``, ``timestamp``, ``date``, ``datetime`` or ``time``; its cells are date-times
(ISO 8601 or another common spelling) or Unix epoch numbers, seconds or milliseconds, told
apart by magnitude (see ``timestamps.py``) and read as UTC. ``open``, ``high``,
``low`` and ``close`` are required; ``volume`` and ``amount`` are optional and filled the
way the official Kronos predictor fills them (see :func:`fill_volume_and_amount`). Other
columns are ignored.

Every problem is an :class:`~registry.errors.InputDataError` that names the file (or the
DataFrame), the line (data row ``i`` is line ``i + 1``, as a spreadsheet shows it) and the
column, and says how to fix it. Up to ten problems are reported together so that one run
shows what to correct.

Only pandas and numpy are used here: reading candles must not import torch.
"""

from __future__ import annotations

import csv
import difflib
import io
import os
from pathlib import Path
from typing import Callable, Sequence

import attrs
import numpy as np
import pandas as pd

from kronos_registry.candles.timestamps import (  # noqa: F401  (infer_interval, future_timestamps: public here too)
    EPOCH_UNIT_NAMES,
    epoch_to_datetime,
    epoch_unit,
    future_timestamps,
    infer_interval,
)
from registry.errors import InputDataError

TIMESTAMP_NAMES = ("timestamps", "timestamp", "date", "datetime", "time")
PRICE_COLUMNS = ("open", "high", "low", "close")
QUANTITY_COLUMNS = ("volume", "amount")
CANDLE_COLUMNS = PRICE_COLUMNS + QUANTITY_COLUMNS
OUTPUT_TIMESTAMP_COLUMN = "timestamps"

# Enough to show every kind of mistake in a file without burying the reader.
MAX_REPORTED_PROBLEMS = 10

# Cells that mean "no value" in exported spreadsheets; reported as missing, not as text.
_MISSING_TOKENS = frozenset({"", "nan", "na", "n/a", "null", "none", "-", "#n/a"})

_CSV_LAYOUT_HINT = (
    "the file needs a header line such as "
    "'timestamps,open,high,low,close,volume,amount' and then one row per bar"
)


@attrs.frozen(eq=False)  # DataFrames have no single truth value, so no generated __eq__
class Candles:
    """Validated candles.

    ``frame`` holds the six float64 columns ``open, high, low, close, volume, amount`` with a
    0-based RangeIndex; ``timestamps`` is the matching datetime64 Series named
    ``timestamps``; ``path`` is the CSV it came from (None for a DataFrame);
    ``epoch_unit`` is 's' or 'ms' when the timestamps were Unix epoch numbers (UTC).
    """

    frame: pd.DataFrame
    timestamps: pd.Series
    path: Path | None = None
    epoch_unit: str | None = None

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def source(self) -> str:
        return str(self.path) if self.path is not None else "DataFrame"


# --------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------


def read_candles(path: str | os.PathLike, *, min_rows: int = 2) -> Candles:
    """Read and validate a candle CSV. Raises InputDataError listing what is wrong."""
    csv_path = Path(path)
    table, line_numbers = _read_csv_table(csv_path)
    return _validate_table(
        table,
        source=str(csv_path),
        path=csv_path,
        locate=lambda position: f"line {line_numbers[position]}",
        min_rows=min_rows,
    )


def read_candles_text(text: str, *, source: str = "request body", min_rows: int = 2) -> Candles:
    """Validate candle CSV text (an upload, an HTTP body) with the rules of :func:`read_candles`;
    problems name ``source`` and the line within the text."""
    header, rows, line_numbers, ragged = _split_csv_rows(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    if header is None:
        raise InputDataError(f"{source} is empty", field="candles", hint=_CSV_LAYOUT_HINT)
    if ragged:
        _raise_ragged_rows(source, len(header), ragged)
    table = pd.DataFrame(rows, columns=[name.strip() for name in header], dtype=object)
    return _validate_table(table, source=source, path=None,
                           locate=lambda position: f"line {line_numbers[position]}", min_rows=min_rows)


def candles_from_records(records: Sequence[dict], *, source: str = "candles", min_rows: int = 2) -> Candles:
    """Validate candles given as records (JSON objects: a timestamp field, open, high, low,
    close[, volume, amount]) with the rules of :func:`read_candles`; a problem names the
    record by its 0-based index (``candles[3]``)."""
    if not isinstance(records, (list, tuple)) or not all(isinstance(r, dict) for r in records):
        raise InputDataError(f"{source}: expected a list of objects, one per bar", field="candles",
                             hint='give [{"timestamp": "2024-01-02T09:30:00", "open": 1, "high": 1, '
                                  '"low": 1, "close": 1}, ...]')
    table = pd.DataFrame.from_records(list(records)).astype(object)
    return _validate_table(table, source=source, path=None,
                           locate=lambda position: f"{source}[{position}]", min_rows=min_rows)


def validate_frame(df: pd.DataFrame, *, source: str = "DataFrame", min_rows: int = 2) -> Candles:
    """Validate a DataFrame of candles with the same rules as :func:`read_candles`.

    Rows are named by their 0-based position (``df.iloc[position]``), since a DataFrame has
    no lines. Without a timestamp column, a DatetimeIndex is used as the timestamps.
    """
    if not isinstance(df, pd.DataFrame):
        raise InputDataError(
            f"{source}: expected a pandas DataFrame of candles, got {type(df).__name__}",
            hint="pass a DataFrame with columns timestamps, open, high, low, close[, volume, amount]",
        )
    table = df.reset_index(drop=True)
    if isinstance(df.index, pd.DatetimeIndex) and _find_timestamp_column(df.columns) is None:
        table.insert(0, OUTPUT_TIMESTAMP_COLUMN, df.index.to_numpy())
    return _validate_table(
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


def tail_lookback(candles: Candles, lookback: int) -> Candles:
    """The last ``lookback`` rows of ``candles`` (the context the model sees)."""
    available = len(candles)
    if isinstance(lookback, bool) or not isinstance(lookback, (int, np.integer)) or lookback < 1:
        raise InputDataError(
            f"the lookback must be a whole number of at least 1, got {lookback!r}",
            path=_path_text(candles.path),
            field="lookback",
            hint=f"pass a lookback between 1 and {available} (the rows in {candles.source})",
        )
    if lookback > available:
        raise InputDataError(
            f"{candles.source} has {available} rows, fewer than the lookback of {lookback}",
            path=_path_text(candles.path),
            field="lookback",
            hint=f"use a lookback of at most {available}, or give a file with more history",
        )
    frame = candles.frame.iloc[-lookback:].reset_index(drop=True)
    timestamps = candles.timestamps.iloc[-lookback:].reset_index(drop=True)
    return Candles(frame=frame, timestamps=timestamps, path=candles.path, epoch_unit=candles.epoch_unit)


def write_forecast(path: str | os.PathLike, timestamps: Sequence | pd.Series, frame: pd.DataFrame) -> Path:
    """Write a forecast CSV: ``timestamps`` then open, high, low, close, volume, amount.

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


def read_future_timestamps(path: str | os.PathLike, *, pred_len: int, after) -> pd.Series:
    """The forecast's timestamps from a CSV: one timestamp column (named like the candles'
    one, or the file's only column; the header line may be left out), ``pred_len`` rows,
    strictly increasing, the first later than ``after`` (the last history bar)."""
    csv_path = Path(path)
    table, line_numbers = _read_csv_table(csv_path)
    column = _find_timestamp_column(table.columns)
    if column is None and len(table.columns) == 1:
        column = table.columns[0]
        if _looks_like_timestamp(column):  # no header line: the first line is a timestamp too
            table = pd.DataFrame({column: [column, *table[column]]}, dtype=object)
            line_numbers = [line_numbers[0] - 1 if line_numbers else 1, *line_numbers]
    if column is None:
        raise InputDataError(
            f"{csv_path}: no timestamp column among {', '.join(map(repr, table.columns))}",
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
                    locate: Callable[[int], str], pred_len_name: str) -> pd.Series:
    log = _ProblemLog()
    stamps = _parse_timestamps(column, name, log)
    _check_time_order(stamps, name, log, locate)
    if log.total:
        _raise_problems(log, source=source, path=path, locate=locate)
    if len(stamps) != pred_len:
        raise InputDataError(
            f"{source} has {len(stamps)} future timestamp(s), but {pred_len_name} is {pred_len}",
            path=_path_text(path), field=str(name),
            hint=f"give exactly {pred_len} timestamps (one per forecast bar), or set {pred_len_name} "
                 f"{len(stamps)}")
    last = pd.Timestamp(after)
    if stamps.iloc[0] <= last:
        raise InputDataError(
            f"{source}: {locate(0)}: the first future timestamp {stamps.iloc[0]} is not after "
            f"the last history bar {last}",
            path=_path_text(path), field=str(name),
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


# --------------------------------------------------------------------------------------
# Reading the CSV
# --------------------------------------------------------------------------------------


def _read_csv_table(path: Path) -> tuple[pd.DataFrame, list[int]]:
    """The CSV as a DataFrame of raw strings, plus each data row's line number in the file.

    The csv module (not pandas) reads it so that every row keeps its true line number,
    blank lines included, and so that row-length mistakes can be named.
    """
    _check_readable_file(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            header, rows, line_numbers, ragged = _split_csv_rows(csv.reader(handle))
    except UnicodeDecodeError as exc:
        raise InputDataError(
            f"{path} is not UTF-8 text (byte {exc.start}): is it a spreadsheet file rather than a CSV?",
            path=str(path),
            hint="export the sheet as 'CSV UTF-8' and pass that file",
        ) from exc
    except csv.Error as exc:
        raise InputDataError(
            f"{path} is not a valid CSV: {exc}", path=str(path), hint=_CSV_LAYOUT_HINT
        ) from exc
    if header is None:
        raise InputDataError(f"{path} is empty", path=str(path), hint=_CSV_LAYOUT_HINT)
    if ragged:
        _raise_ragged_rows(path, len(header), ragged)
    return pd.DataFrame(rows, columns=[name.strip() for name in header], dtype=object), line_numbers


def _check_readable_file(path: Path) -> None:
    if not path.exists():
        raise InputDataError(
            f"candle file {path} does not exist",
            path=str(path),
            hint=f"check the path (relative paths start at {Path.cwd()})",
        )
    if path.is_dir():
        raise InputDataError(
            f"{path} is a folder, not a candle CSV file",
            path=str(path),
            hint="pass the CSV file inside it",
        )


def _split_csv_rows(reader) -> tuple[list[str] | None, list[list[str]], list[int], list[tuple[int, int]]]:
    """Header, data rows, their line numbers, and (line, field count) of ragged rows."""
    header: list[str] | None = None
    rows: list[list[str]] = []
    line_numbers: list[int] = []
    ragged: list[tuple[int, int]] = []
    for row in reader:
        if not any(cell.strip() for cell in row):
            continue  # blank lines carry no bar; skipping them keeps later line numbers true
        if header is None:
            header = row
            continue
        if len(row) != len(header):
            ragged.append((reader.line_num, len(row)))
            continue
        rows.append(row)
        line_numbers.append(reader.line_num)
    return header, rows, line_numbers, ragged


def _raise_ragged_rows(path: Path | str, expected: int, ragged: list[tuple[int, int]]) -> None:
    shown = [f"  - line {line}: {count} fields" for line, count in ragged[:MAX_REPORTED_PROBLEMS]]
    more = len(ragged) - len(shown)
    if more:
        shown.append(f"  ... and {more} more")
    raise InputDataError(
        f"{path}: {len(ragged)} row(s) with a field count other than the header's {expected}:\n"
        + "\n".join(shown),
        path=str(path) if isinstance(path, Path) else None,
        hint="give every row one value per header column; quote values that contain commas",
    )


# --------------------------------------------------------------------------------------
# Finding the columns
# --------------------------------------------------------------------------------------


def _find_timestamp_column(columns) -> str | None:
    by_lower = {str(name).strip().lower(): name for name in columns}
    for candidate in TIMESTAMP_NAMES:
        if candidate in by_lower:
            return by_lower[candidate]
    return None


def _resolve_columns(columns: Sequence, *, source: str, path: Path | None) -> dict[str, str]:
    """Map each canonical name (timestamps, open, ..., amount present) to the table's column."""
    names = [str(name) for name in columns]
    _reject_duplicate_names(names, source=source, path=path)
    by_lower = {name.strip().lower(): name for name in names}
    resolved = {name: by_lower[name] for name in CANDLE_COLUMNS if name in by_lower}
    timestamp_column = _find_timestamp_column(names)
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
                path=_path_text(path),
                field=name,
                hint=f"rename or remove one of the two '{key}' columns",
            )
        seen[key] = name


def _raise_missing_columns(names: list[str], missing: list[str], *, timestamp_missing: bool,
                           source: str, path: Path | None) -> None:
    found = ", ".join(f"'{name}'" for name in names) or "none"
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
        path=_path_text(path),
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


# --------------------------------------------------------------------------------------
# Checking the cells
# --------------------------------------------------------------------------------------


@attrs.frozen
class _CellProblem:
    """One wrong cell (or, with position None, a problem with the whole table)."""

    position: int | None
    column: str | None
    message: str
    fix: str


@attrs.define
class _ProblemLog:
    """Collects problems, keeping only the first few of each kind but counting them all."""

    problems: list[_CellProblem] = attrs.Factory(list)
    total: int = 0

    def add_table_problem(self, column: str | None, message: str, fix: str) -> None:
        self.problems.append(_CellProblem(None, column, message, fix))
        self.total += 1

    def add_cells(self, positions: np.ndarray, column: str, describe: Callable[[int], str], fix: str) -> None:
        self.total += len(positions)
        for position in positions[:MAX_REPORTED_PROBLEMS]:
            self.problems.append(_CellProblem(int(position), column, describe(int(position)), fix))

    def first(self) -> list[_CellProblem]:
        """The problems to show: table-wide ones first, then by row."""
        ordered = sorted(self.problems, key=lambda p: (p.position is not None, p.position or 0))
        return ordered[:MAX_REPORTED_PROBLEMS]


def _validate_table(table: pd.DataFrame, *, source: str, path: Path | None,
                    locate: Callable[[int], str], min_rows: int) -> Candles:
    columns = _resolve_columns(list(table.columns), source=source, path=path)
    log = _ProblemLog()
    _check_row_count(len(table), min_rows, log)
    timestamp_column = columns[OUTPUT_TIMESTAMP_COLUMN]
    timestamps = _parse_timestamps(table[timestamp_column], timestamp_column, log)
    _check_time_order(timestamps, timestamp_column, log, locate)
    values = {name: _parse_numbers(table[columns[name]], columns[name], log)
              for name in CANDLE_COLUMNS if name in columns}
    _check_value_ranges(values, columns, log)
    if log.total:
        _raise_problems(log, source=source, path=path, locate=locate)
    frame = fill_volume_and_amount(pd.DataFrame(values))[list(CANDLE_COLUMNS)].astype("float64")
    return Candles(frame=frame, timestamps=timestamps.rename(OUTPUT_TIMESTAMP_COLUMN), path=path,
                   epoch_unit=_column_epoch_unit(table[timestamp_column]))


def _check_row_count(rows: int, min_rows: int, log: _ProblemLog) -> None:
    if rows < min_rows:
        counted = "1 row" if rows == 1 else f"{rows} rows"
        log.add_table_problem(
            None,
            f"only {counted} of candles, but at least {min_rows} are needed",
            f"give at least {min_rows} rows of history (more history gives the model more context)",
        )


def _as_clean_text(values: pd.Series) -> pd.Series:
    return values.astype("string").str.strip()


def _missing_mask(text: pd.Series) -> np.ndarray:
    return (text.isna() | text.str.lower().isin(_MISSING_TOKENS)).to_numpy(dtype=bool)


def _parse_numbers(values: pd.Series, column: str, log: _ProblemLog) -> np.ndarray:
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


def _parse_timestamps(values: pd.Series, column: str, log: _ProblemLog) -> pd.Series:
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


def _column_epoch_unit(values: pd.Series) -> str | None:
    """'s' or 'ms' when the column was read as Unix time (see _parse_epoch), else None."""
    if pd.api.types.is_datetime64_any_dtype(values):
        return None
    text = _as_clean_text(values)
    missing = _missing_mask(text)
    numbers = pd.to_numeric(text.mask(missing), errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    if not (~missing).any() or np.isnan(numbers[~missing]).any():
        return None
    return epoch_unit(numbers[~missing])


def _parse_epoch(text: pd.Series, missing: np.ndarray, column: str, log: _ProblemLog) -> pd.Series | None:
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


def _to_datetime_lenient(text: pd.Series, column: str, log: _ProblemLog) -> pd.Series:
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


def _check_time_order(timestamps: pd.Series, column: str, log: _ProblemLog,
                      locate: Callable[[int], str]) -> None:
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


def _check_value_ranges(values: dict[str, np.ndarray], columns: dict[str, str], log: _ProblemLog) -> None:
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


def _raise_problems(log: _ProblemLog, *, source: str, path: Path | None,
                    locate: Callable[[int], str]) -> None:
    shown = log.first()
    fixes = list(dict.fromkeys(problem.fix for problem in shown))
    first = shown[0]
    if log.total == 1:
        message = f"{source}: {_describe(first, locate)}"
    else:
        lines = [f"  - {_describe(problem, locate)}" for problem in shown]
        if log.total > len(shown):
            lines.append(f"  ... and {log.total - len(shown)} more")
        message = f"{source} has {log.total} problems in its candles:\n" + "\n".join(lines)
    raise InputDataError(message, path=_path_text(path), field=first.column, hint="; ".join(fixes))


def _describe(problem: _CellProblem, locate: Callable[[int], str]) -> str:
    where = [] if problem.position is None else [locate(problem.position)]
    if problem.column is not None:
        where.append(f"column '{problem.column}'")
    return f"{', '.join(where)}: {problem.message}" if where else problem.message


def _path_text(path: Path | None) -> str | None:
    return None if path is None else str(path)
