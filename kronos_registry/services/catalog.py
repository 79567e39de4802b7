"""What the registry knows about each entry, as every face shows it.

`list --json`, `show --json`, `GET /v1/models` and the MCP `list_models`/`model_info` tools
all render these dicts, so an entry reads the same everywhere. No click, no torch.
"""

from __future__ import annotations

from pathlib import Path

from registry import provenance
from registry.errors import RegistryError

# Ships in the package: a tiny model trained by scripts/make_demo_model.py on two indices' daily
# candles. Every face that forecasts with it says what it is; its card (`show`) says how it scored.
DEMO_ENTRY = "kronos-demo"
DEMO_NOTE = (f"note: {DEMO_ENTRY} is a tiny demo model (380k parameters, trained on S&P 500 and NASDAQ daily "
             f"candles); its card (`kronos-registry show {DEMO_ENTRY}`) says how it compares with a naive "
             "forecast. For real forecasts use kronos-mini, kronos-small or kronos-base")


def entry_info(registry, entry) -> dict:
    artifact = registry.status(entry.name) if entry.available and entry.source is not None else None
    manifest = None
    if artifact is not None:
        try:
            manifest = registry.store.read_manifest(artifact)
        except RegistryError:
            manifest = None
    return {
        "name": entry.name,
        "kind": entry.kind,
        "display_name": entry.display_name,
        "description": entry.description,
        "params": entry.params.value if entry.params else None,
        "params_text": entry.params.text if entry.params else None,
        "context_length": entry.context_length,
        "tokenizer": entry.tokenizer,
        "source": str(entry.source) if entry.source is not None else None,
        "available": entry.available,
        "reason": entry.reason,
        "synced": artifact is not None,
        "artifact_id": artifact,
        "size": manifest.total_size if manifest is not None else None,
        "revision": manifest.resolved_revision if manifest is not None else None,
        "registry": entry.origin.path,
        "bundle": bundle_name(entry.origin.path),
        "replaces": replaced_definition(entry),
        "fine_tuned_from": fine_tuned_from(entry),
        # The stored files checked against no trusted record (adopted from the HF cache offline,
        # or from a mirror that recorded no hash): the name may not mean what the registry says.
        "unverified": list(provenance.unverified(manifest)),
    }


def fine_tuned_from(entry) -> str | None:
    """The base a fine-tuned entry was made from (its lineage's ``base``), else None."""
    lineage = entry.lineage
    return str(lineage.get("base")) if isinstance(lineage, dict) and lineage.get("base") else None


def replaced_definition(entry) -> str | None:
    """The registry file whose different entry of this name this one displaced, else None.

    An imported entry replaces only when its import was asked to (`import --replace`): the
    others carry the very files the registry's entry names, from a copy in the store."""
    from registry.bundle.imported import replaced_names

    if entry.replaces is None or bundle_name(entry.origin.path) is None:
        return entry.replaces
    return entry.replaces if entry.name in replaced_names(entry.origin.path) else None


def bundle_name(path: str) -> str | None:
    """The bundle an imported entry came from (None for entries of other registry files)."""
    from registry.bundle.imported import bundle_name as imported_from

    return imported_from(path)


def stored_info(registry, artifact_id: str | None) -> dict | None:
    if artifact_id is None:
        return None
    manifest = registry.store.read_manifest(artifact_id)
    return {
        "artifact_id": artifact_id,
        "path": str(registry.store.object_dir(artifact_id)),
        "resolved_revision": manifest.resolved_revision,
        "size": manifest.total_size,
        "files": [{"name": f.name, "size": f.size, "sha256": f.sha256, "checked_against": f.checked_against}
                  for f in manifest.files],
        "created_at": manifest.created_at,
        "checks": list(manifest.checks),
        "warnings": list(manifest.warnings),
    }


def show_info(registry, name: str) -> dict:
    """Everything about one entry (`show --json`): entry_info plus config, files, the stored copy."""
    entry = registry.get(name)
    info = entry_info(registry, entry)
    info["config"] = dict(entry.config) if entry.config is not None else None
    info["defined_in"] = str(entry.origin)
    info["sha256"] = dict(entry.sha256)
    info["files"] = list(entry.files)
    if entry.kind == "tokenizer":
        info["used_by"] = [m.name for m in registry.spec.models.values() if m.tokenizer == entry.name]
    info["store"] = stored_info(registry, info["artifact_id"])
    info["counted_params"], info["counted_in"] = counted_params_of(entry, info)
    info["lineage"], info["lineage_error"] = lineage_of(entry)
    if entry.kind == "model":
        from kronos_registry.services.evaluation.results import entry_evaluations

        # The latest stored `eval` run per data set (newest first), so every face shows the evidence.
        info["evaluations"] = entry_evaluations(registry.store.root, entry.name, info["artifact_id"])
    return info


def lineage_of(entry) -> tuple[dict | None, str | None]:
    """The entry's lineage as parsed (None without one), or the reason it does not parse."""
    from kronos_registry.services.lineage import Lineage, LineageError

    if entry.lineage is None:
        return None, None
    try:
        return Lineage.from_mapping(entry.lineage).to_dict(), None
    except (LineageError, TypeError, ValueError) as error:
        return None, str(error)


