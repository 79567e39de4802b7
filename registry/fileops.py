"""File-system steps the store builds on: swapping two folders in one step, and the stamp
(stat and head hash) that publish records for each file so that a load can tell cheaply
whether it changed (see ``registry.snapshot``)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from .checks import head_sha256

_RENAME_EXCHANGE = 2  # linux/fs.h
_AT_FDCWD = -100


def file_stamp(path: Path, name: str) -> dict:
    """``mtime_ns``, ``inode`` and ``head_sha256`` of the file at ``path`` (FileRecord fields)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    try:
        info = os.fstat(fd)
        return {"mtime_ns": info.st_mtime_ns, "inode": info.st_ino,
                "head_sha256": head_sha256(fd, name, info.st_size)}
    finally:
        os.close(fd)


def exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic step (Linux renameat2 RENAME_EXCHANGE); False where the
    platform or file system has no such call, and the caller falls back to two renames."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(b))
