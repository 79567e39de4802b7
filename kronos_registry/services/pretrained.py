"""``from_pretrained`` with a hub id, the registry's way: pinned, verified, stored, offline-aware.

``Kronos.from_pretrained("NeoQuasar/Kronos-small")`` (or ``KronosTokenizer``'s) hands the hub id
here: the package root registers ``pretrained_folder`` as the family's hub resolver (the model
code may not import the engine; kronos/locate.py says why). The id becomes a registry entry:

- the entry of the registry file in use (``$KRONOS_REGISTRY_FILE``, ``./models.yaml``, the
  packaged one) whose source is that repo, at that revision when one is given: its pins (commit,
  config, params, sha256) apply, so ``from_pretrained("NeoQuasar/Kronos-small")`` gets the
  commit models.yaml names, not whatever ``main`` is today;
- else a one-off entry for ``hf://ORG/REPO@REVISION`` (``main`` when none is given), checked
  like every Kronos artifact; its ref lives apart from every registry file's.

The loader then finds it in the store (a cheap check, no network) or syncs it: resolved and
fetched through the endpoints in order (``HF_ENDPOINT`` or the file's ``endpoint:``, then its
``mirrors:``) by way of the Hugging Face cache, verified, published. Offline
(``local_files_only=True``, ``KRONOS_REGISTRY_OFFLINE``, ``HF_HUB_OFFLINE``) no network call is
made: what neither the store nor the Hugging Face cache holds is a clear error. Only the
artifact asked for is synced; a model's tokenizer is the caller's next ``from_pretrained``.

The official arguments map onto the registry's: ``revision`` selects the entry (or the one-off's
revision), ``force_download`` re-fetches and re-verifies (``sync --force``), ``token`` is used as
``HF_TOKEN`` (never written anywhere), ``cache_dir`` is the store's folder (``--store``), and
``local_files_only`` is offline mode. Every failure is a ``CheckpointError`` whose cause is the
registry's own error.
"""

from __future__ import annotations

import os
from pathlib import Path

import attrs

from kronos_registry.kronos.checks import kronos_checks
from kronos_registry.kronos.config import CLASS_NAMES, other_role
from kronos_registry.kronos.locate import CheckpointError, HubRequest
from kronos_registry.services.registry import Registry
from registry.errors import Location, NotSyncedError, RegistryError, VerificationError
from registry.loader import Loader
from registry.spec import Entry, HfSource, RegistrySpec

# The ref namespace of one-off entries: apart from every registry file's, so no name collides.
ONE_OFF_REGISTRY = "from_pretrained"

ONE_OFF_NOT_SYNCED_HINT = (
    "connect to the hub (or a mirror: HF_ENDPOINT) and call from_pretrained again without "
    "local_files_only / KRONOS_REGISTRY_OFFLINE / HF_HUB_OFFLINE; or add the repo to models.yaml and "
    "`kronos-registry sync` it (on a connected machine, then `kronos-registry export` / `import`)"
)


def pretrained_folder(request: HubRequest) -> Path:
    """The verified store folder holding ``request``'s config.json and model.safetensors."""
    entry = None
    try:
        registry = _registry(request)
        entry = registered_entry(registry.spec, request) or one_off_entry(request)
        loader = _loader(registry, entry)
        located = loader.sync(entry.name, force=True) if request.force_download else loader.locate(entry.name)
    except RegistryError as error:
        raise _checkpoint_error(request, entry, error) from error
    return located.path


def _registry(request: HubRequest) -> Registry:
    env = dict(os.environ)
    if request.token:
        env["HF_TOKEN"] = request.token  # in this process's memory only
    return Registry(store=request.cache_dir, offline=True if request.local_files_only else None, env=env)


def registered_entry(spec: RegistrySpec, request: HubRequest) -> Entry | None:
    """The available entry whose source is the requested repo (and revision, when given);
    one of the requested role first."""
    def matches(entry: Entry) -> bool:
        source = entry.source
        return (entry.available and isinstance(source, HfSource)
                and source.repo_id.casefold() == request.repo_id.casefold()
                and (request.revision is None or source.revision == request.revision))

    found = [entry for entry in spec.entries() if matches(entry)]
    found.sort(key=lambda entry: entry.kind != request.role)
    return found[0] if found else None


def one_off_entry(request: HubRequest) -> Entry:
    """An entry for a hub repo no registry file names, checked like any Kronos artifact."""
    source = HfSource(request.repo_id, request.revision or "main")
    name = f"{source.repo_id}@{source.revision}"
    return Entry(name=name, kind=request.role, source=source, registry=ONE_OFF_REGISTRY,
                 origin=Location(f"from_pretrained({request.repo_id!r})"))


def _loader(registry: Registry, entry: Entry) -> Loader:
    """The registry's loader settings, over a registry of this one entry: its tokenizer (a
    model's) is left out, so only the artifact asked for is fetched."""
    alone = attrs.evolve(entry, tokenizer=None)
    section = {alone.name: alone}
    spec = attrs.evolve(registry.spec, models=section if alone.kind == "model" else {},
                        tokenizers=section if alone.kind == "tokenizer" else {})
    return Loader(spec, registry.store, checks=kronos_checks, offline=registry.offline,
                  endpoints=registry.endpoints, lock_timeout=registry.loader.lock_timeout, progress=True,
                  env=registry.loader.env)


def _checkpoint_error(request: HubRequest, entry: Entry | None, error: RegistryError) -> CheckpointError:
    label = request.label
    if isinstance(error, VerificationError) and any(p.field == "role" for p in error.problems):
        other = other_role(request.role)
        return CheckpointError(
            f"{label} holds a {CLASS_NAMES[other]} checkpoint, not a {CLASS_NAMES[request.role]}", folder=label,
            hint=f"load it with {CLASS_NAMES[other]}.from_pretrained, and pass the {request.role} repo here")
    hint = error.hint or ""
    if isinstance(error, NotSyncedError) and entry is not None and entry.registry == ONE_OFF_REGISTRY:
        hint = ONE_OFF_NOT_SYNCED_HINT
    return CheckpointError(f"{label}: {error.message}", folder=label, hint=hint)


__all__ = ["pretrained_folder", "registered_entry", "one_off_entry", "ONE_OFF_REGISTRY"]
