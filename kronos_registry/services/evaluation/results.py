"""Evaluation results kept beside the entry in the store: ``<store>/evals/<entry>/<run-id>.json``.

Each run of ``eval`` writes one JSON record per model (its artifact, the data's fingerprint,
the windows, the settings, the seed, its rows and the baselines' on the same windows, the
skill verdicts and notes), atomically (a temp file, fsync, one rename: ``registry.store``'s
``write_atomic``), so a reader never sees half a record. A read-only store keeps nothing
(:func:`save_run` returns None and the caller says so): evaluation itself never needs to write.

:func:`runs` lists an entry's records, oldest first; :func:`latest_per_data` keeps the newest
per data file (sha256), preferring runs of the artifact stored now; :func:`summary` is the
compact form ``show``, ``GET /v1/models/NAME/evals`` and MCP's ``model_info`` carry.

Only the standard library and the engine's store helpers: cheap enough for ``show``.
"""

from __future__ import annotations

import hashlib
import json
import math
from datetime import datetime
from pathlib import Path
from typing import Iterable

from registry.errors import ReadOnlyStoreError
from registry.store import safe_component, write_atomic

EVALS_DIR = "evals"
RESULT_SCHEMA = 1
HEADLINE = ("mae", "rmse", "mase", "direction", "ic", "rank_ic", "crps")


def evals_dir(store_root: str | Path, entry: str) -> Path:
    return Path(store_root) / EVALS_DIR / safe_component(entry)


def inputs_digest(record: dict) -> str:
    """sha256 over what decides a run's numbers: model artifact, data, windows, settings, seed."""
    decided = {key: record.get(key) for key in ("model", "artifact", "settings", "seed")}
    decided["data"] = (record.get("data") or {}).get("sha256")
    return hashlib.sha256(json.dumps(decided, sort_keys=True, default=str).encode()).hexdigest()


def new_run_id(created: str, digest: str) -> str:
    """'20250101T093000Z-<digest>': sorts by time; equal inputs share the digest part."""
    moment = datetime.fromisoformat(created.replace("Z", "+00:00"))
    return f"{moment.strftime('%Y%m%dT%H%M%SZ')}-{digest[:10]}"


def clean(value):
    """A JSON-ready copy in which NaN and infinities are null (JSON has no NaN; JavaScript chokes on it)."""
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()                    # numpy scalars
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def save_run(store, record: dict) -> Path | None:
    """Write ``record`` (with its ``run_id``) under the store; None when the store is read-only."""
    folder = evals_dir(store.root, record["model"])
    path = folder / f"{record['run_id']}.json"
    suffix = 2
    while path.exists():                 # the same inputs in the same second: keep both runs
        path = folder / f"{record['run_id']}-{suffix}.json"
        suffix += 1
    record = {**record, "run_id": path.stem}
    try:
        with store.writing():
            write_atomic(path, json.dumps(clean(record), indent=1, sort_keys=True, allow_nan=False) + "\n")
    except ReadOnlyStoreError:
        return None
    return path


def runs(store_root: str | Path, entry: str) -> list[dict]:
    """Every readable record of ``entry``, oldest first (unreadable files are skipped)."""
    folder = evals_dir(store_root, entry)
    found = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else ():
        if path.name.startswith("."):
            continue
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            continue
        if isinstance(record, dict) and record.get("model") == entry and "run_id" in record:
            found.append(record)
    return sorted(found, key=lambda r: (str(r.get("created", "")), r["run_id"]))


def latest_per_data(records: Iterable[dict], artifact: str | None = None) -> list[dict]:
    """The newest record per data file (sha256); those of ``artifact`` (the stored one) win."""
    best: dict[str, dict] = {}
    for record in records:            # oldest first: later ones replace earlier ones
        sha = (record.get("data") or {}).get("sha256", "")
        current = best.get(sha)
        if current is None or artifact is None or record.get("artifact") == artifact \
                or current.get("artifact") != artifact:
            best[sha] = record
    return sorted(best.values(), key=lambda r: str(r.get("created", "")), reverse=True)


def _overall(record: dict, model: str) -> dict[str, float]:
    return {row["metric"]: row["value"] for row in record.get("rows", ())
            if row.get("model") == model and row.get("step") == "all" and row.get("column") == "close"
            and row.get("metric") in HEADLINE}


def summary(record: dict, artifact: str | None = None) -> dict:
    """The compact form of a record (see the module doc); ``current`` says whether it scored the
    artifact stored now."""
    name = record["model"]
    baselines = sorted({row["model"] for row in record.get("rows", ()) if row.get("role") == "baseline"})
    data = record.get("data") or {}
    windows = record.get("windows") or {}
    return {
        "run_id": record["run_id"],
        "created": record.get("created"),
        "artifact": record.get("artifact"),
        "current": artifact is None or record.get("artifact") == artifact,
        "data": {key: data.get(key) for key in ("path", "sha256", "rows", "series", "by", "first", "last")},
        "horizon": windows.get("horizon"),
        "windows": windows.get("count"),
        "origins": windows.get("origins"),
        "seed": record.get("seed"),
        "samples": (record.get("settings") or {}).get("samples"),
        "metrics": _overall(record, name),
        "baselines": {b: _overall(record, b) for b in baselines},
        "skill": list(record.get("skill") or ()),
        "overlapping_windows": (record.get("guard") or {}).get("overlapping_windows", 0),
        "lineage_checked": (record.get("guard") or {}).get("checked", False),
    }


def entry_evaluations(store_root: str | Path, entry: str, artifact: str | None = None) -> list[dict]:
    """Summaries of the latest run per data set of ``entry`` (what ``show`` lists)."""
    return [summary(r, artifact) for r in latest_per_data(runs(store_root, entry), artifact)]


def evaluations_of(registry, name: str) -> dict:
    """What ``GET /v1/models/NAME/evals`` answers: the latest run per data set and every run."""
    entry = registry.get(name)
    artifact = registry.status(entry.name) if entry.available and entry.source is not None else None
    every = runs(registry.store.root, entry.name)
    return {"name": entry.name, "artifact": artifact,
            "latest": [summary(r, artifact) for r in latest_per_data(every, artifact)],
            "runs": [summary(r, artifact) for r in every]}


def describe(s: dict) -> str:
    """One line for ``show``: data, windows, headline numbers and the verdict."""
    data = s["data"]
    where = Path(str(data.get("path") or "data")).name
    parts = [f"{where} (sha256 {str(data.get('sha256') or '')[:12]}, {data.get('series')} series)",
             f"{s['windows']} windows of {s['horizon']} bars"]
    metrics = s["metrics"]
    if "mase" in metrics:
        parts.append(f"MASE {metrics['mase']:.3f}")
    for skill in s["skill"]:
        if skill.get("loss") == "mase":
            parts.append(f"vs {skill['against']} {skill['baseline_loss']:.3f}: {skill['verdict']}")
    tail = "" if s["current"] else " (an earlier artifact)"
    if s["overlapping_windows"]:
        tail += f" [trained on {s['overlapping_windows']} of its windows]"
    return f"{', '.join(parts)}; run {s['run_id']}{tail}"


__all__ = ["EVALS_DIR", "RESULT_SCHEMA", "clean", "describe", "entry_evaluations", "evals_dir", "evaluations_of", "inputs_digest",
           "latest_per_data", "new_run_id", "runs", "save_run", "summary"]
