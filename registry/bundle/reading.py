"""Reading a bundle before anything is written: every member name, the metadata, each manifest.

Nothing a bundle says is trusted: a name that could land outside its folder, a link, a
device, a member too large, a manifest that lists what the tar lacks, a ref to an artifact
the bundle does not hold: each is refused (``InputDataError`` naming the bundle and the
member) before the store is touched. Hashes are checked later, as files are staged.
"""

from __future__ import annotations

import contextlib
import json
import tarfile
import zlib
from pathlib import Path
from typing import Iterator, Mapping

import attrs

from ..errors import InputDataError, Problem, VerificationError
from ..spec import ENTRY_NAME_RE
from ..store import MANIFEST_NAME, FileRecord, Manifest, Ref, validate_id
from .layout import (
    BUNDLE_FORMAT,
    BUNDLE_JSON,
    BUNDLE_VERSION,
    MAX_MEMBERS,
    MAX_METADATA_BYTES,
    OBJECTS,
    REEXPORT_HINT,
    REGISTRY_YAML,
)


@attrs.frozen
class Artifact:
    artifact_id: str
    manifest: Manifest
    members: Mapping[str, tarfile.TarInfo]  # manifest file name -> its member


@attrs.frozen
class Contents:
    """A bundle whose names, metadata and manifests were all checked; hashes not yet."""

    artifacts: Mapping[str, Artifact]
    refs: tuple[Ref, ...]
    registry_text: str


def reject(bundle: Path, member: str | None, why: str, hint: str | None = None) -> InputDataError:
    where = f"member '{member}' " if member else ""
    return InputDataError(f"bundle {bundle}: {where}{why}; nothing was imported", path=str(bundle),
                          field=member, hint=hint or REEXPORT_HINT)


@contextlib.contextmanager
def open_tar(bundle: Path) -> Iterator[tarfile.TarFile]:
    if not bundle.is_file():
        raise InputDataError(f"bundle {bundle} does not exist or is not a file", path=str(bundle),
                             hint="check the path given to `kronos-registry import`")
    hint = "pass a file written by `kronos-registry export`; " + REEXPORT_HINT
    if bundle.stat().st_size == 0:
        raise reject(bundle, None, "is empty, not a readable tar file", hint=hint)
    try:
        tar = tarfile.open(bundle, mode="r:*")
    except tarfile.ReadError:  # its message lists every decompressor tried: noise to a user
        raise reject(bundle, None, "is not a readable tar file (plain, .gz, .bz2 or .xz)", hint=hint) from None
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise reject(bundle, None, f"is not a readable tar file ({exc})", hint=hint) from None
    with tar:
        yield tar


# --- checking names and metadata -------------------------------------------------------------

def _members(bundle: Path, tar: tarfile.TarFile) -> list[tarfile.TarInfo]:
    """Every header, read before anything is extracted; a truncated tar fails here or below."""
    members = []
    try:
        for member in tar:
            members.append(member)
            if len(members) > MAX_MEMBERS:
                raise reject(bundle, member.name, f"is beyond the limit of {MAX_MEMBERS} members")
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise reject(bundle, members[-1].name if members else None,
                     f"cannot be read: the tar is truncated or corrupt ({exc})") from None
    if not members:
        raise reject(bundle, None, "is an empty tar file")
    return members


def _split_name(bundle: Path, member: tarfile.TarInfo) -> tuple[str, ...]:
    """The member's path components; rejects every name that could land outside its folder."""
    name = member.name
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise reject(bundle, name, "has an absolute path")
    if "\\" in name or "\0" in name:
        raise reject(bundle, name, "has a backslash or NUL in its name")
    parts = tuple(name.split("/"))
    if ".." in parts:
        raise reject(bundle, name, "climbs out of the bundle with '..'")
    if any(part in ("", ".") for part in parts):
        raise reject(bundle, name, "is not a normalised path (empty or '.' components)")
    return parts


def _check_type(bundle: Path, member: tarfile.TarInfo) -> None:
    if member.issym() or member.islnk():
        kind = "a symbolic link" if member.issym() else "a hard link"
        raise reject(bundle, member.name, f"is {kind} (to '{member.linkname}'); bundles hold plain files only")
    if member.isdev():
        raise reject(bundle, member.name, "is a device or FIFO; bundles hold plain files only")
    if not (member.isreg() or member.isdir()) or member.issparse():
        raise reject(bundle, member.name, "is not a plain file or folder")


