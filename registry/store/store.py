"""The store itself: its root, read-only handling, objects, staging and publish.

An object appears under ``objects/`` complete, with its manifest, or not at all: it is built
in ``staging/<id>/``, fsynced, and renamed into place in one step (see the package docstring).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import secrets
import stat
from pathlib import Path
from typing import Iterable, Iterator, Mapping

import attrs

from ..errors import InputDataError, Problem, ReadOnlyStoreError, VerificationError
from ..fs import drop_world_write, exchange, fsync_dir, fsync_file, list_files, make_dirs, remove_tree
from ..hashing import sha256_file
from .gc import GarbageCollector
from .ids import ID_RE, validate_id
from .locks import ArtifactLocks
from .records import MANIFEST_NAME, FileRecord, Manifest, file_stamp
from .refs import EntryRefs


def default_store_root(explicit: str | os.PathLike | None = None, env: Mapping[str, str] = os.environ) -> Path:
    """``--store`` > ``$KRONOS_REGISTRY_HOME`` > ``$XDG_CACHE_HOME/kronos-registry`` > ``~/.cache/...``."""
    if explicit:
        return Path(explicit).expanduser().absolute()
    if env.get("KRONOS_REGISTRY_HOME"):
        return Path(env["KRONOS_REGISTRY_HOME"]).expanduser().absolute()
    if env.get("XDG_CACHE_HOME"):
        return Path(env["XDG_CACHE_HOME"]).expanduser().absolute() / "kronos-registry"
    home = Path(env["HOME"]) if env.get("HOME") else Path.home()
    return home / ".cache" / "kronos-registry"


# --- writing, and a store that may not be written ------------------------------------------

# "No" from the file system to a write under the store root: a read-only mount (EROFS), or
# a store this user may only read (EACCES, EPERM).
_READ_ONLY_ERRNOS = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})


def _writes(method):
    """Mark a Store method that writes: a read-only store raises ``ReadOnlyStoreError`` first."""

    @functools.wraps(method)
    def wrapper(self: "Store", *args, **kwargs):
        with self.writing():
            return method(self, *args, **kwargs)

    return wrapper


class Store(ArtifactLocks, EntryRefs, GarbageCollector):
    """A folder of verified artifacts (see the package docstring for the layout).

    Locks, refs and gc are parts of it, each in its own module (``locks``, ``refs``, ``gc``).
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).expanduser().absolute()
        if self.root.exists() and not self.root.is_dir():
            # Caught here, once, rather than as "Not a directory" from whichever call comes first.
            raise InputDataError(
                f"the store path {self.root} is not a folder", path=str(self.root), field="store",
                hint="point --store or KRONOS_REGISTRY_HOME at a folder (it is created when missing)",
            )

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

    # read-only stores -------------------------------------------------------------------

    def is_read_only(self) -> bool:
        """True when the store (or, before it exists, its nearest folder) is on a read-only mount."""
        existing = self.root
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        try:
            return bool(os.statvfs(existing).f_flag & os.ST_RDONLY)
        except (OSError, AttributeError):  # no statvfs (Windows): the write itself will say
            return False

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Around every write: ``ReadOnlyStoreError`` (not a bare OSError) when the store is
        read-only, checked before anything is attempted and again for what the writes meet."""
        if self.is_read_only():
            raise ReadOnlyStoreError(str(self.root), str(self.root), "a read-only file system")
        try:
            yield
        except OSError as exc:
            if exc.errno in _READ_ONLY_ERRNOS and self._inside(exc.filename):
                raise ReadOnlyStoreError(str(self.root), str(exc.filename), exc.strerror or str(exc)) from exc
            raise

    def _inside(self, filename) -> bool:
        if not filename:
            return False
        path = Path(os.fsdecode(filename)).absolute()
        return path == self.root or self.root in path.parents

    @property
    def objects_dir(self) -> Path:
        return self.root / "objects"

    @property
    def staging_root(self) -> Path:
        return self.root / "staging"

    @property
    def locks_dir(self) -> Path:
        return self.root / "locks"

    @property
    def refs_dir(self) -> Path:
        return self.root / "refs"

    @property
    def trash_dir(self) -> Path:
        return self.root / "trash"

    # objects ------------------------------------------------------------------------------

    def object_dir(self, artifact_id: str) -> Path:
        return self.objects_dir / validate_id(artifact_id)

    def has(self, artifact_id: str) -> bool:
        """Published (a manifest is the last thing written before the rename)."""
        return (self.object_dir(artifact_id) / MANIFEST_NAME).is_file()

    def list_artifacts(self) -> list[str]:
        if not self.objects_dir.is_dir():
            return []
        return sorted(p.name for p in self.objects_dir.iterdir() if p.is_dir() and ID_RE.match(p.name))

    def read_manifest(self, artifact_id: str) -> Manifest:
        """The artifact's manifest; ``VerificationError`` when it is missing or unreadable."""
        path = self.object_dir(artifact_id) / MANIFEST_NAME
        try:
            return Manifest.from_json(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise VerificationError(artifact_id, [self._manifest_problem(artifact_id, exc)]) from None

    def _manifest_problem(self, artifact_id: str, exc: Exception) -> Problem:
        missing = isinstance(exc, FileNotFoundError)
        return Problem(
            f"{MANIFEST_NAME} is {'missing' if missing else 'unreadable'} in {self.object_dir(artifact_id)}"
            + ("" if missing else f": {exc}"),
            file=MANIFEST_NAME,
            hint=f"remove the artifact (`kronos-registry rm`, or delete {self.object_dir(artifact_id)}) "
            "and sync it again",
        )

    def check(self, artifact_id: str, deep: bool = False) -> list[Problem]:
        """Problems with a published artifact: cheap (manifest, names, sizes) or deep (re-hash)."""
        folder = self.object_dir(artifact_id)
        if not folder.is_dir():
            return [Problem(f"{artifact_id} is not in the store at {self.root}", file=str(folder),
                            hint="sync the entry that names it")]
        try:
            manifest = Manifest.from_json((folder / MANIFEST_NAME).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            return [self._manifest_problem(artifact_id, exc)]
        hint = (f"the stored copy of {artifact_id} is damaged; sync its entry again to repair it "
                "(or `kronos-registry rm` it)")
        problems = []
        if manifest.artifact_id != artifact_id:
            problems.append(Problem(f"manifest names {manifest.artifact_id}, not {artifact_id}",
                                    file=MANIFEST_NAME, field="artifact_id", hint=hint))
        present = set(list_files(folder)) - {MANIFEST_NAME}
        for record in manifest.files:
            problems.extend(self._check_file(folder, record, record.name in present, deep, hint))
        for extra in sorted(present - {record.name for record in manifest.files}):
            problems.append(Problem(f"{extra} is in the artifact folder but not in its manifest",
                                    file=extra, hint=hint))
        return problems

    @staticmethod
    def _check_file(folder: Path, record: FileRecord, present: bool, deep: bool, hint: str) -> Iterator[Problem]:
        path = folder / record.name
        try:
            info = path.lstat() if present else None
        except FileNotFoundError:  # removed since the folder was listed
            info = None
        if info is None:
            yield Problem(f"{record.name} is listed in the manifest but missing", file=record.name, hint=hint)
            return
        if not stat.S_ISREG(info.st_mode):
            yield Problem(f"{record.name} is not a regular file", file=record.name, hint=hint)
            return
        if info.st_size != record.size:
            yield Problem(f"{record.name} is {info.st_size} bytes, the manifest says {record.size} "
                          "(truncated or changed)", file=record.name, field="size", hint=hint)
            return
        if deep and (actual := sha256_file(path)) != record.sha256:
            yield Problem(f"{record.name} has sha256 {actual}, the manifest says {record.sha256} "
                          "(corrupted in place)", file=record.name, field="sha256", hint=hint)

    # staging and publish ------------------------------------------------------------------

    def staging_dir(self, artifact_id: str) -> Path:
        return self.staging_root / validate_id(artifact_id)

    @_writes
    def staging(self, artifact_id: str) -> Path:
        """The artifact's staging folder, created if absent; reused as is to resume a fetch.

        Only touch it while holding the artifact's lock.
        """
        path = self.staging_dir(artifact_id)
        make_dirs(path)
        return path

    @_writes
    def discard_staging(self, artifact_id: str) -> None:
        remove_tree(self.staging_dir(artifact_id))

    @_writes
    def prune_staging(self, artifact_id: str, keep: Iterable[str]) -> list[str]:
        """Remove what an earlier, interrupted attempt left beside the files wanted now."""
        folder = self.staging_dir(artifact_id)
        wanted = set(keep)
        removed = []
        for name in list_files(folder):
            if name not in wanted:
                path = folder / name
                if path.is_dir() and not path.is_symlink():
                    remove_tree(path)
                else:
                    path.unlink()
                removed.append(name)
        for dirpath, _, _ in sorted(os.walk(folder), key=lambda item: -len(item[0])):
            if Path(dirpath) != folder:
                with contextlib.suppress(OSError):
                    os.rmdir(dirpath)  # only succeeds when empty
        return removed

    @_writes
    def publish(self, artifact_id: str, staging: Path, manifest: Manifest, *, replace: bool = False) -> bool:
        """Write the manifest into ``staging`` and rename it to ``objects/<id>`` in one step.

        Returns False (and discards ``staging``) when the object already exists: the published
        copy is immutable and wins, unless ``replace`` (a repair or a forced sync), which swaps
        the new folder in with one atomic exchange where the platform has one: a concurrent
        reader finds the old copy or the new one, never none; readers that already opened the
        old one keep reading it (it goes to the trash). Call it while holding the artifact's lock.
        """
        target = self.object_dir(artifact_id)
        if manifest.artifact_id != artifact_id:
            raise ValueError(f"manifest is for {manifest.artifact_id}, not {artifact_id}")
        if self.has(artifact_id) and not replace:
            remove_tree(staging)
            return False
        manifest = attrs.evolve(manifest, files=tuple(
            attrs.evolve(r, **file_stamp(staging / r.name, r.name)) for r in manifest.files))
        (staging / MANIFEST_NAME).write_text(manifest.to_json(), encoding="utf-8")
        self._make_durable(staging)
        make_dirs(self.objects_dir)
        if replace and target.exists() and exchange(staging, target):
            # `staging` now holds the old copy: retire it. Open files in it stay readable.
            fsync_dir(self.objects_dir)
            remove_tree(self._to_trash(staging))
            return True
        # A folder without a manifest is debris, never a published object; a replaced one
        # (no exchange here) leaves a moment with no object, which readers retry across.
        aside = self._to_trash(target) if target.exists() else None
        try:
            os.rename(staging, target)
        except OSError as exc:
            if exc.errno in (errno.EEXIST, errno.ENOTEMPTY) and self.has(artifact_id):
                remove_tree(staging)
                return False
            raise
        fsync_dir(self.objects_dir)
        fsync_dir(staging.parent)
        if aside is not None:
            remove_tree(aside)
        return True

    @staticmethod
    def _make_durable(folder: Path) -> None:
        """fsync every file and folder, so the rename never publishes data still in flight."""
        for dirpath, _, filenames in os.walk(folder, topdown=False):
            for name in filenames:
                path = Path(dirpath) / name
                info = path.lstat()
                if stat.S_ISREG(info.st_mode):
                    drop_world_write(path)  # a file copied from a 0666 source keeps its bits
                    fsync_file(path)
            fsync_dir(Path(dirpath))

    # removal and garbage collection ------------------------------------------------------

    def _to_trash(self, path: Path) -> Path:
        make_dirs(self.trash_dir)
        aside = self.trash_dir / f"{path.name}.{secrets.token_hex(4)}"
        os.rename(path, aside)
        return aside

    @_writes
    def remove(self, artifact_id: str) -> bool:
        """Delete a published artifact: renamed away first, so no reader sees half a folder."""
        target = self.object_dir(artifact_id)
        if not target.exists():
            return False
        aside = self._to_trash(target)
        fsync_dir(self.objects_dir)
        remove_tree(aside)
        return True
