"""The candle columns: their canonical names and the accepted names of the timestamp column.

The one place the six Kronos input columns are spelled. The model family, the services and
the faces all read them from here, so a forecast's columns, a CSV's header and the model's
input order cannot drift apart.

No imports on purpose: the model code reads these names without loading pandas or the
registry engine.
"""

from __future__ import annotations

from typing import Iterable

# The model's six inputs, in the order it reads and writes them.
COLUMNS = ("open", "high", "low", "close", "volume", "amount")
PRICE_COLUMNS = COLUMNS[:4]
QUANTITY_COLUMNS = COLUMNS[4:]
CANDLE_COLUMNS = COLUMNS  # the name the candle readers have always exported

# A forecast's timestamp column, and the names a history's timestamp column may have
# (case-insensitive), in the order they are looked for.
OUTPUT_TIMESTAMP_COLUMN = "timestamps"
TIMESTAMP_NAMES = ("timestamps", "timestamp", "date", "datetime", "time")


def find_timestamp_column(columns: Iterable) -> str | None:
    """The column (as spelt in ``columns``) that holds the timestamps, or None."""
    by_lower = {str(name).strip().lower(): name for name in columns}
    for candidate in TIMESTAMP_NAMES:
        if candidate in by_lower:
            return by_lower[candidate]
    return None
