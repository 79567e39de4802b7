"""Export: the stored artifacts of some entries, verified, written to one tar file.

Each entry's artifact is what the store already holds for it (``registry.lookup``); every
file is hashed as it goes into the tar, so a damaged stored copy is never spread.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import time
from pathlib import Path
from typing import IO, Callable, Sequence

import attrs

from ..errors import InputDataError, NotSyncedError, Problem, VerificationError
from ..fs import atomic_file
from ..lookup import stored_artifact
from ..redact import redact_secrets
from ..spec import COMMIT_RE, Entry, HfSource, RegistrySpec
from ..store import MANIFEST_NAME, FileRecord, Manifest, Ref, Store, tool_version, utc_now
from .layout import BUNDLE_FORMAT, BUNDLE_JSON, BUNDLE_VERSION, OBJECTS, REGISTRY_YAML, render_registry


@attrs.frozen
class BundleSummary:
    """What ``export_bundle`` wrote."""

    path: Path
    artifacts: tuple[str, ...]
    entries: tuple[str, ...]
    bytes: int  # payload bytes of the artifacts' files (the tar adds headers)


@attrs.frozen
class _Exported:
    entry: Entry
    artifact_id: str
    manifest: Manifest
    ref: Ref


def export_bundle(store: Store, spec: RegistrySpec, names: Sequence[str], output: str | os.PathLike, *,
                  artifact_of: Callable[[Entry], str | None] | None = None) -> BundleSummary:
    """Write the stored artifacts of ``names`` (each model with its tokenizer) to ``output``.

    Each entry's artifact is what the store already holds for it: its ref for the same
    source, else its pinned commit (``registry.lookup``, the rule every command uses).
    ``artifact_of`` overrides that choice (return None for "not stored").
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
    registry_text = render_registry([(item.entry, _bundle_source(item)) for item in chosen],
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
