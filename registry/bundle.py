"""Bundles: carry verified artifacts to an air-gapped machine in one tar file.

A bundle is a plain tar (gzip-compressed when the output name ends in ``.gz``/``.tgz``)::

    bundle.json               what is inside: format version, tool, date, artifacts, refs
    registry.yaml             a schema-1 registry file holding just the exported entries
    objects/<id>/MANIFEST.json
    objects/<id>/<file>...    every file of each artifact, byte for byte as stored

``export_bundle`` reads published objects from a store; ``import_bundle`` checks every member
name and every hash before anything is published, then publishes each artifact through the
store's normal path (artifact lock, staging folder, one atomic rename) and sets the refs.

Local sources: a folder on the exporting machine will not exist on the target, so
``registry.yaml`` in the bundle names each local entry's source as ``../objects/<id>``
(relative to a file saved in ``<store>/registries/``: the artifact's own copy in the store).
Import rewrites it to the absolute path of that copy; the registry resolution overlays the
saved file on the packaged one (see ``registry.imported``), so imported entries work by name.
``hf://`` sources are written pinned to the commit that was exported, so the target resolves
the very same artifact.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
import time
import zlib
from pathlib import Path, PurePosixPath
from typing import IO, Callable, Iterator, Mapping, Sequence

import attrs
import yaml

from . import imported
from .checks import CheckProvider, generic_checks
from .errors import InputDataError, NotSyncedError, Problem, RegistryFileError, VerificationError
from .spec import COMMIT_RE, DEFAULT_FILES, ENTRY_NAME_RE, Entry, HfSource, LocalSource, RegistrySpec, parse_registry
from .store import (
    MANIFEST_NAME,
    FileRecord,
    Manifest,
    Ref,
    Store,
    atomic_file,
    hf_artifact_id,
    make_dirs,
    redact_secrets,
    tool_version,
    utc_now,
    validate_id,
    write_atomic,
)

BUNDLE_FORMAT = "registry-bundle"
BUNDLE_VERSION = 1
BUNDLE_JSON = "bundle.json"
REGISTRY_YAML = "registry.yaml"
OBJECTS = "objects"
REGISTRIES_DIR = imported.REGISTRIES_DIR
# Bounds that keep a hostile or broken bundle from filling the disk or the memory.
DEFAULT_MAX_BYTES = 64 * 2**30
MAX_MEMBERS = 10_000
MAX_METADATA_BYTES = 16 * 2**20
_CHUNK = 1 << 20
_REEXPORT_HINT = "export the bundle again on the source machine and copy it over once more"


@attrs.frozen
class BundleSummary:
    """What ``export_bundle`` wrote."""

    path: Path
    artifacts: tuple[str, ...]
    entries: tuple[str, ...]
    bytes: int  # payload bytes of the artifacts' files (the tar adds headers)


@attrs.frozen
class ImportSummary:
    """What ``import_bundle`` did: ``artifacts`` were published, ``skipped`` were already stored."""

    bundle: Path
    artifacts: tuple[str, ...]
    skipped: tuple[str, ...]
    refs: tuple[str, ...]
    bytes: int  # bytes written into the store's objects
    registry_path: Path


# =============================================================================================
# export
# =============================================================================================

@attrs.frozen
class _Exported:
    entry: Entry
    artifact_id: str
    manifest: Manifest
    ref: Ref


def export_bundle(store: Store, spec: RegistrySpec, names: Sequence[str], output: str | os.PathLike, *,
                  artifact_of: Callable[[Entry], str | None] | None = None) -> BundleSummary:
    """Write the stored artifacts of ``names`` (each model with its tokenizer) to ``output``.

    Each entry's artifact is what the store already holds for it: a pinned ``hf://`` source
    names its object directly, any other source goes through the entry's ref (the same rule
    the loader uses). ``artifact_of`` overrides that choice (return None for "not stored").
    Raises ``UnknownEntryError``/``UnavailableEntryError`` for bad names, ``NotSyncedError``
    for an entry not in the store and ``VerificationError`` for a damaged stored copy. The
    bundle appears at ``output`` complete or not at all.
    """
    if not names:
        raise InputDataError("nothing to export: name at least one entry",
                             hint="e.g. `kronos-registry export kronos-small -o bundle.tar`")
    output = Path(output)
    chosen = []
    for entry in _with_tokenizers(spec, names):
        try:
            chosen.append(_exported(store, entry, artifact_of))
        except NotSyncedError as error:
            raise _missing_for(spec, names, entry, error) from None
    registry_text = _render_registry([(item.entry, _bundle_source(item)) for item in chosen],
                                     header=_export_header())
    index = _index_json(chosen)
    payload = _write_atomically(output, lambda tar: _fill_tar(tar, store, chosen, index, registry_text))
    artifacts = tuple(dict.fromkeys(item.artifact_id for item in chosen))
    return BundleSummary(path=output, artifacts=artifacts, entries=tuple(i.entry.name for i in chosen),
                         bytes=payload)


def _missing_for(spec: RegistrySpec, names: Sequence[str], entry: Entry, error: NotSyncedError) -> NotSyncedError:
    """A tokenizer nobody named is missing: name the model asked for, whose sync brings both."""
    if entry.name in names:
        return error
    model = next(spec.get(n) for n in names if spec.get(n).tokenizer == entry.name)
    return NotSyncedError(model.name, error.store_root,
                          reason=f"nothing to export: it needs its tokenizer '{entry.name}', which is not in the store")


def _with_tokenizers(spec: RegistrySpec, names: Sequence[str]) -> list[Entry]:
    """The named entries and their tokenizers, each once, tokenizers first (they load first)."""
    tokenizers: dict[str, Entry] = {}
    models: dict[str, Entry] = {}
    for name in names:
        entry = spec.get_available(name)
        if entry.is_model and entry.tokenizer:
            tokenizers.setdefault(entry.tokenizer, spec.get_available(entry.tokenizer))
        (models if entry.is_model else tokenizers).setdefault(entry.name, entry)
    return [*tokenizers.values(), *models.values()]


def stored_artifact(store: Store, entry: Entry) -> str | None:
    """The artifact id the store holds for ``entry``, or None (no network, no hashing)."""
    source = entry.source
    if isinstance(source, HfSource) and source.is_pinned:
        artifact_id = hf_artifact_id(source.repo_id, source.revision, source.repo_type)
        return artifact_id if store.has(artifact_id) else None
    ref = store.get_ref(entry.name, entry.registry)
    if ref is None or source is None or ref.source != str(source) or not store.has(ref.artifact_id):
        return None
    return ref.artifact_id


def _exported(store: Store, entry: Entry, artifact_of: Callable[[Entry], str | None] | None) -> _Exported:
    artifact_id = (artifact_of or (lambda e: stored_artifact(store, e)))(entry)
    if artifact_id is None or not store.has(artifact_id):
        raise NotSyncedError(entry.name, str(store.root), reason="nothing to export")
    problems = store.check(artifact_id)
    if problems:  # never spread a damaged copy: the target would reject it anyway
        raise VerificationError(f"'{entry.name}' ({artifact_id})", problems,
                                hint=f"run `kronos-registry sync {entry.name}` to repair it, then export again")
    manifest = store.read_manifest(artifact_id)
    ref = store.get_ref(entry.name, entry.registry)
    if ref is None or ref.artifact_id != artifact_id:
        ref = Ref(entry=entry.name, artifact_id=artifact_id, source=str(entry.source),
                  resolved_revision=manifest.resolved_revision)
    # The fingerprint and the registry path describe this machine only; they mean nothing on
    # the target (an imported ref belongs to no known registry there).
    return _Exported(entry, artifact_id, manifest, attrs.evolve(ref, fingerprint=None, registry=None))


def _bundle_source(item: _Exported) -> str:
    """The entry's source as written into the bundle's registry.yaml (see the module docstring)."""
    source = item.entry.source
    if isinstance(source, HfSource):
        revision = item.manifest.resolved_revision
        pinned = revision if revision and COMMIT_RE.match(revision) else source.revision
        return str(attrs.evolve(source, revision=pinned))
    return f"../{OBJECTS}/{item.artifact_id}"


def _export_header() -> str:
    return (
        f"# Entries exported by {tool_version()} on {utc_now()}.\n"
        "# `kronos-registry import` saves this file into <store>/registries/ with each local\n"
        "# source rewritten to the artifact's copy in that store; hub sources are pinned to the\n"
        "# commit exported. Its entries then work by name there (the file overlays the\n"
        "# packaged registry; a models.yaml of your own overlays it).\n"
    )


def _index_json(chosen: Sequence[_Exported]) -> str:
    artifacts: dict[str, dict] = {}
    for item in chosen:
        record = artifacts.setdefault(item.artifact_id, {
            "artifact_id": item.artifact_id, "kind": item.manifest.kind, "entries": [],
            "files": len(item.manifest.files), "size": item.manifest.total_size,
        })
        record["entries"].append(item.entry.name)
    refs = []
    for item in chosen:
        ref = attrs.asdict(item.ref)
        ref.pop("fingerprint")
        refs.append({**ref, "kind": item.entry.kind})
    data = {"format": BUNDLE_FORMAT, "format_version": BUNDLE_VERSION, "tool": tool_version(),
            "created_at": utc_now(), "artifacts": list(artifacts.values()), "refs": refs}
    return redact_secrets(json.dumps(data, indent=2, sort_keys=True) + "\n")


def _fill_tar(tar: tarfile.TarFile, store: Store, chosen: Sequence[_Exported], index: str,
              registry_text: str) -> int:
    _add_bytes(tar, BUNDLE_JSON, index.encode())
    _add_bytes(tar, REGISTRY_YAML, registry_text.encode())
    payload = 0
    done: set[str] = set()
    for item in chosen:
        if item.artifact_id in done:
            continue
        done.add(item.artifact_id)
        folder = store.object_dir(item.artifact_id)
        prefix = f"{OBJECTS}/{item.artifact_id}"
        _add_bytes(tar, f"{prefix}/{MANIFEST_NAME}", (folder / MANIFEST_NAME).read_bytes())
        for record in item.manifest.files:
            _add_verified_file(tar, f"{prefix}/{record.name}", folder / record.name, record, item.artifact_id)
            payload += record.size
    return payload


def _member_info(name: str, size: int) -> tarfile.TarInfo:
    """A plain file member with neutral ownership: nothing about this machine leaks into it."""
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    info.mtime = int(time.time())
    info.type = tarfile.REGTYPE
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    tar.addfile(_member_info(name, len(data)), io.BytesIO(data))


class _HashingReader:
    """Hashes what tarfile reads through it, so export verifies the files without a second read."""

    def __init__(self, handle: IO[bytes]):
        self.handle = handle
        self.digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.handle.read(size)
        self.digest.update(data)
        return data


def _add_verified_file(tar: tarfile.TarFile, name: str, path: Path, record: FileRecord, artifact_id: str) -> None:
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size != record.size:
            raise _stored_damage(artifact_id, record.name, f"is {size} bytes, the manifest says {record.size}")
        reader = _HashingReader(handle)
        tar.addfile(_member_info(name, size), reader)
    if reader.digest.hexdigest() != record.sha256:
        raise _stored_damage(artifact_id, record.name,
                             f"has sha256 {reader.digest.hexdigest()}, the manifest says {record.sha256}")


def _stored_damage(artifact_id: str, file_name: str, what: str) -> VerificationError:
    problem = Problem(f"{file_name} {what} (damaged in the store)", file=file_name, field="sha256",
                      hint="sync the entry again to repair the stored copy, then export again")
    return VerificationError(artifact_id, [problem], hint="no bundle was written")


def _write_atomically(output: Path, fill: Callable[[tarfile.TarFile], int]) -> int:
    """Build the tar in a temp file beside ``output`` and rename it: no half-written bundle."""
    mode = "w:gz" if output.name.endswith((".gz", ".tgz")) else "w"
    with atomic_file(output, suffix=".part") as raw:
        with tarfile.open(fileobj=raw, mode=mode, format=tarfile.PAX_FORMAT) as tar:
            payload = fill(tar)
    return payload


# --- registry.yaml ---------------------------------------------------------------------------

def _entry_data(entry: Entry, source: str) -> dict:
    """One entry as schema-1 YAML data; optional keys only when they say something."""
    data: dict[str, object] = {}
    if entry.display_name:
        data["display_name"] = entry.display_name
    if entry.description:
        data["description"] = entry.description
    data["source"] = source
    if entry.is_model:
        data["tokenizer"] = entry.tokenizer
        data["context_length"] = entry.context_length
    if entry.params is not None:
        data["params"] = entry.params.value if entry.params.exact else entry.params.text
    if entry.files != DEFAULT_FILES:
        data["files"] = list(entry.files)
    if entry.sha256:
        data["sha256"] = dict(entry.sha256)
    if entry.allow_pickle:
        data["allow_pickle"] = True
    if entry.config is not None:
        data["config"] = dict(entry.config)
    if entry.lineage is not None:
        data["lineage"] = dict(entry.lineage)
    return data


def _render_registry(entries: Sequence[tuple[Entry, str]], header: str) -> str:
    # endpoint/mirrors are left out on purpose: overlaid on the target's own file they would
    # replace that machine's settings, and the bundled entries need no network anyway.
    data: dict[str, object] = {"schema": 1}
    for section, kind in (("tokenizers", "tokenizer"), ("models", "model")):
        chosen = {e.name: _entry_data(e, source) for e, source in entries if e.kind == kind}
        if chosen:
            data[section] = chosen
    body = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False)
    return redact_secrets(header + body)


# =============================================================================================
# import
# =============================================================================================

@attrs.frozen
class _Artifact:
    artifact_id: str
    manifest: Manifest
    members: Mapping[str, tarfile.TarInfo]  # manifest file name -> its member


@attrs.frozen
class _Contents:
    """A bundle whose names, metadata and manifests were all checked; hashes not yet."""

    artifacts: Mapping[str, _Artifact]
    refs: tuple[Ref, ...]
    registry_text: str


def import_bundle(store: Store, bundle: str | os.PathLike, *, checks: CheckProvider = generic_checks,
                  registry: RegistrySpec | None = None, lock_timeout: float | None = 600.0,
                  max_bytes: int = DEFAULT_MAX_BYTES) -> ImportSummary:
    """Verify ``bundle`` and publish its artifacts and refs into ``store``.

    Every member name, the metadata and every manifest are checked before the store is
    touched (``InputDataError`` naming the bundle and the member); every file is hashed while
    it is staged (a member larger than its manifest says is refused before a byte is copied),
    then the family's ``checks`` run on each artifact, as a sync runs them, against every
    entry that will use it: the bundle's, and those of ``registry`` (the registry in use on
    this machine) that pin the same artifact (see ``registry.imported``). Nothing is
    published unless everything passes (``VerificationError``). An artifact already stored
    intact is kept and counted as skipped (and checked all the same). The bundle's entries
    are saved in ``<store>/registries/`` where the registry resolution finds them; an entry
    an earlier import defines differently is refused (``InputDataError``).
    """
    bundle = Path(bundle)
    with _open_tar(bundle) as tar:
        contents = _read_contents(bundle, tar, max_bytes)
        registry_text, refs, bundle_spec = _imported_registry(bundle, contents, store)
        registry_path = imported.registry_path_for(store, bundle, _stem(bundle), _by_name(bundle_spec),
                                                   lambda e: _entry_data(e, str(e.source)))
        with _tidy_on_failure(store), _locked(store, sorted(contents.artifacts), lock_timeout):
            todo, skipped = _plan(store, contents)
            _check_free_space(store, sum(contents.artifacts[a].manifest.total_size for a in todo), bundle)
            written = _stage_all(store, bundle, tar, [contents.artifacts[a] for a in todo])
            try:
                folders = {a: store.staging_dir(a) if a in todo else store.object_dir(a) for a in contents.artifacts}
                imported.check_artifacts(store, bundle, checks, bundle_spec, {r.entry: r.artifact_id for r in refs},
                                         folders, registry)
            except BaseException:
                for artifact_id in todo:
                    store.discard_staging(artifact_id)
                raise
            for artifact_id in todo:
                _publish(store, contents.artifacts[artifact_id])
            # Refs are set while the locks are held: gc never sees a fresh object unreferenced.
            for ref in refs:
                store.set_ref(attrs.evolve(ref, registry=None))  # flat: of no known registry here
        write_atomic(registry_path, registry_text)
    return ImportSummary(bundle=bundle, artifacts=tuple(todo), skipped=tuple(skipped),
                         refs=tuple(r.entry for r in refs), bytes=written, registry_path=registry_path)


def _by_name(spec: RegistrySpec) -> dict[str, Entry]:
    return {entry.name: entry for entry in spec.entries()}


def _stem(bundle: Path) -> str:
    name = bundle.name
    for suffix in (".tar.gz", ".tgz", ".tar", ".gz"):
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def _reject(bundle: Path, member: str | None, why: str, hint: str | None = None) -> InputDataError:
    where = f"member '{member}' " if member else ""
    return InputDataError(f"bundle {bundle}: {where}{why}; nothing was imported", path=str(bundle),
                          field=member, hint=hint or _REEXPORT_HINT)


@contextlib.contextmanager
def _open_tar(bundle: Path) -> Iterator[tarfile.TarFile]:
    if not bundle.is_file():
        raise InputDataError(f"bundle {bundle} does not exist or is not a file", path=str(bundle),
                             hint="check the path given to `kronos-registry import`")
    hint = "pass a file written by `kronos-registry export`; " + _REEXPORT_HINT
    if bundle.stat().st_size == 0:
        raise _reject(bundle, None, "is empty, not a readable tar file", hint=hint)
    try:
        tar = tarfile.open(bundle, mode="r:*")
    except tarfile.ReadError:  # its message lists every decompressor tried: noise to a user
        raise _reject(bundle, None, "is not a readable tar file (plain, .gz, .bz2 or .xz)", hint=hint) from None
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise _reject(bundle, None, f"is not a readable tar file ({exc})", hint=hint) from None
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
                raise _reject(bundle, member.name, f"is beyond the limit of {MAX_MEMBERS} members")
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise _reject(bundle, members[-1].name if members else None,
                      f"cannot be read: the tar is truncated or corrupt ({exc})") from None
    if not members:
        raise _reject(bundle, None, "is an empty tar file")
    return members


def _split_name(bundle: Path, member: tarfile.TarInfo) -> tuple[str, ...]:
    """The member's path components; rejects every name that could land outside its folder."""
    name = member.name
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise _reject(bundle, name, "has an absolute path")
    if "\\" in name or "\0" in name:
        raise _reject(bundle, name, "has a backslash or NUL in its name")
    parts = tuple(name.split("/"))
    if ".." in parts:
        raise _reject(bundle, name, "climbs out of the bundle with '..'")
    if any(part in ("", ".") for part in parts):
        raise _reject(bundle, name, "is not a normalised path (empty or '.' components)")
    return parts