def lineage_rows(info: dict) -> list[tuple[str, str]]:
    """What `show` says about a fine-tune: base, data, each split's span, settings, outcome."""
    if info.get("lineage_error"):
        return [("lineage", f"unreadable: {info['lineage_error']} (`kronos-registry verify` checks it)")]
    data = info.get("lineage")
    if data is None:
        return []
    from kronos_registry.services.lineage import Lineage

    lineage = Lineage.from_mapping(data)
    rows = [("fine-tuned", f"from {lineage.base} ({lineage.base_artifact or 'artifact unknown'}), "
                           f"{lineage.created}, kronos-registry {lineage.tool_version}"),
            ("trained on", f"{lineage.data.path} (sha256 {lineage.data.sha256[:16]}..., {lineage.data.rows:,} rows, "
                           f"{lineage.data.series} series{', by ' + lineage.data.by if lineage.data.by else ''}, "
                           f"{lineage.data.first} .. {lineage.data.last})")]
    for name, spans in lineage.splits.items():
        if spans:
            first, last = min(s.first for s in spans), max(s.last for s in spans)
            bars = sum(s.rows for s in spans)
            rows.append((f"  {name}", f"{bars:,} bars of {len(spans)} series, {first} .. {last}"))
    hyper = lineage.hyperparameters
    shown = ("tokenizer", "epochs", "max_steps", "batch_size", "lr", "tokenizer_lr", "lookback", "horizon", "seed",
             "world_size")
    rows.append(("settings", " ".join(f"{k}={hyper[k]}" for k in shown if hyper.get(k) is not None)))
    if lineage.best_validation_loss is not None:
        rows.append(("best val loss", f"{lineage.best_validation_loss:.4f}"))
    rows += [(f"{role} sha256", digest) for role, digest in lineage.weights_sha256.items()]
    return rows


def counted_params(folder: Path, role: str) -> int | None:
    """Parameters of the ``role`` module that ``folder/config.json`` builds (on the meta device:
    no memory), as sync's parameter check counts them; the weights' shapes were checked to
    match it. None when the config cannot build one (`verify` says why)."""
    from kronos_registry.kronos.checks import count_parameters, read_config, schema_problems

    config, problem = read_config(Path(folder))
    if problem is not None or any(p.is_error for p in schema_problems(config, role, "")):
        return None
    try:
        return count_parameters(role, config)
    except Exception:  # noqa: BLE001 - a config the checks would refuse: nothing to count
        return None


def counted_params_of(entry, info: dict) -> tuple[int | None, str | None]:
    """Parameters counted in the weights: the stored copy's, else a local source folder's."""
    from registry.spec import LocalSource

    if info["store"] is not None:
        return counted_params(Path(info["store"]["path"]), entry.kind), "the stored checkpoint"
    if isinstance(entry.source, LocalSource) and Path(entry.source.path).is_dir():
        return counted_params(Path(entry.source.path), entry.kind), "the source folder"
    return None, None


def content_row(files: list[dict]) -> str:
    """What each stored file was checked against before it was published (``registry.provenance``)."""
    by_record: dict = {}
    for item in files:
        by_record.setdefault(item.get("checked_against"), []).append(item["name"])
    return "; ".join(f"{', '.join(names)} checked against {provenance.DESCRIPTIONS.get(how, how)}"
                     for how, names in by_record.items())


def render_show(entry, info: dict) -> str:
    """What `show` prints: one aligned line per known fact."""
    params = "-"
    if entry.params is not None:
        params = f"{entry.params.value:,}" if entry.params.exact else f"{entry.params.text} (rounded)"
        params += " declared"
    if info.get("counted_params") is not None:
        counted = f"{info['counted_params']:,} counted in {info['counted_in']}"
        params = counted if params == "-" else f"{params}, {counted}"
    rows = [
        ("display name", info["display_name"]),
        ("description", info["description"]),
        ("source", info["source"] or "-"),
        ("tokenizer", info["tokenizer"]),
        ("used by", ", ".join(info.get("used_by") or []) or None),
        ("context", info["context_length"]),
        ("params", params),
        ("available", "yes" if entry.available else f"no: {entry.reason or 'marked available: false'}"),
        ("defined in", info["defined_in"]),
        ("imported from", info["bundle"]),
        ("replaces", f"the entry of the same name in {info['replaces']}" if info["replaces"] else None),
        ("config", " ".join(f"{k}={v}" for k, v in (info["config"] or {}).items()) or None),
        *lineage_rows(info),
    ]
    stored = info["store"]
    if stored is None and entry.available:
        rows.append(("store", f"not synced (run `kronos-registry sync {entry.name}`)"))
    elif stored is not None:
        rows += [
            ("store", f"synced as {stored['artifact_id']}"),
            ("path", stored["path"]),
            ("revision", stored["resolved_revision"]),
            ("files", ", ".join(f"{f['name']} {human_size(f['size'])}" for f in stored["files"])),
            ("synced at", stored["created_at"]),
            ("checks", ", ".join(stored["checks"])),
            ("content", content_row(stored["files"])),
        ]
        rows += [("warning", text) for text in stored["warnings"]]
    if info.get("evaluations"):
        from kronos_registry.services.evaluation.results import describe

        rows += [("evaluated", describe(summary)) for summary in info["evaluations"]]
    width = max(len(label) for label, _ in rows)
    lines = [f"{entry.name} ({entry.kind})"]
    lines += [f"  {label.ljust(width)}  {value}" for label, value in rows if value not in (None, "")]
    return "\n".join(lines)


def human_size(count: int | None) -> str:
    if count is None:
        return "-"
    size = float(count)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"  # pragma: no cover - unreachable


def human_params(entry) -> str:
    if entry.params is None:
        return "-"
    if not entry.params.exact:
        return entry.params.text
    value = entry.params.value
    for suffix, scale in (("B", 10**9), ("M", 10**6), ("K", 10**3)):
        if value >= scale:
            return f"{value / scale:.1f}{suffix}"
    return str(value)