def _classify(bundle: Path, member: tarfile.TarInfo) -> tuple[str, str] | None:
    """(artifact id, file name) for an object file, None for metadata or a folder entry."""
    _check_type(bundle, member)
    parts = _split_name(bundle, member)
    if parts in ((BUNDLE_JSON,), (REGISTRY_YAML,)) and member.isreg():
        return None
    if parts[0] != OBJECTS or (len(parts) == 1 and not member.isdir()):
        raise reject(bundle, member.name, f"is not part of a bundle (only {BUNDLE_JSON}, {REGISTRY_YAML} "
                     f"and {OBJECTS}/<artifact-id>/<file> belong in one)")
    if len(parts) >= 2:
        try:
            validate_id(parts[1])
        except InputDataError:
            raise reject(bundle, member.name, f"names '{parts[1]}', which is not a valid artifact id") from None
    if member.isdir():
        return None
    if len(parts) < 3:
        raise reject(bundle, member.name, "is a file directly under objects/, outside any artifact")
    return parts[1], "/".join(parts[2:])


def _read_small(bundle: Path, tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    if member.size > MAX_METADATA_BYTES:
        raise reject(bundle, member.name, f"is {member.size} bytes, too large for metadata")
    try:
        handle = tar.extractfile(member)
        data = handle.read() if handle else b""
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise reject(bundle, member.name, f"cannot be read: the tar is truncated or corrupt ({exc})") from None
    if len(data) != member.size:
        raise reject(bundle, member.name, "is cut short: the tar is truncated")
    return data


def read_contents(bundle: Path, tar: tarfile.TarFile, max_bytes: int) -> Contents:
    seen: set[str] = set()
    metadata: dict[str, tarfile.TarInfo] = {}
    files: dict[str, dict[str, tarfile.TarInfo]] = {}
    total = 0
    for member in _members(bundle, tar):
        if member.name in seen:
            raise reject(bundle, member.name, "appears twice in the tar")
        seen.add(member.name)
        place = _classify(bundle, member)
        if place is None:
            if member.isreg():
                metadata[member.name] = member
            continue
        files.setdefault(place[0], {})[place[1]] = member
        total += member.size
        if total > max_bytes:
            raise reject(bundle, member.name, f"takes the bundle past {max_bytes} bytes, the limit")
    for required in (BUNDLE_JSON, REGISTRY_YAML):
        if required not in metadata:
            raise reject(bundle, required, "is missing")
    index = _parse_index(bundle, _read_small(bundle, tar, metadata[BUNDLE_JSON]))
    artifacts = {a: _artifact(bundle, tar, a, members) for a, members in sorted(files.items())}
    _match_index(bundle, index, artifacts)
    registry_text = _decode(bundle, REGISTRY_YAML, _read_small(bundle, tar, metadata[REGISTRY_YAML]))
    refs = tuple(_parse_ref(bundle, item, artifacts) for item in index["refs"])
    return Contents(artifacts=artifacts, refs=refs, registry_text=registry_text)


def _decode(bundle: Path, name: str, data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise reject(bundle, name, "is not UTF-8 text") from None


def _parse_index(bundle: Path, data: bytes) -> dict:
    try:
        index = json.loads(_decode(bundle, BUNDLE_JSON, data))
    except json.JSONDecodeError as exc:
        raise reject(bundle, BUNDLE_JSON, f"is not valid JSON ({exc})") from None
    if not isinstance(index, dict) or index.get("format") != BUNDLE_FORMAT:
        raise reject(bundle, BUNDLE_JSON, f"does not describe a {BUNDLE_FORMAT}")
    version = index.get("format_version")
    if version != BUNDLE_VERSION:
        raise reject(bundle, BUNDLE_JSON, f"has format version {version!r}; this tool reads {BUNDLE_VERSION}",
                     hint="use the same kronos-registry version on both machines (or upgrade this one)")
    if not isinstance(index.get("artifacts"), list) or not isinstance(index.get("refs"), list):
        raise reject(bundle, BUNDLE_JSON, "lacks its `artifacts` or `refs` list")
    return index


def _artifact(bundle: Path, tar: tarfile.TarFile, artifact_id: str,
              members: dict[str, tarfile.TarInfo]) -> Artifact:
    manifest_name = f"{OBJECTS}/{artifact_id}/{MANIFEST_NAME}"
    if MANIFEST_NAME not in members:
        raise reject(bundle, manifest_name, f"is missing, so the files of {artifact_id} cannot be verified")
    text = _decode(bundle, manifest_name, _read_small(bundle, tar, members[MANIFEST_NAME]))
    try:
        manifest = Manifest.from_json(text)
    except ValueError as exc:
        raise reject(bundle, manifest_name, str(exc)) from None
    if manifest.artifact_id != artifact_id:
        raise reject(bundle, manifest_name, f"describes {manifest.artifact_id}, not {artifact_id}")
    listed = [record.name for record in manifest.files]
    bad = [n for i, n in enumerate(listed) if n in listed[:i] or n == MANIFEST_NAME or _unsafe_relative(n)]
    if bad:
        raise reject(bundle, manifest_name, f"lists the file name '{bad[0]}', which is unsafe or repeated")
    data_members = {n: m for n, m in members.items() if n != MANIFEST_NAME}
    extra = sorted(set(data_members) - set(listed))
    if extra:
        raise reject(bundle, f"{OBJECTS}/{artifact_id}/{extra[0]}", f"is not listed in {manifest_name}")
    missing = sorted(set(listed) - set(data_members))
    if missing:
        raise reject(bundle, f"{OBJECTS}/{artifact_id}/{missing[0]}", f"is listed in {manifest_name} but missing")
    for record in manifest.files:  # before a byte is copied: a size the tar contradicts is a lie
        if data_members[record.name].size != record.size:
            raise lied(bundle, artifact_id, data_members[record.name], record, data_members[record.name].size)
    return Artifact(artifact_id, manifest, data_members)


def lied(bundle: Path, artifact_id: str, member: tarfile.TarInfo, record: FileRecord, actual: int,
         *, at_least: bool = False) -> VerificationError:
    size = f"more than {record.size}" if at_least else str(actual)
    problem = Problem(f"bundle {bundle} lied: member '{member.name}' is {size} bytes, but its manifest "
                      f"declares {record.size}", file=record.name, field="size",
                      hint="the bundle is corrupt or was altered after export")
    return VerificationError(artifact_id, [problem], hint=f"nothing was imported; {REEXPORT_HINT}")


def _unsafe_relative(name: str) -> bool:
    parts = name.split("/")
    return name.startswith("/") or "\\" in name or any(p in ("", ".", "..") for p in parts)


def _match_index(bundle: Path, index: dict, artifacts: Mapping[str, Artifact]) -> None:
    listed = set()
    for item in index["artifacts"]:
        if not isinstance(item, dict) or not isinstance(item.get("artifact_id"), str):
            raise reject(bundle, BUNDLE_JSON, f"has a malformed artifact record: {item!r}")
        listed.add(item["artifact_id"])
    for artifact_id in sorted(listed ^ set(artifacts)):
        where = "listed in bundle.json but has no files" if artifact_id in listed else "not listed in bundle.json"
        raise reject(bundle, f"{OBJECTS}/{artifact_id}", f"is {where}")


def _parse_ref(bundle: Path, item: object, artifacts: Mapping[str, Artifact]) -> Ref:
    try:
        ref = Ref(entry=str(item["entry"]), artifact_id=str(item["artifact_id"]), source=str(item["source"]),
                  resolved_revision=item.get("resolved_revision"))
    except (KeyError, TypeError, AttributeError):
        raise reject(bundle, BUNDLE_JSON, f"has a malformed ref: {item!r}") from None
    if not ENTRY_NAME_RE.match(ref.entry):
        raise reject(bundle, BUNDLE_JSON, f"has a ref for '{ref.entry}', which is not a valid entry name")
    if ref.artifact_id not in artifacts:
        raise reject(bundle, BUNDLE_JSON, f"points '{ref.entry}' at {ref.artifact_id}, which the bundle lacks")
    return ref
