"""Entry -> verified object in the store: resolve, fetch, verify, publish; or find it there.

``sync`` brings an entry into the store (a model's tokenizer first), ``locate`` finds it with
a cheap check and no network (syncing only when it is missing and that is allowed),
``verify`` re-checks what is stored without changing anything, ``status`` says whether an
entry is synced. Model families plug their checks in through ``checks``. Which stored artifact
an entry uses is one rule, written once: ``registry.lookup``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Callable, Mapping, Sequence

import attrs

from . import provenance, sources
from .checks import CheckContext, CheckProvider, Report, generic_checks, run_checks
from .errors import NotSyncedError, Problem, RegistryError, SourceError, VerificationError
from .hashing import git_blob_sha1, sha256_file
from .lookup import CHANGED, GONE, TOUCHED, find_stored, local_fingerprint, source_state, stored_artifact
from .sources import Endpoints, ResolvedSource
from .spec import Entry, HfSource, LocalSource, RegistrySpec
from .store import FileRecord, LockWait, Manifest, Ref, Store, hf_artifact_id, local_artifact_id

HASH_CHECK = "size-and-sha256"
_log = logging.getLogger("registry")


def _log_note(text: str) -> None:
    _log.warning(text)


@attrs.frozen
class SyncResult:
    """An entry's verified folder in the store; ``fetched`` is True when this call published it."""

    entry: Entry
    artifact_id: str
    path: Path
    fetched: bool
    manifest: Manifest
    report: Report | None = None
    tokenizer: "SyncResult | None" = None


