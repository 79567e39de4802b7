"""An evaluation as a person or a script reads it: verdict sentences, the JSON document, report files.

The verdict says plainly whether a model beats the best baseline: a model whose loss is not
below it, beyond luck, "does not beat" it, whatever its other numbers say.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from kronos_registry.services.evaluation import results
from kronos_registry.services.evaluation.skill import BETTER, TOO_FEW, WORSE, Skill
from registry.errors import InputDataError

LOSS_NAMES = {"mase": "MASE", "crps": "scaled CRPS"}


def verdict_text(s: Skill, *, overlap: bool = False) -> str:
    """One sentence: does the model beat the best baseline on this loss, and how sure is that."""
    loss = LOSS_NAMES.get(s.loss, s.loss)
    if s.verdict == TOO_FEW:
        return (f"{s.model}: {s.origins} origin(s) are too few to tell skill from luck on {loss} "
                f"(ask for --origins 20 or more)")
    numbers = (f"{loss} {s.model_loss:.4g} vs {s.baseline_loss:.4g}; difference {s.difference:+.4g}, "
               f"95% interval {s.low:+.4g} .. {s.high:+.4g} over {s.origins} origins")
    if s.verdict == BETTER:
        text = f"{s.model} beats {s.against} ({numbers})"
    elif s.verdict == WORSE:
        text = f"{s.model} does NOT beat {s.against}: it is worse ({numbers})"
    else:
        text = f"{s.model} does not beat {s.against}: no detectable difference ({numbers})"
    if overlap:
        text += "; it trained on some of these windows, so even this is optimistic"
    return text


def verdicts(evaluation) -> list[str]:
    return [verdict_text(s, overlap=evaluation.guards[s.model].marked) for s in evaluation.skills]


def document(evaluation) -> dict:
    """The JSON form (``--json``, ``-o REPORT.json``): runs, windows, verdicts, notes and every row."""
    plan = evaluation.plan
    first = evaluation.records[0] if evaluation.records else {}
    return results.clean({
        "models": [r["model"] for r in evaluation.records],
        "data": first.get("data"),
        "windows": {key: value for key, value in (first.get("windows") or {}).items()},
        "horizon": plan.horizon, "lookback": plan.lookback,
        "settings": first.get("settings"), "seed": first.get("seed"),
        "runs": [{"model": r["model"], "run_id": r["run_id"], "artifact": r["artifact"], "stored": r["stored"]}
                 for r in evaluation.records],
        "skill": [s.to_dict() for s in evaluation.skills],
        "verdicts": verdicts(evaluation),
        "notes": list(evaluation.notes),
        "rows": evaluation.report.to_dict(orient="records"),
    })


def write_report(path: str | os.PathLike, evaluation) -> Path:
    """``-o``: the rows as CSV (.csv) or the whole document as JSON (.json)."""
    out = Path(path)
    suffix = out.suffix.lower()
    if suffix not in (".csv", ".json"):
        raise InputDataError(f"cannot tell the report format of {out}", path=str(out), field="output",
                             hint="name the report REPORT.csv (one row per model x step x metric) or REPORT.json")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        if suffix == ".csv":
            evaluation.report.to_csv(out, index=False, lineterminator="\n")
        else:
            out.write_text(json.dumps(document(evaluation), indent=1) + "\n", encoding="utf-8")
    except OSError as exc:
        raise InputDataError(f"cannot write {out}: {exc.strerror or exc}", path=str(out),
                             hint="choose a report path in a folder you can write to") from exc
    return out


__all__ = ["document", "verdict_text", "verdicts", "write_report"]
