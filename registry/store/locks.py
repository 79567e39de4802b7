"""One filelock per artifact (``locks/<artifact-id>.lock``): N processes fetch it once.

``ArtifactLocks`` is a part of ``Store`` (it needs the store's ``locks_dir``, ``writing`` and
``is_read_only``); it lives here so that locking reads as one piece.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Callable, Iterator

import attrs
import filelock

from ..errors import LockTimeoutError
from ..fs import drop_world_write, make_dirs
from .ids import validate_id


@attrs.frozen
class LockWait:
    """Passed to ``on_wait`` once when a lock is busy: what we wait for, and for how long."""

    artifact_id: str
    lock_path: Path
    timeout: float | None
    entry: str | None = None


def lock_unlink_is_safe() -> bool:
    """Whether filelock copes with a lock file unlinked by its previous holder.

    filelock 4.3+ re-checks, after ``flock`` succeeds, that the inode it locked still has a
    name (and retries otherwise); older versions could then let two holders in. Only where
    it is safe do we tidy lock files away.
    """
    try:
        major, minor = (int(part) for part in filelock.__version__.split(".")[:2])
    except ValueError:
        return False
    return (major, minor) >= (4, 3)


class ArtifactLocks:
    """The store's per-artifact locks (a part of ``Store``)."""

    def lock_path(self, artifact_id: str) -> Path:
        return self.locks_dir / f"{validate_id(artifact_id)}.lock"

    @contextlib.contextmanager
    def lock(self, artifact_id: str, timeout: float | None = 600.0,
             on_wait: Callable[[LockWait], None] | None = None, *, tidy: bool = True) -> Iterator[Path]:
        """Hold the artifact's lock; ``LockTimeoutError`` after ``timeout`` s (None: forever).

        ``on_wait`` is called once, before blocking, when another process holds the lock.
        ``tidy`` removes the lock file on release (where filelock makes that safe), so a sync
        that changed nothing leaves the store as it found it.
        """
        path = self.lock_path(artifact_id)
        lock = filelock.FileLock(str(path))  # no explicit mode: filelock then honours the umask
        with self.writing():
            make_dirs(path.parent)
            try:
                lock.acquire(timeout=0)
            except filelock.Timeout:
                if on_wait is not None:
                    on_wait(LockWait(artifact_id, path, timeout))
                try:
                    lock.acquire(timeout=-1 if timeout is None else max(timeout, 0))
                except filelock.Timeout:
                    raise LockTimeoutError(artifact_id, str(path), -1 if timeout is None else timeout) from None
        drop_world_write(path)
        try:
            yield path
        finally:
            # Tidy the lock file away while still holding it (see lock_unlink_is_safe).
            if tidy and lock_unlink_is_safe():
                with contextlib.suppress(OSError):
                    path.unlink()
            lock.release()

    def is_locked(self, artifact_id: str) -> bool:
        """True when another holder has the lock right now (a snapshot, for reports)."""
        with self.lock_if_free(artifact_id, dry_run=True) as free:
            return not free

    @contextlib.contextmanager
    def lock_if_free(self, artifact_id: str, dry_run: bool = False) -> Iterator[bool]:
        """Hold the lock if nobody else does (yields True), else yield False at once.

        A dry run creates nothing: a lock without a file has no holder.
        """
        if dry_run and (not self.lock_path(artifact_id).exists() or self.is_read_only()):
            yield True  # (nobody syncs through a read-only mount)
            return
        held = contextlib.ExitStack()
        try:
            held.enter_context(self.lock(artifact_id, timeout=0, tidy=not dry_run))
        except LockTimeoutError:
            yield False
            return
        with held:
            yield True
