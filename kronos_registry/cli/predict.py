"""`kronos-registry predict`: one series from a CSV (many series: many.py)."""

from __future__ import annotations

import sys
import time

import attrs
import click

from kronos_registry.candles.columns import COLUMNS
from kronos_registry.cli.app import App, cli, pass_app
from kronos_registry.cli.output import emit_json, table
from kronos_registry.cli.params import bounded, check_device
from kronos_registry.services.catalog import DEMO_ENTRY, DEMO_NOTE
from kronos_registry.services.extras import require_extra
from kronos_registry.services.plot import save_plot


@cli.command()
@click.argument("name")
@click.option("--input", "-i", "input_path", required=True, metavar="CSV",
              help="Candle CSV: a timestamp column (timestamps/timestamp/date/datetime/time), "
              "open, high, low, close; volume and amount optional.")
@click.option("--pred-len", "-n", required=True, type=bounded("pred_len"), metavar="N",
              help="Number of bars to forecast.")
@click.option("--lookback", type=bounded("lookback"), metavar="N",
              help="Bars of history the model sees [default: what fits the context with the forecast: "
              "context - N, at most the rows]. A longer one recomputes the window every step (slow).")
@click.option("--future-timestamps", "future_file", metavar="CSV",
              help="The forecast's timestamps, one column, N rows, after the last input bar "
              "[default: continue the input's interval, or its daily session; business days when it "
              "has no weekend bars].")
@click.option("--output", "-o", metavar="CSV", help="Write the forecast here; - writes the CSV to stdout "
              "(else print a short table).")
@click.option("--json", "as_json", is_flag=True, help="Print the forecast as JSON on stdout: the body "
              "`serve`'s POST /v1/forecast returns (quantiles with --samples > 1).")
@click.option("--samples", default=1, show_default=True, type=bounded("samples"), metavar="N",
              help="Sampled paths to average; with --plot their spread is drawn.")
@click.option("--temperature", "-T", default=1.0, show_default=True,
              type=bounded("temperature", float), metavar="T",
              help="Sampling temperature: lower is more conservative.")
@click.option("--top-p", default=0.9, show_default=True, type=bounded("top_p", float),
              metavar="P", help="Nucleus sampling: keep the smallest set of tokens with this much probability.")
@click.option("--top-k", default=0, show_default=True, type=bounded("top_k"), metavar="K",
              help="Keep only the K likeliest tokens (0: no limit).")
@click.option("--seed", type=bounded("seed"), metavar="S", help="Random seed: same seed, same forecast "
              "[default: a random one, printed].")
@click.option("--device", metavar="DEVICE", help="cpu, cuda, cuda:1, mps [default: cuda, else mps, else cpu].")
@click.option("--plot", metavar="PNG", help="Save a chart of history, forecast and spread (needs matplotlib).")
@click.option("--by", metavar="COLUMN", help="Many series: --input is long format (CSV or Parquet), one row per "
              "bar, COLUMN naming each row's series; every series is forecast (see README).")
@click.option("--on-error", type=click.Choice(["fail", "skip"]), help="With --by: a bad series stops the job "
              "[fail, the default: report them all, write nothing] or is skipped with a warning [skip].")
@click.option("--quantiles", metavar="Q,Q,...", help="With --samples > 1: quantile columns {col}_q{q} over "
              "the sampled paths [default: 0.1,0.5,0.9 with --by or --json; none for one series' CSV].")
@click.option("--ray", "ray_address", is_flag=False, flag_value="", default=None, metavar="[ADDRESS]",
              help="With --by: run on Ray (pip install 'kronos-registry[ray]'); no ADDRESS starts a local "
              "cluster, 'auto' or an address joins one.")
@pass_app
def predict(app: App, name, input_path, pred_len, lookback, future_file, output, as_json, samples, temperature,
            top_p, top_k, seed, device, plot, by, on_error, quantiles, ray_address):
    """Forecast the next N candles of a CSV with the model NAME.

    The model is loaded from the store (synced first when missing and online).
    Future timestamps continue the input's bar interval or daily session (business
    days when it has no weekend bars), or come from --future-timestamps. Prints a summary; the
    forecast (timestamps, open, high, low, close, volume, amount) goes to
    --output, or to the screen as a short table.

    \b
    Example:
      kronos-registry predict kronos-small -i btc_5min.csv -n 48 \\
          --samples 20 --seed 1 -o forecast.csv --plot forecast.png
    """
    if by is not None or on_error or ray_address is not None:
        from kronos_registry.cli.many import predict_many

        if as_json:
            raise click.UsageError("--json prints one series' forecast; with --by, write the table with -o")
        return predict_many(app, name, input_path=input_path, by=by, pred_len=pred_len, lookback=lookback,
                            future_file=future_file, output=output, samples=samples, sampling=(temperature,
                            top_p, top_k), seed=seed, device=device, plot=plot, on_error=on_error,
                            quantiles=quantiles, ray_address=ray_address)
    from kronos_registry.candles import read_candles, write_forecast
    from kronos_registry.cli.many import quantiles_option
    from kronos_registry.services.forecast import DEFAULT_QUANTILES, ForecastParams, forecast_job, prepare_forecast

    if as_json and output == "-":
        raise click.UsageError("--json and -o - both write to stdout: give -o a file, or drop one of them")
    qs = quantiles_option(quantiles, samples) if quantiles is not None else None
    registry = app.registry()
    entry = registry.model_entry(name)  # fail fast, before reading anything
    if plot:
        require_extra("plot", "--plot", "matplotlib")
    check_device(device)

    job = prepare_forecast(read_candles(input_path), pred_len=pred_len, context=entry.context_length or 512,
                           lookback=lookback, future_file=future_file)
    for note in job.notes:
        app.note(note)
    candles, future = job.candles, job.future.timestamps

    started = time.perf_counter()
    from kronos_registry.services.registry import load_model  # the engine's modules: only when it runs

    predictor = load_model(registry, name, device)
    loaded = time.perf_counter()
    params = ForecastParams(pred_len=pred_len, samples=samples, seed=seed, temperature=temperature,
                            top_p=top_p, top_k=top_k, lookback=lookback, quantiles=qs or DEFAULT_QUANTILES)
    result = forecast_job(predictor, job, params, model=name, artifact=registry.status(name),
                          progress=bars_shown(app, pred_len))
    result = attrs.evolve(result, timing=attrs.evolve(result.timing, load_s=loaded - started))
    forecast, seed = result.forecast, result.seed
    finished = time.perf_counter()
    paths = result.samples if result.samples is not None else forecast[list(COLUMNS)].to_numpy()[None]

    if output:
        write_forecast(output, future, forecast, extra=result.quantile_columns() if qs else None)
    elif not as_json:
        click.echo(forecast_table(future, forecast))
    if as_json:
        emit_json(result.to_json())
    if plot:
        save_plot(plot, candles, future, forecast, paths, title=plot_title(name, pred_len))
    app.note(predict_summary(
        entry=entry, artifact=registry.status(name), job=job,
        forecast=forecast, samples=samples, seed=seed, sampling=(temperature, top_p, top_k),
        device=str(predictor.device), times=(loaded - started, finished - loaded), output=output, plot=plot))


