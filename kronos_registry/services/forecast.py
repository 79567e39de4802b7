"""One forecast job, shared by every face: candles -> lookback -> future timestamps.

:func:`prepare_forecast` decides what the model sees and when the forecast's bars fall,
and records why, so that the CLI (and later the server) can say it in a summary:

- Lookback: by default as much history as fits the model's context together with the
  forecast (``context - pred_len``, at most the rows). Then every generated step reuses
  the key/value cache. A longer explicit ``lookback`` is honoured with upstream's
  sliding window: each step past the context recomputes the whole window (much slower).
- Future timestamps: read from a file when given (validated), else continued from the
  history (its interval or daily session, business days when it has no weekend bars;
  see ``candles/timestamps.py``).
- Gaps: steps in the used history longer than the bar interval (closures of a session
  or weekends of a business-day series are not gaps), counted.

Then :func:`run_forecast` is the one forecast path: the job's series through the batched
core (``kronos/batch.py``), so a series gives the same numbers from the CLI, the server (where
concurrent requests share a batch) and Python. :class:`ForecastResult` renders it for every
face (``to_json``, ``summary_text``, quantiles).

Pure pandas here: torch is imported only when a forecast runs.
"""

from __future__ import annotations

import os
from typing import Sequence

import attrs
import numpy as np
import pandas as pd

from kronos_registry.candles import Candles, future_timestamps_from_values, read_future_timestamps, tail_lookback
from kronos_registry.candles.columns import COLUMNS
from kronos_registry.candles.timestamps import (
    FutureTimes,
    Gaps,
    find_gaps,
    infer_interval,
    is_business_daily,
    plan_future,
)
from kronos_registry.services.limits import BOUNDS, MAX_QUANTILES, SEED_LIMIT
from registry.errors import InputDataError


@attrs.frozen(eq=False)
class ForecastInput:
    """What the model sees, the forecast's timestamps, and the reasons, for the summary."""

    candles: Candles          # the whole history given
    used: Candles             # the last `lookback` rows of it
    lookback_reason: str
    future: FutureTimes
    gaps: Gaps | None
    notes: tuple[str, ...] = ()


def default_lookback(rows: int, context: int, pred_len: int) -> int:
    """The most history that fits the context with the forecast: min(rows, context - pred_len).

    A forecast as long as the context fits nothing; then all rows up to the context.
    """
    fits = context - pred_len
    return min(rows, fits) if fits >= 1 else min(rows, context)


def choose_lookback(rows: int, context: int, pred_len: int, lookback: int | None) -> tuple[int, str, list[str]]:
    """-> (lookback, why, notes for the person) for an explicit or default lookback."""
    notes: list[str] = []
    if lookback is None:
        chosen = default_lookback(rows, context, pred_len)
        if context - pred_len < 1:
            why = f"the forecast of {pred_len} bars is not shorter than the {context}-bar context"
            notes.append(f"note: --pred-len {pred_len} is at least the model's context of {context}: steps past "
                         "the context recompute the whole window (slow)")
        elif chosen < context - pred_len:
            why = "all rows"
        else:
            why = f"default: context {context} - pred_len {pred_len}"
        return chosen, why, notes
    if lookback > context:
        notes.append(f"note: a lookback of {lookback} exceeds the model's context of {context}; "
                     f"the model sees the last {context} bars")
    if min(lookback, rows) + pred_len > context:
        notes.append(f"note: lookback {lookback} + pred-len {pred_len} exceeds the context of {context}: "
                     f"steps past it recompute the whole window (slow, as upstream); without --lookback "
                     f"the default {default_lookback(rows, context, pred_len)} keeps every step cached")
    return lookback, "--lookback", notes


def prepare_forecast(candles: Candles, *, pred_len: int, context: int, lookback: int | None = None,
                     future_file: str | os.PathLike | None = None,
                     future_timestamps: Sequence | None = None) -> ForecastInput:
    """Choose the lookback, make the future timestamps and look for gaps (see the module doc).

    The forecast's timestamps come from ``future_file`` (a CSV), else ``future_timestamps``
    (a list, as a request gives them), else they continue the history.
    """
    check_pred_len_fits(pred_len, context)
    chosen, why, notes = choose_lookback(len(candles), context, pred_len, lookback)
    used = tail_lookback(candles, chosen)
    check_normalisable(used)
    future = _future_times(candles, used.timestamps.iloc[-1], pred_len, future_file, future_timestamps)
    gaps = None
    if len(used) >= 2:
        interval = future.interval or infer_interval(used.timestamps)
        business = future.business_days or is_business_daily(pd.DatetimeIndex(used.timestamps), interval)
        gaps = find_gaps(used.timestamps, interval, business_days=business, session=future.session)
    return ForecastInput(candles, used, why, future, gaps, (*candles.notes, *notes))


