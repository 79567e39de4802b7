"""`kronos-registry predict NAME --input FILE --by COLUMN`: every series of a long table.

The click face of ``services/many.py`` (local) and ``services/distributed.py`` (``--ray``): check the options,
read and validate every series, report the bad ones (``--on-error``), forecast the rest in
one call, write the long output, say what was done on stderr.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from kronos_registry.cli.app import App
from kronos_registry.cli.output import table
from kronos_registry.cli.params import check_device
from kronos_registry.services.catalog import DEMO_ENTRY, DEMO_NOTE
from kronos_registry.services.extras import require_extra
from registry.errors import InputDataError


def check_many_options(*, by, future_file, plot, samples, quantiles, on_error, ray_address) -> tuple[float, ...]:
    """Usage errors of the many-series form (exit 2) -> the quantiles to write."""
    from kronos_registry.services.forecast import DEFAULT_QUANTILES

    if by is None:
        given = [flag for flag, value in (("--on-error", on_error), ("--ray", ray_address is not None)) if value]
        raise click.UsageError(f"{given[0] if given else 'that option'} applies to many series: add --by COLUMN "
                               "(the column of --input that names each row's series)")
    if future_file:
        raise click.UsageError("--future-timestamps gives one series' timestamps; with --by each series "
                               "continues its own history")
    if plot:
        raise click.UsageError("--plot draws one series; with --by, forecast one series without --by to plot it")
    return DEFAULT_QUANTILES if quantiles is None else quantiles_option(quantiles, samples)


def quantiles_option(quantiles: str, samples: int) -> tuple[float, ...]:
    """``--quantiles 0.1,0.5,0.9`` -> the quantiles; a usage error (exit 2) naming the fix."""
    from kronos_registry.services.many import parse_quantiles

    if samples < 2:
        raise click.BadParameter("quantiles are taken over the sampled paths: add --samples N (N > 1)",
                                 param_hint="--quantiles")
    try:
        return parse_quantiles(quantiles)
    except ValueError as exc:
        raise click.BadParameter(f"{exc} (give numbers between 0 and 1, e.g. 0.1,0.5,0.9)",
                                 param_hint="--quantiles") from None


def predict_many(app: App, name: str, *, input_path, by, pred_len, lookback, future_file, output, samples,
                 sampling, seed, device, plot, on_error, quantiles, ray_address) -> None:
    from kronos_registry.services.forecast import ForecastParams, draw_seed
    from kronos_registry.services.many import is_parquet, read_series, run_local, write_output

    qs = check_many_options(by=by, future_file=future_file, plot=plot, samples=samples, quantiles=quantiles,
                            on_error=on_error, ray_address=ray_address)
    registry = app.registry()
    entry = registry.model_entry(name)  # fail fast, before reading anything
    if is_parquet(input_path) or (output and is_parquet(output)):
        require_extra("parquet", "Parquet input or output", "pyarrow")
    if ray_address is not None:
        require_extra("ray", "--ray", "ray", "ray.data")
    check_device(device)

    series = read_series(input_path, by, pred_len=pred_len, context=entry.context_length or 512,
                         lookback=lookback)
    if on_error != "skip":
        series.fail_if_bad()
    for bad in series.bad:
        app.note(f"warning: skipped {bad.describe(by)}")
    if not series.good:
        raise InputDataError(f"{input_path}: none of its {series.total} series can be forecast",
                             path=str(input_path), field=by, hint="fix the series named above")
    temperature, top_p, top_k = sampling
    seed = draw_seed(seed)
    job = ForecastParams(pred_len=pred_len, lookback=lookback, temperature=temperature, top_k=top_k, top_p=top_p,
                   samples=samples, seed=seed, quantiles=qs)
    requests = series.requests(job)

    from tqdm.auto import tqdm

    started = time.perf_counter()
    with tqdm(total=len(requests), desc="forecast", unit="series", file=sys.stderr,
              disable=not app.progress, leave=False) as bar:
        if ray_address is None:
            from kronos_registry.services.registry import load_model  # the engine's modules: only when it runs

            predictor = load_model(registry, name, device)
            where = str(predictor.device)
            frame = run_local(predictor, requests, by=by, sampling=job, progress=bar.update)
        else:
            frame, where = run_ray(app, registry, name, requests, by=by, sampling=job, device=device,
                                   address=ray_address or None, progress=bar.update)
    seconds = time.perf_counter() - started

    if output:
        write_output(output, frame)
    else:
        click.echo(series_table(frame, by))
    skipped = f", {len(series.bad)} skipped" if series.bad else ""
    rows = [
        ("model", f"{entry.name} ({registry.status(name)})"),
        ("input", f"{input_path}: {series.rows} rows, {series.total} series by '{by}' "
                  f"({len(series.good)} forecast{skipped})"),
        ("horizon", f"{pred_len} bars per series"),
        ("sampling", f"{samples} sample{'s' if samples != 1 else ''}, T={temperature:g}, top_p={top_p:g}, "
                     f"top_k={top_k}, seed {seed} (each series: from the seed and its key)"),
        ("time", f"{seconds:.2f} s on {where} ({len(requests) / max(seconds, 1e-9):.1f} series/s)"),
    ]
    if output:
        rows.append(("wrote", f"{output} ({len(frame)} rows)"))
    width = max(len(label) for label, _ in rows)
    app.note("\n".join(f"{label.ljust(width)}  {value}" for label, value in rows))
    if entry.name == DEMO_ENTRY:
        app.note(DEMO_NOTE)


def run_ray(app: App, registry, name, requests, *, by, sampling, device, address, progress):
    """The job on Ray: actors load ``name`` through the same registry file, store and offline
    setting as this command. A cluster this command starts shares this machine's store, which
    is filled here first (one sync, not one per actor); a joined cluster's nodes use their own
    (``--store`` or their KRONOS_REGISTRY_HOME), syncing and verifying on first use."""
    from kronos_registry.services.distributed import run_on_ray
    from kronos_registry.services.registry import PACKAGED_REGISTRY

    overlay = registry.spec.path
    registry_file = None if Path(overlay) == PACKAGED_REGISTRY else str(Path(overlay).resolve())
    if address is None:
        registry.loader.locate(name)
        store = str(registry.store.root)
    else:
        store = str(Path(app.store).resolve()) if app.store else None
    app.note(f"ray: {'starting a local cluster' if address is None else f'joining {address}'}, "
             f"{len(requests)} series")
    frame = run_on_ray(requests, by=by, sampling=sampling, name=name, registry=registry_file, store=store,
                       offline=registry.offline, device=device, address=address, progress=progress)
    return frame, f"ray ({'local cluster' if address is None else address})"


def series_table(frame, by: str, head: int = 10) -> str:
    """One line per series: its first and last forecast close."""
    rows = [[str(key), str(len(group)), group["timestamps"].iloc[-1].strftime("%Y-%m-%d %H:%M:%S"),
             f"{group['close'].iloc[0]:.4f}", f"{group['close'].iloc[-1]:.4f}"]
            for key, group in frame.groupby(by, sort=False)]
    if len(rows) > 2 * head:
        rows = rows[:head] + [["..."] + [""] * 4] + rows[-head:]
    return table([by.upper(), "BARS", "LAST TIMESTAMP", "FIRST CLOSE", "LAST CLOSE"], rows)
