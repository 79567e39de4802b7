"""Where a checkpoint's files are: a local folder, or a hub id handed to the registered resolver.

    locate_checkpoint("path/to/folder", "model")         -> CheckpointFiles(label, config, weights)
    locate_checkpoint("NeoQuasar/Kronos-small", "model")  -> the same, from the resolver's folder

A checkpoint is the hub layout: ``config.json`` (the constructor arguments) beside
``model.safetensors``. ``CheckpointError`` is the one error ``from_pretrained`` raises.

Why a hub id goes to a resolver registered from above. A hub id must take the registry's own
way: the pins of its models.yaml, its verified store, offline mode (KRONOS_REGISTRY_OFFLINE /
HF_HUB_OFFLINE: no network call at all, and a clear error), HF_ENDPOINT and the mirrors. That
machinery is the engine (``registry/``), which the model code never imports (the import
contract "model-without-engine", see docs/ARCHITECTURE.md): Kronos and KronosTokenizer stay a
torch library that loads without it. So this floor only states what it needs, a
``HubResolver`` (a ``HubRequest`` in, a local folder holding the verified files out), and the
services floor provides one (``kronos_registry/services/pretrained.py``). The package root,
which Python imports before any of its modules, plugs it in lazily: nothing of the engine
loads until a hub id is asked for. ``set_hub_resolver`` swaps it; with none set, a hub id is a
clear ``CheckpointError``, never a download behind the registry's back.

Plain Python: no torch, no registry.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from kronos_registry.kronos.config import CONFIG_FILE

SAFETENSORS_FILE = "model.safetensors"
PICKLE_FILE = "pytorch_model.bin"


class CheckpointError(ValueError):
    """A checkpoint folder or hub repo that cannot be turned into a module.

    `folder` names where we looked, `missing` / `unknown` list the offending config
    fields (or files), `hint` says what to do about it.
    """

    def __init__(self, message: str, *, folder: str | os.PathLike | None = None,
                 missing: Iterable[str] = (), unknown: Iterable[str] = (), hint: str = ""):
        self.folder = str(folder) if folder is not None else None
        self.missing = list(missing)
        self.unknown = list(unknown)
        self.hint = hint
        text = message
        if self.folder is not None and self.folder not in text:
            text = f"{text} (checkpoint: {self.folder})"
        if hint:
            text = f"{text}\nhint: {hint}"
        super().__init__(text)


@dataclass(frozen=True)
class HubRequest:
    """A hub id given to ``from_pretrained``, with the official keyword arguments."""

    repo_id: str
    role: str                       # "model" or "tokenizer": what the caller builds
    revision: str | None = None
    cache_dir: str | None = None
    force_download: bool = False
    token: str | None = field(default=None, repr=False)   # a secret: never shown
    local_files_only: bool = False

    @property
    def label(self) -> str:
        return f"{self.repo_id}@{self.revision}" if self.revision else self.repo_id


# A HubRequest in, a local folder holding its config.json and model.safetensors out (verified);
# raises CheckpointError with a hint when it cannot.
HubResolver = Callable[[HubRequest], Path]
_hub_resolver: HubResolver | None = None


def set_hub_resolver(resolver: HubResolver | None) -> HubResolver | None:
    """Make ``resolver`` answer hub ids from now on; returns the one it replaces."""
    global _hub_resolver
    previous, _hub_resolver = _hub_resolver, resolver
    return previous


def resolve_hub_id(request: HubRequest) -> Path:
    """The local folder the registered resolver gives for ``request``."""
    if _hub_resolver is None:
        raise CheckpointError(
            f"no hub resolver is registered, so hub repo {request.label} cannot be fetched", folder=request.label,
            hint="import kronos_registry (it registers the registry's resolver), or pass a local checkpoint folder")
    return Path(_hub_resolver(request))


@dataclass(frozen=True)
class CheckpointFiles:
    """A checkpoint found: ``label`` names it in errors; a file it lacks is None."""

    label: str
    config: Path | None
    weights: Path | None


def is_hub_id(name: str) -> bool:
    """ORG/REPO, and not something that looks like a path."""
    parts = name.split("/")
    return (len(parts) == 2 and all(parts) and not name.startswith((".", "~"))
            and not os.path.isabs(name) and "\\" not in name)


def locate_checkpoint(name_or_path, role: str, *, revision: str | None = None, cache_dir=None,
                      force_download: bool = False, token: str | None = None,
                      local_files_only: bool = False) -> CheckpointFiles:
    """The files of a local checkpoint folder, or of a hub repo through the hub resolver."""
    path = Path(os.fspath(name_or_path)).expanduser()
    if path.is_dir():
        return _folder_files(str(path), path)
    if path.exists():
        raise CheckpointError(f"{path} is a file, not a checkpoint folder", folder=path,
                              hint=f"pass the folder that holds {CONFIG_FILE} and {SAFETENSORS_FILE}")
    if not is_hub_id(str(name_or_path)):
        raise CheckpointError(f"checkpoint folder {path} does not exist", folder=path,
                              missing=[CONFIG_FILE, SAFETENSORS_FILE],
                              hint="check the path, or pass a hub repo id such as NeoQuasar/Kronos-small")
    request = HubRequest(str(name_or_path), role, revision=revision,
                         cache_dir=None if cache_dir is None else os.fspath(cache_dir),
                         force_download=force_download, token=token, local_files_only=local_files_only)
    return _folder_files(request.label, resolve_hub_id(request))


def _folder_files(label: str, folder: Path) -> CheckpointFiles:
    config, weights = folder / CONFIG_FILE, folder / SAFETENSORS_FILE
    return CheckpointFiles(label, config if config.is_file() else None, weights if weights.is_file() else None)


__all__ = ["CheckpointError", "CheckpointFiles", "HubRequest", "HubResolver", "set_hub_resolver",
           "resolve_hub_id", "locate_checkpoint", "is_hub_id", "CONFIG_FILE", "SAFETENSORS_FILE", "PICKLE_FILE"]
