"""What a source holds once resolved, and putting one of its files in place.

``ResolvedSource`` is what ``resolve`` returns and ``fetch`` takes: the source pinned to a
commit (hub) with the files it holds, and which endpoint answered.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import attrs

from ..fs import private_copy
from ..spec import HfSource, LocalSource

COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


@attrs.frozen
class RemoteFile:
    """One file a source holds, with what the hub recorded of it: ``sha256`` for an LFS file,
    ``blob_id`` (git's sha1 of the file) for one kept in git; None where it recorded nothing
    (a mirror that omits them, or an offline resolve from the Hugging Face cache)."""

    name: str
    size: int | None = None
    sha256: str | None = None
    blob_id: str | None = None

    @property
    def recorded(self) -> bool:
        """Whether the source recorded a hash of this file's content to check it against."""
        return bool(self.sha256 or self.blob_id)


@attrs.frozen
class ResolvedSource:
    """A source pinned down: the commit a revision points to, who answered, and its files.

    ``endpoint`` is None for local folders and for hub repos resolved from the Hugging Face
    cache alone (offline); then ``files`` lists only what the cache holds.
    """

    source: HfSource | LocalSource
    revision: str | None
    endpoint: str | None
    files: tuple[RemoteFile, ...]

    def file(self, name: str) -> RemoteFile | None:
        return next((f for f in self.files if f.name == name), None)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.files)

    @property
    def from_cache(self) -> bool:
        """True when the file list came from the local HF cache, so it may be partial."""
        return isinstance(self.source, HfSource) and self.endpoint is None

    def __str__(self) -> str:
        if isinstance(self.source, HfSource) and self.revision and self.revision != self.source.revision:
            return f"{self.source} (commit {self.revision})"
        return str(self.source)


def place(origin: Path, target: Path) -> Path:
    """Put a private copy of ``origin``'s bytes at ``target``, atomically (see ``private_copy``)."""
    return private_copy(Path(os.path.realpath(origin)), target)


def already_there(target: Path, remote: RemoteFile | None) -> bool:
    return (remote is not None and remote.size is not None and target.is_file()
            and target.stat().st_size == remote.size)
