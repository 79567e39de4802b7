"""The many-series job: a long table of candles in, a long table of forecasts out.

One row per bar, a key column (``--by``) naming the series::

    symbol,timestamps,open,high,low,close,volume,amount
    AAA,2024-01-02 09:30:00,99.97,100.04,99.86,99.89,2791,278932.54
    BBB,2024-01-02 09:30:00,51.20,51.31,51.02,51.10,880,45000.10

:func:`read_series` reads a CSV or Parquet file (or :func:`split_series` a DataFrame) and
validates every series exactly as the one-series ``predict`` does (``candles/validation.py``), then
chooses its lookback and continues its timestamps (``services/forecast.py``). A bad series (NaN, too
short, unsorted, ...) becomes a :class:`BadSeries` carrying today's message, with the file's
own line numbers; the good ones become :class:`~kronos_registry.kronos.batch.SeriesRequest`s for
:func:`~kronos_registry.kronos.batch.forecast_series`. The CLI runs them here (:func:`run_local`),
the Ray face on a cluster (``services/distributed.py``); both write the same :func:`sort_output`.

Pure pandas until the batched core runs: nothing here imports torch or a face.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

import attrs
import numpy as np
import pandas as pd

from kronos_registry.candles import read_csv_table, resolve_columns, validate_table  # one validator for one and many
from kronos_registry.candles.columns import COLUMNS
from kronos_registry.kronos.batch import SeriesForecast, SeriesRequest, forecast_series, series_seed
from kronos_registry.services.forecast import (
    ForecastInput,
    ForecastParams,
    prepare_forecast,
    quantile_columns,
    quantiles_problem,
    series_request,
)
from registry.errors import InputDataError

PARQUET_SUFFIXES = (".parquet", ".pq")


def is_parquet(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in PARQUET_SUFFIXES


@attrs.frozen
class BadSeries:
    """A series that cannot be forecast, and today's message saying why."""

    key: str | None                   # None: rows without a key
    error: InputDataError

    def describe(self, by: str) -> str:
        label = f"rows without a {by}" if self.key is None else f"{by}={self.key}"
        return f"{label}: {self.error.message}"


@attrs.frozen(eq=False)
class SeriesSet:
    """The validated input: good series (sorted by key) and the bad ones."""

    by: str
    source: str
    rows: int
    good: tuple[tuple[str, ForecastInput], ...]
    bad: tuple[BadSeries, ...]

    @property
    def total(self) -> int:
        return len(self.good) + len(self.bad)

    def fail_if_bad(self) -> None:
        """One error reporting every bad series (the --on-error fail default)."""
        if not self.bad:
            return
        raise InputDataError(
            f"{self.source}: {len(self.bad)} of {self.total} series cannot be forecast "
            f"(nothing was forecast or written):\n" + "\n".join(_bullet(b.describe(self.by)) for b in self.bad),
            path=self.source, field=self.by,
            hint="; ".join(dict.fromkeys(b.error.hint for b in self.bad if b.error.hint))
            + "; or pass --on-error skip to forecast the other series")

    def requests(self, params: ForecastParams) -> list[SeriesRequest]:
        return [series_request(job, params, key=key, seed=job_seed(params.seed, key)) for key, job in self.good]


def job_seed(seed: int | None, key: str) -> int | None:
    """A series' own seed from the job's (see ``series_seed``); None stays unseeded."""
    return None if seed is None else series_seed(seed, key)


def _bullet(text: str) -> str:
    first, *rest = text.splitlines()
    return "\n".join([f"  - {first}", *(f"    {line}" for line in rest)])


def read_series(path: str | os.PathLike, by: str, *, pred_len: int, context: int,
                lookback: int | None = None) -> SeriesSet:
    """Read a long CSV or Parquet file and validate each series (see the module doc)."""
    file = Path(path)
    if is_parquet(file):
        if not file.is_file():
            raise InputDataError(f"candle file {file} does not exist", path=str(file),
                                 hint=f"check the path (relative paths start at {Path.cwd()})")
        try:
            table = pd.read_parquet(file)
        except (OSError, ValueError) as exc:
            raise InputDataError(f"{file} is not a readable Parquet file: {exc}", path=str(file),
                                 hint="write it with pandas.DataFrame.to_parquet or pyarrow") from exc
        table = table.reset_index(drop=True)
        locate: Callable[[int], str] = lambda position: f"row {position}"  # noqa: E731 (0-based)
    else:
        table, lines = read_csv_table(file)
        locate = lambda position: f"line {lines[position]}"  # noqa: E731
    return split_series(table, by, source=str(file), path=file, locate=locate,
                        pred_len=pred_len, context=context, lookback=lookback)