def check_pred_len_fits(pred_len: int, context: int) -> None:
    """Refuse a forecast longer than the model's context, before any work.

    The model decodes at most ``context`` tokens at the end (kronos/generate.py), so a longer
    forecast has no bars to fill (it used to fail with a shape error after the whole run).
    """
    if pred_len > context:
        raise InputDataError(f"pred_len is {pred_len}, over this model's context of {context} bars",
                             field="pred_len", hint=f"ask for at most {context} bars, or forecast in steps "
                                                    "(feed a forecast back as history)")


# The model computes in float32, and normalising squares deviations from the mean: past about
# 1e15 those squares summed over a long history overflow float32 (inf and NaN in the forecast).
MAX_MAGNITUDE = 1e15


def check_normalisable(used: Candles) -> None:
    """Refuse candles whose magnitude the model's float32 normalisation cannot hold."""
    frame = used.frame
    for column in (c for c in COLUMNS if c in frame.columns):
        largest = float(np.nanmax(np.abs(frame[column].to_numpy(dtype=np.float64))))
        if not largest <= MAX_MAGNITUDE:
            raise InputDataError(f"{used.source}: {column} reaches {largest:.3g}, beyond the {MAX_MAGNITUDE:.0e} "
                                 "the model's float32 arithmetic can normalise", field=column,
                                 hint=f"rescale {column} (e.g. in thousands or millions) before forecasting")


def _future_times(candles: Candles, last, pred_len: int, future_file, future_timestamps) -> FutureTimes:
    """The forecast's timestamps (see prepare_forecast); past pandas' last time is a clear error."""
    try:
        if future_timestamps is not None:
            stamps = future_timestamps_from_values(future_timestamps, pred_len=pred_len, after=last)
            return FutureTimes(stamps, "given in the request")
        if future_file is not None:
            stamps = read_future_timestamps(future_file, pred_len=pred_len, after=last)
            return FutureTimes(stamps, f"from {future_file}")
        return plan_future(candles.timestamps, pred_len)  # all the history: more evidence, same last bar
    except (pd.errors.OutOfBoundsDatetime, OverflowError):
        raise InputDataError(f"{pred_len} bars after {last} pass {pd.Timestamp.max:%Y-%m-%d}, the last time "
                             "pandas can represent", field="pred_len",
                             hint="ask for fewer bars, or check the input's timestamps (their unit or year)") from None


# --------------------------------------------------------------------------- the forecast itself

DEFAULT_QUANTILES = (0.1, 0.5, 0.9)


