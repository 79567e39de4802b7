"""A read-only view of a folder, for testing what a read-only store does.

Tests run as root here, and chmod does not stop root; a read-only bind mount does. Where
mounting is not permitted (no CAP_SYS_ADMIN, another OS), the test is skipped with the reason.

    with read_only_view(store, tmp_path / "ro-store") as view:
        ...  # view shows store's files; every write under it fails with EROFS
"""

from __future__ import annotations

import contextlib
import subprocess
from pathlib import Path
from typing import Iterator

import pytest


def _mount(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run(["mount", *map(str, args)], capture_output=True, text=True, timeout=30)


@contextlib.contextmanager
def read_only_view(folder: Path, view: Path) -> Iterator[Path]:
    view.mkdir(parents=True, exist_ok=True)
    try:
        bound = _mount("--bind", folder, view)
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"cannot bind-mount a read-only store here ({exc})")
    if bound.returncode != 0:
        pytest.skip(f"cannot bind-mount a read-only store here: {bound.stderr.strip()}")
    try:
        remounted = _mount("-o", "remount,ro,bind", view)
        if remounted.returncode != 0:
            pytest.skip(f"cannot remount a bind mount read-only here: {remounted.stderr.strip()}")
        yield view
    finally:
        if subprocess.run(["umount", str(view)], capture_output=True, timeout=30).returncode != 0:
            subprocess.run(["umount", "-l", str(view)], capture_output=True, timeout=30)
