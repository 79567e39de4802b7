"""Bar timestamps: epoch numbers, the bar interval, the forecast's future timestamps, gaps.

Pure pandas/numpy (no torch), shared by the candle reader and the forecast job.

- Epoch timestamps: a timestamp column of plain numbers is read as Unix time, seconds when
  every value lies in [1e8, 1e11) (1973..5138), milliseconds when in [1e11, 1e14). Unix
  time is UTC; the timestamps become UTC wall-clock times without a zone.
- Future timestamps continue the history's most common step (:func:`infer_interval`). A
  daily series with no Saturday or Sunday bar over a span that includes a weekend is a
  business-day series: its future skips weekends (holidays cannot be inferred). An
  intraday series whose every full day (all but the first and the last) holds the same bar
  times, fewer than a whole day's, has a session: its future walks those bar times, on
  business days when the history has no weekend bars. Anything else steps by the
  interval from the last bar; for exact times pass them (``predict --future-timestamps FILE``).
"""

from __future__ import annotations

from typing import Sequence

import attrs
import numpy as np
import pandas as pd

from kronos_registry.candles.columns import OUTPUT_TIMESTAMP_COLUMN
from registry.errors import InputDataError

# Plain numbers in these ranges are Unix time in that unit (1973-03-03 .. 5138-11-16 either way).
EPOCH_RANGES = (("s", 1e8, 1e11), ("ms", 1e11, 1e14))
EPOCH_UNIT_NAMES = {"s": "seconds", "ms": "milliseconds"}

_DAY = pd.Timedelta(days=1)


def epoch_unit(numbers: np.ndarray) -> str | None:
    """'s' or 'ms' when every (finite) number is Unix time in that unit, else None."""
    values = np.abs(numbers[np.isfinite(numbers)])
    if len(values) == 0:
        return None
    for unit, low, high in EPOCH_RANGES:
        if np.all((values >= low) & (values < high)):
            return unit
    return None


def epoch_to_datetime(numbers: np.ndarray, unit: str) -> pd.Series:
    """Unix time in ``unit`` -> naive UTC datetime64 (NaN stays NaT)."""
    return pd.Series(pd.to_datetime(numbers, unit=unit, utc=True).tz_localize(None))


def infer_interval(timestamps: Sequence | pd.Series | pd.DatetimeIndex) -> pd.Timedelta:
    """The bar interval: the most common positive step between consecutive timestamps.

    Using the mode rather than the minimum or the mean keeps overnight, weekend and lunch
    gaps (and an odd early bar) from skewing it. Ties go to the shorter step.
    """
    index = pd.DatetimeIndex(timestamps)
    if len(index) < 2:
        raise InputDataError(
            f"cannot infer the bar interval from {len(index)} timestamp(s)",
            field=OUTPUT_TIMESTAMP_COLUMN,
            hint="give at least 2 rows so that the spacing between bars is known",
        )
    steps = index[1:] - index[:-1]
    positive = steps[steps > pd.Timedelta(0)]
    if len(positive) == 0:
        raise InputDataError(
            "cannot infer the bar interval: no timestamp is later than the one before it",
            field=OUTPUT_TIMESTAMP_COLUMN,
            hint="sort the rows oldest first and remove repeated timestamps",
        )
    counts = pd.Series(positive).value_counts()
    most_common = counts[counts == counts.max()].index
    return pd.Timedelta(min(most_common))


def is_business_daily(index: pd.DatetimeIndex, interval: pd.Timedelta) -> bool:
    """Daily bars, none on a Saturday or Sunday, over a span that contains a weekend."""
    if interval != _DAY or len(index) < 2:
        return False
    return not np.any(index.day_of_week >= 5) and _spans_a_weekend(index)


def _spans_a_weekend(index: pd.DatetimeIndex) -> bool:
    days = pd.date_range(index[0].normalize(), index[-1].normalize(), freq="D")
    return bool(np.any(days.day_of_week == 5))


@attrs.frozen
class Session:
    """The bar times of every full day (offsets from midnight), and whether weekends are closed."""

    times: tuple[pd.Timedelta, ...]
    business_days: bool

    def next_day(self, day: pd.Timestamp) -> pd.Timestamp:
        return day + (pd.offsets.BDay(1) if self.business_days else pd.Timedelta(days=1))

    def describe(self) -> str:
        days = "business days" if self.business_days else "every day"
        return (f"the history's daily session ({len(self.times)} bars, {_clock(self.times[0])}.."
                f"{_clock(self.times[-1])}), {days}")


def infer_session(index: pd.DatetimeIndex, interval: pd.Timedelta) -> Session | None:
    """The session when it can be inferred safely (see the module docstring), else None."""
    if interval >= _DAY or len(index) < 2:
        return None
    days = index.normalize()
    offsets = pd.Series(list(index - days))  # Timedelta objects, whatever the index's resolution
    per_day = offsets.groupby(np.asarray(days), sort=True).agg(tuple)
    if len(per_day) < 4:  # the first and last days may be partial: want two full ones between
        return None
    full = set(per_day.iloc[1:-1])
    if len(full) != 1:
        return None
    grid = next(iter(full))
    if len(grid) * interval >= _DAY:  # no closure at all: plain steps are right
        return None
    if per_day.iloc[-1] != grid[:len(per_day.iloc[-1])] or not set(per_day.iloc[0]) <= set(grid):
        return None
    business = not np.any(index.day_of_week >= 5) and _spans_a_weekend(index)
    return Session(tuple(grid), business)


