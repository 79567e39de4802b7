"""Compatibility: the documented path of the many-series job (it lives in ``services/many.py``)."""

from kronos_registry.services.many import (
    BadSeries,
    SeriesSet,
    forecast_frame,
    read_series,
    run_local,
    sort_output,
    split_series,
    write_output,
)

__all__ = ["BadSeries", "SeriesSet", "forecast_frame", "read_series", "run_local", "sort_output", "split_series",
           "write_output"]