def _check_type(bundle: Path, member: tarfile.TarInfo) -> None:
    if member.issym() or member.islnk():
        kind = "a symbolic link" if member.issym() else "a hard link"
        raise _reject(bundle, member.name, f"is {kind} (to '{member.linkname}'); bundles hold plain files only")
    if member.isdev():
        raise _reject(bundle, member.name, "is a device or FIFO; bundles hold plain files only")
    if not (member.isreg() or member.isdir()) or member.issparse():
        raise _reject(bundle, member.name, "is not a plain file or folder")


def _classify(bundle: Path, member: tarfile.TarInfo) -> tuple[str, str] | None:
    """(artifact id, file name) for an object file, None for metadata or a folder entry."""
    _check_type(bundle, member)
    parts = _split_name(bundle, member)
    if parts in ((BUNDLE_JSON,), (REGISTRY_YAML,)) and member.isreg():
        return None
    if parts[0] != OBJECTS or (len(parts) == 1 and not member.isdir()):
        raise _reject(bundle, member.name, f"is not part of a bundle (only {BUNDLE_JSON}, {REGISTRY_YAML} "
                      f"and {OBJECTS}/<artifact-id>/<file> belong in one)")
    if len(parts) >= 2:
        try:
            validate_id(parts[1])
        except InputDataError:
            raise _reject(bundle, member.name, f"names '{parts[1]}', which is not a valid artifact id") from None
    if member.isdir():
        return None
    if len(parts) < 3:
        raise _reject(bundle, member.name, "is a file directly under objects/, outside any artifact")
    return parts[1], "/".join(parts[2:])


