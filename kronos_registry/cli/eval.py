"""`kronos-registry eval`: which variant to serve, by a rolling-origin backtest against baselines.

The click face of ``services/evaluation``: check the options, read the candles, run one
evaluation (``job.run_evaluation``), print a compact table and a plain verdict per model, write
the report and the plot when asked. `eval --history NAME` lists the stored runs instead.
"""

from __future__ import annotations

import sys
import time

import click

from kronos_registry.cli.app import App, cli, pass_app
from kronos_registry.cli.output import emit_json, table
from kronos_registry.cli.params import bounded, check_device
from kronos_registry.services.catalog import DEMO_ENTRY, DEMO_NOTE
from kronos_registry.services.extras import require_extra

# The overall close metrics the terminal table shows, in this order, when computed.
SHOWN = (("mae", "MAE"), ("rmse", "RMSE"), ("mase", "MASE"), ("direction", "DIR"), ("ic", "IC"),
         ("rank_ic", "RANKIC"), ("crps", "CRPS"))


@cli.command("eval")
@click.argument("names", nargs=-1, metavar="NAME [NAME...]")
@click.option("--input", "-i", "input_path", metavar="DATA", help="Candles: one series (CSV), or with --by a long "
              "table (CSV or Parquet), one row per bar.")
@click.option("--by", metavar="COLUMN", help="The column of DATA naming each row's series (IC and RankIC need 5+).")
@click.option("--horizon", "-n", type=bounded("pred_len"), metavar="H", help="Bars forecast from each origin.")
@click.option("--origins", type=click.IntRange(1), metavar="K", help="K origins over each series' tail, H bars "
              "apart [default: 20].")
@click.option("--every", type=click.IntRange(1), metavar="S", help="Instead: an origin every S bars back from the end.")
@click.option("--lookback", type=bounded("lookback"), metavar="L", help="Bars of history before each origin "
              "[default: what fits the context with H, as long as the series allow].")
@click.option("--samples", default=1, show_default=True, type=bounded("samples"), metavar="N",
              help="Sampled paths per window; above 1, CRPS, pinball loss and coverage are scored too.")
@click.option("--quantiles", metavar="Q,...", help="With --samples: quantiles to score [default: 0.1,0.5,0.9].")
@click.option("--seed", default=0, show_default=True, type=bounded("seed"), metavar="S",
              help="Each window's seed comes from S, its series and its origin: reruns give the same numbers.")
@click.option("--temperature", "-T", default=1.0, show_default=True, type=bounded("temperature", float), metavar="T")
@click.option("--top-p", default=0.9, show_default=True, type=bounded("top_p", float), metavar="P")
@click.option("--top-k", default=0, show_default=True, type=bounded("top_k"), metavar="K",
              help="1 is greedy decoding.")
@click.option("--baselines", metavar="LIST", help="naive, drift, seasonal:N, random-walk [default: naive,drift; "
              "with --samples also random-walk].")
@click.option("--metrics", metavar="LIST", help="mae, rmse, mase, direction, ic, rank_ic, crps, pinball, coverage "
              "[default: every one that applies].")
@click.option("--columns", metavar="LIST", help="Columns for MAE, RMSE, MASE and the sample metrics [default: close].")
@click.option("--allow-overlap", is_flag=True, help="Score a fine-tuned entry on windows inside its training span "
              "(refused otherwise); its rows are marked.")
@click.option("--device", metavar="DEVICE", help="cpu, cuda, cuda:1, mps [default: cuda, else mps, else cpu].")
@click.option("--max-batch", default=16, show_default=True, type=click.IntRange(1), metavar="N",
              help="Windows per model pass.")
@click.option("--json", "as_json", is_flag=True, help="Print the whole report as JSON.")
@click.option("--output", "-o", metavar="REPORT", help="Write the report: .csv (one row per model x step x metric) "
              "or .json.")
