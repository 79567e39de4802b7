"""One evaluation run, for every face: settings in, report rows and stored records out.

:func:`run_evaluation` checks everything that can be wrong before any forecast (entries,
parameters, baselines, metrics, windows, the leakage guard), then forecasts the windows with
each model (all of them in one batched call per model) and each baseline, scores them
(``scoring.py``), pairs each model with the best baseline (``skill.py``) and keeps one record
per model in the store (``results.py``). The CLI, ``kronos_registry.evaluate`` and any later
face render the same :class:`Evaluation`.
"""

from __future__ import annotations

import time
from typing import Callable, Sequence

import attrs
import pandas as pd

from kronos_registry.services.evaluation import guard as leakage
from kronos_registry.services.evaluation import results
from kronos_registry.services.evaluation.backtest import (
    Forecasts,
    Plan,
    baseline_forecasts,
    model_forecasts,
    plan_windows,
    windows_table,
)
from kronos_registry.services.evaluation.baselines import Baseline, parse_baselines
from kronos_registry.services.evaluation.data import EvalData
from kronos_registry.services.evaluation.scoring import ALL, parse_columns, parse_metrics, score
from kronos_registry.services.evaluation.skill import Skill, compare
from kronos_registry.services.forecast import DEFAULT_QUANTILES, ForecastParams

REPORT_COLUMNS = ["model", "role", "column", "metric", "step", "value", "windows", "overlap", "against",
                  "ci_low", "ci_high", "verdict"]


@attrs.frozen
class EvalSettings:
    """What a caller asks of one evaluation (the CLI's options, ``evaluate``'s arguments)."""

    horizon: int
    origins: int | None = None
    every: int | None = None
    lookback: int | None = None
    samples: int = 1
    quantiles: tuple[float, ...] = attrs.field(default=DEFAULT_QUANTILES, converter=tuple)
    seed: int = 0
    temperature: float = 1.0
    top_p: float = 0.9
    top_k: int = 0
    baselines: str | None = None        # as typed: "naive,drift,seasonal:48"; None: the defaults
    metrics: str | None = None          # None: every one that applies
    columns: str | None = None          # None: close
    allow_overlap: bool = False
    max_batch: int = 16

    def params(self) -> ForecastParams:
        return ForecastParams(pred_len=self.horizon, samples=self.samples, seed=self.seed,
                              temperature=self.temperature, top_p=self.top_p, top_k=self.top_k,
                              lookback=self.lookback, quantiles=self.quantiles)

    def to_dict(self) -> dict:
        return {**attrs.asdict(self), "quantiles": list(self.quantiles)}


@attrs.frozen(eq=False)
class Evaluation:
    """A finished run: the report, and what produced it."""

    report: pd.DataFrame
    plan: Plan
    forecasts: tuple[Forecasts, ...]
    skills: tuple[Skill, ...]
    guards: dict
    records: tuple[dict, ...]          # one per model; "stored" is its path or None
    notes: tuple[str, ...]


