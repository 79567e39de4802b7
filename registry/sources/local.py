"""Local folders as sources: their files listed, and copied (privately) into staging.

A file that is a link leading out of the folder is refused: its bytes are not the folder's.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Sequence

from ..errors import FileNotInSourceError, SourceError
from ..spec import LocalSource
from .failures import check_name, missing_file_error, with_data
from .resolved import RemoteFile, ResolvedSource, already_there, place


def _local_folder(source: LocalSource) -> Path:
    path = Path(source.path)
    if not path.is_dir():
        what = "is not a folder" if path.exists() else "does not exist"
        raise with_data(FileNotInSourceError(
            f"local source {path} {what}",
            source=str(path),
            hint="fix `source:` in models.yaml (relative paths resolve against that file) "
                 "to the folder holding config.json and model.safetensors",
        ), path=str(path))
    return path


def walk_files(root: Path) -> list[Path]:
    """Regular files (symlinks to files included) under ``root``, skipping dot-folders like .git."""
    found = []
    for folder, dirs, files in os.walk(root, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [Path(folder) / f for f in sorted(files) if (Path(folder) / f).is_file()]
    return found


def _refuse_escaping_link(root: Path, name: str, source: object) -> None:
    """Refuse a file that is a link (or lies under a linked folder) leading out of ``root``.

    Copying it would put another file's bytes (``/etc/shadow``, another user's data) into the
    store, and the checks would echo some of them in their messages. Links inside the folder
    are fine.
    """
    real_root = os.path.realpath(root)
    real = os.path.realpath(root / name)
    if os.path.commonpath([real_root, real]) != real_root:
        raise with_data(SourceError(
            f"'{name}' in the local source {root} is a symbolic link leading outside that folder; refused",
            source=str(source),
            hint="copy the file into the checkpoint folder (or link to a file inside it) and sync again",
        ), file=name, path=str(root))


def resolve_local(source: LocalSource) -> ResolvedSource:
    root = _local_folder(source)
    files = tuple(
        RemoteFile(name=path.relative_to(root).as_posix(), size=path.stat().st_size)
        for path in walk_files(root)
    )
    return ResolvedSource(source=source, revision=None, endpoint=None, files=files)


# A local copy this large gets a progress bar (when bars are on): a few hundred MB of weights
# take seconds to copy, and a silent terminal looks hung.
LOCAL_PROGRESS_BYTES = 8 * 1024 * 1024
_COPY_CHUNK = 4 * 1024 * 1024


def fetch_local(resolved: ResolvedSource, names: Sequence[str], dest: Path,
                progress: bool = False) -> dict[str, Path]:
    root = _local_folder(resolved.source)
    placed, todo = {}, []
    for name in names:
        origin = root / check_name(name, resolved.source)
        if not origin.is_file():
            raise missing_file_error(resolved, name, f"local folder {root}")
        _refuse_escaping_link(root, name, resolved.source)
        target = dest / name
        if already_there(target, RemoteFile(name, origin.stat().st_size)):
            placed[name] = target
        else:
            todo.append((name, origin, target))
    total = sum(origin.stat().st_size for _, origin, _ in todo)
    if not progress or total < LOCAL_PROGRESS_BYTES:
        placed.update((name, place(origin, target)) for name, origin, target in todo)
        return placed
    from tqdm.auto import tqdm

    # A private copy (the loader would detach a hard link right after anyway), with a bar.
    with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
              desc=f"copying {root.name}", leave=False) as bar:
        for name, origin, target in todo:
            placed[name] = _copy_with_progress(origin, target, bar.update)
    return placed


def _copy_with_progress(origin: Path, target: Path, advance) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.partial")
    partial.unlink(missing_ok=True)
    with open(os.path.realpath(origin), "rb") as source, open(partial, "wb") as sink:
        while chunk := source.read(_COPY_CHUNK):
            sink.write(chunk)
            advance(len(chunk))
    os.replace(partial, target)
    return target
