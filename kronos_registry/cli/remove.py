"""`kronos-registry rm` and `gc`: remove entries, objects and what no ref names."""

from __future__ import annotations

from typing import Iterable

import click

from kronos_registry.cli.app import App, RefusedError, cli, pass_app
from kronos_registry.cli.output import emit_json
from kronos_registry.services.catalog import human_size
from registry.errors import RegistryError


def own_refs(store, entry) -> list[tuple[str, str | None]]:
    """(entry, registry) of the entry's refs: its registry's, and a flat ref of no known
    registry with the same name and source (written by an older version or by `import`)."""
    own = [(entry.name, entry.registry)]
    legacy = store.get_ref(entry.name)
    if entry.registry is not None and legacy is not None and legacy.source == str(entry.source):
        own.append((entry.name, None))
    return own


def remove_refs(store, refs: Iterable[tuple[str, str | None]]) -> None:
    for name, registry_id in refs:
        store.remove_ref(name, registry_id)


def ref_label(ref) -> str:
    """How another entry pointing at an artifact is named: its name and registry file."""
    return f"{ref.entry} ({ref.registry})" if ref.registry else ref.entry


@cli.command("rm")
@click.argument("names", nargs=-1, required=True, metavar="NAME|ARTIFACT_ID...")
@click.option("--force", is_flag=True, help="Also remove a tokenizer that a synced model still uses.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of what was removed.")
@pass_app
def remove(app: App, names: tuple[str, ...], force: bool, as_json: bool):
    """Remove entries' stored artifacts and refs (a model's tokenizer stays).

    An artifact that another entry (of this or any other registry file sharing the store)
    also points at is kept; only this entry's ref goes. An ARTIFACT_ID (from `list --stored`)
    removes that object and every ref naming it, also one synced through another registry file.
    """
    from kronos_registry.services.stored import remove_artifact

    registry = app.registry()
    entries = set(registry.spec.names())
    results = []
    for name in names:
        if name not in entries and name in registry.store.list_artifacts():
            info = remove_artifact(registry, name, registry.loader.lock_timeout, on_wait=app.on_wait)
        else:
            info = remove_entry(app, registry, name, force)
        results.append(info)
        if not as_json:
            print_removed(app, info)
    if as_json:
        emit_json(results)


def print_removed(app: App, info: dict) -> None:
    if not info["removed"] and info["artifact_id"] is None:
        app.note(f"'{info['name']}' is not in the store; nothing to remove")
    elif not info["removed"]:
        click.echo(f"removed {info['name']} (kept {info['artifact_id']}: also used by {', '.join(info['kept_because'])})")
    elif info["name"] == info["artifact_id"]:
        named = f"; refs removed: {', '.join(info['refs'])}" if info["refs"] else ""
        click.echo(f"removed {info['artifact_id']} ({human_size(info['size'])}{named})")
    else:
        click.echo(f"removed {info['name']} ({info['artifact_id']}, {human_size(info['size'])})")


def remove_entry(app: App, registry, name: str, force: bool) -> dict:
    store = registry.store
    entry = registry.get(name)
    artifact = registry.loader.stored_artifact(entry)
    own = own_refs(store, entry)
    if artifact is None:
        remove_refs(store, own)
        return {"name": name, "artifact_id": None, "removed": False, "size": None, "refs": [],
                "kept_because": None}
    if entry.kind == "tokenizer" and not force:
        users = [m.name for m in registry.spec.models.values()
                 if m.tokenizer == name and registry.loader.stored_artifact(m) is not None]
        if users:
            raise RefusedError(f"kept '{name}': the synced model(s) {', '.join(users)} use it",
                               hint=f"remove them first, or pass --force to remove '{name}' anyway")
    sharing = [ref_label(ref) for ref in store.refs().values()
               if ref.artifact_id == artifact and (ref.entry, ref.registry) not in own]
    size = store.read_manifest(artifact).total_size
    with store.lock(artifact, registry.loader.lock_timeout, on_wait=app.on_wait):
        remove_refs(store, own)
        if not sharing:
            store.remove(artifact)
    return {"name": name, "artifact_id": artifact, "removed": not sharing, "size": size, "refs": [name],
            "kept_because": sharing or None}


@cli.command()
@click.option("--dry-run", is_flag=True, help="Only say what would be removed.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object of what was (or would be) removed.")
@pass_app
def gc(app: App, dry_run: bool, as_json: bool):
    """Remove what nothing needs: unreferenced artifacts, stale staging, locks and trash.

    Artifacts that an entry of the registry names (a pinned hub commit) are kept,
    as is anything a running sync holds locked.
    """
    from registry.spec import HfSource
    from registry.store import hf_artifact_id

    registry = app.registry()
    store = registry.store
    keep = {hf_artifact_id(e.source.repo_id, e.source.revision, e.source.repo_type)
            for e in registry.entries() if isinstance(e.source, HfSource) and e.source.is_pinned}
    sizes = {}
    for artifact in store.list_artifacts():
        try:
            sizes[artifact] = store.read_manifest(artifact).total_size
        except RegistryError:
            sizes[artifact] = None
    result = store.gc(keep=keep, dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    freed = sum(sizes.get(a) or 0 for a in result.objects)
    if as_json:
        emit_json({"dry_run": dry_run, "freed_bytes": freed,
                   "objects": [{"artifact_id": a, "size": sizes.get(a)} for a in result.objects],
                   "staging": list(result.staging), "refs": list(result.refs), "trash": list(result.trash),
                   "locks": list(result.locks), "temp_files": list(result.temp_files)})
        return
    for artifact in result.objects:
        click.echo(f"{verb} {artifact} ({human_size(sizes.get(artifact))})")
    for label, items in (("staging folder", result.staging), ("dangling ref", result.refs),
                         ("trash item", result.trash), ("lock file", result.locks),
                         ("temp file", result.temp_files)):
        if items:
            click.echo(f"{verb} {len(items)} {label}{'s' if len(items) != 1 else ''}")
    if not result.removed_anything:
        click.echo("nothing to remove")
    elif result.objects:
        click.echo(f"{'would free' if dry_run else 'freed'} {human_size(freed)}")