def run_evaluation(registry, names: Sequence[str], data: EvalData, settings: EvalSettings, *,
                   load: Callable[[str], object], keep: bool = True,
                   progress: Callable[[int], None] | None = None) -> Evaluation:
    """Evaluate models ``names`` on ``data`` (see the module doc); ``load(name)`` gives a predictor."""
    entries = [registry.model_entry(name) for name in dict.fromkeys(names)]       # fail fast, before reading
    settings.params().check()
    baselines = parse_baselines(settings.baselines, samples=settings.samples)
    metrics = parse_metrics(settings.metrics, samples=settings.samples, series=len(data.series))
    columns = parse_columns(settings.columns)
    context = min(entry.context_length or 512 for entry in entries)
    plan = plan_windows(data.series, horizon=settings.horizon, context=context, lookback=settings.lookback,
                        origins=settings.origins, every=settings.every, source=data.source,
                        min_history=max(b.min_history() for b in baselines))
    guards = {e.name: leakage.check(e, plan, sha256=data.sha256, by=data.by, source=data.source,
                                    allow_overlap=settings.allow_overlap) for e in entries}
    notes = list(plan.notes) + [g.note for g in guards.values() if g.note]

    base = [baseline_forecasts(b, plan, samples=settings.samples, seed=settings.seed) for b in baselines]
    models, seconds = [], {}
    for entry in entries:
        started = time.perf_counter()
        predictor = load(entry.name)
        models.append(model_forecasts(predictor, plan, settings.params(), name=entry.name, seed=settings.seed,
                                      max_batch=settings.max_batch, progress=progress))
        seconds[entry.name] = time.perf_counter() - started
    rows = score(plan, [*models, *base], metrics=metrics, columns=columns, quantiles=settings.quantiles, notes=notes)
    skills = [s for f in models for s in _skills(plan, f, base, settings) if s is not None]
    report = report_frame(rows, skills, guards)
    records = tuple(_record(registry, entry, data, plan, settings, baselines, report, skills, guards, seconds,
                            notes, keep) for entry in entries)
    if keep and any(r["stored"] is None for r in records):
        notes.append(f"note: the store {registry.store.root} is read-only: these results were not kept")
    return Evaluation(report, plan, tuple([*models, *base]), tuple(skills), guards, records, tuple(notes))


def _skills(plan: Plan, model: Forecasts, base: list[Forecasts], settings: EvalSettings):
    yield compare(plan, model, base, loss="mase", seed=settings.seed)
    if settings.samples > 1:
        yield compare(plan, model, base, loss="crps", seed=settings.seed)


def report_frame(rows: list[dict], skills: Sequence[Skill], guards: dict) -> pd.DataFrame:
    """Metric rows plus one skill row per model and loss, in :data:`REPORT_COLUMNS`."""
    table = [dict(row) for row in rows]
    for s in skills:
        table.append({"model": s.model, "role": "model", "column": "close", "metric": f"skill_{s.loss}", "step": ALL,
                      "value": s.difference, "windows": s.origins, "against": s.against, "ci_low": s.low,
                      "ci_high": s.high, "verdict": s.verdict})
    frame = pd.DataFrame(table, columns=REPORT_COLUMNS)
    frame["overlap"] = [bool(guards[m].marked) if m in guards else False for m in frame["model"]]
    return frame


def _record(registry, entry, data: EvalData, plan: Plan, settings: EvalSettings, baselines: Sequence[Baseline],
            report: pd.DataFrame, skills: Sequence[Skill], guards: dict, seconds: dict, notes, keep: bool) -> dict:
    from registry.store import tool_version, utc_now

    mine = report[(report["model"] == entry.name) | (report["role"] == "baseline")]
    record = {
        "schema": results.RESULT_SCHEMA, "created": utc_now(), "tool_version": tool_version(),
        "model": entry.name, "artifact": registry.status(entry.name),
        "tokenizer": entry.tokenizer, "tokenizer_artifact": registry.status(entry.tokenizer) if entry.tokenizer else None,
        "data": data.fingerprint(),
        "windows": {"count": len(plan.windows), "origins": len(plan.origins()), "horizon": plan.horizon,
                    "lookback": plan.lookback, "step": plan.step, "per_series": windows_table(plan)},
        "settings": {**settings.to_dict(), "baselines": [b.name for b in baselines]},
        "seed": settings.seed,
        "guard": {"checked": guards[entry.name].checked,
                  "overlapping_windows": len(guards[entry.name].overlapping)},
        "skill": [s.to_dict() for s in skills if s.model == entry.name],
        "rows": mine.to_dict(orient="records"),
        "notes": list(notes), "seconds": round(seconds.get(entry.name, 0.0), 3),
    }
    record = results.clean(record)
    record["run_id"] = results.new_run_id(record["created"], results.inputs_digest(record))
    path = results.save_run(registry.store, record) if keep else None
    return {**record, "run_id": path.stem if path is not None else record["run_id"],
            "stored": str(path) if path is not None else None}


__all__ = ["EvalSettings", "Evaluation", "REPORT_COLUMNS", "report_frame", "run_evaluation"]
