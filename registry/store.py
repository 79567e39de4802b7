"""The local store: verified, immutable artifacts published with one atomic rename.

Layout under the store root::

    objects/<artifact-id>/     published artifacts, each with MANIFEST.json; never modified
    staging/<artifact-id>/     downloads in progress (same filesystem, so publish is a rename,
                               and a fixed name per artifact, so an interrupted download resumes)
    locks/<artifact-id>.lock   one filelock per artifact: N processes fetch it once
    refs/<namespace>/<entry>.json  which artifact an entry of one registry file points at, and
                               at what revision (refs/<entry>.json: of no known registry)
    trash/                     objects being deleted (renamed here first, then removed)

A reader only ever looks under ``objects/``; a folder appears there complete, with its
manifest, or not at all, whatever moment a writer is killed at.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import json
import os
import re
import secrets
import shutil
import stat
import time
from datetime import datetime, timezone
from pathlib import Path, PurePath
from typing import IO, Callable, Iterable, Iterator, Mapping

import attrs
import filelock

from .checks import sha256_file
from .errors import InputDataError, LockTimeoutError, Problem, ReadOnlyStoreError, VerificationError
from .fileops import exchange, file_stamp

MANIFEST_NAME = "MANIFEST.json"
MANIFEST_SCHEMA = 1
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
# Secrets that must never land in a manifest or ref, whatever a caller passes in.
_TOKEN_VARS = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
# A temp ref file younger than this may belong to a writer still running.
_STALE_TEMP_S = 3600.0


def default_store_root(explicit: str | os.PathLike | None = None, env: Mapping[str, str] = os.environ) -> Path:
    """``--store`` > ``$KRONOS_REGISTRY_HOME`` > ``$XDG_CACHE_HOME/kronos-registry`` > ``~/.cache/...``."""
    if explicit:
        return Path(explicit).expanduser().absolute()
    if env.get("KRONOS_REGISTRY_HOME"):
        return Path(env["KRONOS_REGISTRY_HOME"]).expanduser().absolute()
    if env.get("XDG_CACHE_HOME"):
        return Path(env["XDG_CACHE_HOME"]).expanduser().absolute() / "kronos-registry"
    home = Path(env["HOME"]) if env.get("HOME") else Path.home()
    return home / ".cache" / "kronos-registry"


def tool_version() -> str:
    try:
        from importlib.metadata import PackageNotFoundError, version

        try:
            return f"kronos-registry {version('kronos-registry')}"
        except PackageNotFoundError:
            pass
    except ImportError:  # pragma: no cover - stdlib on every supported Python
        pass
    return "kronos-registry 0+unknown"


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# --- artifact ids -----------------------------------------------------------------------------

def validate_id(artifact_id: str) -> str:
    """An artifact id is one safe folder name: no separators, no '..', no leading dot."""
    if not isinstance(artifact_id, str) or not _ID_RE.match(artifact_id) or ".." in artifact_id:
        raise InputDataError(
            f"'{artifact_id}' is not a valid artifact id", field="artifact_id",
            hint="artifact ids look like hf--ORG--REPO--<commit> or local--NAME--<digest>; "
            "list them with `kronos-registry list`",
        )
    return artifact_id


def safe_component(text: str) -> str:
    """``text`` made safe as a folder or file name; a short hash keeps rewritten names distinct."""
    cleaned = _UNSAFE_CHARS.sub("_", text).strip("._") or "_"
    cleaned = cleaned.replace("..", "_")
    if cleaned != text:
        cleaned += "-" + hashlib.sha256(text.encode()).hexdigest()[:8]
    return cleaned


def hf_artifact_id(repo_id: str, commit: str, repo_type: str = "model") -> str:
    """Deterministic per repo and commit, so one repo shared by several entries is stored once."""
    prefix = "hf" if repo_type == "model" else f"hf-{safe_component(repo_type)}"
    parts = [safe_component(part) for part in repo_id.split("/")]
    return validate_id("--".join([prefix, *parts, safe_component(commit)]))


def content_digest(hashes: Mapping[str, str]) -> str:
    """A digest over file names and their sha256: equal content, equal digest."""
    digest = hashlib.sha256()
    for name in sorted(hashes):
        digest.update(f"{name}\0{hashes[name].lower()}\n".encode())
    return digest.hexdigest()


def local_artifact_id(entry_name: str, hashes: Mapping[str, str]) -> str:
    """Content-addressed: a local folder whose files change gets a new id."""
    return validate_id(f"local--{safe_component(entry_name)}--{content_digest(hashes)[:16]}")


def ref_namespace(registry: str | None) -> str | None:
    """The folder under ``refs/`` holding the refs of one registry file; None: flat (legacy).

    An absolute path becomes its folder and file name (for people reading the store) plus a
    digest of the whole path (so two projects' ``models.yaml`` never share a folder); any
    other id (the packaged file's ``packaged``) is used as it is, made safe.
    """
    if registry is None:
        return None
    if not os.path.isabs(registry):
        return safe_component(registry)
    path = PurePath(registry)
    label = _UNSAFE_CHARS.sub("_", f"{path.parent.name}-{path.name}").replace("..", "_").strip("._-")[:48]
    return f"{label or 'registry'}-{hashlib.sha256(registry.encode()).hexdigest()[:16]}"


# --- manifest and refs ------------------------------------------------------------------------

@attrs.frozen
class FileRecord:
    """One file of an artifact. ``mtime_ns``, ``inode`` and ``head_sha256`` are recorded at
    publish (None in manifests written before they were): a load re-hashes the whole file
    only when its stat differs from them (see ``registry.snapshot``)."""

    name: str
    size: int
    sha256: str
    mtime_ns: int | None = None
    inode: int | None = None
    head_sha256: str | None = None


@attrs.frozen
class Manifest:
    """What a published artifact holds and where it came from (``objects/<id>/MANIFEST.json``)."""

    artifact_id: str
    kind: str
    entry: str
    source: str
    resolved_revision: str | None
    files: tuple[FileRecord, ...]
    checks: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    endpoint: str | None = None
    tool: str = attrs.field(factory=tool_version)
    created_at: str = attrs.field(factory=utc_now)
    schema: int = MANIFEST_SCHEMA

    def file(self, name: str) -> FileRecord | None:
        return next((record for record in self.files if record.name == name), None)

    @property
    def total_size(self) -> int:
        return sum(record.size for record in self.files)

    def to_json(self) -> str:
        data = attrs.asdict(self, recurse=True)
        data["files"] = [attrs.asdict(record) for record in self.files]
        return redact_secrets(json.dumps(data, indent=2, sort_keys=True) + "\n")

    @classmethod
    def from_json(cls, text: str) -> "Manifest":
        """Parse a manifest; ``ValueError`` says what is wrong when it is not one."""
        try:
            data = json.loads(text)
            files = tuple(_file_record(f) for f in data["files"])
            return cls(
                artifact_id=str(data["artifact_id"]), kind=str(data["kind"]), entry=str(data["entry"]),
                source=str(data["source"]), resolved_revision=data.get("resolved_revision"), files=files,
                checks=tuple(data.get("checks", ())), warnings=tuple(data.get("warnings", ())),
                endpoint=data.get("endpoint"), tool=str(data.get("tool", "")),
                created_at=str(data.get("created_at", "")), schema=int(data.get("schema", MANIFEST_SCHEMA)),
            )
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a valid manifest ({type(exc).__name__}: {exc})") from None


def _file_record(data: Mapping) -> FileRecord:
    def optional_int(key: str) -> int | None:
        return None if data.get(key) is None else int(data[key])

    head = data.get("head_sha256")
    return FileRecord(str(data["name"]), int(data["size"]), str(data["sha256"]),
                      mtime_ns=optional_int("mtime_ns"), inode=optional_int("inode"),
                      head_sha256=None if head is None else str(head))


@attrs.frozen
class Ref:
    """An entry name's pointer into the store.

    ``fingerprint`` (local sources only) holds each source file's (name, size, mtime_ns) at
    sync time, so a cheap look-up can tell that the folder changed since without hashing it.
    """

    entry: str
    artifact_id: str
    source: str
    resolved_revision: str | None = None
    fingerprint: tuple[tuple[str, int, int], ...] | None = None
    updated_at: str = attrs.field(factory=utc_now)
    # The registry file that defined the entry (its real absolute path, or a fixed id such as
    # "packaged"): refs live in one namespace per registry file, so two projects sharing the
    # store may both define "my-finetune". None: a ref of no known registry (written by an
    # older version or by `import`), kept flat under refs/.
    registry: str | None = None

    def to_json(self) -> str:
        data = attrs.asdict(self)
        if self.fingerprint is not None:
            data["fingerprint"] = [list(item) for item in self.fingerprint]
        return redact_secrets(json.dumps(data, indent=2, sort_keys=True) + "\n")

    @classmethod
    def from_json(cls, text: str) -> "Ref":
        data = json.loads(text)
        fingerprint = data.get("fingerprint")
        return cls(
            entry=str(data["entry"]), artifact_id=validate_id(data["artifact_id"]), source=str(data["source"]),
            resolved_revision=data.get("resolved_revision"),
            fingerprint=None if fingerprint is None else tuple((str(n), int(s), int(m)) for n, s, m in fingerprint),
            updated_at=str(data.get("updated_at", "")),
            registry=None if data.get("registry") is None else str(data["registry"]),
        )

    def same_target(self, other: "Ref") -> bool:
        return attrs.evolve(self, updated_at="") == attrs.evolve(other, updated_at="")


# user:password@ in a URL (a private mirror behind basic auth): never shown, never written.
_URL_CREDENTIALS = re.compile(r"\b(https?://)[^\s/@]+@", re.IGNORECASE)
_ENDPOINT_VARS = ("HF_ENDPOINT",)


def _env_secrets() -> list[str]:
    """Tokens, and the passwords of endpoints given with credentials, from the environment."""
    from urllib.parse import unquote, urlsplit

    found = [os.environ.get(var) for var in _TOKEN_VARS]
    for var in _ENDPOINT_VARS:
        with contextlib.suppress(ValueError):
            parts = urlsplit(os.environ.get(var) or "")
            if parts.password:
                found += [parts.password, unquote(parts.password)]
    return [secret for secret in found if secret and len(secret) >= 8]


def redact_secrets(text: str) -> str:
    """Belt and braces: a token or endpoint password from the environment, or the credentials
    of any URL, never reach a file we write or a message we show."""
    text = _URL_CREDENTIALS.sub(r"\1", text)
    for secret in _env_secrets():
        text = text.replace(secret, "<redacted>")
    return text


@attrs.frozen
class LockWait:
    """Passed to ``on_wait`` once when a lock is busy: what we wait for, and for how long."""

    artifact_id: str
    lock_path: Path
    timeout: float | None
    entry: str | None = None


@attrs.frozen
class GcResult:
    objects: tuple[str, ...] = ()
    staging: tuple[str, ...] = ()
    trash: tuple[str, ...] = ()
    locks: tuple[str, ...] = ()
    refs: tuple[str, ...] = ()
    temp_files: tuple[str, ...] = ()

    @property
    def removed_anything(self) -> bool:
        return any(attrs.astuple(self))


# --- filesystem helpers -----------------------------------------------------------------------

def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
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


FOLDER_MODE = 0o775  # less the umask; never world-writable, even under umask 000
FILE_MODE = 0o664


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


def _drop_world_write(path: Path) -> None:
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
    _fsync_dir(path.parent)


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so a reader sees the old or the new content, never half."""
    with atomic_file(path) as handle:
        handle.write(text.encode("utf-8"))


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


def _modified_before(path: Path, cutoff: float) -> bool:
    """Whether ``path`` was last modified before ``cutoff``; False once it is gone (a temp
    file that its writer renamed into place between gc's listing and this look)."""
    try:
        return path.stat().st_mtime < cutoff
    except FileNotFoundError:
        return False


def _remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def _lock_unlink_is_safe() -> bool:
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


# --- writing, and a store that may not be written ------------------------------------------

# "No" from the file system to a write under the store root: a read-only mount (EROFS), or
# a store this user may only read (EACCES, EPERM).
_READ_ONLY_ERRNOS = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})


