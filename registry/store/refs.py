"""Refs: which artifact an entry points at (``refs/<namespace>/<entry>.json``).

One namespace per registry file (see ``ref_namespace``); ``refs/<entry>.json``: refs of no
known registry (older versions, `import`). Every ref, in any namespace, keeps its object
from ``gc``. ``EntryRefs`` is a part of ``Store`` (it needs the store's ``refs_dir`` and
``writing``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from ..errors import InputDataError
from ..fs import children, fsync_dir, write_atomic
from .ids import ref_namespace, safe_component, validate_id
from .records import Ref


class EntryRefs:
    """The store's refs (a part of ``Store``)."""

    def ref_path(self, entry_name: str, registry: str | None = None) -> Path:
        namespace = ref_namespace(registry)
        folder = self.refs_dir if namespace is None else self.refs_dir / namespace
        return folder / f"{safe_component(entry_name)}.json"

    def set_ref(self, ref: Ref) -> None:
        """Point an entry name at an artifact (atomic replace; unchanged refs are not rewritten,
        so re-syncing what a read-only store already holds writes nothing)."""
        validate_id(ref.artifact_id)
        path = self.ref_path(ref.entry, ref.registry)
        current = self._read_ref(path)
        if current is not None and current.same_target(ref):
            return
        with self.writing():
            write_atomic(path, ref.to_json())

    def get_ref(self, entry_name: str, registry: str | None = None, *, legacy: bool = True) -> Ref | None:
        """The entry's ref in ``registry``'s namespace; when it has none (and ``legacy``), the
        flat ref of no known registry, which callers must match by source before trusting.
        None when absent or unreadable (an unreadable ref is as good as none)."""
        if registry is not None:
            ref = self._read_ref(self.ref_path(entry_name, registry))
            if ref is not None and ref.entry == entry_name and ref.registry == registry:
                return ref
            if not legacy:
                return None
        ref = self._read_ref(self.ref_path(entry_name))
        return ref if ref is not None and ref.entry == entry_name and ref.registry is None else None

    def remove_ref(self, entry_name: str, registry: str | None = None) -> bool:
        path = self.ref_path(entry_name, registry)
        if not path.exists():
            return False
        try:
            with self.writing():
                path.unlink()
        except FileNotFoundError:
            return False
        fsync_dir(path.parent)
        return True

    @staticmethod
    def _read_ref(path: Path) -> Ref | None:
        try:
            return Ref.from_json(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, InputDataError):
            return None

    def _ref_files(self) -> Iterator[tuple[str, Path]]:
        """(key, path) of every ref file: ``<namespace>/<entry>`` or, flat, ``<entry>``."""
        for path in children(self.refs_dir):
            if path.is_dir() and not path.is_symlink() and not path.name.startswith("."):
                for inner in children(path):
                    if inner.suffix == ".json" and not inner.name.startswith("."):
                        yield f"{path.name}/{inner.stem}", inner
            elif path.suffix == ".json" and not path.name.startswith("."):
                yield path.stem, path

    def refs(self) -> dict[str, Ref]:
        """Every readable ref in every namespace, by key (``<namespace>/<entry>``, or
        ``<entry>`` for a flat ref)."""
        found = {}
        for key, path in self._ref_files():
            ref = self._read_ref(path)
            if ref is not None:
                found[key] = ref
        return found
