"""Garbage collection: remove what nothing needs, never what a running sync holds.

``GarbageCollector`` is a part of ``Store`` (it works through the store's objects, refs and
locks); it lives here so that what ``gc`` may remove, and why, reads in one place.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Iterable

import attrs

from ..errors import ReadOnlyStoreError
from ..fs import children, modified_before, remove_tree
from .ids import ID_RE
from .locks import lock_unlink_is_safe
from .records import Ref

# A temp ref file younger than this may belong to a writer still running.
_STALE_TEMP_S = 3600.0


@attrs.frozen
class GcResult:
    objects: tuple[str, ...] = ()
    staging: tuple[str, ...] = ()
    trash: tuple[str, ...] = ()
    locks: tuple[str, ...] = ()
    refs: tuple[str, ...] = ()
    temp_files: tuple[str, ...] = ()

    @property
    def removed_anything(self) -> bool:
        return any(attrs.astuple(self))


class GarbageCollector:
    """The store's ``gc`` (a part of ``Store``)."""

    def gc(self, keep: Iterable[str] = (), *, dry_run: bool = False) -> GcResult:
        """Remove what nothing needs; returns what was (or, with ``dry_run``, would be) removed.

        Removes objects no ref points at (and not in ``keep``), staging folders and lock files
        whose lock is free, the trash, refs to missing objects and stale temp files. Anything
        locked by a running sync is left alone.
        """
        keep = set(keep)
        if not dry_run and self.is_read_only():
            raise ReadOnlyStoreError(str(self.root), str(self.root), "a read-only file system")
        return GcResult(
            objects=tuple(a for a in self.list_artifacts() if self._gc_object(a, keep, dry_run)),
            staging=tuple(p.name for p in children(self.staging_root) if self._gc_staging(p, dry_run)),
            refs=tuple(name for name, ref in self.refs().items() if self._gc_ref(name, ref, dry_run)),
            trash=tuple(self._gc_trash(dry_run)),
            locks=tuple(self._gc_locks(dry_run)),
            temp_files=tuple(self._gc_temp_files(dry_run)),
        )

    def _gc_object(self, artifact_id: str, keep: set[str], dry_run: bool) -> bool:
        # Decide under the lock: a sync holds it from publish until its ref is written.
        with self.lock_if_free(artifact_id, dry_run) as free:
            referenced = {ref.artifact_id for ref in self.refs().values()} | keep
            if not free or artifact_id in referenced:
                return False
            if not dry_run:
                self.remove(artifact_id)
            return True

    def _gc_staging(self, path: Path, dry_run: bool) -> bool:
        if not ID_RE.match(path.name):
            return False
        with self.lock_if_free(path.name, dry_run) as free:
            if free and not dry_run:
                remove_tree(path)
            return free

    def _gc_ref(self, key: str, ref: Ref, dry_run: bool) -> bool:
        with self.lock_if_free(ref.artifact_id, dry_run) as free:
            if not free or self.has(ref.artifact_id):
                return False
            if not dry_run:
                (self.refs_dir / f"{key}.json").unlink(missing_ok=True)
            return True

    def _gc_trash(self, dry_run: bool) -> list[str]:
        # Only ever renamed here to be deleted: nothing in the trash is in use. The process that
        # put it there may be deleting it at the same moment, so a vanished entry is no error.
        removed = []
        for path in children(self.trash_dir):
            if not dry_run:
                remove_tree(path) if path.is_dir() and not path.is_symlink() else path.unlink(missing_ok=True)
            removed.append(path.name)
        return removed

    def _gc_locks(self, dry_run: bool) -> list[str]:
        if not lock_unlink_is_safe():
            return []
        removed = []
        for path in children(self.locks_dir):
            artifact_id = path.name.removesuffix(".lock")
            if path.suffix != ".lock" or not ID_RE.match(artifact_id):
                continue
            with self.lock_if_free(artifact_id, dry_run) as free:
                pass  # releasing a free lock with tidy on removes its file
            if free:
                removed.append(path.name)
        return removed

    def _gc_temp_files(self, dry_run: bool) -> list[str]:
        removed = []
        cutoff = time.time() - _STALE_TEMP_S
        folders = [self.refs_dir, *(p for p in children(self.refs_dir) if p.is_dir() and not p.is_symlink())]
        for path in (child for folder in folders for child in children(folder)):
            if path.name.startswith(".") and path.name.endswith(".tmp") and modified_before(path, cutoff):
                if not dry_run:
                    path.unlink(missing_ok=True)
                removed.append(path.name)
        return removed