def _read_small(bundle: Path, tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    if member.size > MAX_METADATA_BYTES:
        raise _reject(bundle, member.name, f"is {member.size} bytes, too large for metadata")
    try:
        handle = tar.extractfile(member)
        data = handle.read() if handle else b""
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise _reject(bundle, member.name, f"cannot be read: the tar is truncated or corrupt ({exc})") from None
    if len(data) != member.size:
        raise _reject(bundle, member.name, "is cut short: the tar is truncated")
    return data


def _read_contents(bundle: Path, tar: tarfile.TarFile, max_bytes: int) -> _Contents:
    seen: set[str] = set()
    metadata: dict[str, tarfile.TarInfo] = {}
    files: dict[str, dict[str, tarfile.TarInfo]] = {}
    total = 0
    for member in _members(bundle, tar):
        if member.name in seen:
            raise _reject(bundle, member.name, "appears twice in the tar")
        seen.add(member.name)
        place = _classify(bundle, member)
        if place is None:
            if member.isreg():
                metadata[member.name] = member
            continue
        files.setdefault(place[0], {})[place[1]] = member
        total += member.size
        if total > max_bytes:
            raise _reject(bundle, member.name, f"takes the bundle past {max_bytes} bytes, the limit")
    for required in (BUNDLE_JSON, REGISTRY_YAML):
        if required not in metadata:
            raise _reject(bundle, required, "is missing")
    index = _parse_index(bundle, _read_small(bundle, tar, metadata[BUNDLE_JSON]))
    artifacts = {a: _artifact(bundle, tar, a, members) for a, members in sorted(files.items())}
    _match_index(bundle, index, artifacts)
    registry_text = _decode(bundle, REGISTRY_YAML, _read_small(bundle, tar, metadata[REGISTRY_YAML]))
    refs = tuple(_parse_ref(bundle, item, artifacts) for item in index["refs"])
    return _Contents(artifacts=artifacts, refs=refs, registry_text=registry_text)


def _decode(bundle: Path, name: str, data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise _reject(bundle, name, "is not UTF-8 text") from None


def _parse_index(bundle: Path, data: bytes) -> dict:
    try:
        index = json.loads(_decode(bundle, BUNDLE_JSON, data))
    except json.JSONDecodeError as exc:
        raise _reject(bundle, BUNDLE_JSON, f"is not valid JSON ({exc})") from None
    if not isinstance(index, dict) or index.get("format") != BUNDLE_FORMAT:
        raise _reject(bundle, BUNDLE_JSON, f"does not describe a {BUNDLE_FORMAT}")
    version = index.get("format_version")
    if version != BUNDLE_VERSION:
        raise _reject(bundle, BUNDLE_JSON, f"has format version {version!r}; this tool reads {BUNDLE_VERSION}",
                      hint="use the same kronos-registry version on both machines (or upgrade this one)")
    if not isinstance(index.get("artifacts"), list) or not isinstance(index.get("refs"), list):
        raise _reject(bundle, BUNDLE_JSON, "lacks its `artifacts` or `refs` list")
    return index


def _artifact(bundle: Path, tar: tarfile.TarFile, artifact_id: str,
              members: dict[str, tarfile.TarInfo]) -> _Artifact:
    manifest_name = f"{OBJECTS}/{artifact_id}/{MANIFEST_NAME}"
    if MANIFEST_NAME not in members:
        raise _reject(bundle, manifest_name, f"is missing, so the files of {artifact_id} cannot be verified")
    text = _decode(bundle, manifest_name, _read_small(bundle, tar, members[MANIFEST_NAME]))
    try:
        manifest = Manifest.from_json(text)
    except ValueError as exc:
        raise _reject(bundle, manifest_name, str(exc)) from None
    if manifest.artifact_id != artifact_id:
        raise _reject(bundle, manifest_name, f"describes {manifest.artifact_id}, not {artifact_id}")
    listed = [record.name for record in manifest.files]
    bad = [n for i, n in enumerate(listed) if n in listed[:i] or n == MANIFEST_NAME or _unsafe_relative(n)]
    if bad:
        raise _reject(bundle, manifest_name, f"lists the file name '{bad[0]}', which is unsafe or repeated")
    data_members = {n: m for n, m in members.items() if n != MANIFEST_NAME}
    extra = sorted(set(data_members) - set(listed))
    if extra:
        raise _reject(bundle, f"{OBJECTS}/{artifact_id}/{extra[0]}", f"is not listed in {manifest_name}")
    missing = sorted(set(listed) - set(data_members))
    if missing:
        raise _reject(bundle, f"{OBJECTS}/{artifact_id}/{missing[0]}", f"is listed in {manifest_name} but missing")
    for record in manifest.files:  # before a byte is copied: a size the tar contradicts is a lie
        if data_members[record.name].size != record.size:
            raise _lied(bundle, artifact_id, data_members[record.name], record, data_members[record.name].size)
    return _Artifact(artifact_id, manifest, data_members)


def _lied(bundle: Path, artifact_id: str, member: tarfile.TarInfo, record: FileRecord, actual: int,
          *, at_least: bool = False) -> VerificationError:
    size = f"more than {record.size}" if at_least else str(actual)
    problem = Problem(f"bundle {bundle} lied: member '{member.name}' is {size} bytes, but its manifest "
                      f"declares {record.size}", file=record.name, field="size",
                      hint="the bundle is corrupt or was altered after export")
    return VerificationError(artifact_id, [problem], hint=f"nothing was imported; {_REEXPORT_HINT}")


def _unsafe_relative(name: str) -> bool:
    parts = name.split("/")
    return name.startswith("/") or "\\" in name or any(p in ("", ".", "..") for p in parts)


def _match_index(bundle: Path, index: dict, artifacts: Mapping[str, _Artifact]) -> None:
    listed = set()
    for item in index["artifacts"]:
        if not isinstance(item, dict) or not isinstance(item.get("artifact_id"), str):
            raise _reject(bundle, BUNDLE_JSON, f"has a malformed artifact record: {item!r}")
        listed.add(item["artifact_id"])
    for artifact_id in sorted(listed ^ set(artifacts)):
        where = "listed in bundle.json but has no files" if artifact_id in listed else "not listed in bundle.json"
        raise _reject(bundle, f"{OBJECTS}/{artifact_id}", f"is {where}")


def _parse_ref(bundle: Path, item: object, artifacts: Mapping[str, _Artifact]) -> Ref:
    try:
        ref = Ref(entry=str(item["entry"]), artifact_id=str(item["artifact_id"]), source=str(item["source"]),
                  resolved_revision=item.get("resolved_revision"))
    except (KeyError, TypeError, AttributeError):
        raise _reject(bundle, BUNDLE_JSON, f"has a malformed ref: {item!r}") from None
    if not ENTRY_NAME_RE.match(ref.entry):
        raise _reject(bundle, BUNDLE_JSON, f"has a ref for '{ref.entry}', which is not a valid entry name")
    if ref.artifact_id not in artifacts:
        raise _reject(bundle, BUNDLE_JSON, f"points '{ref.entry}' at {ref.artifact_id}, which the bundle lacks")
    return ref


# --- the bundle's registry file ----------------------------------------------------------------

def _imported_registry(bundle: Path, contents: _Contents, store: Store) -> tuple[str, list[Ref], RegistrySpec]:
    """The registry text to save in the store, the refs to set and the entries as saved
    (local sources rewritten to the store's copies).

    The bundle's file is parsed with the project's own strict parser from a scratch folder
    laid out like the store (``registries/`` beside ``objects/``), so ``../objects/<id>``
    resolves to a recognisable place; it is then written out afresh from the parsed entries.
    """
    with tempfile.TemporaryDirectory(prefix="bundle-registry-") as scratch:
        path = Path(scratch) / REGISTRIES_DIR / REGISTRY_YAML
        path.parent.mkdir()
        path.write_text(contents.registry_text, encoding="utf-8")
        try:
            spec = parse_registry(path, check_references=True)
        except RegistryFileError as exc:
            detail = "\n".join(f"  - {p}" for p in exc.problems).replace(str(path), REGISTRY_YAML)
            raise _reject(bundle, REGISTRY_YAML, f"is not a valid registry file:\n{detail}") from None
        scratch_objects = Path(os.path.normpath(Path(scratch) / OBJECTS))
        sources = {e.name: _target_source(bundle, e, scratch_objects, contents, store) for e in spec.entries()}
    header = (f"{imported.BUNDLE_LINE}{_one_line(bundle.name)}\n"
              f"# Imported from {_one_line(bundle.name)} on {utc_now()} by {tool_version()}.\n"
              "# Local entries point at their verified copy in this store (do not edit it there).\n")
    text = _render_registry([(e, str(sources[e.name])) for e in spec.entries()], header)
    refs = []
    for ref in contents.refs:
        if ref.entry not in sources:
            raise _reject(bundle, BUNDLE_JSON, f"has a ref for '{ref.entry}', which {REGISTRY_YAML} lacks")
        if isinstance(sources[ref.entry], LocalSource):
            ref = attrs.evolve(ref, source=str(sources[ref.entry]))  # what the loader compares it with
        refs.append(ref)
    saved = attrs.evolve(
        spec, paths=(f"{bundle}:{REGISTRY_YAML}",),
        tokenizers={n: attrs.evolve(e, source=sources[n]) for n, e in spec.tokenizers.items()},
        models={n: attrs.evolve(e, source=sources[n]) for n, e in spec.models.items()})
    return text, refs, saved


def _one_line(text: str) -> str:
    return "".join(c if c.isprintable() else "?" for c in text)


def _target_source(bundle: Path, entry: Entry, scratch_objects: Path, contents: _Contents,
                   store: Store) -> HfSource | LocalSource:
    if not isinstance(entry.source, LocalSource):
        return entry.source
    relative = PurePosixPath(os.path.relpath(entry.source.path, scratch_objects))
    if len(relative.parts) != 1 or relative.parts[0] not in contents.artifacts:
        raise _reject(bundle, REGISTRY_YAML, f"gives '{entry.name}' the local source {entry.source.path}, "
                      f"which is not one of the bundle's artifacts (expected ../{OBJECTS}/<artifact-id>)")
    return LocalSource(Path(os.path.normpath(store.objects_dir / relative.parts[0])))


# --- writing into the store -------------------------------------------------------------------

def _check_free_space(store: Store, needed: int, bundle: Path) -> None:
    probe = store.root
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if needed > free:
        raise InputDataError(f"bundle {bundle} needs {needed} bytes, but {probe} has only {free} free; "
                             "nothing was imported", path=str(bundle),
                             hint="free some space (`kronos-registry gc`) or import into another --store")


@contextlib.contextmanager
def _tidy_on_failure(store: Store) -> Iterator[None]:
    """On failure, remove the store folders this import created and left empty.

    A rejected bundle must leave the store as it found it, not with fresh empty folders.
    """
    folders = [store.staging_root, store.locks_dir, store.objects_dir, store.refs_dir, store.root]
    existed = {folder: folder.exists() for folder in folders}
    try:
        yield
    except BaseException:
        for folder in folders:
            if not existed[folder]:
                with contextlib.suppress(OSError):
                    folder.rmdir()  # only succeeds when empty
        raise


@contextlib.contextmanager
def _locked(store: Store, artifact_ids: Sequence[str], timeout: float | None) -> Iterator[None]:
    # Sorted order: two imports of overlapping bundles never hold each other's next lock.
    with contextlib.ExitStack() as stack:
        for artifact_id in artifact_ids:
            stack.enter_context(store.lock(artifact_id, timeout))
        yield


def _plan(store: Store, contents: _Contents) -> tuple[list[str], list[str]]:
    """Which artifacts to publish; one stored intact is kept (the published copy wins)."""
    todo, skipped = [], []
    for artifact_id in sorted(contents.artifacts):
        intact = store.has(artifact_id) and not store.check(artifact_id)
        (skipped if intact else todo).append(artifact_id)
    return todo, skipped


def _stage_all(store: Store, bundle: Path, tar: tarfile.TarFile, artifacts: Sequence[_Artifact]) -> int:
    """Stream every artifact's files into its staging folder, hashing as they go; bytes written.

    Nothing is published unless every file of every artifact matches its manifest; on any
    failure the staging folders of this import are discarded (their locks are ours).
    """
    staged: list[str] = []
    try:
        problems: dict[str, list[Problem]] = {}
        for artifact in artifacts:
            store.discard_staging(artifact.artifact_id)  # leftovers of an interrupted attempt
            staged.append(artifact.artifact_id)
            staging = store.staging(artifact.artifact_id)
            for record in artifact.manifest.files:
                problem = _stage_file(bundle, tar, artifact.members[record.name], staging, record,
                                      artifact.artifact_id)
                if problem is not None:
                    problems.setdefault(artifact.artifact_id, []).append(problem)
        if problems:
            first, found = next(iter(problems.items()))
            others = [p for a, ps in problems.items() if a != first for p in ps]
            raise VerificationError(first, [*found, *others], hint=f"nothing was imported; {_REEXPORT_HINT}")
    except BaseException:
        for artifact_id in staged:
            store.discard_staging(artifact_id)
        raise
    return sum(artifact.manifest.total_size for artifact in artifacts)


def _stage_file(bundle: Path, tar: tarfile.TarFile, member: tarfile.TarInfo, staging: Path,
                record: FileRecord, artifact_id: str) -> Problem | None:
    """Copy one member into staging; a Problem when its size or sha256 is not the manifest's.

    Copying stops the moment the member runs past the size its manifest declares (the bundle
    lied: ``VerificationError``), so a small bundle cannot fill the disk.
    """
    target = staging / record.name
    make_dirs(target.parent)
    digest = hashlib.sha256()
    size = 0
    source = _open_member(bundle, tar, member)
    with open(target, "wb") as out:
        while chunk := _read_chunk(bundle, source, member, record.size + 1 - size):
            if size + len(chunk) > record.size:
                raise _lied(bundle, artifact_id, member, record, size + len(chunk), at_least=True)
            digest.update(chunk)
            out.write(chunk)
            size += len(chunk)
    hint = "the bundle is corrupt or was altered after export"
    if size != record.size:
        return Problem(f"{record.name} is {size} bytes in bundle {bundle} (member '{member.name}'), "
                       f"the manifest says {record.size}", file=record.name, field="size", hint=hint)
    if digest.hexdigest() != record.sha256:
        return Problem(f"{record.name} has sha256 {digest.hexdigest()} in bundle {bundle} (member "
                       f"'{member.name}'), the manifest says {record.sha256}", file=record.name,
                       field="sha256", hint=hint)
    return None


def _open_member(bundle: Path, tar: tarfile.TarFile, member: tarfile.TarInfo) -> IO[bytes]:
    try:
        handle = tar.extractfile(member)
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise _reject(bundle, member.name, f"cannot be read: the tar is truncated or corrupt ({exc})") from None
    if handle is None:
        raise _reject(bundle, member.name, "is not a plain file")
    return handle


def _read_chunk(bundle: Path, source: IO[bytes], member: tarfile.TarInfo, limit: int) -> bytes:
    try:
        return source.read(max(1, min(_CHUNK, limit)))
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise _reject(bundle, member.name, f"cannot be read: the tar is truncated or corrupt ({exc})") from None


def _publish(store: Store, artifact: _Artifact) -> None:
    """Publish a staged artifact; a damaged stored copy of it is replaced by the bundle's."""
    if store.has(artifact.artifact_id):  # _plan found it damaged, and we hold its lock
        store.remove(artifact.artifact_id)
    store.publish(artifact.artifact_id, store.staging_dir(artifact.artifact_id), artifact.manifest)
