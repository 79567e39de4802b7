"""Compatibility: the documented path of the batched core (it lives in ``kronos/batch.py``).

``kronos_registry.batch.forecast_series`` and friends keep working; new code imports from
``kronos_registry`` or ``kronos_registry.kronos.batch`` (see docs/ARCHITECTURE.md).
"""

from kronos_registry.kronos.batch import SeriesForecast, SeriesRequest, forecast_series, series_seed
from kronos_registry.services.many import forecast_frame, long_frame

__all__ = ["SeriesForecast", "SeriesRequest", "forecast_frame", "forecast_series", "long_frame", "series_seed"]
