"""Reading a published object as one consistent snapshot, checked cheaply on every load.

A load opens the object's folder once, then MANIFEST.json and every file it lists through
that open folder, and reads only from those open files. A writer that removes or replaces
the object meanwhile (`rm`, `sync --force`, `gc`) renames the folder away before deleting
it, and on POSIX an open file outlives its name: the reader finishes with the copy it
started on. A reader that loses the race before its files are open gets
``ObjectVanishedError``, and the caller looks the entry up again.

What every load checks, and what it costs (measured on Kronos-base, 409 MB: see the README):

- MANIFEST.json parses and names this artifact; every file it lists is a regular file of
  the recorded size (truncation, a swapped or missing file);
- files up to ``SMALL_FILE_BYTES`` (config.json, README.md) are hashed whole: any change;
- a larger file's head (a safetensors header: every tensor's name, dtype, shape and offset)
  is hashed: any change to the header;
- a larger file whose size, mtime_ns or inode differs from what publish recorded is hashed
  whole: any edit made through the file system's normal calls.

Not caught on load: a same-size change to tensor data that leaves mtime_ns and the inode as
they were (bit rot, or someone restoring the timestamp). ``verify --deep`` re-hashes
everything and catches it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path
from typing import Iterator

import attrs

from ..errors import ObjectVanishedError, Problem, VerificationError
from ..hashing import SMALL_FILE_BYTES, head_sha256, sha256_fd
from .records import MANIFEST_NAME, FileRecord, Manifest
from .store import Store

_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


@attrs.define
class Snapshot:
    """An object's manifest and its files, open: valid inside ``open_snapshot`` only."""

    artifact_id: str
    folder: Path
    manifest: Manifest
    fds: dict[str, int]

    def has(self, name: str) -> bool:
        return name in self.fds

    def read_bytes(self, name: str) -> bytes:
        fd = self.fds[name]
        return _read_all(fd)

    def path(self, name: str) -> str:
        """A path that opens this very file (``/proc/self/fd/N`` where there is one), for
        libraries that want a path; elsewhere the file's name in the folder."""
        proc = f"/proc/self/fd/{self.fds[name]}"
        return proc if os.path.exists(proc) else str(self.folder / name)


def _read_all(fd: int) -> bytes:
    size = os.fstat(fd).st_size
    chunks, offset = [], 0
    while offset < size:
        chunk = os.pread(fd, size - offset, offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


@contextlib.contextmanager
def open_snapshot(store: Store, artifact_id: str, *, label: str | None = None,
                  hint: str | None = None) -> Iterator[Snapshot]:
    """Open ``artifact_id`` and check it cheaply (see the module docstring).

    Raises ``VerificationError`` (damage; every problem found, with ``hint``) or
    ``ObjectVanishedError`` (removed or replaced by another process before it was opened).
    Writes nothing.
    """
    folder = store.object_dir(artifact_id)
    label = label or artifact_id
    hint = hint or f"the stored copy of {artifact_id} is damaged; sync its entry again with --force to repair it"
    try:
        dir_fd = os.open(folder, os.O_RDONLY | _O_DIRECTORY)
    except (FileNotFoundError, NotADirectoryError):
        raise ObjectVanishedError(artifact_id, str(store.root)) from None
    fds: dict[str, int] = {}
    try:
        manifest, problems = _open_all(dir_fd, artifact_id, fds)
        if problems:
            if _replaced(folder, dir_fd):
                raise ObjectVanishedError(artifact_id, str(store.root))
            raise VerificationError(label, problems, hint=hint)
        yield Snapshot(artifact_id=artifact_id, folder=folder, manifest=manifest, fds=fds)
    finally:
        for fd in fds.values():
            os.close(fd)
        os.close(dir_fd)


def _replaced(folder: Path, dir_fd: int) -> bool:
    """Whether ``folder`` no longer names the folder we opened (removed, or swapped for a new one)."""
    try:
        now = os.stat(folder)
    except OSError:
        return True
    opened = os.fstat(dir_fd)
    return (now.st_dev, now.st_ino) != (opened.st_dev, opened.st_ino)


def _open_all(dir_fd: int, artifact_id: str, fds: dict[str, int]) -> tuple[Manifest | None, list[Problem]]:
    try:
        fd = os.open(MANIFEST_NAME, os.O_RDONLY | _O_NOFOLLOW, dir_fd=dir_fd)
    except OSError as exc:
        return None, [Problem(f"{MANIFEST_NAME} cannot be opened ({exc.strerror})", file=MANIFEST_NAME)]
    try:
        manifest = Manifest.from_json(_read_all(fd).decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        return None, [Problem(f"{MANIFEST_NAME} is unreadable: {exc}", file=MANIFEST_NAME)]
    finally:
        os.close(fd)
    if manifest.artifact_id != artifact_id:
        return manifest, [Problem(f"manifest names {manifest.artifact_id}, not {artifact_id}",
                                  file=MANIFEST_NAME, field="artifact_id")]
    problems = []
    for record in manifest.files:
        try:
            fds[record.name] = os.open(record.name, os.O_RDONLY | _O_NOFOLLOW, dir_fd=dir_fd)
        except OSError as exc:
            what = "is a link, not a file" if exc.errno == errno.ELOOP else f"cannot be opened ({exc.strerror})"
            problems.append(Problem(f"{record.name} {what}", file=record.name))
            continue
        problems.extend(_check_open_file(fds[record.name], record))
    return manifest, problems


def _check_open_file(fd: int, record: FileRecord) -> list[Problem]:
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        return [Problem(f"{record.name} is not a regular file", file=record.name)]
    if info.st_size != record.size:
        return [Problem(f"{record.name} is {info.st_size} bytes, the manifest says {record.size} "
                        "(truncated or changed)", file=record.name, field="size")]
    if info.st_size <= SMALL_FILE_BYTES:
        return _hash_problem(fd, record)
    if record.head_sha256 is not None and head_sha256(fd, record.name, info.st_size) != record.head_sha256:
        what = "header" if record.name.endswith(".safetensors") else "first bytes"
        return [Problem(f"{record.name}'s {what} changed since it was stored (corrupted in place)",
                        file=record.name, field="head_sha256")]
    if record.mtime_ns is not None and (info.st_mtime_ns, info.st_ino) != (record.mtime_ns, record.inode):
        return _hash_problem(fd, record)
    return []


def _hash_problem(fd: int, record: FileRecord) -> list[Problem]:
    actual = sha256_fd(fd)
    if actual == record.sha256:
        return []
    return [Problem(f"{record.name} has sha256 {actual}, the manifest says {record.sha256} "
                    "(corrupted in place)", file=record.name, field="sha256")]