class Loader:
    """Materialises registry entries into a store, verified, and finds them there."""

    def __init__(self, spec: RegistrySpec, store: Store, *, checks: CheckProvider = generic_checks,
                 offline: bool | None = None, endpoints: Endpoints | None = None,
                 lock_timeout: float | None = 600.0, progress: bool = False,
                 on_wait: Callable[[LockWait], None] | None = None,
                 on_note: Callable[[str], None] | None = None, env: Mapping[str, str] = os.environ,
                 strict: bool | None = None):
        self.spec = spec
        self.store = store
        self.checks = checks
        self.env = env
        self.offline = sources.is_offline(offline, env)
        self._endpoints = endpoints
        self.lock_timeout = lock_timeout
        self.progress = progress
        self.on_wait = on_wait
        self.on_note = on_note or _log_note
        # Strict: serve, publish and import only files checked against a first-hand record
        # (see registry.provenance); None lets KRONOS_REGISTRY_STRICT decide.
        self.strict = provenance.is_strict(env) if strict is None else strict

    @property
    def endpoints(self) -> Endpoints:
        # Built on first use: local-only work never needs (or validates) hub settings.
        if self._endpoints is None:
            self._endpoints = Endpoints.from_settings(self.spec.endpoint, self.spec.mirrors, env=self.env)
        return self._endpoints

    # public API ---------------------------------------------------------------------------

    def sync(self, name: str, *, force: bool = False) -> SyncResult:
        """Fetch, verify and publish ``name`` (its tokenizer first) unless already stored.

        ``force`` fetches and verifies the entry again even when a good copy is stored.
        """
        entry = self.spec.get_available(name)
        try:
            tokenizer = self._sync_tokenizer(entry)
        except NotSyncedError as error:
            raise self._needs_tokenizer(entry, error) from None
        return self._sync_entry(entry, force=force, tokenizer=tokenizer)

    def locate(self, name: str, *, sync_missing: bool = True) -> SyncResult:
        """The stored copy of ``name`` (and its tokenizer) after a cheap check: manifest + sizes.

        Finding an intact copy needs no network and writes nothing (a read-only store serves
        it). A local entry's stored copy is served when its folder changed only in timestamps,
        moved or vanished (``on_note`` says so). When it is missing, damaged or its folder's
        content changed: sync it if ``sync_missing`` (offline, that can only use local folders
        and the Hugging Face cache, and raises ``NotSyncedError`` when neither holds it), else
        raise ``NotSyncedError`` (missing) or ``VerificationError`` (damaged).
        """
        entry = self.spec.get_available(name)
        try:
            tokenizer = self._locate_tokenizer(entry, sync_missing)
        except NotSyncedError as error:
            raise self._needs_tokenizer(entry, error) from None
        artifact_id, note = self._find_stored(entry)
        problems = self.store.check(artifact_id) if artifact_id else []
        if problems and not self.store.has(artifact_id):
            artifact_id, problems = None, []  # removed by another process while we looked
        if artifact_id and not problems:
            try:
                result = self._stored_result(entry, artifact_id, tokenizer)
            except VerificationError:
                if self.store.has(artifact_id):
                    raise
            else:
                if note:
                    self.on_note(note)
                return result
            artifact_id = None
        read_only = self.store.is_read_only()
        if sync_missing and not read_only:
            return self._sync_entry(entry, force=False, tokenizer=tokenizer)
        if problems:
            raise VerificationError(self._label(entry, artifact_id), problems,
                                    hint=f"run `kronos-registry sync {entry.name} --force` to repair it"
                                    + (" where the store is writable" if read_only else ""))
        raise NotSyncedError(entry.name, str(self.store.root),
                             reason="the store is read-only" if read_only else "offline" if self.offline else None)

    def verify(self, name: str, *, deep: bool = False) -> Report:
        """Re-check the stored copy: the store's integrity check and the family's checks.

        Nothing is modified. ``deep`` re-hashes every file and runs the expensive checks.
        """
        entry = self.spec.get_available(name)
        artifact_id = self._stored_id(entry, current=False)
        if artifact_id is None:
            raise NotSyncedError(entry.name, str(self.store.root))
        folder = self.store.object_dir(artifact_id)
        problems = list(self.store.check(artifact_id, deep=deep)) + self._provenance_problems(entry, artifact_id)
        state = source_state(self.store, entry)
        if state == CHANGED:
            problems.append(Problem(f"the source folder {entry.source} changed since it was synced",
                                    severity="warning",
                                    hint=f"run `kronos-registry sync {entry.name}` to store the new files"))
        elif state == GONE:
            problems.append(Problem(f"the source folder {entry.source} is gone (moved or deleted); "
                                    "the stored copy is what loads", severity="warning",
                                    hint="keep the stored copy, or point the entry's `source:` at the new place"))
        related, related_entries, missing = self._stored_related(entry)
        problems += missing
        ctx = CheckContext(entry=entry, folder=folder, spec=self.spec, deep=deep,
                           related=related, related_entries=related_entries)
        report = run_checks(self._label(entry, artifact_id), self.checks(entry), ctx)
        store_check = "store-deep-hash" if deep else "store-integrity"
        return Report(artifact=report.artifact, problems=tuple(problems) + report.problems,
                      checks_run=(store_check, *report.checks_run))

    def _provenance_problems(self, entry: Entry, artifact_id: str) -> list[Problem]:
        """Stored files checked against no trusted record: a warning, or under strict mode an
        error for every file not checked against a first-hand one."""
        try:
            manifest = self.store.read_manifest(artifact_id)
        except RegistryError:
            return []  # the store's own check reports an unreadable manifest
        return provenance.trust_problems(manifest.files, entry.name, strict=self.strict)

    def status(self, name: str) -> str | None:
        """The artifact id ``name`` is stored under when synced and intact, else None. No network."""
        entry = self.spec.get(name)
        if not entry.available or entry.source is None:
            return None
        artifact_id = self._stored_id(entry)
        return artifact_id if artifact_id and not self.store.check(artifact_id) else None

    def artifact_id(self, name: str) -> str:
        """The id ``name`` would be stored under now (hashes a local folder; may resolve a branch)."""
        entry = self.spec.get_available(name)
        source = self._source(entry)
        if isinstance(source, HfSource) and source.is_pinned:
            return hf_artifact_id(source.repo_id, source.revision, source.repo_type)
        resolved = self._resolve(entry)
        return self._content_id(entry, resolved, self._wanted(entry, resolved))

    # finding what is stored (no network) ---------------------------------------------------

    def stored_artifact(self, entry: Entry) -> str | None:
        """The artifact id the store holds for ``entry``, or None: the engine's one rule
        (``registry.lookup``), with no network, no hashing and no writes."""
        return stored_artifact(self.store, entry)

    def _stored_id(self, entry: Entry, *, current: bool = True) -> str | None:
        """The artifact id the entry is published under, if any.

        ``stored_artifact``'s rule (its ref for this same source, else its pinned commit); if
        ``current``, a local folder must also be unchanged since, or gone (then the stored
        copy is all there is), and one with no ref of its own is looked up by content.
        """
        return self._find_stored(entry, current=current)[0]

    def _find_stored(self, entry: Entry, *, current: bool = True) -> tuple[str | None, str | None]:
        """``_stored_id`` and, when a local entry's folder differs from what was synced, a note."""
        source = self._source(entry)
        artifact_id, ref = find_stored(self.store, entry)
        if artifact_id is None:
            return (self._stored_by_content(entry) if current else None), None
        if not current or ref is None:
            return artifact_id, None
        state = source_state(self.store, entry, ref)
        if state == CHANGED:
            return None, None
        if state == TOUCHED:
            return ref.artifact_id, (
                f"note: the files of '{entry.name}' in {source} have new timestamps but the same content; "
                f"serving its stored copy {ref.artifact_id} (`kronos-registry sync {entry.name}` records "
                "the new timestamps, so later loads need not hash the folder)")
        if state == GONE:
            return ref.artifact_id, (
                f"note: the source folder {source} of '{entry.name}' is gone (moved or deleted); "
                f"serving its stored, verified copy {ref.artifact_id}")
        return ref.artifact_id, None

    def _stored_by_content(self, entry: Entry) -> str | None:
        """A local folder with no ref of its own (another registry file synced or imported it)
        whose content is stored under its content-addressed id: found without writing a ref."""
        if not isinstance(entry.source, LocalSource) or not Path(entry.source.path).is_dir():
            return None
        try:
            resolved = self._resolve(entry)
            artifact_id = self._content_id(entry, resolved, self._wanted(entry, resolved))
        except (SourceError, NotSyncedError, OSError):
            return None
        return artifact_id if self.store.has(artifact_id) else None

    def _stored_result(self, entry: Entry, artifact_id: str, tokenizer: SyncResult | None) -> SyncResult:
        manifest = self._trusted_manifest(entry, artifact_id)
        return SyncResult(entry=entry, artifact_id=artifact_id, path=self.store.object_dir(artifact_id),
                          fetched=False, manifest=manifest, tokenizer=tokenizer)

    def _trusted_manifest(self, entry: Entry, artifact_id: str) -> Manifest:
        """The stored manifest; under strict mode ``VerificationError`` when any of its files
        was not checked against a first-hand record (nothing is served or reused then)."""
        manifest = self.store.read_manifest(artifact_id)
        refused = provenance.trust_problems(manifest.files, entry.name, strict=True) if self.strict else []
        if refused:
            raise VerificationError(self._label(entry, artifact_id), refused)
        return manifest

    def _locate_tokenizer(self, entry: Entry, sync_missing: bool) -> SyncResult | None:
        tokenizer = self._tokenizer_entry(entry)
        return self.locate(tokenizer.name, sync_missing=sync_missing) if tokenizer else None

    def _stored_related(self, entry: Entry) -> tuple[dict, dict, list[Problem]]:
        tokenizer = self._tokenizer_entry(entry)
        if tokenizer is None:
            return {}, {}, []
        artifact_id = self._stored_id(tokenizer, current=False)
        if artifact_id is None:
            return {}, {}, [Problem(f"its tokenizer '{tokenizer.name}' is not synced, so the pairing was not checked",
                                    severity="warning", hint=f"run `kronos-registry sync {tokenizer.name}`")]
        return {"tokenizer": self.store.object_dir(artifact_id)}, {"tokenizer": tokenizer}, []

    # syncing ---------------------------------------------------------------------------------

    def _tokenizer_entry(self, entry: Entry) -> Entry | None:
        if entry.kind != "model" or not entry.tokenizer:
            return None
        return self.spec.get_available(entry.tokenizer)

    def _sync_tokenizer(self, entry: Entry) -> SyncResult | None:
        tokenizer = self._tokenizer_entry(entry)
        return self._sync_entry(tokenizer, force=False, tokenizer=None) if tokenizer else None

    def _sync_entry(self, entry: Entry, *, force: bool, tokenizer: SyncResult | None) -> SyncResult:
        source = self._source(entry)
        if isinstance(source, HfSource) and source.is_pinned and not force:
            # A commit names its content: if it is stored and intact, no network is needed.
            artifact_id = hf_artifact_id(source.repo_id, source.revision, source.repo_type)
            if self._intact(artifact_id):
                return self._reuse(entry, artifact_id, tokenizer)
        resolved = self._resolve(entry)
        names = self._wanted(entry, resolved)
        artifact_id = self._content_id(entry, resolved, names)
        if not force and self._intact(artifact_id):
            return self._reuse(entry, artifact_id, tokenizer, resolved)
        with self.store.lock(artifact_id, self.lock_timeout, on_wait=self._on_wait(entry)):
            # Another process may have published it while we waited for the lock.
            if not force and self._intact(artifact_id):
                return self._reuse(entry, artifact_id, tokenizer, resolved)
            return self._fetch_and_publish(entry, resolved, names, artifact_id, tokenizer, force=force)

    def _intact(self, artifact_id: str) -> bool:
        return self.store.has(artifact_id) and not self.store.check(artifact_id)

    def _reuse(self, entry: Entry, artifact_id: str, tokenizer: SyncResult | None,
               resolved: ResolvedSource | None = None) -> SyncResult:
        manifest = self._trusted_manifest(entry, artifact_id)
        self.store.set_ref(self._ref(entry, artifact_id, manifest.resolved_revision, resolved))
        return SyncResult(entry=entry, artifact_id=artifact_id, path=self.store.object_dir(artifact_id),
                          fetched=False, manifest=manifest, tokenizer=tokenizer)

    def _fetch_and_publish(self, entry: Entry, resolved: ResolvedSource, names: tuple[str, ...],
                           artifact_id: str, tokenizer: SyncResult | None, *, force: bool = False) -> SyncResult:
        if force:  # a repair starts from nothing an earlier attempt left behind
            self.store.discard_staging(artifact_id)
        staging = self.store.staging(artifact_id)
        # Errors while fetching (network, cut transfers) keep staging, so the next try resumes;
        # a file-system error (a full disk) removes what this attempt wrote.
        try:
            sources.fetch(resolved, names, staging, self.endpoints, offline=self.offline, progress=self.progress)
        except sources.NotInCacheError as exc:
            raise self._not_synced(entry, exc) from None
        except OSError:
            self.store.discard_staging(artifact_id)
            raise
        try:
            return self._verify_and_publish(entry, resolved, names, artifact_id, staging, tokenizer)
        except OSError:
            self.store.discard_staging(artifact_id)
            raise

    def _verify_and_publish(self, entry: Entry, resolved: ResolvedSource, names: tuple[str, ...],
                            artifact_id: str, staging: Path, tokenizer: SyncResult | None) -> SyncResult:
        self.store.prune_staging(artifact_id, keep=names)
        report, records = self._verify_staging(entry, resolved, names, artifact_id, staging, tokenizer)
        if not report.ok:
            self.store.discard_staging(artifact_id)
            raise VerificationError(report.artifact, report.problems)
        if isinstance(entry.source, LocalSource):
            self._check_unchanged(entry, artifact_id, records)
        manifest = Manifest(
            artifact_id=artifact_id, kind=entry.kind, entry=entry.name, source=str(entry.source),
            resolved_revision=resolved.revision, files=records, checks=report.checks_run,
            warnings=tuple(str(p) for p in report.warnings), endpoint=sources.plain_url(resolved.endpoint),
        )
        # Damaged, or a forced sync: the old copy is swapped out only now that a verified one
        # is ready, so a failed re-fetch never loses it (an imported entry's source may be that
        # very object), and a concurrent reader finds one copy or the other, never none.
        published = self.store.publish(artifact_id, staging, manifest, replace=self.store.has(artifact_id))
        if not published:
            manifest = self.store.read_manifest(artifact_id)
        self.store.set_ref(self._ref(entry, artifact_id, resolved.revision, resolved))
        return SyncResult(entry=entry, artifact_id=artifact_id, path=self.store.object_dir(artifact_id),
                          fetched=published, manifest=manifest, report=report, tokenizer=tokenizer)

    def check_staged(self, entry: Entry, artifact_id: str, folder: Path, *,
                     tokenizer: tuple[Entry, Path] | None = None) -> Report:
        """The family's checks of ``folder``, about to be published as ``entry``'s artifact.

        Every way into ``objects/`` runs these: a sync on what it fetched, an import on what
        it unpacked (``registry.bundle``). ``tokenizer`` is the paired tokenizer's entry and
        verified folder, for the pairing checks.
        """
        related = {"tokenizer": tokenizer[1]} if tokenizer else {}
        related_entries = {"tokenizer": tokenizer[0]} if tokenizer else {}
        ctx = CheckContext(entry=entry, folder=folder, spec=self.spec, deep=False,
                           related=related, related_entries=related_entries)
        return run_checks(self._label(entry, artifact_id), self.checks(entry), ctx)

    def _verify_staging(self, entry: Entry, resolved: ResolvedSource, names: tuple[str, ...],
                        artifact_id: str, staging: Path,
                        tokenizer: SyncResult | None) -> tuple[Report, tuple[FileRecord, ...]]:
        """The family's checks plus size and hash against what the hub recorded: all problems.

        Each file's record says what its content was checked against (``registry.provenance``);
        files checked against nothing are a warning, or an error under strict mode.
        """
        report = self.check_staged(entry, artifact_id, staging,
                                   tokenizer=(tokenizer.entry, tokenizer.path) if tokenizer else None)
        records, problems = [], []
        for name in names:
            path = staging / name
            if not path.is_file():
                continue  # the family's required-files check reports it
            remote = resolved.file(name)
            record = FileRecord(name=name, size=path.stat().st_size, sha256=sha256_file(path),
                                checked_against=provenance.checked_against(entry, name, remote))
            records.append(record)
            problems += self._compare_remote(entry, record, remote, path)
        problems += provenance.trust_problems(records, entry.name, strict=self.strict)
        report = Report(artifact=report.artifact, problems=report.problems + tuple(problems),
                        checks_run=(*report.checks_run, HASH_CHECK))
        return report, tuple(records)

    @staticmethod
    def _compare_remote(entry: Entry, record: FileRecord, remote, path: Path) -> list[Problem]:
        if remote is None:
            return []
        hint = f"the download is corrupt or was altered on the way; sync '{entry.name}' again"
        if remote.size is not None and remote.size != record.size:
            return [Problem(f"{record.name} is {record.size} bytes, the source reports {remote.size}",
                            file=record.name, field="size", hint=hint)]
        if remote.sha256 and remote.sha256.lower() != record.sha256:
            return [Problem(f"sha256 {record.sha256} differs from the hub's record {remote.sha256}",
                            file=record.name, field="sha256", hint=hint)]
        if remote.blob_id and not remote.sha256 and git_blob_sha1(path) != remote.blob_id.lower():
            return [Problem(f"{record.name} is not the file the hub recorded (git blob {remote.blob_id})",
                            file=record.name, field="sha256", hint=hint)]
        return []

    def _check_unchanged(self, entry: Entry, artifact_id: str, records: Sequence[FileRecord]) -> None:
        """A local folder edited between hashing and copying must not publish under the old id."""
        copied_id = local_artifact_id(entry.name, {r.name: r.sha256 for r in records})
        if copied_id != artifact_id:
            self.store.discard_staging(artifact_id)
            raise SourceError(f"the files of '{entry.name}' in {entry.source} changed while being copied",
                              source=str(entry.source), hint=f"sync '{entry.name}' again once it is written")

    # helpers ---------------------------------------------------------------------------------

    @staticmethod
    def _source(entry: Entry) -> HfSource | LocalSource:
        if entry.source is None:
            raise SourceError(f"'{entry.name}' has no source", hint="add `source:` to its entry")
        return entry.source

    def _resolve(self, entry: Entry) -> ResolvedSource:
        try:
            return sources.resolve(self._source(entry), self.endpoints, offline=self.offline)
        except sources.NotInCacheError as exc:
            raise self._not_synced(entry, exc) from None

    def _not_synced(self, entry: Entry, cause: sources.NotInCacheError | None = None) -> NotSyncedError:
        where = f" at {cause.cache_dir}" if cause is not None and getattr(cause, "cache_dir", None) else ""
        return NotSyncedError(entry.name, str(self.store.root),
                              reason=f"offline, and the Hugging Face cache{where} does not hold it")

    def _needs_tokenizer(self, entry: Entry, error: NotSyncedError) -> NotSyncedError:
        """A model whose tokenizer is missing: one error naming the model, whose sync brings both."""
        if error.name == entry.name:
            return error
        offline = "; offline, so nothing can be fetched" if self.offline else ""
        return NotSyncedError(entry.name, error.store_root,
                              reason=f"it needs its tokenizer '{error.name}', which is not in the store{offline}")

    @staticmethod
    def _wanted(entry: Entry, resolved: ResolvedSource) -> tuple[str, ...]:
        """The files to fetch: the entry's, as far as the source holds them.

        A file the source lacks is left for the required-files check, so that it is reported
        with every other problem. A file list read from the HF cache may be partial, so there
        every file is asked for and ``fetch`` says which the cache lacks.
        """
        wanted = list(dict.fromkeys([*entry.files, *entry.sha256]))
        if resolved.from_cache:
            return tuple(wanted)
        present = set(resolved.names)
        return tuple(name for name in wanted if name in present)

    def _content_id(self, entry: Entry, resolved: ResolvedSource, names: Sequence[str]) -> str:
        source = resolved.source
        if isinstance(source, HfSource):
            if not resolved.revision:
                raise SourceError(f"{source} did not resolve to a commit", source=str(source),
                                  hint="check the revision in the entry's `source:`")
            return hf_artifact_id(source.repo_id, resolved.revision, source.repo_type)
        folder = Path(source.path)
        hashes = {name: sha256_file(folder / name) for name in names if (folder / name).is_file()}
        return local_artifact_id(entry.name, hashes)

    def _ref(self, entry: Entry, artifact_id: str, revision: str | None,
             resolved: ResolvedSource | None) -> Ref:
        fingerprint = None
        if isinstance(entry.source, LocalSource):
            names = self._wanted(entry, resolved) if resolved else entry.files
            fingerprint = local_fingerprint(Path(entry.source.path), names)
        return Ref(entry=entry.name, artifact_id=artifact_id, source=str(entry.source),
                   resolved_revision=revision, fingerprint=fingerprint, registry=entry.registry)

    def _on_wait(self, entry: Entry) -> Callable[[LockWait], None] | None:
        if self.on_wait is None:
            return None
        return lambda wait: self.on_wait(attrs.evolve(wait, entry=entry.name))

    @staticmethod
    def _label(entry: Entry, artifact_id: str | None) -> str:
        return f"'{entry.name}' ({artifact_id})" if artifact_id else f"'{entry.name}'"
