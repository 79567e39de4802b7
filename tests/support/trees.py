"""What a folder holds, for asserting that a store is byte-for-byte unchanged.

``tree_digest(root)`` maps every path under ``root`` (``root`` itself included, as ``"."``) to its
type, permission bits and, for files, the sha256 of its bytes; symlinks are recorded with their
target, never followed. Two equal digests mean the same paths, types, modes and contents. A
missing ``root`` gives ``{}``, which differs from an empty folder's digest.

    before = tree_digest(store)
    ...  # something that must fail without writing
    assert tree_digest(store) == before, describe_changes(before, tree_digest(store))
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path


def every_path(root: Path) -> list[Path]:
    """``root`` and everything below it, sorted; ``[]`` when ``root`` does not exist."""
    return [root, *sorted(root.rglob("*"))] if root.exists() else []


def tree_digest(root: Path) -> dict[str, tuple]:
    """Every path under ``root``: its type, permission bits and (for files) the sha256 of its bytes."""
    root = Path(root)
    if not root.exists():
        return {}
    tree = {}
    for path in every_path(root):
        info = path.lstat()
        key = path.relative_to(root).as_posix()
        mode = stat.S_IMODE(info.st_mode)
        if stat.S_ISLNK(info.st_mode):
            tree[key] = ("link", os.readlink(path))
        elif stat.S_ISDIR(info.st_mode):
            tree[key] = ("dir", oct(mode))
        else:
            tree[key] = ("file", oct(mode), hashlib.sha256(path.read_bytes()).hexdigest())
    return tree


def describe_changes(before: dict, after: dict) -> str:
    """Which paths two digests disagree on: for assertion messages."""
    added = sorted(after.keys() - before.keys())
    removed = sorted(before.keys() - after.keys())
    changed = sorted(k for k in before.keys() & after.keys() if before[k] != after[k])
    return f"added {added}, removed {removed}, changed {changed}"
