"""Candles (OHLCV bars) in and out: read, validate and write the tables that forecasts use.

One module per concern (docs/ARCHITECTURE.md):

    columns     the candle column names and the timestamp column's accepted names
    timestamps  epoch numbers, the bar interval, inferred future timestamps, gaps
    problems    collecting every problem, then raising one InputDataError
    cells       reading and checking cells: numbers, timestamps, time order, ranges
    series      Candles (validated candles) and the lookback tail the model sees
    validation  columns of a table -> Candles (the one set of rules for every reader)
    reading     a CSV file, CSV text or JSON records -> Candles
    future      the forecast's timestamps when given (a CSV or a request's list)
    writing     a forecast -> CSV

Every problem is an :class:`~registry.errors.InputDataError` that names the file (or the
DataFrame, or the request), the line or position, and the column, and says how to fix it;
up to ten are reported together so that one run shows what to correct. Only pandas and
numpy are used here: reading candles never imports torch.

The names below are imported on first use, so that the model family can read the column
names (``candles.columns``, which imports nothing) without loading pandas or the engine.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "kronos_registry.candles.columns": (
        "CANDLE_COLUMNS", "COLUMNS", "OUTPUT_TIMESTAMP_COLUMN", "PRICE_COLUMNS", "QUANTITY_COLUMNS",
        "TIMESTAMP_NAMES", "find_timestamp_column",
    ),
    "kronos_registry.candles.timestamps": (
        "EPOCH_UNIT_NAMES", "epoch_to_datetime", "epoch_unit", "future_timestamps", "infer_interval",
    ),
    "kronos_registry.candles.problems": ("MAX_REPORTED_PROBLEMS",),
    "kronos_registry.candles.series": ("Candles", "tail_lookback"),
    "kronos_registry.candles.validation": (
        "fill_volume_and_amount", "resolve_columns", "validate_frame", "validate_table",
    ),
    "kronos_registry.candles.reading": ("candles_from_records", "read_candles", "read_candles_text", "read_csv_table"),
    "kronos_registry.candles.future": ("future_timestamps_from_values", "read_future_timestamps"),
    "kronos_registry.candles.writing": ("write_forecast",),
    "kronos_registry.candles.repair": ("invalid_rows", "valid_candles"),
}
_HOME = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = [*_HOME]


def __getattr__(name: str):
    if name in _HOME:
        return getattr(importlib.import_module(_HOME[name]), name)
    raise AttributeError(f"module 'kronos_registry.candles' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
