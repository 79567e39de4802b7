"""What the store writes down: each object's manifest, each entry's ref.

``objects/<id>/MANIFEST.json`` says what a published artifact holds and where it came from;
``refs/<namespace>/<entry>.json`` says which artifact an entry points at. Both pass through
``redact_secrets`` on the way to disk.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Mapping

import attrs

from ..hashing import head_sha256
from ..redact import redact_secrets
from .ids import validate_id

MANIFEST_NAME = "MANIFEST.json"
MANIFEST_SCHEMA = 1


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


@attrs.frozen
class FileRecord:
    """One file of an artifact. ``mtime_ns``, ``inode`` and ``head_sha256`` are recorded at
    publish (None in manifests written before they were): a load re-hashes the whole file
    only when its stat differs from them (see ``registry.store.snapshot``). ``checked_against``
    names the record its content was compared with before it was published (a value of
    ``registry.provenance``; None in manifests written before it was recorded)."""

    name: str
    size: int
    sha256: str
    mtime_ns: int | None = None
    inode: int | None = None
    head_sha256: str | None = None
    checked_against: str | None = None


def file_stamp(path: Path, name: str) -> dict:
    """``mtime_ns``, ``inode`` and ``head_sha256`` of the file at ``path`` (FileRecord fields):
    what publish records so that a load can tell cheaply whether the file changed."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    try:
        info = os.fstat(fd)
        return {"mtime_ns": info.st_mtime_ns, "inode": info.st_ino,
                "head_sha256": head_sha256(fd, name, info.st_size)}
    finally:
        os.close(fd)


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

    def optional_str(key: str) -> str | None:
        return None if data.get(key) is None else str(data[key])

    return FileRecord(str(data["name"]), int(data["size"]), str(data["sha256"]),
                      mtime_ns=optional_int("mtime_ns"), inode=optional_int("inode"),
                      head_sha256=optional_str("head_sha256"), checked_against=optional_str("checked_against"))


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
