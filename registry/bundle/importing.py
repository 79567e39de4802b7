"""Import: a bundle's artifacts verified and published into the store, its entries saved by name.

Every file is hashed while it is staged, the family's checks run on each artifact as a sync
runs them (``registry.bundle.imported``), and nothing is published unless everything passes;
then each artifact goes through the store's normal path (artifact lock, staging folder, one
atomic rename), the refs are set, and the bundle's entries are saved in ``<store>/registries/``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tarfile
import tempfile
import zlib
from pathlib import Path, PurePosixPath
from typing import IO, Collection, Iterator, Sequence

import attrs

from .. import provenance
from ..checks import CheckProvider, generic_checks
from ..errors import InputDataError, Problem, RegistryFileError, ShadowingError, VerificationError
from ..fs import make_dirs, write_atomic
from ..hashing import sha256_file
from ..spec import Entry, HfSource, LocalSource, RegistrySpec, parse_registry
from ..store import FileRecord, Ref, Store, local_artifact_id, tool_version, utc_now
from . import imported
from .imported import REGISTRIES_DIR
from .layout import (
    BUNDLE_JSON,
    DEFAULT_MAX_BYTES,
    OBJECTS,
    REEXPORT_HINT,
    REGISTRY_YAML,
    entry_data,
    render_registry,
)
from .reading import Artifact, Contents, lied, open_tar, read_contents, reject

_CHUNK = 1 << 20


@attrs.frozen
class ImportSummary:
    """What ``import_bundle`` did: ``artifacts`` were published, ``skipped`` were already stored."""

    bundle: Path
    artifacts: tuple[str, ...]
    skipped: tuple[str, ...]
    refs: tuple[str, ...]
    bytes: int  # bytes written into the store's objects
    registry_path: Path


def import_bundle(store: Store, bundle: str | os.PathLike, *, checks: CheckProvider = generic_checks,
                  registry: RegistrySpec | None = None, lock_timeout: float | None = 600.0,
                  max_bytes: int = DEFAULT_MAX_BYTES, replace: Collection[str] = (),
                  strict: bool = False) -> ImportSummary:
    """Verify ``bundle`` and publish its artifacts and refs into ``store``.

    Every member name, the metadata and every manifest are checked before the store is
    touched (``InputDataError`` naming the bundle and the member); every file is hashed while
    it is staged (a member larger than its manifest says is refused before a byte is copied),
    then the family's ``checks`` run on each artifact, as a sync runs them, against every
    entry that will use it: the bundle's, and those of ``registry`` (the registry in use on
    this machine) that pin the same artifact (see ``registry.bundle.imported``). Nothing is
    published unless everything passes (``VerificationError``). An artifact already stored
    intact is kept and counted as skipped (and checked all the same). The bundle's entries
    are saved in ``<store>/registries/`` where the registry resolution finds them; an entry
    an earlier import defines differently is refused (``InputDataError``), and so is one that
    would give a name of ``registry`` another meaning unless ``replace`` names it
    (``ShadowingError``): a bundle never takes over a name unasked.

    Each file's record says what its content was checked against (``registry.provenance``):
    a pin of ``registry`` it matches, else the bundle's own record, and a file its exporter
    checked against nothing stays unverified. ``strict`` refuses all but pinned files.
    """
    bundle = Path(bundle)
    with open_tar(bundle) as tar:
        contents = read_contents(bundle, tar, max_bytes)
        refs, bundle_spec = _imported_registry(bundle, contents, store)
        contents = _with_provenance(bundle, contents, refs, registry, strict)
        replaced = _replaced(bundle, bundle_spec, {r.entry: r.artifact_id for r in refs}, registry, replace)
        registry_text = _registry_text(bundle, bundle_spec, replaced)
        registry_path = imported.registry_path_for(store, bundle, _stem(bundle), _by_name(bundle_spec),
                                                   lambda e: entry_data(e, str(e.source)))
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


def _replaced(bundle: Path, bundle_spec: RegistrySpec, bundle_refs: dict[str, str],
              registry: RegistrySpec | None, replace: Collection[str]) -> list[str]:
    """The bundle's entries that replace a different entry of the registry in use (packaged
    or the user's file); ``ShadowingError`` for those ``replace`` does not name.

    Entries of earlier imports are left to ``imported.registry_path_for``, which refuses any
    clash with them outright (two imports must never lose each other's entries).
    """
    if registry is None:
        return []
    current = _by_name(registry)
    shadowed = {}
    for entry in bundle_spec.entries():
        old = current.get(entry.name)
        if old is None or imported.bundle_name(old.origin.path) is not None:
            continue
        if not _same(entry, bundle_refs.get(entry.name), old):
            shadowed[entry.name] = old.origin.path
    unasked = {name: path for name, path in shadowed.items() if name not in replace}
    if unasked:
        raise ShadowingError(str(bundle), unasked)
    return sorted(shadowed)


def _same(entry: Entry, artifact_id: str | None, old: Entry) -> bool:
    """Whether the bundle's ``entry`` (stored as ``artifact_id``) means what ``old`` means:
    the same keys, and the same source or, for local folders (whose path differs on every
    machine), the same files (the artifact id a sync of ``old`` would give)."""
    if imported.meaning(entry_data(entry, "")) != imported.meaning(entry_data(old, "")):
        return False
    if str(entry.source) == str(old.source):
        return True
    if not (isinstance(entry.source, LocalSource) and isinstance(old.source, LocalSource)):
        return False
    folder = Path(old.source.path)
    names = [n for n in dict.fromkeys([*old.files, *old.sha256]) if (folder / n).is_file()]
    return artifact_id == local_artifact_id(old.name, {n: sha256_file(folder / n) for n in names})


def _with_provenance(bundle: Path, contents: Contents, refs: Sequence[Ref], registry: RegistrySpec | None,
                     strict: bool) -> Contents:
    """``contents`` with each file's ``checked_against`` as this store can vouch for it.

    The bundle's manifests are the exporter's word: a file matching a sha256 pin of the
    registry in use is ``pin``; one the exporter checked against nothing stays ``none``;
    every other is ``bundle``. Under ``strict`` anything but ``pin`` is refused, before a
    byte is written.
    """
    pins: dict[str, dict[str, str]] = {}
    current = _by_name(registry) if registry is not None else {}
    for ref in refs:
        entry = current.get(ref.entry)
        if entry is not None:
            pins.setdefault(ref.artifact_id, {}).update(entry.sha256)
    artifacts = {}
    for artifact_id, artifact in contents.artifacts.items():
        pinned = pins.get(artifact_id, {})
        records = tuple(attrs.evolve(r, checked_against=_imported_record(r, pinned)) for r in artifact.manifest.files)
        refused = provenance.trust_problems(records, _entry_of(artifact_id, refs), strict=True) if strict else []
        if refused:
            raise VerificationError(artifact_id, refused, hint="nothing was imported")
        artifacts[artifact_id] = attrs.evolve(artifact, manifest=attrs.evolve(artifact.manifest, files=records))
    return attrs.evolve(contents, artifacts=artifacts)


def _entry_of(artifact_id: str, refs: Sequence[Ref]) -> str:
    """The entry name a bundle's ref gives ``artifact_id`` (the id itself if none does)."""
    return next((r.entry for r in refs if r.artifact_id == artifact_id), artifact_id)


def _imported_record(record: FileRecord, pinned: dict[str, str]) -> str:
    if pinned.get(record.name, "").lower() == record.sha256:
        return provenance.PIN
    return provenance.NONE if record.checked_against == provenance.NONE else provenance.BUNDLE


def _by_name(spec: RegistrySpec) -> dict[str, Entry]:
    return {entry.name: entry for entry in spec.entries()}


def _stem(bundle: Path) -> str:
    name = bundle.name
    for suffix in (".tar.gz", ".tgz", ".tar", ".gz"):
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


# --- the bundle's registry file ----------------------------------------------------------------

def _imported_registry(bundle: Path, contents: Contents, store: Store) -> tuple[list[Ref], RegistrySpec]:
    """The refs to set and the entries as they will be saved (local sources rewritten to the
    store's copies).

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
            raise reject(bundle, REGISTRY_YAML, f"is not a valid registry file:\n{detail}") from None
        scratch_objects = Path(os.path.normpath(Path(scratch) / OBJECTS))
        sources = {e.name: _target_source(bundle, e, scratch_objects, contents, store) for e in spec.entries()}
    refs = []
    for ref in contents.refs:
        if ref.entry not in sources:
            raise reject(bundle, BUNDLE_JSON, f"has a ref for '{ref.entry}', which {REGISTRY_YAML} lacks")
        if isinstance(sources[ref.entry], LocalSource):
            ref = attrs.evolve(ref, source=str(sources[ref.entry]))  # what the loader compares it with
        refs.append(ref)
    saved = attrs.evolve(
        spec, paths=(f"{bundle}:{REGISTRY_YAML}",),
        tokenizers={n: attrs.evolve(e, source=sources[n]) for n, e in spec.tokenizers.items()},
        models={n: attrs.evolve(e, source=sources[n]) for n, e in spec.models.items()})
    return refs, saved


def _registry_text(bundle: Path, saved: RegistrySpec, replaced: Sequence[str]) -> str:
    """The registry file to save in the store; its header names the bundle and the names it
    took over (``imported.replaced_names`` reads them back for every face)."""
    header = f"{imported.BUNDLE_LINE}{_one_line(bundle.name)}\n"
    if replaced:
        header += f"{imported.REPLACES_LINE}{', '.join(replaced)}\n"
    header += (f"# Imported from {_one_line(bundle.name)} on {utc_now()} by {tool_version()}.\n"
               "# Local entries point at their verified copy in this store (do not edit it there).\n")
    return render_registry([(e, str(e.source)) for e in saved.entries()], header)


def _one_line(text: str) -> str:
    return "".join(c if c.isprintable() else "?" for c in text)


def _target_source(bundle: Path, entry: Entry, scratch_objects: Path, contents: Contents,
                   store: Store) -> HfSource | LocalSource:
    if not isinstance(entry.source, LocalSource):
        return entry.source
    relative = PurePosixPath(os.path.relpath(entry.source.path, scratch_objects))
    if len(relative.parts) != 1 or relative.parts[0] not in contents.artifacts:
        raise reject(bundle, REGISTRY_YAML, f"gives '{entry.name}' the local source {entry.source.path}, "
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


def _plan(store: Store, contents: Contents) -> tuple[list[str], list[str]]:
    """Which artifacts to publish; one stored intact is kept (the published copy wins)."""
    todo, skipped = [], []
    for artifact_id in sorted(contents.artifacts):
        intact = store.has(artifact_id) and not store.check(artifact_id)
        (skipped if intact else todo).append(artifact_id)
    return todo, skipped


def _stage_all(store: Store, bundle: Path, tar: tarfile.TarFile, artifacts: Sequence[Artifact]) -> int:
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
            raise VerificationError(first, [*found, *others], hint=f"nothing was imported; {REEXPORT_HINT}")
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
                raise lied(bundle, artifact_id, member, record, size + len(chunk), at_least=True)
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
        raise reject(bundle, member.name, f"cannot be read: the tar is truncated or corrupt ({exc})") from None
    if handle is None:
        raise reject(bundle, member.name, "is not a plain file")
    return handle


def _read_chunk(bundle: Path, source: IO[bytes], member: tarfile.TarInfo, limit: int) -> bytes:
    try:
        return source.read(max(1, min(_CHUNK, limit)))
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise reject(bundle, member.name, f"cannot be read: the tar is truncated or corrupt ({exc})") from None


def _publish(store: Store, artifact: Artifact) -> None:
    """Publish a staged artifact; a damaged stored copy of it is replaced by the bundle's."""
    if store.has(artifact.artifact_id):  # _plan found it damaged, and we hold its lock
        store.remove(artifact.artifact_id)
    store.publish(artifact.artifact_id, store.staging_dir(artifact.artifact_id), artifact.manifest)