def split_series(table: pd.DataFrame, by: str, *, source: str = "DataFrame", path: Path | None = None,
                 locate: Callable[[int], str] | None = None, pred_len: int, context: int,
                 lookback: int | None = None) -> SeriesSet:
    """Group a long table by ``by`` and validate each series as one-series ``predict`` does.

    ``locate(position)`` names a row of ``table`` in messages (a CSV's line numbers).
    """
    locate = locate or (lambda position: f"position {position}")
    table = table.reset_index(drop=True)
    column = _key_column(table, by, source=source, path=path)
    resolve_columns([c for c in table.columns if c != column], source=source, path=path)  # file-wide
    keys = table[column].astype("string").str.strip()
    keyless = keys.isna() | (keys == "")
    bad: list[BadSeries] = []
    if keyless.any():
        where = [locate(int(i)) for i in keyless.to_numpy().nonzero()[0]]
        shown = ", ".join(where[:10]) + (f" and {len(where) - 10} more" if len(where) > 10 else "")
        bad.append(BadSeries(None, InputDataError(
            f"{source}: {len(where)} row(s) with an empty '{column}': {shown}", path=source, field=column,
            hint=f"give every row the {column} of its series, or delete it")))
    good = []
    for key, positions in sorted(table.index[~keyless].groupby(keys[~keyless].to_numpy()).items()):
        rows = list(positions)
        try:
            rows_table = table.iloc[rows].drop(columns=[column]).reset_index(drop=True)
            candles = validate_table(rows_table, source=source, path=path,
                                     locate=lambda position, rows=rows: locate(rows[position]), min_rows=2)
            good.append((str(key), prepare_forecast(candles, pred_len=pred_len, context=context,
                                                    lookback=lookback)))
        except InputDataError as error:
            bad.append(BadSeries(str(key), error))
    return SeriesSet(by=by, source=source, rows=len(table), good=tuple(good), bad=tuple(bad))


def _key_column(table: pd.DataFrame, by: str, *, source: str, path: Path | None) -> str:
    names = [str(c) for c in table.columns]
    if by in names:
        return by
    folded = [n for n in names if n.strip().lower() == by.strip().lower()]
    if len(folded) == 1:
        return folded[0]
    import difflib

    close = difflib.get_close_matches(by, names, n=1)
    guess = f"did you mean --by {close[0]}? " if close else ""
    raise InputDataError(f"{source}: no key column '{by}' (found columns: {', '.join(names)})",
                         path=None if path is None else str(path), field=by,
                         hint=f"{guess}--by names the column that says which series a row belongs to")


def run_local(predictor, requests: Sequence[SeriesRequest], *, by: str, sampling: ForecastParams,
              max_batch: int = 16, progress: Callable[[int], None] | None = None) -> pd.DataFrame:
    """Forecast the requests in this process -> the long output (see :func:`sort_output`)."""
    results = forecast_series(predictor, requests, max_batch=max_batch, progress=progress)
    return sort_output(output_rows(results, by=by, sampling=sampling), by)


def output_rows(results, *, by: str, sampling: ForecastParams) -> pd.DataFrame:
    """SeriesForecasts -> long rows: ``<by>, timestamps``, the six columns, and with
    samples > 1 a ``{col}_q{q}`` column per column and quantile."""
    return long_frame(results, by=by, quantiles=sampling.quantiles if sampling.samples > 1 else ())


def sort_output(frame: pd.DataFrame, by: str) -> pd.DataFrame:
    """The one order every face writes: by key, then time."""
    frame = frame.copy()
    frame[by] = frame[by].astype(str)
    return frame.sort_values([by, "timestamps"], kind="stable").reset_index(drop=True)


def write_output(path: str | os.PathLike, frame: pd.DataFrame) -> Path:
    """Write the long output, as Parquet (.parquet, .pq) or CSV (anything else)."""
    out = Path(path)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        if is_parquet(out):
            frame.to_parquet(out, index=False)
        else:
            frame.to_csv(out, index=False, lineterminator="\n")
    except OSError as exc:
        raise InputDataError(f"cannot write {out}: {exc.strerror or exc}", path=str(out),
                             hint="choose an output path in a folder you can write to") from exc
    return out


