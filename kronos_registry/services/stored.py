"""What the CLI says about the store itself: every stored object and who names it, disk usage,
the parameters counted in stored weights, and removal by artifact id.

Kept apart from cli.py (which renders entries of the registry in use): these look at the
store as it is, including objects that another project's registry file synced.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from kronos_registry.services.catalog import counted_params  # noqa: F401 - part of this module's API


def disk_usage(root: Path) -> dict[str, Any]:
    """Bytes the store takes on disk (hard-linked files once), in all and per top-level folder."""
    seen: set[tuple[int, int]] = set()
    parts: dict[str, int] = {}
    total = 0
    root = Path(root)
    if not root.is_dir():
        return {"total_bytes": 0, "parts": {}, "objects": 0}
    for top in sorted(root.iterdir()):
        used = 0
        for path in [top] if not top.is_dir() or top.is_symlink() else _walk(top):
            try:
                info = path.lstat()
            except OSError:
                continue
            if (info.st_dev, info.st_ino) in seen:
                continue
            seen.add((info.st_dev, info.st_ino))
            used += info.st_blocks * 512 if hasattr(info, "st_blocks") else info.st_size
        parts[top.name] = used
        total += used
    objects = root / "objects"
    count = sum(1 for p in objects.iterdir() if p.is_dir()) if objects.is_dir() else 0
    return {"total_bytes": total, "parts": parts, "objects": count}


def _walk(folder: Path):
    yield folder
    for base, dirs, files in os.walk(folder):
        for name in dirs + files:
            yield Path(base) / name


def stored_objects(registry) -> list[dict[str, Any]]:
    """Every object in the store with its manifest facts and the refs (any registry's) naming it."""
    store = registry.store
    named: dict[str, list[dict]] = {}
    for key, ref in store.refs().items():
        named.setdefault(ref.artifact_id, []).append({
            "entry": ref.entry,
            "registry": ref.registry,
            "key": key,
        })
    in_use = {(e.name, e.registry) for e in registry.entries()}
    objects = []
    for artifact in store.list_artifacts():
        info: dict[str, Any] = {"artifact_id": artifact, "path": str(store.object_dir(artifact)),
                                "refs": named.get(artifact, [])}
        try:
            manifest = store.read_manifest(artifact)
        except Exception as error:  # noqa: BLE001 - a damaged manifest is shown, not fatal here
            info.update(kind=None, entry=None, source=None, revision=None, size=None,
                        created_at=None, damaged=str(error))
        else:
            info.update(kind=manifest.kind, entry=manifest.entry, source=manifest.source,
                        revision=manifest.resolved_revision, size=manifest.total_size,
                        created_at=manifest.created_at, damaged=None)
        info["in_this_registry"] = any((r["entry"], r["registry"]) in in_use for r in info["refs"])
        objects.append(info)
    return objects


def remove_artifact(registry, artifact: str, lock_timeout, on_wait=None) -> dict[str, Any]:
    """Remove one object by id and every ref naming it, under its lock."""
    store = registry.store
    size = None
    try:
        size = store.read_manifest(artifact).total_size
    except Exception:  # noqa: BLE001 - a damaged object is removed all the same
        pass
    removed_refs = []
    with store.lock(artifact, lock_timeout, on_wait=on_wait):
        for key, ref in store.refs().items():
            if ref.artifact_id == artifact:
                store.remove_ref(ref.entry, ref.registry)
                removed_refs.append(ref.entry)
        store.remove(artifact)
    return {"name": artifact, "artifact_id": artifact, "removed": True, "size": size, "refs": removed_refs,
            "kept_because": None}


__all__ = ["counted_params", "disk_usage", "stored_objects", "remove_artifact"]
