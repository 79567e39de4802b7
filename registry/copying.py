"""Private copies of files: the store never shares an inode with the Hugging Face cache or a
user's checkpoint folder (a hard link would share damage and mode bits).

``private_copy`` copies a file into place atomically, as a reflink where the file system can
make one; ``blob_matches_its_name`` tells whether a Hugging Face cache blob still holds what
its name (the hub's ETag: sha256 or git blob sha1) says.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import shutil
import threading
from pathlib import Path

from .checks import sha256_file

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_SHA1_RE = re.compile(r"^[0-9a-f]{40}$")

_FICLONE = 0x40049409  # linux/fs.h: share the source's blocks, copy-on-write (btrfs, xfs)


def _copy_bytes(src: int, dst: int) -> None:
    """Copy an open file's bytes into another: a reflink where the filesystem can make one,
    else the kernel copies (copy_file_range / sendfile), else a plain streamed copy."""
    with contextlib.suppress(OSError, ImportError):
        import fcntl

        fcntl.ioctl(dst, _FICLONE, src)
        return
    size = os.fstat(src).st_size
    for kernel_copy in ("copy_file_range", "sendfile"):
        call = getattr(os, kernel_copy, None)
        if call is None:
            continue
        try:
            done = 0
            while done < size:
                sent = call(src, dst, size - done, done, done) if kernel_copy == "copy_file_range" \
                    else call(dst, src, done, size - done)
                if sent == 0:
                    break
                done += sent
            if done == size:
                return
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EBADF):
                raise
        os.lseek(dst, 0, os.SEEK_SET)
        os.ftruncate(dst, 0)
    os.lseek(src, 0, os.SEEK_SET)
    with open(src, "rb", closefd=False) as reader, open(dst, "wb", closefd=False) as writer:
        shutil.copyfileobj(reader, writer, 1 << 20)


def private_copy(origin: Path, target: Path) -> Path:
    """Put a private copy of ``origin``'s bytes at ``target``, atomically.

    Never a hard link: a link would share damage (an in-place edit of either copy changes
    both) and mode bits (the cache's, not the store's umask) with the Hugging Face cache or
    the user's checkpoint folder. The copy is a reflink where the filesystem supports it.
    What a failed copy wrote (a full disk) is removed before the error goes up.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.partial")
    partial.unlink(missing_ok=True)
    try:
        with open(origin, "rb") as reader, open(partial, "xb") as writer:  # mode: 0666 less the umask
            _copy_bytes(reader.fileno(), writer.fileno())
        os.replace(partial, target)  # a reader never sees a half-copied file under the real name
    except BaseException:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise
    return target


def blob_matches_its_name(blob: Path) -> bool | None:
    """Whether a cache blob still holds what its name says; None when the name says nothing.

    huggingface_hub names each blob by the hub's ETag for it: the sha256 of an LFS file, the
    git blob sha1 of a regular one (config.json). A copy edited in place no longer matches.
    """
    name = blob.name.lower()
    if _SHA256_RE.match(name):
        return sha256_file(blob) == name
    if _SHA1_RE.match(name):  # 40 hex: git's sha1 of "blob <size>\0" + content
        digest = hashlib.sha1(f"blob {blob.stat().st_size}\0".encode())
        with open(blob, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        return digest.hexdigest() == name
    return None