def parse_quantiles(text: str) -> tuple[float, ...]:
    """'0.1,0.5,0.9' -> (0.1, 0.5, 0.9); ValueError naming the bad one."""
    values = []
    for part in text.split(","):
        try:
            value = float(part)
        except ValueError:
            raise ValueError(f"'{part.strip()}' is not a number") from None
        if not 0 < value < 1:
            raise ValueError(f"{part.strip()} is not between 0 and 1")
        values.append(value)
    distinct = tuple(dict.fromkeys(values))
    problem = quantiles_problem(distinct)
    if problem:
        raise ValueError(f"the quantiles {problem}")
    return distinct


# --------------------------------------------------------------------------- the Python face's long-format job


def forecast_frame(name_or_predictor, data, *, by: str = "symbol", pred_len: int, lookback: int | None = None,
                   T: float = 1.0, top_k: int = 0, top_p: float = 0.9, sample_count: int = 1,
                   seed: int | None = None, quantiles: Sequence[float] | None = None, max_batch: int = 16,
                   device: str | None = None, progress: Callable[[int], None] | None = None) -> pd.DataFrame:
    """Forecast many series from Python; returns one long DataFrame.

    name_or_predictor: a registry entry name (loaded with ``load_predictor``) or a
    ``KronosPredictor``. data: a long DataFrame with a key column ``by`` (one row per bar:
    timestamps, open, high, low, close[, volume, amount]), or a dict {key: DataFrame}.
    Each series is validated as a single-series DataFrame would be (an ``InputDataError``
    names the series), its lookback chosen and future timestamps continued as the CLI does.
    ``seed`` seeds each series from (seed, its key) (see :func:`series_seed`).

    Returns columns ``<by>, timestamps, open, high, low, close, volume, amount`` and, when
    sample_count > 1, ``{col}_q{q}`` quantile columns for every column and each of
    ``quantiles`` (default 0.1, 0.5, 0.9), series in first-appearance (or dict) order.
    """
    from kronos_registry.candles import validate_frame

    if isinstance(name_or_predictor, str):
        from kronos_registry.services.registry import Registry
        predictor = Registry().load_predictor(name_or_predictor, device=device)
    else:
        predictor = name_or_predictor
    if isinstance(data, dict):
        groups = [(str(k), v) for k, v in data.items()]
    elif isinstance(data, pd.DataFrame):
        if by not in data.columns:
            raise ValueError(f"the DataFrame has no key column {by!r} (columns: {list(data.columns)}); "
                             f"pass by= the column that names each series")
        groups = [(str(k), g.drop(columns=[by])) for k, g in data.groupby(by, sort=False)]
    else:
        raise TypeError(f"data must be a DataFrame with a {by!r} column or a dict of DataFrames, "
                        f"got {type(data).__name__}")
    context = int(getattr(predictor, "max_context", 512))
    params = ForecastParams(pred_len=pred_len, lookback=lookback, temperature=T, top_k=top_k, top_p=top_p,
                            samples=sample_count, seed=seed)
    requests = []
    for key, frame in groups:
        candles = validate_frame(frame, source=f"series {key!r}")
        job = prepare_forecast(candles, pred_len=pred_len, context=context, lookback=lookback)
        requests.append(series_request(job, params, key=key, seed=job_seed(seed, key)))
    results = forecast_series(predictor, requests, max_batch=max_batch, progress=progress)
    return long_frame(results, by=by, quantiles=quantiles)


def long_frame(results: Sequence[SeriesForecast], *, by: str = "symbol",
               quantiles: Sequence[float] | None = None) -> pd.DataFrame:
    """SeriesForecasts -> one long DataFrame (see :func:`forecast_frame` for the columns)."""
    qs = [0.1, 0.5, 0.9] if quantiles is None else [float(q) for q in quantiles]
    parts = []
    for r in results:
        part = pd.DataFrame({by: r.key, "timestamps": np.asarray(r.forecast.index)})
        for c in COLUMNS:
            part[c] = r.forecast[c].to_numpy()
        if r.samples is not None and qs:
            for column, values in quantile_columns(r.samples, qs).items():
                part[column] = values
        parts.append(part)
    if not parts:
        return pd.DataFrame(columns=[by, "timestamps", *COLUMNS])
    return pd.concat(parts, ignore_index=True)
