"""Tests of kronos_registry.candles: reading, validating and writing candle CSVs."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kronos_registry.candles import (
    CANDLE_COLUMNS,
    Candles,
    future_timestamps,
    infer_interval,
    read_candles,
    tail_lookback,
    validate_frame,
    write_forecast,
)
from registry.errors import InputDataError

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLE_CSV = REPO_ROOT / "kronos_registry" / "data" / "sample_candles.csv"
SAMPLE_SCRIPT = REPO_ROOT / "scripts" / "make_sample_candles.py"
REAL_CSV = Path(__file__).resolve().parents[2] / "shared" / "data" / "xshg_5min_regression_input.csv"

HEADER = "timestamps,open,high,low,close,volume,amount"
GOOD_ROWS = [
    "2024-01-02 09:30:00,10.0,10.5,9.8,10.2,100,1020",
    "2024-01-02 09:35:00,10.2,10.6,10.1,10.4,120,1248",
    "2024-01-02 09:40:00,10.4,10.7,10.3,10.5,90,945",
]


def write_csv(tmp_path: Path, lines: list[str], name: str = "candles.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def with_row(index: int, row: str) -> list[str]:
    """The good file with data row ``index`` (0-based) replaced; it sits on line index + 2."""
    rows = list(GOOD_ROWS)
    rows[index] = row
    return [HEADER, *rows]


def read_error(path: Path, **kwargs) -> InputDataError:
    with pytest.raises(InputDataError) as caught:
        read_candles(path, **kwargs)
    return caught.value


def assert_names(error: InputDataError, path: Path, *, line: int | None = None, column: str | None = None):
    text = str(error)
    assert str(path) in text
    assert error.path == str(path)
    if line is not None:
        assert f"line {line}" in text
    if column is not None:
        assert f"'{column}'" in text
        assert error.field == column
    assert "hint:" in text, "every error says how to fix it"
    assert error.exit_code == 9


# --- errors about the file and its columns --------------------------------------------


def test_missing_file_names_the_path(tmp_path):
    path = tmp_path / "nope.csv"
    error = read_error(path)
    assert_names(error, path)
    assert "does not exist" in str(error)


def test_folder_instead_of_file(tmp_path):
    error = read_error(tmp_path)
    assert "folder" in str(error)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("")
    error = read_error(path)
    assert_names(error, path)
    assert "is empty" in str(error)
    assert "timestamps,open,high,low,close" in str(error)


def test_missing_required_column_lists_found_columns_and_suggests(tmp_path):
    path = write_csv(tmp_path, ["timestamps,opn,high,low,close", "2024-01-02,1,1,1,1"])
    error = read_error(path)
    assert_names(error, path, column="open")
    text = str(error)
    assert "found columns: 'timestamps', 'opn', 'high', 'low', 'close'" in text
    assert "did you mean 'opn' for 'open'?" in text


def test_missing_timestamp_column_lists_accepted_names(tmp_path):
    path = write_csv(tmp_path, ["when,open,high,low,close", "2024-01-02,1,1,1,1"])
    error = read_error(path)
    assert_names(error, path)
    assert error.field == "timestamps"
    assert "accepted names: timestamps, timestamp, date, datetime, time" in str(error)


def test_semicolon_separated_file_gets_a_separator_hint(tmp_path):
    path = write_csv(tmp_path, ["timestamps;open;high;low;close", "2024-01-02;1;1;1;1"])
    assert "commas as separators" in str(read_error(path))


def test_row_with_wrong_number_of_fields(tmp_path):
    path = write_csv(tmp_path, with_row(1, "2024-01-02 09:35:00,10.2,10.6"))
    error = read_error(path)
    assert_names(error, path, line=3)
    assert "3 fields" in str(error)


def test_not_utf8(tmp_path):
    path = tmp_path / "sheet.csv"
    path.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1 binary")
    assert "not UTF-8" in str(read_error(path))


# --- errors about cells: each names file, line and column ------------------------------


def test_non_numeric_cell(tmp_path):
    path = write_csv(tmp_path, with_row(1, "2024-01-02 09:35:00,10.2,ten,10.1,10.4,120,1248"))
    error = read_error(path)
    assert_names(error, path, line=3, column="high")
    assert "'ten' is not a number" in str(error)


@pytest.mark.parametrize("cell", ["", "NaN", "nan", "NA"])
def test_empty_or_nan_cell(tmp_path, cell):
    path = write_csv(tmp_path, with_row(2, f"2024-01-02 09:40:00,10.4,10.7,10.3,{cell},90,945"))
    error = read_error(path)
    assert_names(error, path, line=4, column="close")
    assert "missing value" in str(error)


def test_unparseable_timestamp(tmp_path):
    path = write_csv(tmp_path, with_row(1, "yesterday,10.2,10.6,10.1,10.4,120,1248"))
    error = read_error(path)
    assert_names(error, path, line=3, column="timestamps")
    assert "'yesterday' is not a date and time" in str(error)


def test_empty_timestamp(tmp_path):
    path = write_csv(tmp_path, with_row(0, ",10.0,10.5,9.8,10.2,100,1020"))
    assert_names(read_error(path), path, line=2, column="timestamps")


def test_duplicate_timestamp_names_both_lines(tmp_path):
    path = write_csv(tmp_path, with_row(2, "2024-01-02 09:35:00,10.4,10.7,10.3,10.5,90,945"))
    error = read_error(path)
    assert_names(error, path, line=4, column="timestamps")
    assert "duplicate timestamp, same as line 3" in str(error)


def test_timestamp_going_backwards(tmp_path):
    path = write_csv(tmp_path, with_row(2, "2024-01-02 09:00:00,10.4,10.7,10.3,10.5,90,945"))
    error = read_error(path)
    assert_names(error, path, line=4, column="timestamps")
    assert "is earlier than" in str(error)
    assert "oldest first" in str(error)


def test_newest_first_file_is_one_problem(tmp_path):
    path = write_csv(tmp_path, [HEADER, *reversed(GOOD_ROWS)])
    error = read_error(path)
    assert_names(error, path, column="timestamps")
    assert "newest first" in str(error)
    assert "problems" not in str(error)


def test_too_few_rows_says_how_many(tmp_path):
    path = write_csv(tmp_path, [HEADER, GOOD_ROWS[0]])
    error = read_error(path)
    assert_names(error, path)
    assert "only 1 row" in str(error) and "at least 2" in str(error)
    error = read_error(write_csv(tmp_path, [HEADER, *GOOD_ROWS], "three.csv"), min_rows=5)
    assert "only 3 rows" in str(error) and "at least 5" in str(error)


def test_header_only_file_has_zero_rows(tmp_path):
    path = write_csv(tmp_path, [HEADER])
    assert "only 0 rows" in str(read_error(path))


def test_negative_price(tmp_path):
    path = write_csv(tmp_path, with_row(1, "2024-01-02 09:35:00,-10.2,10.6,10.1,10.4,120,1248"))
    error = read_error(path)
    assert_names(error, path, line=3, column="open")
    assert "negative price -10.2" in str(error)


def test_negative_volume(tmp_path):
    path = write_csv(tmp_path, with_row(1, "2024-01-02 09:35:00,10.2,10.6,10.1,10.4,-120,1248"))
    error = read_error(path)
    assert_names(error, path, line=3, column="volume")
    assert "negative volume -120" in str(error)


def test_high_below_low(tmp_path):
    path = write_csv(tmp_path, with_row(2, "2024-01-02 09:40:00,10.4,10.3,10.7,10.5,90,945"))
    error = read_error(path)
    assert_names(error, path, line=4, column="high")
    assert "high 10.3 is below low 10.7" in str(error)


def test_several_problems_are_reported_together(tmp_path):
    path = write_csv(tmp_path, [
        HEADER,
        "2024-01-02 09:30:00,10.0,10.5,9.8,abc,100,1020",
        "later,10.2,10.6,10.1,10.4,120,1248",
        "2024-01-02 09:40:00,10.4,10.3,10.7,10.5,-5,945",
    ])
    text = str(read_error(path))
    assert "4 problems" in text
    for expected in ["line 2, column 'close'", "line 3, column 'timestamps'",
                     "line 4, column 'high'", "line 4, column 'volume'"]:
        assert expected in text
    # One fix per kind of problem, not one per cell.
    assert text.count("write a plain number") == 1


def test_at_most_ten_problems_are_listed(tmp_path):
    rows = [f"2024-01-02 10:{minute:02d}:00,x,10.5,9.8,10.2,100,1020" for minute in range(25)]
    text = str(read_error(write_csv(tmp_path, [HEADER, *rows])))
    assert "25 problems" in text
    assert text.count("  - line") == 10
    assert "... and 15 more" in text
    assert "line 11," in text and "line 12," not in text


def test_blank_lines_keep_line_numbers_true(tmp_path):
    path = write_csv(tmp_path, [HEADER, GOOD_ROWS[0], "", "2024-01-02 09:35:00,10.2,oops,10.1,10.4,120,1248"])
    assert_names(read_error(path), path, line=4, column="high")


# --- reading good files ----------------------------------------------------------------


@pytest.mark.parametrize("time_name", ["timestamps", "Timestamp", "DATE", "Datetime", "time"])
def test_columns_are_case_insensitive_and_normalised(tmp_path, time_name):
    path = write_csv(tmp_path, [
        f"{time_name},Open,HIGH,Low,Close,Volume,Amount,Ticker",
        *[row + ",ABC" for row in GOOD_ROWS],
    ])
    candles = read_candles(path)
    assert list(candles.frame.columns) == list(CANDLE_COLUMNS)
    assert (candles.frame.dtypes == "float64").all()
    assert candles.timestamps.name == "timestamps"
    assert pd.api.types.is_datetime64_any_dtype(candles.timestamps)
    assert candles.path == path
    assert len(candles) == 3
    assert candles.frame.loc[1, "close"] == 10.4


def test_error_uses_the_files_own_column_name(tmp_path):
    path = write_csv(tmp_path, ["Date,Open,High,Low,Close", "2024-01-02,1,1,1,1", "2024-01-03,1,x,1,1"])
    assert_names(read_error(path), path, line=3, column="High")


def test_volume_and_amount_absent_become_zero(tmp_path):
    path = write_csv(tmp_path, ["timestamps,open,high,low,close", *[",".join(r.split(",")[:5]) for r in GOOD_ROWS]])
    frame = read_candles(path).frame
    assert (frame["volume"] == 0).all() and (frame["amount"] == 0).all()


def test_amount_absent_is_volume_times_mean_price(tmp_path):
    path = write_csv(tmp_path, ["timestamps,open,high,low,close,volume", *[",".join(r.split(",")[:6]) for r in GOOD_ROWS]])
    frame = read_candles(path).frame
    expected = frame["volume"] * frame[["open", "high", "low", "close"]].mean(axis=1)
    np.testing.assert_allclose(frame["amount"], expected)
    assert frame.loc[0, "amount"] == pytest.approx(100 * (10.0 + 10.5 + 9.8 + 10.2) / 4)


def test_amount_without_volume_is_zeroed_like_upstream(tmp_path):
    rows = [",".join(r.split(",")[:5] + [r.split(",")[6]]) for r in GOOD_ROWS]
    frame = read_candles(write_csv(tmp_path, ["timestamps,open,high,low,close,amount", *rows])).frame
    assert (frame["volume"] == 0).all() and (frame["amount"] == 0).all()


def test_non_iso_timestamps_are_read(tmp_path):
    path = write_csv(tmp_path, ["timestamps,open,high,low,close",
                                "2024-01-02T09:30,1,1,1,1", "2024-01-02 09:35:00,1,1,1,1", "01/02/2024 09:40,1,1,1,1"])
    stamps = read_candles(path).timestamps
    assert list(stamps) == list(pd.date_range("2024-01-02 09:30", periods=3, freq="5min"))


def test_sample_csv_reads_clean():
    candles = read_candles(SAMPLE_CSV)
    assert 256 <= len(candles) <= 1024
    assert infer_interval(candles.timestamps) == pd.Timedelta(minutes=5)
    assert candles.timestamps.iloc[0] == pd.Timestamp("2024-01-02 09:30")
    frame = candles.frame
    assert (frame["high"] >= frame[["open", "close"]].max(axis=1)).all()
    assert (frame["low"] <= frame[["open", "close"]].min(axis=1)).all()
    assert (frame[["volume", "amount"]] > 0).all().all()
    assert SAMPLE_CSV.read_text().splitlines()[0] == HEADER


def load_sample_script():
    spec = importlib.util.spec_from_file_location("make_sample_candles", SAMPLE_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sample_script_is_deterministic_and_matches_the_shipped_file(tmp_path):
    script = load_sample_script()
    first = script.make_sample_candles(tmp_path / "a.csv")
    second = script.make_sample_candles(tmp_path / "b.csv")
    assert first.read_bytes() == second.read_bytes()
    assert first.read_bytes() == SAMPLE_CSV.read_bytes(), "rerun scripts/make_sample_candles.py"
    assert "synthetic" in script.__doc__.lower()


@pytest.mark.skipif(not REAL_CSV.exists(), reason=f"real candle file absent: {REAL_CSV}")
def test_real_xshg_file_reads_with_a_five_minute_interval():
    candles = read_candles(REAL_CSV)
    assert len(candles) == 2500
    assert infer_interval(candles.timestamps) == pd.Timedelta(minutes=5)


# --- DataFrames ------------------------------------------------------------------------


def good_frame() -> pd.DataFrame:
    return pd.read_csv(SAMPLE_CSV, nrows=5)


def test_validate_frame_accepts_a_good_frame():
    candles = validate_frame(good_frame())
    assert isinstance(candles, Candles)
    assert candles.path is None
    assert list(candles.frame.columns) == list(CANDLE_COLUMNS)
    assert pd.api.types.is_datetime64_any_dtype(candles.timestamps)


def test_validate_frame_names_positions_and_source():
    frame = good_frame()
    frame.loc[3, "close"] = np.nan
    with pytest.raises(InputDataError) as caught:
        validate_frame(frame, source="my_frame")
    text = str(caught.value)
    assert "my_frame" in text and "position 3" in text and "'close'" in text
    assert caught.value.field == "close"


def test_validate_frame_uses_a_datetime_index():
    frame = good_frame()
    frame.index = pd.DatetimeIndex(frame.pop("timestamps"))
    candles = validate_frame(frame)
    assert candles.timestamps.iloc[0] == pd.Timestamp("2024-01-02 09:30")


def test_validate_frame_rejects_non_frames():
    with pytest.raises(InputDataError, match="DataFrame"):
        validate_frame([1, 2, 3])


# --- intervals and future timestamps ---------------------------------------------------


def test_interval_is_the_most_common_step_despite_gaps():
    morning = pd.date_range("2024-01-05 09:30", periods=24, freq="5min")  # a Friday
    monday = pd.date_range("2024-01-08 09:30", periods=24, freq="5min")
    lunch = pd.date_range("2024-01-08 13:00", periods=3, freq="5min")
    stamps = morning.append(monday).append(lunch)
    assert infer_interval(stamps) == pd.Timedelta(minutes=5)
    assert infer_interval(pd.Series(stamps)) == pd.Timedelta(minutes=5)


def test_interval_tie_goes_to_the_shorter_step():
    stamps = pd.to_datetime(["2024-01-01 00:00", "2024-01-01 00:01", "2024-01-01 00:03"])
    assert infer_interval(stamps) == pd.Timedelta(minutes=1)


def test_interval_needs_two_rows():
    with pytest.raises(InputDataError, match="at least 2 rows"):
        infer_interval(pd.to_datetime(["2024-01-01"]))


def test_future_timestamps_follow_the_last_bar():
    stamps = pd.Series(pd.date_range("2024-01-02 09:30", periods=10, freq="5min"))
    future = future_timestamps(stamps, 3)
    assert list(future) == list(pd.date_range("2024-01-02 10:20", periods=3, freq="5min"))
    assert future.name == "timestamps"


def test_future_timestamps_do_not_skip_closures():
    stamps = pd.date_range("2024-01-05 15:50", periods=3, freq="5min")  # Friday afternoon
    assert future_timestamps(stamps, 1).iloc[0] == pd.Timestamp("2024-01-05 16:05")


@pytest.mark.parametrize("pred_len", [0, -1, 2.5, True])
def test_future_timestamps_reject_bad_lengths(pred_len):
    stamps = pd.date_range("2024-01-02", periods=3, freq="D")
    with pytest.raises(InputDataError, match="prediction length"):
        future_timestamps(stamps, pred_len)


# --- lookback --------------------------------------------------------------------------


def test_tail_lookback_keeps_the_last_rows():
    candles = read_candles(SAMPLE_CSV)
    tail = tail_lookback(candles, 10)
    assert len(tail) == 10
    assert tail.timestamps.iloc[-1] == candles.timestamps.iloc[-1]
    assert tail.frame.index.tolist() == list(range(10))
    pd.testing.assert_frame_equal(tail.frame, candles.frame.iloc[-10:].reset_index(drop=True))


def test_tail_lookback_larger_than_the_file_says_how_many_rows():
    candles = read_candles(SAMPLE_CSV)
    with pytest.raises(InputDataError) as caught:
        tail_lookback(candles, len(candles) + 1)
    assert f"has {len(candles)} rows" in str(caught.value)
    assert str(SAMPLE_CSV) in str(caught.value)


@pytest.mark.parametrize("lookback", [0, -3])
def test_tail_lookback_must_be_positive(lookback):
    with pytest.raises(InputDataError, match="at least 1"):
        tail_lookback(read_candles(SAMPLE_CSV), lookback)


# --- writing forecasts -----------------------------------------------------------------


def test_write_forecast_round_trips(tmp_path):
    history = read_candles(SAMPLE_CSV)
    stamps = future_timestamps(history.timestamps, 4)
    forecast = history.frame.iloc[:4].reset_index(drop=True) * 1.01
    out = write_forecast(tmp_path / "nested" / "forecast.csv", stamps, forecast)
    assert out.read_text().splitlines()[0] == HEADER
    back = read_candles(out)
    pd.testing.assert_frame_equal(back.frame, forecast)
    assert list(back.timestamps) == list(stamps)


def test_write_forecast_needs_all_six_columns(tmp_path):
    frame = pd.DataFrame({"open": [1.0], "close": [1.0]})
    with pytest.raises(InputDataError, match="high, low, volume, amount"):
        write_forecast(tmp_path / "f.csv", pd.to_datetime(["2024-01-01"]), frame)


def test_write_forecast_needs_one_timestamp_per_row(tmp_path):
    frame = pd.DataFrame({name: [1.0, 1.0] for name in CANDLE_COLUMNS})
    with pytest.raises(InputDataError, match="1 timestamps for 2 forecast rows"):
        write_forecast(tmp_path / "f.csv", pd.to_datetime(["2024-01-01"]), frame)


# --- candle files people actually have (issue 10, item 6) -------------------------------

EPOCH_FIRST = pd.Timestamp("2024-01-02 09:30:00")  # 1704187800 s since 1970-01-01 UTC


def epoch_rows(scale: int) -> list[str]:
    seconds = int(EPOCH_FIRST.timestamp())  # a naive Timestamp is taken as UTC
    return [f"{(seconds + 300 * i) * scale},10.0,10.5,9.8,10.2,100,1020" for i in range(3)]


@pytest.mark.parametrize("scale", [1, 1000], ids=["seconds", "milliseconds"])
def test_epoch_timestamps_are_read_as_utc(tmp_path, scale):
    path = write_csv(tmp_path, [HEADER, *epoch_rows(scale)])
    candles = read_candles(path)
    stamps = candles.timestamps
    assert list(stamps) == list(pd.date_range(EPOCH_FIRST, periods=3, freq="5min"))
    assert candles.epoch_unit == {1: "s", 1000: "ms"}[scale]
    assert read_candles(SAMPLE_CSV).epoch_unit is None
    frame = pd.DataFrame({"timestamps": [int(c.split(",")[0]) for c in epoch_rows(scale)],
                          "open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0})
    assert list(validate_frame(frame).timestamps) == list(stamps)


def test_epoch_timestamps_mixing_units_is_one_clear_problem(tmp_path):
    rows = epoch_rows(1)
    rows[1] = epoch_rows(1000)[1]
    path = write_csv(tmp_path, [HEADER, *rows])
    error = read_error(path)
    assert "mix seconds and milliseconds" in str(error)
    assert_names(error, path, column="timestamps")


def test_compact_dates_are_not_mistaken_for_epoch_numbers(tmp_path):
    path = write_csv(tmp_path, ["date,open,high,low,close", "20240102,1,1,1,1", "20240103,1,1,1,1"])
    assert list(read_candles(path).timestamps) == [pd.Timestamp("2024-01-02"), pd.Timestamp("2024-01-03")]


def business_days(start: str, periods: int, time: str = "") -> pd.DatetimeIndex:
    return pd.bdate_range(start, periods=periods) + pd.Timedelta(f"{time or '00:00'}:00")


def test_future_of_a_business_day_series_skips_weekends():
    history = business_days("2024-01-01", 30, "15:00")  # ends on Friday 2024-02-09
    future = future_timestamps(history, 3)
    assert list(future) == [pd.Timestamp("2024-02-12 15:00"), pd.Timestamp("2024-02-13 15:00"),
                            pd.Timestamp("2024-02-14 15:00")]


def test_future_of_a_daily_series_with_weekend_bars_keeps_every_day():
    history = pd.date_range("2024-01-01", periods=30, freq="D")  # crypto: every day, ends on a Tuesday
    assert list(future_timestamps(history, 5)) == list(pd.date_range("2024-01-31", periods=5, freq="D"))


def test_future_of_a_few_weekdays_is_not_guessed_to_be_business_days():
    history = pd.date_range("2024-01-01", periods=4, freq="D")  # Mon..Thu: no weekend seen yet
    assert list(future_timestamps(history, 3)) == list(pd.date_range("2024-01-05", periods=3, freq="D"))


def test_plan_future_says_how_the_timestamps_were_made():
    from kronos_registry.candles.timestamps import plan_future

    assert "business days" in plan_future(business_days("2024-01-01", 30), 2).method
    intraday = plan_future(pd.date_range("2024-01-02 09:30", periods=10, freq="5min"), 2).method
    assert "every 5min" in intraday and "--future-timestamps" in intraday


def test_gaps_are_counted_with_the_largest_named():
    from kronos_registry.candles.timestamps import find_gaps

    stamps = pd.date_range("2024-01-02 09:30", periods=10, freq="5min").append(
        pd.date_range("2024-01-02 11:00", periods=5, freq="5min")).append(
        pd.date_range("2024-01-03 09:30", periods=5, freq="5min"))
    gaps = find_gaps(stamps, pd.Timedelta("5min"))
    assert (gaps.count, gaps.largest) == (2, pd.Timestamp("2024-01-03 09:30") - pd.Timestamp("2024-01-02 11:20"))
    assert gaps.describe() == "2 (largest 22h 10min: 2024-01-02 11:20 -> 2024-01-03 09:30)"
    weekdays = business_days("2024-01-01", 20)
    assert find_gaps(weekdays, pd.Timedelta("1D"), business_days=True).count == 0  # weekends are no gaps
    holiday = weekdays.delete(7)
    assert find_gaps(holiday, pd.Timedelta("1D"), business_days=True).count == 1


def read_future(tmp_path, lines, pred_len=3, after="2024-01-02 09:40"):
    from kronos_registry.candles import read_future_timestamps

    return read_future_timestamps(write_csv(tmp_path, lines, "future.csv"), pred_len=pred_len,
                                  after=pd.Timestamp(after))


def test_future_timestamps_file_with_or_without_a_header(tmp_path):
    rows = ["2024-01-02 13:00", "2024-01-02 13:05", "2024-01-02 13:10"]
    expected = list(pd.date_range("2024-01-02 13:00", periods=3, freq="5min"))
    assert list(read_future(tmp_path, ["timestamps", *rows])) == expected
    assert list(read_future(tmp_path, rows)) == expected
    assert list(read_future(tmp_path, ["when", *rows])) == expected  # the only column, whatever its name
    seconds = [str(int(t.timestamp())) for t in expected]
    assert list(read_future(tmp_path, seconds)) == expected


@pytest.mark.parametrize("rows, pred_len, message, line", [
    (["2024-01-02 13:00", "2024-01-02 13:05"], 3, "has 2 future timestamp(s), but --pred-len is 3", None),
    (["2024-01-02 13:00", "2024-01-02 13:00", "2024-01-02 13:10"], 3, "duplicate timestamp", 3),
    (["2024-01-02 13:00", "2024-01-02 12:55", "2024-01-02 13:10"], 3, "is earlier than", 3),
    (["2024-01-02 09:40", "2024-01-02 13:05", "2024-01-02 13:10"], 3, "is not after the last history bar", 2),
    (["2024-01-02 13:00", "soon", "2024-01-02 13:10"], 3, "'soon' is not a date and time", 3),
])
def test_future_timestamps_file_mistakes_name_the_file_line_and_fix(tmp_path, rows, pred_len, message, line):
    with pytest.raises(InputDataError) as caught:
        read_future(tmp_path, ["timestamps", *rows], pred_len=pred_len)
    text = str(caught.value)
    assert message in text and str(tmp_path / "future.csv") in text and "hint:" in text
    if line is not None:
        assert f"line {line}" in text


def test_default_lookback_fits_the_context_with_the_forecast():
    from kronos_registry.services.forecast import choose_lookback, default_lookback

    assert default_lookback(rows=2500, context=512, pred_len=24) == 488
    assert default_lookback(rows=100, context=512, pred_len=24) == 100
    assert default_lookback(rows=2500, context=512, pred_len=600) == 512  # nothing fits: up to the context
    lookback, why, notes = choose_lookback(2500, 512, 24, None)
    assert (lookback, why, notes) == (488, "default: context 512 - pred_len 24", [])
    lookback, why, notes = choose_lookback(2500, 512, 24, 500)  # explicit: honoured, slides, says so
    assert lookback == 500 and why == "--lookback"
    assert any("recompute the whole window" in note and "488" in note for note in notes)


def a_share_days(days: pd.DatetimeIndex) -> pd.DatetimeIndex:
    """5-minute bars 09:35..11:30 and 13:05..15:00 (48 a day) on the given days."""
    morning = pd.timedelta_range("09:35:00", "11:30:00", freq="5min")
    afternoon = pd.timedelta_range("13:05:00", "15:00:00", freq="5min")
    offsets = morning.append(afternoon)
    return pd.DatetimeIndex([day + offset for day in days for offset in offsets])


def test_future_of_an_intraday_session_walks_its_bar_times_on_business_days():
    from kronos_registry.candles.timestamps import find_gaps, plan_future

    stamps = a_share_days(pd.bdate_range("2024-01-01", "2024-01-11"))[10:-24]  # partial first and last days
    assert stamps[-1] == pd.Timestamp("2024-01-11 11:30")  # a Thursday, before lunch
    plan = plan_future(stamps, 30)
    assert plan.method == "the history's daily session (48 bars, 09:35..15:00), business days"
    future = list(plan.timestamps)
    assert future[:2] == [pd.Timestamp("2024-01-11 13:05"), pd.Timestamp("2024-01-11 13:10")]
    assert future[23:25] == [pd.Timestamp("2024-01-11 15:00"), pd.Timestamp("2024-01-12 09:35")]
    friday_end = a_share_days(pd.bdate_range("2024-01-01", "2024-01-12"))
    assert plan_future(friday_end, 1).timestamps.iloc[0] == pd.Timestamp("2024-01-15 09:35")  # Monday
    # closures are not gaps; a missing bar is
    assert find_gaps(stamps, pd.Timedelta("5min"), session=plan.session).count == 0
    missing = stamps.delete([100, 101, 102])
    gaps = find_gaps(missing, pd.Timedelta("5min"), session=plan.session)
    assert gaps.count == 1 and gaps.largest == pd.Timedelta("20min")


def test_an_irregular_session_is_not_guessed():
    from kronos_registry.candles.timestamps import plan_future

    stamps = a_share_days(pd.bdate_range("2024-01-01", "2024-01-11"))
    half_day = stamps.delete(range(130, 144))  # one full day closes early
    assert "every 5min after the last bar" in plan_future(half_day, 3).method


def test_real_xshg_file_continues_in_its_session():
    if not REAL_CSV.is_file():
        pytest.skip(f"{REAL_CSV} is absent (the shared regression input)")
    from kronos_registry.candles.timestamps import plan_future

    stamps = read_candles(REAL_CSV).timestamps
    assert stamps.iloc[-1] == pd.Timestamp("2024-08-29 11:30")
    plan = plan_future(stamps, 25)
    assert "daily session (48 bars, 09:35..15:00), business days" in plan.method
    assert plan.timestamps.iloc[0] == pd.Timestamp("2024-08-29 13:05")
    assert plan.timestamps.iloc[-1] == pd.Timestamp("2024-08-30 09:35")
