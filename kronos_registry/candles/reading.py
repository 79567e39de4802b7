"""Reading candles: a CSV file, CSV text (an upload, an HTTP body) or JSON records -> Candles.

A candle CSV has a header line and one row per bar::

    timestamps,open,high,low,close,volume,amount
    2024-01-02 09:30:00,100.0,100.4,99.8,100.2,1200,120240

The csv module (not pandas) reads it, so that every row keeps its true line number (data
row ``i`` is line ``i + 1``, as a spreadsheet shows it, blank lines counted) and rows with
the wrong number of fields can be named. The cells are then judged by ``validation.py``.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Sequence

import attrs
import pandas as pd

from kronos_registry.candles.columns import OUTPUT_TIMESTAMP_COLUMN, find_timestamp_column
from kronos_registry.candles.problems import MAX_REPORTED_PROBLEMS
from kronos_registry.candles.series import Candles
from kronos_registry.candles.validation import validate_table
from registry.errors import InputDataError

_CSV_LAYOUT_HINT = (
    "the file needs a header line such as "
    "'timestamps,open,high,low,close,volume,amount' and then one row per bar"
)


def read_candles(path: str | os.PathLike, *, min_rows: int = 2) -> Candles:
    """Read and validate a candle CSV. Raises InputDataError listing what is wrong."""
    csv_path = Path(path)
    table, line_numbers = read_csv_table(csv_path)
    table, notes = _name_an_unnamed_index(table, str(csv_path))
    candles = validate_table(
        table,
        source=str(csv_path),
        path=csv_path,
        locate=lambda position: f"line {line_numbers[position]}",
        min_rows=min_rows,
    )
    return attrs.evolve(candles, notes=notes)


def _name_an_unnamed_index(table: pd.DataFrame, source: str) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """A CSV written by pandas with its index (``df.to_csv(path)``) has an unnamed first column,
    the header starting with a comma; without another timestamp column, that one is read as
    the timestamps, and a note says so."""
    first = str(table.columns[0]) if len(table.columns) else "x"
    if first.strip() or find_timestamp_column(table.columns[1:]) is not None:
        return table, ()
    note = (f"note: read the unnamed first column of {source} as timestamps (a pandas index, as "
            "df.to_csv writes it; name it 'timestamps' to silence this)")
    return table.rename(columns={table.columns[0]: OUTPUT_TIMESTAMP_COLUMN}), (note,)


def read_candles_text(text: str, *, source: str = "request body", min_rows: int = 2) -> Candles:
    """Validate candle CSV text (an upload, an HTTP body) with the rules of :func:`read_candles`;
    problems name ``source`` and the line within the text."""
    header, rows, line_numbers, ragged = _split_csv_rows(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    if header is None:
        raise InputDataError(f"{source} is empty", field="candles", hint=_CSV_LAYOUT_HINT)
    if ragged:
        _raise_ragged_rows(source, len(header), ragged)
    table, notes = _name_an_unnamed_index(pd.DataFrame(rows, columns=[name.strip() for name in header], dtype=object),
                                          source)
    candles = validate_table(table, source=source, path=None,
                             locate=lambda position: f"line {line_numbers[position]}", min_rows=min_rows)
    return attrs.evolve(candles, notes=notes)


def candles_from_records(records: Sequence[dict], *, source: str = "candles", min_rows: int = 2) -> Candles:
    """Validate candles given as records (JSON objects: a timestamp field, open, high, low,
    close[, volume, amount]) with the rules of :func:`read_candles`; a problem names the
    record by its 0-based index (``candles[3]``)."""
    if not isinstance(records, (list, tuple)) or not all(isinstance(r, dict) for r in records):
        raise InputDataError(f"{source}: expected a list of objects, one per bar", field="candles",
                             hint='give [{"timestamp": "2024-01-02T09:30:00", "open": 1, "high": 1, '
                                  '"low": 1, "close": 1}, ...]')
    table = pd.DataFrame.from_records(list(records)).astype(object)
    return validate_table(table, source=source, path=None,
                           locate=lambda position: f"{source}[{position}]", min_rows=min_rows)


def read_csv_table(path: Path) -> tuple[pd.DataFrame, list[int]]:
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