@click.option("--plot", metavar="PNG", help="Error by horizon step (and, with --samples, calibration) as a PNG.")
@click.option("--no-keep", is_flag=True, help="Do not keep this run in the store.")
@click.option("--history", is_flag=True, help="List the stored runs of NAME instead of evaluating.")
@pass_app
def evaluate(app: App, names, input_path, by, horizon, origins, every, lookback, samples, quantiles, seed,
             temperature, top_p, top_k, baselines, metrics, columns, allow_overlap, device, max_batch, as_json,
             output, plot, no_keep, history):
    """Backtest models NAME... on DATA: each forecast sees only the bars before its origin and is
    scored on the next H bars, beside baselines on exactly the same windows.

    Every metric per horizon step and overall; for each model a 95% block-bootstrap interval of
    its MASE difference to the best baseline, with the verdict "better", "worse" or "no
    detectable difference". A fine-tuned entry is refused on the candles it trained on (its
    lineage says which) unless --allow-overlap. Each run is kept in the store (`show NAME`,
    `eval --history NAME`).

    \b
    Example:
      kronos-registry eval kronos-mini kronos-small -i candles.csv -n 24 --origins 30 \\
          --samples 20 -o report.csv --plot report.png
    """
    if history:
        return show_history(app, names, as_json)
    settings = check_options(names, input_path, horizon, origins, every, lookback, samples, quantiles, seed,
                             temperature, top_p, top_k, baselines, metrics, columns, allow_overlap, max_batch)
    from kronos_registry.services.evaluation.data import read_data
    from kronos_registry.services.evaluation.job import run_evaluation
    from kronos_registry.services.many import is_parquet

    registry = app.registry()
    for name in dict.fromkeys(names):
        registry.model_entry(name)  # fail fast, before reading anything
    if plot:
        require_extra("plot", "--plot", "matplotlib")
    if is_parquet(input_path):
        require_extra("parquet", "Parquet input", "pyarrow")
    check_device(device)
    data = read_data(input_path, by)

    from tqdm.auto import tqdm

    from kronos_registry.services.registry import load_model

    started = time.perf_counter()
    with tqdm(desc="forecast", unit="window", file=sys.stderr, disable=not app.progress, leave=False) as bar:
        result = run_evaluation(registry, names, data, settings, load=lambda name: load_model(registry, name, device),
                                keep=not no_keep, progress=bar.update)
    seconds = time.perf_counter() - started
    if output:
        from kronos_registry.services.evaluation.render import write_report

        write_report(output, result)
    if plot:
        from kronos_registry.services.evaluation.plot import save_eval_plot

        save_eval_plot(plot, result.report, title=plot_title(result))
    if as_json:
        from kronos_registry.services.evaluation.render import document

        emit_json(document(result))
    else:
        click.echo(compact_table(result))
        click.echo()
        from kronos_registry.services.evaluation.render import verdicts

        for line in verdicts(result):
            click.echo(line)
    app.note(run_summary(result, data, seconds, output=output, plot=plot))


def check_options(names, input_path, horizon, origins, every, lookback, samples, quantiles, seed, temperature,
                  top_p, top_k, baselines, metrics, columns, allow_overlap, max_batch):
    """Usage errors (exit 2) -> the run's settings."""
    from kronos_registry.services.evaluation.job import EvalSettings
    from kronos_registry.services.forecast import DEFAULT_QUANTILES
    from kronos_registry.services.many import parse_quantiles

    if not names:
        raise click.UsageError("name one or more models to evaluate: kronos-registry eval NAME [NAME...] -i DATA -n H")
    if input_path is None:
        raise click.UsageError("give the candles to evaluate on: -i/--input DATA")
    if horizon is None:
        raise click.UsageError("give the horizon: -n/--horizon H (bars forecast from each origin)")
    if origins is not None and every is not None:
        raise click.UsageError("--origins K and --every S both place origins: give one")
    qs = DEFAULT_QUANTILES
    if quantiles is not None:
        if samples < 2:
            raise click.BadParameter("quantiles are taken over sampled paths: add --samples N (N > 1)",
                                     param_hint="--quantiles")
        try:
            qs = parse_quantiles(quantiles)
        except ValueError as exc:
            raise click.BadParameter(f"{exc} (give numbers between 0 and 1, e.g. 0.1,0.5,0.9)",
                                     param_hint="--quantiles") from None
    return EvalSettings(horizon=horizon, origins=origins, every=every, lookback=lookback, samples=samples,
                        quantiles=qs, seed=seed, temperature=temperature, top_p=top_p, top_k=top_k,
                        baselines=baselines, metrics=metrics, columns=columns, allow_overlap=allow_overlap,
                        max_batch=max_batch)


def _number(value) -> str:
    if value is None or value != value:   # NaN
        return "-"
    return f"{value:.4f}" if abs(value) < 1000 else f"{value:,.1f}"


