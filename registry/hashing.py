"""Hashes of stored files: whole (sha256) and, for large files, of their head.

Everything above the file system builds on these: publish records each file's hash and head
hash, a load re-hashes small files whole and large ones by their head (see
``registry.store.snapshot``), the checks compare pinned hashes. It imports nothing of the
engine.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

# What a load re-hashes cheaply: files up to SMALL_FILE_BYTES whole, and the head of larger
# ones (a safetensors file's header, which names every tensor's dtype, shape and offsets;
# else the first HEAD_BYTES).
SMALL_FILE_BYTES = 1 << 20
HEAD_BYTES = 1 << 16
_MAX_SAFETENSORS_HEADER = 100 << 20


def sha256_file(path: Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def git_blob_sha1(path: Path, chunk_size: int = 1 << 20) -> str:
    """git's object id of a file: sha1 of ``blob <size>\\0`` followed by its bytes. A hub
    records this for every file it keeps in git rather than LFS (config.json, README.md)."""
    digest = hashlib.sha1(f"blob {os.path.getsize(path)}\0".encode())
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_fd(fd: int, start: int = 0, length: int | None = None, chunk_size: int = 1 << 20) -> str:
    """sha256 of ``length`` bytes (None: to the end) of an open file from ``start``; no seek."""
    digest = hashlib.sha256()
    offset = start
    end = None if length is None else start + length
    while end is None or offset < end:
        chunk = os.pread(fd, chunk_size if end is None else min(chunk_size, end - offset), offset)
        if not chunk:
            break
        digest.update(chunk)
        offset += len(chunk)
    return digest.hexdigest()


def head_length(fd: int, name: str, size: int) -> int:
    """How many leading bytes of a large file its head hash covers (see SMALL_FILE_BYTES)."""
    if name.endswith(".safetensors") and size >= 8:
        header = int.from_bytes(os.pread(fd, 8, 0), "little")
        if header <= _MAX_SAFETENSORS_HEADER and 8 + header <= size:
            return 8 + header
    return min(size, HEAD_BYTES)


def head_sha256(fd: int, name: str, size: int) -> str | None:
    """The head hash of a large file; None for a small one (hashed whole instead)."""
    if size <= SMALL_FILE_BYTES:
        return None
    return sha256_fd(fd, 0, head_length(fd, name, size))