@attrs.frozen
class ForecastParams:
    """What a caller asks of one forecast, whatever the face (CLI options, HTTP, MCP, Python).

    The one parameter type: every face turns what it parsed into this, and :meth:`check`
    judges it against :data:`BOUNDS` and a service's limits.
    """

    pred_len: int
    samples: int = 1
    seed: int | None = None              # None: a random one is drawn and reported
    temperature: float = 1.0
    top_p: float = 0.9
    top_k: int = 0
    lookback: int | None = None
    quantiles: tuple[float, ...] = attrs.field(default=DEFAULT_QUANTILES, converter=tuple)
    future_timestamps: tuple | None = attrs.field(default=None, converter=attrs.converters.optional(tuple))

    def check(self, *, max_pred_len: int | None = None, max_samples: int | None = None) -> None:
        """Raise InputDataError naming the first parameter out of range (and its limit)."""
        def bad(field: str, message: str, hint: str):
            raise InputDataError(f"{field} {message}", field=field, hint=hint)

        def whole(field: str) -> bool:
            value = getattr(self, field)
            return _is_int(value) and BOUNDS[field].holds(value)

        if not whole("pred_len"):
            bad("pred_len", f"must be a whole number of bars, at least 1 (got {self.pred_len!r})",
                "ask for 1 or more bars")
        if max_pred_len is not None and self.pred_len > max_pred_len:
            bad("pred_len", f"is {self.pred_len}, over this service's limit of {max_pred_len}",
                f"ask for at most {max_pred_len} bars (the limit is the server's --max-pred-len)")
        if not whole("samples"):
            bad("samples", f"must be a whole number, at least 1 (got {self.samples!r})", "use 1 or more")
        if max_samples is not None and self.samples > max_samples:
            bad("samples", f"is {self.samples}, over this service's limit of {max_samples}",
                f"ask for at most {max_samples} samples (the server's --max-samples)")
        if self.seed is not None and not (whole("seed") and self.seed < SEED_LIMIT):
            bad("seed", f"must be a whole number from 0 to 2**63-1 (got {self.seed!r})", "pass e.g. 7, or none")
        if not BOUNDS["temperature"].holds(self.temperature):
            bad("temperature", f"must be at least {BOUNDS['temperature'].low:g} (got {self.temperature!r})",
                "1.0 samples as trained; lower is calmer, 0.001 is as good as greedy")
        if not BOUNDS["top_p"].holds(self.top_p):
            bad("top_p", f"must be in (0, 1] (got {self.top_p!r})", "0.9 is the default")
        if not whole("top_k"):
            bad("top_k", f"must be a whole number, 0 or more (got {self.top_k!r})", "0 means no limit")
        if self.lookback is not None and not whole("lookback"):
            bad("lookback", f"must be a whole number, at least 1 (got {self.lookback!r})",
                "leave it out to use what fits the model's context")
        problem = quantiles_problem(self.quantiles)
        if problem:
            bad("quantiles", problem, f"e.g. [0.1, 0.5, 0.9]: at most {MAX_QUANTILES} distinct values")


def quantiles_problem(quantiles: Sequence[float]) -> str | None:
    """What is wrong with a list of quantiles (too many, repeated, outside (0, 1)), or None."""
    if len(quantiles) > MAX_QUANTILES:
        return f"are {len(quantiles)}, over the limit of {MAX_QUANTILES}"
    if len(set(quantiles)) != len(quantiles):
        return "must be distinct (a value is repeated)"
    outside = [q for q in quantiles if not BOUNDS["quantile"].holds(q)]
    if outside:
        return f"must each lie strictly between 0 and 1 (got {outside[:5]})"
    return None


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


@attrs.frozen
class Timing:
    queue_s: float = 0.0      # waiting for a batch to start
    load_s: float = 0.0       # waiting for the model to load (0 when it was resident)
    forecast_s: float = 0.0   # the batch that carried this forecast


@attrs.frozen(eq=False)
class ForecastResult:
    """One series' forecast and everything a face renders from it."""

    model: str
    artifact: str | None
    job: ForecastInput
    forecast: pd.DataFrame            # index: the future timestamps; columns: COLUMNS
    samples: np.ndarray | None        # (samples, pred_len, 6) in the input's units, when samples > 1
    seed: int
    device: str
    params: ForecastParams
    timing: Timing = Timing()

    def quantile_frames(self, quantiles: Sequence[float] | None = None) -> dict[float, pd.DataFrame]:
        """{q: frame like ``forecast``} over the sampled paths; {} for a single sample."""
        if self.samples is None or len(self.samples) < 2:
            return {}
        qs = list(self.params.quantiles if quantiles is None else quantiles)
        values = np.quantile(self.samples, qs, axis=0)               # (Q, pred_len, 6)
        return {float(q): pd.DataFrame(values[i], columns=list(COLUMNS), index=self.forecast.index)
                for i, q in enumerate(qs)}

    def quantile_columns(self) -> dict[str, np.ndarray]:
        """``{col}_q{q}`` columns over the sampled paths (as ``predict --by`` writes); {} for one sample."""
        if self.samples is None or len(self.samples) < 2:
            return {}
        return quantile_columns(self.samples, self.params.quantiles)

    def to_json(self) -> dict:
        """The response body every machine face returns (HTTP, MCP, ``predict --json``)."""
        body = {
            "model": self.model,
            "artifact": self.artifact,
            "timestamps": [ts.isoformat() for ts in pd.DatetimeIndex(self.forecast.index)],
            "forecast": {c: [float(v) for v in self.forecast[c].to_numpy()] for c in COLUMNS},
            "seed": self.seed,
            "timing": {"queue_ms": round(self.timing.queue_s * 1000, 3),
                       "load_ms": round(self.timing.load_s * 1000, 3),
                       "forecast_ms": round(self.timing.forecast_s * 1000, 3)},
        }
        quantiles = self.quantile_frames()
        if quantiles:
            body["quantiles"] = {f"{q:g}": {c: [float(v) for v in frame[c].to_numpy()] for c in COLUMNS}
                                 for q, frame in quantiles.items()}
        return body

    def summary_text(self) -> str:
        """Two lines for a person or an agent: where the close goes, how sure, how to repeat it."""
        last = float(self.job.used.frame["close"].iloc[-1])
        closes = self.forecast["close"].to_numpy()
        end = float(closes[-1])
        change = (end / last - 1) * 100 if last else float("nan")
        stamps = pd.DatetimeIndex(self.forecast.index)
        text = (f"{self.model}: last close {last:.4f}; forecast close {end:.4f} at "
                f"{stamps[-1]:%Y-%m-%d %H:%M} ({change:+.2f}%) after {len(closes)} bars")
        if self.samples is not None and len(self.samples) > 1:
            finals = self.samples[:, -1, COLUMNS.index("close")]
            low, high = np.quantile(finals, [0.1, 0.9])
            text += (f"; across {len(self.samples)} samples the final close spans {finals.min():.4f}.."
                     f"{finals.max():.4f} (10-90%: {low:.4f}..{high:.4f})")
        else:
            text += "; one sample (ask for more to see the spread)"
        return text + f". Seed {self.seed} reproduces it."