def _writes(method):
    """Mark a Store method that writes: a read-only store raises ``ReadOnlyStoreError`` first."""

    @functools.wraps(method)
    def wrapper(self: "Store", *args, **kwargs):
        with self.writing():
            return method(self, *args, **kwargs)

    return wrapper


# --- the store --------------------------------------------------------------------------------

class Store:
    """A folder of verified artifacts (see the module docstring for the layout)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).expanduser().absolute()
        if self.root.exists() and not self.root.is_dir():
            # Caught here, once, rather than as "Not a directory" from whichever call comes first.
            raise InputDataError(
                f"the store path {self.root} is not a folder", path=str(self.root), field="store",
                hint="point --store or KRONOS_REGISTRY_HOME at a folder (it is created when missing)",
            )

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

    # read-only stores -------------------------------------------------------------------

    def is_read_only(self) -> bool:
        """True when the store (or, before it exists, its nearest folder) is on a read-only mount."""
        existing = self.root
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        try:
            return bool(os.statvfs(existing).f_flag & os.ST_RDONLY)
        except (OSError, AttributeError):  # no statvfs (Windows): the write itself will say
            return False

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Around every write: ``ReadOnlyStoreError`` (not a bare OSError) when the store is
        read-only, checked before anything is attempted and again for what the writes meet."""
        if self.is_read_only():
            raise ReadOnlyStoreError(str(self.root), str(self.root), "a read-only file system")
        try:
            yield
        except OSError as exc:
            if exc.errno in _READ_ONLY_ERRNOS and self._inside(exc.filename):
                raise ReadOnlyStoreError(str(self.root), str(exc.filename), exc.strerror or str(exc)) from exc
            raise

    def _inside(self, filename) -> bool:
        if not filename:
            return False
        path = Path(os.fsdecode(filename)).absolute()
        return path == self.root or self.root in path.parents

    @property
    def objects_dir(self) -> Path:
        return self.root / "objects"

    @property
    def staging_root(self) -> Path:
        return self.root / "staging"

    @property
    def locks_dir(self) -> Path:
        return self.root / "locks"

    @property
    def refs_dir(self) -> Path:
        return self.root / "refs"

    @property
    def trash_dir(self) -> Path:
        return self.root / "trash"

    # objects ------------------------------------------------------------------------------

    def object_dir(self, artifact_id: str) -> Path:
        return self.objects_dir / validate_id(artifact_id)

    def has(self, artifact_id: str) -> bool:
        """Published (a manifest is the last thing written before the rename)."""
        return (self.object_dir(artifact_id) / MANIFEST_NAME).is_file()

    def list_artifacts(self) -> list[str]:
        if not self.objects_dir.is_dir():
            return []
        return sorted(p.name for p in self.objects_dir.iterdir() if p.is_dir() and _ID_RE.match(p.name))

    def read_manifest(self, artifact_id: str) -> Manifest:
        """The artifact's manifest; ``VerificationError`` when it is missing or unreadable."""
        path = self.object_dir(artifact_id) / MANIFEST_NAME
        try:
            return Manifest.from_json(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise VerificationError(artifact_id, [self._manifest_problem(artifact_id, exc)]) from None

    def _manifest_problem(self, artifact_id: str, exc: Exception) -> Problem:
        missing = isinstance(exc, FileNotFoundError)
        return Problem(
            f"{MANIFEST_NAME} is {'missing' if missing else 'unreadable'} in {self.object_dir(artifact_id)}"
            + ("" if missing else f": {exc}"),
            file=MANIFEST_NAME,
            hint=f"remove the artifact (`kronos-registry rm`, or delete {self.object_dir(artifact_id)}) "
            "and sync it again",
        )

    def check(self, artifact_id: str, deep: bool = False) -> list[Problem]:
        """Problems with a published artifact: cheap (manifest, names, sizes) or deep (re-hash)."""
        folder = self.object_dir(artifact_id)
        if not folder.is_dir():
            return [Problem(f"{artifact_id} is not in the store at {self.root}", file=str(folder),
                            hint="sync the entry that names it")]
        try:
            manifest = Manifest.from_json((folder / MANIFEST_NAME).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            return [self._manifest_problem(artifact_id, exc)]
        hint = (f"the stored copy of {artifact_id} is damaged; sync its entry again to repair it "
                "(or `kronos-registry rm` it)")
        problems = []
        if manifest.artifact_id != artifact_id:
            problems.append(Problem(f"manifest names {manifest.artifact_id}, not {artifact_id}",
                                    file=MANIFEST_NAME, field="artifact_id", hint=hint))
        present = set(list_files(folder)) - {MANIFEST_NAME}
        for record in manifest.files:
            problems.extend(self._check_file(folder, record, record.name in present, deep, hint))
        for extra in sorted(present - {record.name for record in manifest.files}):
            problems.append(Problem(f"{extra} is in the artifact folder but not in its manifest",
                                    file=extra, hint=hint))
        return problems

    @staticmethod
    def _check_file(folder: Path, record: FileRecord, present: bool, deep: bool, hint: str) -> Iterator[Problem]:
        path = folder / record.name
        try:
            info = path.lstat() if present else None
        except FileNotFoundError:  # removed since the folder was listed
            info = None
        if info is None:
            yield Problem(f"{record.name} is listed in the manifest but missing", file=record.name, hint=hint)
            return
        if not stat.S_ISREG(info.st_mode):
            yield Problem(f"{record.name} is not a regular file", file=record.name, hint=hint)
            return
        if info.st_size != record.size:
            yield Problem(f"{record.name} is {info.st_size} bytes, the manifest says {record.size} "
                          "(truncated or changed)", file=record.name, field="size", hint=hint)
            return
        if deep and (actual := sha256_file(path)) != record.sha256:
            yield Problem(f"{record.name} has sha256 {actual}, the manifest says {record.sha256} "
                          "(corrupted in place)", file=record.name, field="sha256", hint=hint)

    # locks --------------------------------------------------------------------------------

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
        _drop_world_write(path)
        try:
            yield path
        finally:
            # Tidy the lock file away while still holding it (see _lock_unlink_is_safe).
            if tidy and _lock_unlink_is_safe():
                with contextlib.suppress(OSError):
                    path.unlink()
            lock.release()

    def is_locked(self, artifact_id: str) -> bool:
        """True when another holder has the lock right now (a snapshot, for reports)."""
        with self._if_free(artifact_id, dry_run=True) as free:
            return not free

    # staging and publish ------------------------------------------------------------------

    def staging_dir(self, artifact_id: str) -> Path:
        return self.staging_root / validate_id(artifact_id)

    @_writes
    def staging(self, artifact_id: str) -> Path:
        """The artifact's staging folder, created if absent; reused as is to resume a fetch.

        Only touch it while holding the artifact's lock.
        """
        path = self.staging_dir(artifact_id)
        make_dirs(path)
        return path

    @_writes
    def discard_staging(self, artifact_id: str) -> None:
        _remove_tree(self.staging_dir(artifact_id))

    @_writes
    def prune_staging(self, artifact_id: str, keep: Iterable[str]) -> list[str]:
        """Remove what an earlier, interrupted attempt left beside the files wanted now."""
        folder = self.staging_dir(artifact_id)
        wanted = set(keep)
        removed = []
        for name in list_files(folder):
            if name not in wanted:
                path = folder / name
                if path.is_dir() and not path.is_symlink():
                    _remove_tree(path)
                else:
                    path.unlink()
                removed.append(name)
        for dirpath, _, _ in sorted(os.walk(folder), key=lambda item: -len(item[0])):
            if Path(dirpath) != folder:
                with contextlib.suppress(OSError):
                    os.rmdir(dirpath)  # only succeeds when empty
        return removed

    @_writes
    def publish(self, artifact_id: str, staging: Path, manifest: Manifest, *, replace: bool = False) -> bool:
        """Write the manifest into ``staging`` and rename it to ``objects/<id>`` in one step.

        Returns False (and discards ``staging``) when the object already exists: the published
        copy is immutable and wins, unless ``replace`` (a repair or a forced sync), which swaps
        the new folder in with one atomic exchange where the platform has one: a concurrent
        reader finds the old copy or the new one, never none; readers that already opened the
        old one keep reading it (it goes to the trash). Call it while holding the artifact's lock.
        """
        target = self.object_dir(artifact_id)
        if manifest.artifact_id != artifact_id:
            raise ValueError(f"manifest is for {manifest.artifact_id}, not {artifact_id}")
        if self.has(artifact_id) and not replace:
            _remove_tree(staging)
            return False
        manifest = attrs.evolve(manifest, files=tuple(
            attrs.evolve(r, **file_stamp(staging / r.name, r.name)) for r in manifest.files))
        (staging / MANIFEST_NAME).write_text(manifest.to_json(), encoding="utf-8")
        self._make_durable(staging)
        make_dirs(self.objects_dir)
        if replace and target.exists() and exchange(staging, target):
            # `staging` now holds the old copy: retire it. Open files in it stay readable.
            _fsync_dir(self.objects_dir)
            _remove_tree(self._to_trash(staging))
            return True
        # A folder without a manifest is debris, never a published object; a replaced one
        # (no exchange here) leaves a moment with no object, which readers retry across.
        aside = self._to_trash(target) if target.exists() else None
        try:
            os.rename(staging, target)
        except OSError as exc:
            if exc.errno in (errno.EEXIST, errno.ENOTEMPTY) and self.has(artifact_id):
                _remove_tree(staging)
                return False
            raise
        _fsync_dir(self.objects_dir)
        _fsync_dir(staging.parent)
        if aside is not None:
            _remove_tree(aside)
        return True

    @staticmethod
    def _make_durable(folder: Path) -> None:
        """fsync every file and folder, so the rename never publishes data still in flight."""
        for dirpath, _, filenames in os.walk(folder, topdown=False):
            for name in filenames:
                path = Path(dirpath) / name
                info = path.lstat()
                if stat.S_ISREG(info.st_mode):
                    _drop_world_write(path)  # a file copied from a 0666 source keeps its bits
                    _fsync_file(path)
            _fsync_dir(Path(dirpath))

    # removal and garbage collection ------------------------------------------------------

    def _to_trash(self, path: Path) -> Path:
        make_dirs(self.trash_dir)
        aside = self.trash_dir / f"{path.name}.{secrets.token_hex(4)}"
        os.rename(path, aside)
        return aside

    @_writes
    def remove(self, artifact_id: str) -> bool:
        """Delete a published artifact: renamed away first, so no reader sees half a folder."""
        target = self.object_dir(artifact_id)
        if not target.exists():
            return False
        aside = self._to_trash(target)
        _fsync_dir(self.objects_dir)
        _remove_tree(aside)
        return True

    def gc(self, keep: Iterable[str] = (), *, dry_run: bool = False) -> GcResult:
        """Remove what nothing needs; returns what was (or, with ``dry_run``, would be) removed.

        Removes objects no ref points at (and not in ``keep``), staging folders and lock files
        whose lock is free, the trash, refs to missing objects and stale temp files. Anything
        locked by a running sync is left alone.
        """
        keep = set(keep)
        if not dry_run and self.is_read_only():
            raise ReadOnlyStoreError(str(self.root), str(self.root), "a read-only file system")
        return GcResult(
            objects=tuple(a for a in self.list_artifacts() if self._gc_object(a, keep, dry_run)),
            staging=tuple(p.name for p in self._children(self.staging_root) if self._gc_staging(p, dry_run)),
            refs=tuple(name for name, ref in self.refs().items() if self._gc_ref(name, ref, dry_run)),
            trash=tuple(self._gc_trash(dry_run)),
            locks=tuple(self._gc_locks(dry_run)),
            temp_files=tuple(self._gc_temp_files(dry_run)),
        )

    @staticmethod
    def _children(folder: Path) -> list[Path]:
        return sorted(folder.iterdir()) if folder.is_dir() else []

    @contextlib.contextmanager
    def _if_free(self, artifact_id: str, dry_run: bool = False) -> Iterator[bool]:
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

    def _gc_object(self, artifact_id: str, keep: set[str], dry_run: bool) -> bool:
        # Decide under the lock: a sync holds it from publish until its ref is written.
        with self._if_free(artifact_id, dry_run) as free:
            referenced = {ref.artifact_id for ref in self.refs().values()} | keep
            if not free or artifact_id in referenced:
                return False
            if not dry_run:
                self.remove(artifact_id)
            return True

    def _gc_staging(self, path: Path, dry_run: bool) -> bool:
        if not _ID_RE.match(path.name):
            return False
        with self._if_free(path.name, dry_run) as free:
            if free and not dry_run:
                _remove_tree(path)
            return free

    def _gc_ref(self, key: str, ref: Ref, dry_run: bool) -> bool:
        with self._if_free(ref.artifact_id, dry_run) as free:
            if not free or self.has(ref.artifact_id):
                return False
            if not dry_run:
                (self.refs_dir / f"{key}.json").unlink(missing_ok=True)
            return True

    def _gc_trash(self, dry_run: bool) -> list[str]:
        # Only ever renamed here to be deleted: nothing in the trash is in use. The process that
        # put it there may be deleting it at the same moment, so a vanished entry is no error.
        removed = []
        for path in self._children(self.trash_dir):
            if not dry_run:
                _remove_tree(path) if path.is_dir() and not path.is_symlink() else path.unlink(missing_ok=True)
            removed.append(path.name)
        return removed

    def _gc_locks(self, dry_run: bool) -> list[str]:
        if not _lock_unlink_is_safe():
            return []
        removed = []
        for path in self._children(self.locks_dir):
            artifact_id = path.name.removesuffix(".lock")
            if path.suffix != ".lock" or not _ID_RE.match(artifact_id):
                continue
            with self._if_free(artifact_id, dry_run) as free:
                pass  # releasing a free lock with tidy on removes its file
            if free:
                removed.append(path.name)
        return removed

    def _gc_temp_files(self, dry_run: bool) -> list[str]:
        removed = []
        cutoff = time.time() - _STALE_TEMP_S
        folders = [self.refs_dir, *(p for p in self._children(self.refs_dir) if p.is_dir() and not p.is_symlink())]
        for path in (child for folder in folders for child in self._children(folder)):
            if path.name.startswith(".") and path.name.endswith(".tmp") and _modified_before(path, cutoff):
                if not dry_run:
                    path.unlink(missing_ok=True)
                removed.append(path.name)
        return removed

    # refs ---------------------------------------------------------------------------------
    #
    # refs/<namespace>/<entry>.json, one namespace per registry file (see ``ref_namespace``);
    # refs/<entry>.json: refs of no known registry (older versions, `import`). Every ref, in
    # any namespace, keeps its object from ``gc``.

    def ref_path(self, entry_name: str, registry: str | None = None) -> Path:
        namespace = ref_namespace(registry)
        folder = self.refs_dir if namespace is None else self.refs_dir / namespace
        return folder / f"{safe_component(entry_name)}.json"

    def set_ref(self, ref: Ref) -> None:
        """Point an entry name at an artifact (atomic replace; unchanged refs are not rewritten,
        so re-syncing what a read-only store already holds writes nothing)."""
        validate_id(ref.artifact_id)
        path = self.ref_path(ref.entry, ref.registry)
        current = self._read_ref(path)
        if current is not None and current.same_target(ref):
            return
        with self.writing():
            write_atomic(path, ref.to_json())

    def get_ref(self, entry_name: str, registry: str | None = None, *, legacy: bool = True) -> Ref | None:
        """The entry's ref in ``registry``'s namespace; when it has none (and ``legacy``), the
        flat ref of no known registry, which callers must match by source before trusting.
        None when absent or unreadable (an unreadable ref is as good as none)."""
        if registry is not None:
            ref = self._read_ref(self.ref_path(entry_name, registry))
            if ref is not None and ref.entry == entry_name and ref.registry == registry:
                return ref
            if not legacy:
                return None
        ref = self._read_ref(self.ref_path(entry_name))
        return ref if ref is not None and ref.entry == entry_name and ref.registry is None else None

    def remove_ref(self, entry_name: str, registry: str | None = None) -> bool:
        path = self.ref_path(entry_name, registry)
        if not path.exists():
            return False
        try:
            with self.writing():
                path.unlink()
        except FileNotFoundError:
            return False
        _fsync_dir(path.parent)
        return True

    @staticmethod
    def _read_ref(path: Path) -> Ref | None:
        try:
            return Ref.from_json(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, InputDataError):
            return None

    def _ref_files(self) -> Iterator[tuple[str, Path]]:
        """(key, path) of every ref file: ``<namespace>/<entry>`` or, flat, ``<entry>``."""
        for path in self._children(self.refs_dir):
            if path.is_dir() and not path.is_symlink() and not path.name.startswith("."):
                for inner in self._children(path):
                    if inner.suffix == ".json" and not inner.name.startswith("."):
                        yield f"{path.name}/{inner.stem}", inner
            elif path.suffix == ".json" and not path.name.startswith("."):
                yield path.stem, path

    def refs(self) -> dict[str, Ref]:
        """Every readable ref in every namespace, by key (``<namespace>/<entry>``, or
        ``<entry>`` for a flat ref)."""
        found = {}
        for key, path in self._ref_files():
            ref = self._read_ref(path)
            if ref is not None:
                found[key] = ref
        return found