def _session_future(last: pd.Timestamp, session: Session, pred_len: int) -> pd.DatetimeIndex:
    day = last.normalize()
    position = session.times.index(last - day) + 1
    out = []
    while len(out) < pred_len:
        if position == len(session.times):
            day, position = session.next_day(day), 0
        out.append(day + session.times[position])
        position += 1
    return pd.DatetimeIndex(out)


def _clock(offset: pd.Timedelta) -> str:
    minutes = int(offset.total_seconds()) // 60
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


@attrs.frozen(eq=False)
class FutureTimes:
    """The forecast's timestamps and, for the summary, how they were made."""

    timestamps: pd.Series
    method: str
    interval: pd.Timedelta | None = None
    business_days: bool = False
    session: Session | None = None


def plan_future(timestamps: Sequence | pd.Series | pd.DatetimeIndex, pred_len: int) -> FutureTimes:
    """The ``pred_len`` timestamps after the last one (see the module docstring for the rules)."""
    _check_pred_len(pred_len)
    index = pd.DatetimeIndex(timestamps)
    interval = infer_interval(index)
    steps = np.arange(1, int(pred_len) + 1)
    if is_business_daily(index, interval):
        last = index[-1]
        future = pd.DatetimeIndex([last + pd.offsets.BDay(int(k)) for k in steps])
        method = "business days after the last bar (the history has no weekend bars; holidays not skipped)"
        return FutureTimes(pd.Series(future, name=OUTPUT_TIMESTAMP_COLUMN), method, interval, True)
    session = infer_session(index, interval)
    if session is not None:
        future = _session_future(index[-1], session, int(pred_len))
        return FutureTimes(pd.Series(future, name=OUTPUT_TIMESTAMP_COLUMN), session.describe(), interval,
                           session=session)
    future = index[-1] + pd.to_timedelta(steps * interval.value, unit="ns")
    method = f"every {interval_text(interval)} after the last bar"
    if interval < _DAY:
        method += " (market closures not skipped; --future-timestamps FILE sets exact times)"
    return FutureTimes(pd.Series(future, name=OUTPUT_TIMESTAMP_COLUMN), method, interval)


def future_timestamps(timestamps: Sequence | pd.Series | pd.DatetimeIndex, pred_len: int) -> pd.Series:
    """The ``pred_len`` timestamps after the last one: ``last + k * interval``, k = 1..pred_len,
    except that a business-day series skips weekends (see :func:`plan_future`)."""
    return plan_future(timestamps, pred_len).timestamps


@attrs.frozen
class Gaps:
    """Steps in the history longer than the bar interval (business days: a skipped weekday)."""

    count: int
    largest: pd.Timedelta | None = None
    start: pd.Timestamp | None = None  # the bar before the largest gap
    end: pd.Timestamp | None = None    # the bar after it

    def describe(self) -> str:
        if not self.count:
            return "none"
        return (f"{self.count} (largest {interval_text(self.largest)}: "
                f"{self.start:%Y-%m-%d %H:%M} -> {self.end:%Y-%m-%d %H:%M})")


def find_gaps(timestamps: Sequence | pd.Series | pd.DatetimeIndex, interval: pd.Timedelta,
              *, business_days: bool = False, session: Session | None = None) -> Gaps:
    """With a session, a gap is a missing session bar (closures are not gaps)."""
    index = pd.DatetimeIndex(timestamps)
    if len(index) < 2:
        return Gaps(0)
    steps = index[1:] - index[:-1]
    if session is not None:
        expected = [_session_future(bar, session, 1)[0] if bar - bar.normalize() in session.times else bar
                    for bar in index[:-1]]
        gap = np.asarray(index[1:] > pd.DatetimeIndex(expected))
    elif business_days:
        days = index.normalize().to_numpy().astype("datetime64[D]")
        gap = np.busday_count(days[:-1], days[1:]) > 1
    else:
        gap = np.asarray(steps > interval)
    positions = np.flatnonzero(gap)
    if len(positions) == 0:
        return Gaps(0)
    widest = positions[int(np.argmax(np.asarray(steps[positions])))]
    return Gaps(len(positions), pd.Timedelta(steps[widest]), index[widest], index[widest + 1])


def interval_text(delta: pd.Timedelta) -> str:
    """5min, 1h, 1d, 22h 10min, 2d 17h 35min, 1min 30s."""
    seconds = int(pd.Timedelta(delta).total_seconds())
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return " ".join(parts) or "0s"


def _check_pred_len(pred_len) -> None:
    if isinstance(pred_len, bool) or not isinstance(pred_len, (int, np.integer)) or pred_len < 1:
        raise InputDataError(
            f"the prediction length must be a whole number of at least 1, got {pred_len!r}",
            field="pred_len",
            hint="pass a positive number of bars to forecast, e.g. --pred-len 24",
        )
