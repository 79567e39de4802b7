"""File-system steps the store and the sources build on, none of which knows what a model is.

- durable writes: folders made without world-write bits, a file that appears complete or not
  at all (``atomic_file``), fsync of files and folders, two folders swapped in one step;
- private copies: the store never shares an inode with the Hugging Face cache or a user's
  checkpoint folder (a hard link would share damage and mode bits), so ``private_copy``
  copies a file into place atomically, as a reflink where the file system can make one;
- listing and removing trees.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import stat
import threading
from pathlib import Path
from typing import IO, Iterator

FOLDER_MODE = 0o775  # less the umask; never world-writable, even under umask 000
FILE_MODE = 0o664

_RENAME_EXCHANGE = 2  # linux/fs.h
_AT_FDCWD = -100
_FICLONE = 0x40049409  # linux/fs.h: share the source's blocks, copy-on-write (btrfs, xfs)


# --- durable writes ---------------------------------------------------------------------------

def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # some platforms cannot open directories; the rename is still atomic there
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def make_dirs(path: Path) -> None:
    """``mkdir -p`` whose every new folder gets FOLDER_MODE less the umask.

    Path.mkdir(parents=True) creates the parents 0777 less the umask, world-writable under a
    umask of 000; a world-writable store would let any user swap a published model file.
    """
    missing = []
    while not path.exists():
        missing.append(path)
        path = path.parent
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):
            folder.mkdir(mode=FOLDER_MODE)


def drop_world_write(path: Path) -> None:
    with contextlib.suppress(OSError):
        mode = path.stat().st_mode
        if mode & stat.S_IWOTH:
            os.chmod(path, stat.S_IMODE(mode) & ~stat.S_IWOTH)


@contextlib.contextmanager
def atomic_file(path: Path, suffix: str = ".tmp") -> Iterator[IO[bytes]]:
    """A binary file that appears at ``path`` complete or not at all: a temp file beside it,
    fsynced, then one ``os.replace``; on any error the temp file is removed."""
    make_dirs(path.parent)
    temp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}{suffix}")
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        with open(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
    fsync_dir(path.parent)


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so a reader sees the old or the new content, never half."""
    with atomic_file(path) as handle:
        handle.write(text.encode("utf-8"))


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


# --- private copies ---------------------------------------------------------------------------

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


# --- listing and removing ---------------------------------------------------------------------

def list_files(folder: Path) -> list[str]:
    """Every entry below ``folder`` that is not a directory, as sorted relative posix names."""
    names = []
    for dirpath, dirnames, filenames in os.walk(folder):
        base = Path(dirpath).relative_to(folder)
        # A link to a directory shows in dirnames; count it as a (foreign) file, never follow it.
        links = [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
        for name in [*filenames, *links]:
            names.append((base / name).as_posix())
    return sorted(names)


def modified_before(path: Path, cutoff: float) -> bool:
    """Whether ``path`` was last modified before ``cutoff``; False once it is gone (a temp
    file that its writer renamed into place between gc's listing and this look)."""
    try:
        return path.stat().st_mtime < cutoff
    except FileNotFoundError:
        return False


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def children(folder: Path) -> list[Path]:
    """The entries of ``folder``, sorted; none when it is missing (or not a folder)."""
    return sorted(folder.iterdir()) if folder.is_dir() else []
