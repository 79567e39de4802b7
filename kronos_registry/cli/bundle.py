"""`kronos-registry export` and `import`: carry verified artifacts to an offline machine."""

from __future__ import annotations

from pathlib import Path

import click

from kronos_registry.cli.app import PROG, App, cli, pass_app
from kronos_registry.cli.output import emit_json
from kronos_registry.services.catalog import human_size


@cli.command("export")
@click.argument("names", nargs=-1, required=True, metavar="NAME...")
@click.option("--output", "-o", required=True, metavar="FILE.tar",
              help="The bundle to write (gzip-compressed when it ends in .gz or .tgz).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object describing the bundle.")
@pass_app
def export_entries(app: App, names: tuple[str, ...], output: str, as_json: bool):
    """Write synced entries (with their tokenizers) into a tar bundle for offline machines.

    The bundle holds the artifacts, their manifests and the entries' YAML; `import`
    on the other machine checks every member and hash before publishing anything.
    """
    from registry.bundle import export_bundle

    registry = app.registry()
    summary = export_bundle(registry.store, registry.spec, list(names), output)
    if as_json:
        emit_json({"path": str(summary.path), "entries": list(summary.entries),
                   "artifacts": list(summary.artifacts), "bytes": summary.bytes})
        return
    click.echo(f"exported {', '.join(summary.entries)} to {summary.path} ({human_size(summary.bytes)})")
    for artifact in summary.artifacts:
        click.echo(f"  {artifact}")
    app.note(f"on the offline machine: {PROG} import {Path(output).name}")


@cli.command("import")
@click.argument("bundle", metavar="FILE.tar")
@click.option("--replace", "replace", multiple=True, metavar="NAME",
              help="Let the bundle's entry NAME take over that name from the registry in use "
                   "(repeatable); without it such an import is refused.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object of what was imported.")
@pass_app
def import_entries(app: App, bundle: str, replace: tuple[str, ...], as_json: bool):
    """Import a bundle made by `export`: verify it as a sync would, then publish.

    Every member and hash is checked, unsafe members are refused, and every artifact
    passes the Kronos checks against the entries that will use it before anything is
    published. The bundle's entries are saved in the store (registries/) and work by
    name from then on: `predict NAME`, `list` shows where they came from. An entry that
    would give a name of the registry in use (packaged or yours) another checkpoint is
    refused unless `--replace NAME` asks for it; every face then shows the name as replaced.
    """
    from kronos_registry.kronos.checks import kronos_checks
    from registry.bundle import import_bundle

    registry = app.registry()
    summary = import_bundle(registry.store, bundle, checks=kronos_checks, registry=registry.spec,
                            lock_timeout=registry.loader.lock_timeout, replace=frozenset(replace),
                            strict=registry.loader.strict)
    if as_json:
        emit_json({"imported": list(summary.artifacts), "present": list(summary.skipped),
                   "entries": list(summary.refs), "bytes": summary.bytes,
                   "registry": str(summary.registry_path)})
        return
    for artifact in summary.artifacts:
        click.echo(f"imported {artifact}")
    for artifact in summary.skipped:
        click.echo(f"present  {artifact}")
    click.echo(f"entries  {', '.join(summary.refs)} ({human_size(summary.bytes)} written)")
    click.echo(f"registry {summary.registry_path}")
    app.note(f"use them by name, e.g. {PROG} list")


