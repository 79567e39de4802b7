"""`list`, `show` and `validate`: what the registry file names and what the store holds."""

from __future__ import annotations

from pathlib import Path

import click

from kronos_registry.cli.app import App, cli, pass_app
from kronos_registry.cli.output import emit_json, shorten, table
from kronos_registry.services.catalog import entry_info, human_params, human_size, render_show, show_info

# ==============================================================================================
# list / show
# ==============================================================================================


def revision_text(info: dict) -> str:
    """The stored revision, short: a hub commit's first 12 digits, a local copy's content digest."""
    if info.get("revision"):
        return info["revision"][:12]
    if info.get("artifact_id"):
        return "local@" + info["artifact_id"].rsplit("--", 1)[-1][:12]
    return "-"


def status_word(info: dict) -> str:
    if not info["available"]:
        return "unavailable"
    return "synced" if info["synced"] else "-"


@cli.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of entries.")
@click.option("--stored", is_flag=True, help="List every object in the store instead, with the entries "
              "(of any registry file) whose refs name it; `rm ARTIFACT_ID` removes one.")
@pass_app
def list_entries(app: App, as_json: bool, stored: bool):
    """List the registry's models and tokenizers, whether each is synced, its size and revision."""
    registry = app.registry()
    if stored:
        list_stored(app, registry, as_json)
        return
    infos = [entry_info(registry, entry) for entry in registry.entries()]
    if as_json:
        emit_json(infos)
        return
    rows = [[i["name"], i["kind"], human_params(registry.get(i["name"])), i["context_length"] or "-",
             status_word(i), human_size(i["size"]) if i["synced"] else "-",
             revision_text(i) if i["synced"] else "-", shorten(described(i), 48)]
            for i in infos]
    click.echo(table(["NAME", "KIND", "PARAMS", "CONTEXT", "STATUS", "SIZE", "REVISION", "DESCRIPTION"], rows))
    app.note(f"\nregistry: {', '.join(registry.spec.paths)}\nstore:    {registry.store.root}")


def described(info: dict) -> str:
    """The description, marked with the bundle an imported entry came from and, for a
    fine-tune, the base it was made from."""
    text = info["description"] or info["reason"] or ""
    if info.get("fine_tuned_from"):
        text = f"[fine-tune of {info['fine_tuned_from']}] {text}".strip()
    if info.get("unverified"):  # stored files nothing trusted vouches for
        text = f"[unverified: {', '.join(info['unverified'])}] {text}".strip()
    if info.get("replaces"):  # a name that now means another checkpoint: first thing said
        text = f"[replaces {Path(info['replaces']).name}] {text}".strip()
    return f"[from {info['bundle']}] {text}".strip() if info["bundle"] else text


def list_stored(app: App, registry, as_json: bool) -> None:
    from kronos_registry.services.stored import stored_objects

    objects = stored_objects(registry)
    if as_json:
        emit_json(objects)
        return
    rows = [[o["artifact_id"], o["kind"] or "?", human_size(o["size"]),
             (o["revision"] or "-")[:12],
             ", ".join(r["entry"] + (f" ({r['registry']})" if r["registry"] else "") for r in o["refs"])
             or "(no ref: `gc` removes it)"]
            for o in objects]
    click.echo(table(["ARTIFACT", "KIND", "SIZE", "REVISION", "NAMED BY"], rows))
    total = sum(o["size"] or 0 for o in objects)
    app.note(f"\n{len(objects)} object{'s' if len(objects) != 1 else ''}, {human_size(total)}; "
             f"store: {registry.store.root}")


@cli.command()
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
@pass_app
def show(app: App, name: str, as_json: bool):
    """Show everything about one entry: source, config, and its copy in the store."""
    registry = app.registry()
    info = show_info(registry, name)
    if as_json:
        emit_json(info)
        return
    click.echo(render_show(registry.get(name), info))


# ==============================================================================================
# validate
# ==============================================================================================


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object (also when the file is invalid).")
@pass_app
def validate(app: App, as_json: bool):
    """Parse and check the registry file in use; exit 3 naming every problem (file:line:column).

    An available entry whose local source folder does not exist is a problem too: a
    sync of it could only fail.
    """
    from registry.errors import Problem, RegistryFileError
    from registry.spec import LocalSource

    try:
        spec = app.registry().spec
    except RegistryFileError as error:
        if as_json:
            emit_json({"valid": False, "files": [], "problems": [str(p) for p in error.problems],
                       "warnings": []})
        raise
    problems = [
        Problem(f"the source folder {entry.source} of '{entry.name}' does not exist",
                file=entry.location_of("source").path, field=f"{entry.kind}s.{entry.name}.source",
                location=entry.location_of("source"),
                hint="point `source:` at the checkpoint folder (relative paths start at the registry "
                     "file's folder), or mark the entry `available: false` with a `reason:`")
        for entry in spec.entries()
        if isinstance(entry.source, LocalSource) and entry.available and not Path(entry.source.path).is_dir()]
    models = list(spec.models.values())
    available = sum(1 for m in models if m.available)
    if as_json:
        emit_json({"valid": not problems, "files": list(spec.paths), "models": len(models),
                   "available_models": available, "tokenizers": len(spec.tokenizers),
                   "problems": [str(p) for p in problems], "warnings": [str(w) for w in spec.warnings]})
    if problems:
        blamed = {p.file for p in problems}
        raise RegistryFileError(blamed.pop() if len(blamed) == 1 else spec.path, problems)
    if as_json:
        return
    click.echo(f"OK: {len(models)} models ({available} available), {len(spec.tokenizers)} tokenizers")
    for path in spec.paths:
        click.echo(f"  file  {path}")
    for warning in spec.warnings:
        click.echo(f"  {warning}")


