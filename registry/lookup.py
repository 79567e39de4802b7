"""Which stored artifact an entry uses, found with no network and no writes.

One rule, for every command that asks (load, status, verify, list, export, rm):

1. the entry's own ref names it, when the ref was written for the entry's current source
   and its object is stored;
2. else a pinned hub source (a commit) names its object directly, when that is stored;
3. else nothing is stored for the entry.

(A local folder with no ref of its own may still be stored under its content-addressed id;
finding that means hashing the folder, which only the loader does: ``Loader.locate``.)

A local entry's folder may have changed since it was synced: ``source_state`` tells how,
from the fingerprint its ref recorded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from .errors import VerificationError
from .hashing import sha256_file
from .spec import Entry, HfSource, LocalSource
from .store import Ref, Store, hf_artifact_id

# How a local entry's folder compares with what was synced (see ``source_state``).
SAME, TOUCHED, CHANGED, GONE = "same", "touched", "changed", "gone"


def find_stored(store: Store, entry: Entry) -> tuple[str | None, Ref | None]:
    """The artifact id the store holds for ``entry`` (see the module docstring for the rule),
    and the ref that named it (None when its pinned commit did); (None, None): none stored."""
    source = entry.source
    if source is None:
        return None, None
    ref = store.get_ref(entry.name, entry.registry)
    if ref is not None and ref.source == str(source) and store.has(ref.artifact_id):
        return ref.artifact_id, ref
    if isinstance(source, HfSource) and source.is_pinned:
        artifact_id = hf_artifact_id(source.repo_id, source.revision, source.repo_type)
        if store.has(artifact_id):
            return artifact_id, None
    return None, None


def stored_artifact(store: Store, entry: Entry) -> str | None:
    """The artifact id the store holds for ``entry``, or None (no network, no hashing)."""
    return find_stored(store, entry)[0]


def local_fingerprint(folder: Path, names: Sequence[str]) -> tuple[tuple[str, int, int], ...]:
    """(name, size, mtime_ns) of each present file: tells cheaply that a local folder changed."""
    found = []
    for name in names:
        try:
            info = (folder / name).stat()
        except OSError:
            continue
        found.append((name, info.st_size, info.st_mtime_ns))
    return tuple(found)


def source_state(store: Store, entry: Entry, ref: Ref | None = None) -> str:
    """How a local entry's folder compares with what was synced (no writes, no network).

    SAME: every file's (size, mtime_ns) as recorded; TOUCHED: only timestamps differ and
    the files whose timestamp changed hash as the stored copy's; CHANGED: content differs;
    GONE: the folder, or a file that was synced from it, is missing. Hub entries: SAME.
    ``ref`` is the entry's ref when the caller has read it already.
    """
    if not isinstance(entry.source, LocalSource):
        return SAME
    ref = ref or store.get_ref(entry.name, entry.registry)
    if ref is None or ref.fingerprint is None:
        return SAME
    folder = Path(entry.source.path)
    current = local_fingerprint(folder, [n for n, _, _ in ref.fingerprint])
    if current == ref.fingerprint:
        return SAME
    if not folder.is_dir() or len(current) != len(ref.fingerprint):
        return GONE
    if any(now[:2] != then[:2] for now, then in zip(current, ref.fingerprint)):
        return CHANGED
    try:
        manifest = store.read_manifest(ref.artifact_id)
    except VerificationError:
        return CHANGED
    for now, then in zip(current, ref.fingerprint):
        record = manifest.file(now[0])
        if now != then and (record is None or _sha256_or_none(folder / now[0]) != record.sha256):
            return CHANGED
    return TOUCHED


def _sha256_or_none(path: Path) -> str | None:
    try:
        return sha256_file(path)
    except OSError:
        return None