def bars_shown(app: App, pred_len: int):
    """A progress bar over the generated bars, for a person at a terminal (``app.progress``).

    It appears only once a forecast has run half a second, so short ones print nothing extra.
    """
    from tqdm.auto import tqdm

    return lambda steps: tqdm(steps, total=pred_len, desc="forecast", unit="bar", file=sys.stderr,
                              disable=not app.progress, leave=False, delay=0.5)


def plot_title(name: str, pred_len: int) -> str:
    title = f"{name}: {pred_len}-bar forecast"
    return f"{title} (tiny demo model)" if name == DEMO_ENTRY else title


def forecast_table(future, forecast, head: int = 10) -> str:
    """The forecast for a terminal; long ones show their first and last `head` rows."""
    rows = [[ts.strftime("%Y-%m-%d %H:%M:%S")] + [f"{v:.4f}" for v in row[:4]] + [f"{v:.1f}" for v in row[4:]]
            for ts, row in zip(future, forecast[list(COLUMNS)].to_numpy())]
    if len(rows) > 2 * head:
        rows = rows[:head] + [["..."] + [""] * 6] + rows[-head:]
    return table(["TIMESTAMP", "OPEN", "HIGH", "LOW", "CLOSE", "VOLUME", "AMOUNT"], rows)


def predict_summary(*, entry, artifact, job, forecast, samples, seed, sampling, device,
                    times, output, plot) -> str:
    def stamp(ts) -> str:
        return ts.strftime("%Y-%m-%d %H:%M")

    from kronos_registry.candles.timestamps import EPOCH_UNIT_NAMES

    candles, used, future = job.candles, job.used, job.future.timestamps
    temperature, top_p, top_k = sampling
    interval = job.future.interval
    if interval is None:
        interval = future.iloc[1] - future.iloc[0] if len(future) > 1 else future.iloc[0] - used.timestamps.iloc[-1]
    closes = forecast["close"].to_numpy()
    rows = [
        ("model", f"{entry.name} ({artifact})" if artifact else entry.name),
        ("input", f"{candles.source}: {len(candles)} rows, used the last {len(used)} ({job.lookback_reason}; "
                  f"{stamp(used.timestamps.iloc[0])} .. {stamp(used.timestamps.iloc[-1])})"
                  + (f"; timestamps read as Unix {EPOCH_UNIT_NAMES[candles.epoch_unit]} (UTC)"
                     if candles.epoch_unit else "")),
        ("gaps", job.gaps.describe() if job.gaps is not None else "n/a (one bar)"),
        ("horizon", f"{len(future)} bars of {_interval_text(interval)} "
                    f"({stamp(future.iloc[0])} .. {stamp(future.iloc[-1])})"),
        ("future", job.future.method),
        ("sampling", f"{samples} sample{'s' if samples != 1 else ''}, T={temperature:g}, top_p={top_p:g}, "
                     f"top_k={top_k}, seed {seed}"),
        ("close", f"last {used.frame['close'].iloc[-1]:.4f} -> forecast first {closes[0]:.4f}, "
                  f"last {closes[-1]:.4f}"),
        ("time", f"{sum(times):.2f} s on {device} (load {times[0]:.2f} s, forecast {times[1]:.2f} s)"),
    ]
    if output:
        rows.append(("wrote", f"{'stdout' if output == '-' else output} ({len(future)} rows)"))
    if plot:
        rows.append(("plot", str(plot)))
    width = max(len(label) for label, _ in rows)
    lines = [f"{label.ljust(width)}  {value}" for label, value in rows]
    if entry.name == DEMO_ENTRY:
        lines.append(DEMO_NOTE)
    return "\n".join(lines)


def _interval_text(delta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