def quantile_columns(samples: np.ndarray, quantiles: Sequence[float]) -> dict[str, np.ndarray]:
    """Sampled paths (S, pred_len, 6) -> {f"{col}_q{q}": (pred_len,) values}, column by column."""
    values = np.quantile(samples, list(quantiles), axis=0)             # (Q, pred_len, 6)
    return {f"{c}_q{q:g}": values[i, :, j] for j, c in enumerate(COLUMNS) for i, q in enumerate(quantiles)}


def series_request(job: ForecastInput, params: ForecastParams, *, seed: int, key: str = "series"):
    """The batched core's request for this job."""
    from kronos_registry.kronos.batch import SeriesRequest

    return SeriesRequest(
        key=key, frame=job.used.frame, timestamps=job.used.timestamps,
        future=pd.Series(pd.DatetimeIndex(job.future.timestamps), name="timestamps"),
        pred_len=params.pred_len, T=params.temperature, top_k=params.top_k, top_p=params.top_p,
        sample_count=params.samples, seed=seed)


def forecast_job(predictor, job: ForecastInput, params: ForecastParams, *, model: str,
                 artifact: str | None = None, progress=None) -> ForecastResult:
    """One prepared series forecast in this process (the CLI's and Python's path) -> its result.

    A seed of None draws one (reported in the result, so the forecast can be repeated).
    ``progress`` wraps the iterable of generated bars (see :func:`run_forecast`).
    """
    import time

    seed = draw_seed(params.seed)
    started = time.perf_counter()
    forecast, samples = run_forecast(predictor, job, params, seed=seed, progress=progress)
    return ForecastResult(model=model, artifact=artifact, job=job, forecast=forecast, samples=samples, seed=seed,
                          device=str(predictor.device), params=attrs.evolve(params, seed=seed),
                          timing=Timing(forecast_s=time.perf_counter() - started))


def draw_seed(seed: int | None) -> int:
    """The seed a forecast uses: the one asked for, else a random one (printed, so it repeats)."""
    import secrets

    return secrets.randbelow(2**31) if seed is None else int(seed)


def run_forecast(predictor, job: ForecastInput, params: ForecastParams, *, seed: int, progress=None):
    """The one forecast path: -> (mean frame indexed by the future, samples or None).

    A single series through the batched core; the server sends many through it at once and,
    batch invariance holding, each gets what it would get here. ``progress`` wraps the
    iterable of generated bars (a tqdm bar, say).
    """
    from kronos_registry.kronos.batch import forecast_series

    (result,) = forecast_series(predictor, [series_request(job, params, seed=seed)], steps=progress)
    return result.forecast, result.samples