def compact_table(result) -> str:
    """One line per model and baseline: the overall close metrics, then the verdict."""
    report = result.report
    overall = report[(report["step"] == "all") & (report["column"] == "close")]
    shown = [(metric, head) for metric, head in SHOWN if (overall["metric"] == metric).any()]
    cover = sorted(m for m in overall["metric"].unique() if str(m).startswith("coverage_"))
    skills = {s.model: s for s in result.skills if s.loss == "mase"}
    headers = ["NAME", "ROLE", *[head for _, head in shown], *[f"COVER{float(c.split('_')[1]):.0%}" for c in cover],
               "MASE - BEST [95%]", "VERDICT"]
    rows = []
    for name in dict.fromkeys(overall["model"]):
        mine = overall[overall["model"] == name].set_index("metric")["value"]
        role = overall[overall["model"] == name]["role"].iloc[0]
        marked = result.guards.get(name) is not None and result.guards[name].marked
        cells = [name + (" *" if marked else ""), role, *[_number(mine.get(metric)) for metric, _ in shown],
                 *[_number(mine.get(c)) for c in cover]]
        s = skills.get(name)
        if s is None:
            cells += ["", ""]
        else:
            interval = "" if s.low != s.low else f" [{s.low:+.3f}, {s.high:+.3f}]"
            cells += [f"{s.difference:+.3f}{interval} vs {s.against}", _plain_verdict(s)]
        rows.append(cells)
    text = table(headers, rows)
    if any(g.marked for g in result.guards.values()):
        text += "\n* trained on some of these windows (--allow-overlap): its numbers are optimistic"
    return text


def _plain_verdict(s) -> str:
    from kronos_registry.services.evaluation.skill import BETTER

    return s.verdict if s.verdict == BETTER else f"{s.verdict}: does not beat {s.against}"


def run_summary(result, data, seconds: float, *, output, plot) -> str:
    plan = result.plan
    settings = result.records[0]["settings"] if result.records else {}
    rows = [
        ("data", f"{data.source}: {len(data.series)} series, sha256 {data.sha256[:12]}"),
        ("windows", f"{len(plan.windows)} windows at {len(plan.origins())} origins, horizon {plan.horizon}, "
                    f"lookback {plan.lookback}, origins {plan.step} bars apart"),
        ("sampling", f"{settings.get('samples', 1)} sample(s), T={settings.get('temperature', 1.0):g}, "
                     f"top_p={settings.get('top_p', 0.9):g}, top_k={settings.get('top_k', 0)}, "
                     f"seed {settings.get('seed')} (each window: from the seed, its series and origin)"),
        ("time", f"{seconds:.2f} s"),
    ]
    for record in result.records:
        kept = record["stored"] or "not kept"
        rows.append(("run", f"{record['model']} ({record['artifact']}): {record['run_id']} -> {kept}"))
    if output:
        rows.append(("wrote", str(output)))
    if plot:
        rows.append(("plot", str(plot)))
    width = max(len(label) for label, _ in rows)
    lines = [*result.notes, *(f"{label.ljust(width)}  {value}" for label, value in rows)]
    if any(r["model"] == DEMO_ENTRY for r in result.records):
        lines.append(DEMO_NOTE)
    return "\n".join(lines)


def plot_title(result) -> str:
    names = ", ".join(r["model"] for r in result.records)
    return f"{names}: error by horizon step over {len(result.plan.windows)} windows"


# ---------------------------------------------------------------------------------------------- history


def show_history(app: App, names, as_json: bool) -> None:
    from kronos_registry.services.evaluation import results

    if len(names) != 1:
        raise click.UsageError("--history lists the runs of one model: kronos-registry eval --history NAME")
    registry = app.registry()
    entry = registry.get(names[0])
    artifact = registry.status(entry.name)
    runs = [results.summary(r, artifact) for r in results.runs(registry.store.root, entry.name)]
    if as_json:
        emit_json({"model": entry.name, "artifact": artifact, "runs": runs})
        return
    if not runs:
        app.note(f"no stored evaluation of '{entry.name}' in {registry.store.root} "
                 f"(run `kronos-registry eval {entry.name} -i DATA -n H`)")
        return
    rows = []
    for s in runs:
        mase = next((k for k in s["skill"] if k.get("loss") == "mase"), None)
        rows.append([s["run_id"], s["created"], f"{(s['data']['path'] or '-').rsplit('/', 1)[-1]} "
                     f"({(s['data']['sha256'] or '')[:8]})", s["horizon"], s["windows"],
                     _number(s["metrics"].get("mase")),
                     f"{mase['against']} {_number(mase['baseline_loss'])}" if mase else "-",
                     mase["verdict"] if mase else "-", "" if s["current"] else "earlier artifact"])
    click.echo(table(["RUN", "CREATED", "DATA", "H", "WINDOWS", "MASE", "BEST BASELINE", "VERDICT", ""], rows))
