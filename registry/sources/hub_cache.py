"""The Hugging Face cache: resolving offline from it, reusing what it holds, and distrusting it.

huggingface_hub never re-hashes its cache, so a cached file is checked against what the hub
recorded (and its blob's own name) before it is reused, and evicted when it contradicts them.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

from ..hashing import git_blob_sha1, sha256_file
from ..spec import HfSource
from .failures import NotInCacheError
from .local import walk_files
from .resolved import COMMIT_RE, SHA256_RE, RemoteFile, ResolvedSource

_SHA1_RE = re.compile(r"^[0-9a-f]{40}$")


def _storage_folder(source: HfSource, cache_dir: Path) -> Path:
    from huggingface_hub.file_download import repo_folder_name

    return cache_dir / repo_folder_name(repo_id=source.repo_id, repo_type=source.repo_type)


def _cached_commit(source: HfSource, storage: Path) -> str | None:
    """The commit the revision names: itself when pinned, else what the cache's refs/ recorded."""
    if source.is_pinned:
        return source.revision
    ref = storage / "refs" / source.revision
    if ref.is_file():
        commit = ref.read_text().strip()
        return commit if COMMIT_RE.match(commit) else None
    return None


def resolve_cached(source: HfSource, cache_dir: Path) -> ResolvedSource:
    storage = _storage_folder(source, cache_dir)
    commit = _cached_commit(source, storage)
    snapshot = storage / "snapshots" / commit if commit else None
    if snapshot is None or not snapshot.is_dir():
        raise NotInCacheError(source, cache_dir)
    # The snapshot lists only the files downloaded before: a partial view of the repo.
    files = tuple(RemoteFile(name=p.relative_to(snapshot).as_posix(), size=p.stat().st_size)
                  for p in walk_files(snapshot))
    return ResolvedSource(source=source, revision=commit, endpoint=None, files=files)


def from_cache(source: HfSource, commit: str, name: str, cache_dir: Path) -> Path | None:
    """The cached copy of ``name`` at ``commit``, without touching the network."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    try:
        return Path(hf_hub_download(source.repo_id, name, repo_type=source.repo_type, revision=commit,
                                    cache_dir=cache_dir, local_files_only=True))
    except (EntryNotFoundError, FileNotFoundError):
        return None


def sound_or_evicted(cached: Path | None, remote: RemoteFile | None) -> Path | None:
    """``cached``, unless it contradicts what the hub recorded or its own name: then evict it.

    huggingface_hub does not hash what it downloads or serves from its cache, so a transfer
    corrupted on the way, or a cached file edited in place, stays there; reusing it would
    fail (or poison) every later sync. A cache hit is checked against the size and sha256
    the hub recorded (or git's blob id, for a file kept in git) and against the hash its blob
    is named by; a mismatch evicts the snapshot link and its blob, so the file is downloaded
    afresh (online) or reported missing (offline). Only cache hits pay this hash; fresh
    downloads are hashed once, by the store.
    """
    if cached is None:
        return None
    blob = Path(os.path.realpath(cached))
    sound = blob.is_file()
    if sound and remote is not None and remote.size is not None:
        sound = blob.stat().st_size == remote.size
    if sound and remote is not None and remote.sha256:
        sound = sha256_file(blob) == remote.sha256.lower()
        if sound and blob.name.lower() == remote.sha256.lower():
            return cached  # already hashed against its name
    if sound and remote is not None and remote.blob_id:
        sound = git_blob_sha1(blob) == remote.blob_id.lower()
        if sound and blob.name.lower() == remote.blob_id.lower():
            return cached  # already hashed against its name
    if sound:
        sound = blob_matches_its_name(blob) is not False
    if sound:
        return cached
    for path in (cached, blob):
        with contextlib.suppress(OSError):
            path.unlink()
    return None


def known_absent(source: HfSource, commit: str, name: str, cache_dir: Path) -> bool:
    """huggingface_hub records files a hub said do not exist under .no_exist/<commit>/."""
    return (_storage_folder(source, cache_dir) / ".no_exist" / commit / name).exists()


def blob_matches_its_name(blob: Path) -> bool | None:
    """Whether a cache blob still holds what its name says; None when the name says nothing.

    huggingface_hub names each blob by the hub's ETag for it: the sha256 of an LFS file, the
    git blob sha1 of a regular one (config.json). A copy edited in place no longer matches.
    """
    name = blob.name.lower()
    if SHA256_RE.match(name):
        return sha256_file(blob) == name
    if _SHA1_RE.match(name):
        return git_blob_sha1(blob) == name
    return None


def record_ref(resolved: ResolvedSource, cache_dir: Path) -> None:
    """Note branch -> commit in the cache's refs/, so an offline resolve of the branch works later."""
    source: HfSource = resolved.source
    if source.is_pinned or not resolved.revision or resolved.endpoint is None:
        return
    ref = _storage_folder(source, cache_dir) / "refs" / source.revision
    try:
        ref.parent.mkdir(parents=True, exist_ok=True)
        partial = ref.with_name(f".{ref.name}.{os.getpid()}.partial")
        partial.write_text(resolved.revision)
        os.replace(partial, ref)
    except OSError:
        pass  # a read-only cache: offline branch lookups will need the commit instead
