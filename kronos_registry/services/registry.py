"""The registry service: a registry file, a store and the loader between them, for every face.

``Registry`` runs the engine (``registry/``) with the Kronos checks plugged in, and turns
verified store objects into ``KronosPredictor``s (``load_module``). Every face (CLI, HTTP,
MCP, the Python API) reaches the store through it.
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path
from typing import Mapping

from kronos_registry.kronos.checks import CONFIG_FILE, PICKLE_FILE, SAFETENSORS_FILE, kronos_checks, load_pickle_weights
from registry.bundle.imported import registry_files as imported_registry_files
from registry.errors import EntryKindError, NotSyncedError, ObjectVanishedError, Problem, VerificationError
from registry.loader import Loader, SyncResult
from registry.sources import Endpoints, is_offline
from registry.spec import Entry, RegistrySpec, load_registry
from registry.store import Store, default_store_root
from registry.store.snapshot import Snapshot, open_snapshot

PACKAGED_REGISTRY = Path(__file__).resolve().parent.parent / "models.yaml"
# A load that loses a race with `rm`/`sync --force`/`gc` of the same entry looks it up again.
LOAD_ATTEMPTS = 3


class Registry:
    """A registry file, a store and the loader between them, with Kronos checks plugged in.

    ``registry`` is a models.yaml path (else ``$KRONOS_REGISTRY_FILE``, ``./models.yaml``, the
    packaged file); ``store`` a folder (else ``$KRONOS_REGISTRY_HOME``, the XDG cache);
    ``offline`` forbids every network call (else ``KRONOS_REGISTRY_OFFLINE``/``HF_HUB_OFFLINE``);
    ``strict`` serves only files checked against a first-hand record (else
    ``KRONOS_REGISTRY_STRICT``; see ``registry.provenance``).
    The entries of bundles imported into the store (``<store>/registries/*.yaml``) overlay
    the packaged file, and the user's file overlays them.
    """

    def __init__(self, registry: str | os.PathLike | None = None, store: str | os.PathLike | None = None, *,
                 offline: bool | None = None, env: Mapping[str, str] | None = None, progress: bool = False,
                 lock_timeout: float | None = None, on_wait=None, on_note=None, strict: bool | None = None):
        env = os.environ if env is None else env
        self.store = Store(default_store_root(store, env))
        self.spec: RegistrySpec = load_registry(registry, default_path=PACKAGED_REGISTRY, env=env,
                                                overlays=imported_registry_files(self.store.root))
        self.offline = is_offline(offline, env)
        self.endpoints = Endpoints.from_settings(self.spec.endpoint, self.spec.mirrors, env)
        timeout = lock_timeout if lock_timeout is not None else float(env.get("KRONOS_REGISTRY_LOCK_TIMEOUT", 600))
        self.loader = Loader(self.spec, self.store, checks=kronos_checks, offline=self.offline,
                             endpoints=self.endpoints, lock_timeout=timeout, progress=progress,
                             on_wait=on_wait, on_note=on_note, env=env, strict=strict)

    def entries(self) -> list[Entry]:
        return self.spec.entries()

    def get(self, name: str) -> Entry:
        return self.spec.get(name)

    def sync(self, name: str, *, force: bool = False) -> SyncResult:
        return self.loader.sync(name, force=force)

    def verify(self, name: str, *, deep: bool = False):
        """The loader's verification of the stored copy, plus the entry's lineage: a record
        whose weights' sha256 is not the stored weights' describes some other checkpoint."""
        import attrs

        report = self.loader.verify(name, deep=deep)
        found = lineage_problems(self, self.spec.get(name))
        if not found:
            return report
        return attrs.evolve(report, problems=report.problems + tuple(found),
                            checks_run=(*report.checks_run, "lineage"))

    def status(self, name: str) -> str | None:
        """The artifact id ``name`` is stored under, or None when not synced (no network)."""
        return self.loader.status(name)

    def model_entry(self, name: str) -> Entry:
        """The available model entry ``name``; a tokenizer's name raises EntryKindError naming
        the models that use it (what every face says when asked to forecast with one)."""
        entry = self.spec.get_available(name)
        if entry.kind != "model":
            models = [e.name for e in self.spec.models.values() if e.tokenizer == name and e.available]
            raise EntryKindError(name, entry.kind, "model", models)
        return entry

    def load_predictor(self, name: str, *, device: str | None = None, max_context: int | None = None):
        """A ready ``KronosPredictor`` for the model entry ``name``, from the store."""
        from kronos_registry.kronos.predictor import KronosPredictor

        entry = self.model_entry(name)
        for attempt in range(LOAD_ATTEMPTS):
            located = self.loader.locate(name)
            try:
                # Both read from open snapshots: whatever another process removes or replaces
                # now, this load gets the whole copy it opened, or looks again.
                with self._snapshot(located.tokenizer) as tokenizer_files, self._snapshot(located) as model_files:
                    tokenizer = load_module("tokenizer", tokenizer_files, entry=located.tokenizer.entry)
                    model = load_module("model", model_files, entry=located.entry)
                break
            except ObjectVanishedError as error:
                if attempt == LOAD_ATTEMPTS - 1:
                    raise ObjectVanishedError(error.artifact, str(self.store.root), name=name) from None
        return KronosPredictor(model, tokenizer, device=device,
                               max_context=max_context or entry.context_length or 512)

    def _snapshot(self, located: SyncResult):
        return open_snapshot(self.store, located.artifact_id, label=f"'{located.entry.name}' ({located.artifact_id})",
                             hint=repair_hint(located.entry.name))


def lineage_problems(registry: Registry, entry: Entry) -> list[Problem]:
    """What is wrong with ``entry``'s lineage: a mapping that does not parse, or weights'
    sha256 that differ from the stored weights' (the model's own, and its tokenizer's when
    the record says this run trained it). Entries or tokenizers not synced are not compared."""
    from kronos_registry.services.lineage import Lineage, LineageError

    if entry.lineage is None:
        return []
    where = f"{entry.kind}s.{entry.name}.lineage"
    try:
        lineage = Lineage.from_mapping(entry.lineage)
    except (LineageError, TypeError, ValueError) as error:
        return [Problem(f"does not parse: {error}", file=entry.origin.path, field=where, location=entry.origin,
                        hint="restore the lineage written by `kronos-registry finetune`, or remove the block")]
    owners = {entry.kind: entry.name}
    if entry.kind == "model" and entry.tokenizer:
        owners["tokenizer"] = entry.tokenizer
    problems = []
    for role, expected in lineage.weights_sha256.items():
        owner = owners.get(role)
        artifact = registry.status(owner) if owner else None
        record = registry.store.read_manifest(artifact).file(SAFETENSORS_FILE) if artifact else None
        if record is not None and record.sha256 != expected:
            problems.append(Problem(
                f"the lineage names {role} weights with sha256 {expected[:12]}..., but the stored '{owner}' "
                f"weights have sha256 {record.sha256[:12]}...: the record describes another checkpoint",
                file=entry.origin.path, field=f"{where}.weights_sha256.{role}", location=entry.origin,
                hint="the lineage was edited or the checkpoint replaced; restore the entry's original lineage, or "
                     "fine-tune again to record a true one"))
    return problems


def repair_hint(name: str) -> str:
    return (f"the stored copy is damaged; repair it with `kronos-registry sync {name} --force` "
            "(`kronos-registry verify --deep` checks every byte)")


def load_module(role: str, files: Snapshot | Path, *, entry: Entry | None = None):
    """Build the role's module from a verified store object and load its weights (strict).

    ``files`` is an open ``Snapshot`` (what the store serves) or a folder. A file that does
    not load (possible only where the cheap check cannot see the damage) is a
    ``VerificationError`` naming the repair, never a bare exception. Pickle weights
    (``pytorch_model.bin``) are read only for an ``entry`` that opted in (``allow_pickle:
    true``), and then with ``weights_only=True``; never as a fallback.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from kronos_registry.kronos.model import Kronos
    from kronos_registry.kronos.tokenizer import KronosTokenizer

    folder = files if isinstance(files, Path) else files.folder
    current = CONFIG_FILE
    try:
        config = json.loads(_read(files, CONFIG_FILE).decode("utf-8"))
        cls = KronosTokenizer if role == "tokenizer" else Kronos
        # Built without initialisation, then given the loaded tensors: no random init, no second
        # copy, and no meta device (whose first use imports torch._dynamo, ~1 s).
        module = cls.uninitialised(**config)
        has_safetensors = (folder / SAFETENSORS_FILE).is_file() if isinstance(files, Path) else files.has(SAFETENSORS_FILE)
        if not has_safetensors and not (entry is not None and entry.allow_pickle):
            raise _pickle_refused(entry, folder)
        current = SAFETENSORS_FILE if has_safetensors else PICKLE_FILE
        path = str(folder / current) if isinstance(files, Path) else files.path(current)
        state = load_file(path) if has_safetensors else load_pickle_weights(path)
        module.load_weights(state, label=str(folder), strict=True)
    except (ValueError, TypeError, KeyError, RuntimeError, SafetensorError, pickle.UnpicklingError) as exc:
        label = str(folder)
        raise VerificationError(f"'{entry.name}' ({label})" if entry else label,
                                [Problem(f"{current} does not load: {exc}", file=current)],
                                hint=repair_hint(entry.name) if entry else None) from None
    return module.eval()


def _pickle_refused(entry: Entry | None, folder: Path) -> VerificationError:
    name = entry.name if entry is not None else "NAME"
    return VerificationError(f"'{name}' ({folder})", [Problem(
        f"{SAFETENSORS_FILE} is missing and '{name}' does not allow pickle weights ({PICKLE_FILE}), "
        "which can run code when loaded", file=SAFETENSORS_FILE, field="allow_pickle")],
        hint=f"nothing was loaded; `kronos-registry sync --force {name}` repairs the stored copy")


def _read(files: Snapshot | Path, name: str) -> bytes:
    return (files / name).read_bytes() if isinstance(files, Path) else files.read_bytes(name)


def normalise_device(device: str | None) -> str:
    """The device a predictor would run on, spelled one way: None -> the default (cuda, mps,
    cpu), "cuda" -> "cuda:<current index>". Raises ValueError/RuntimeError for a bad name."""
    import torch

    from kronos_registry.kronos.predictor import default_device

    resolved = torch.device(device if device is not None else default_device())
    if resolved.type == "cuda" and resolved.index is None and torch.cuda.is_available():
        resolved = torch.device("cuda", torch.cuda.current_device())
    return str(resolved)


def load_model(registry: Registry, name: str, device: str | None):
    """``registry.load_predictor``, with a missing tokenizer reported as the model not being synced."""
    try:
        return registry.load_predictor(name, device=device)
    except NotSyncedError as error:
        if error.name == name:
            raise
        # The tokenizer is located first; `sync NAME` of the model brings both, so name the model.
        raise NotSyncedError(name, error.store_root,
                             reason=f"it needs the tokenizer '{error.name}', which is missing too") from error
