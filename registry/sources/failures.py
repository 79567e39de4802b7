"""The errors a source raises, with the facts a caller may want attached, and their hints."""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Sequence

from ..errors import FileNotInSourceError, NetworkError, NotSyncedError, RegistryError, SourceError
from ..spec import HfSource
from .endpoints import Endpoints, plain_url
from .resolved import ResolvedSource


class NotInCacheError(SourceError, NotSyncedError):
    """Offline, and the Hugging Face cache does not hold the repo, revision or file asked for.

    Both a SourceError and a NotSyncedError: offline, "not cached" is "not synced yet", so
    callers catching either see it, and the CLI gives it the not-synced exit code.
    """

    exit_code = NotSyncedError.exit_code

    def __init__(self, source: HfSource, cache_dir: Path, *, missing: str | None = None):
        what = f"file '{missing}' of {source}" if missing else str(source)
        # The two parents' __init__ take different arguments: set their data directly.
        RegistryError.__init__(
            self,
            f"{what} is not in the Hugging Face cache at {cache_dir} "
            "(offline mode: no network call was made)",
            hint=(
                "run `kronos-registry sync` where the hub (or a mirror, via HF_ENDPOINT) is "
                "reachable, without --offline/KRONOS_REGISTRY_OFFLINE/HF_HUB_OFFLINE; or sync on a "
                "connected machine and carry it here with `kronos-registry export` there and "
                "`kronos-registry import` here; or point HF_HUB_CACHE at a cache that holds it"
            ),
        )
        self.source = self.name = str(source)
        self.endpoints = []
        self.store_root = self.cache_dir = str(cache_dir)
        self.repo_id = source.repo_id
        self.revision = source.revision
        self.missing = missing


NETWORK_HINT = (
    "check the network, proxy (HTTPS_PROXY) and firewall; set HF_ENDPOINT to a reachable "
    "mirror or list one under `mirrors:` in models.yaml; or run `kronos-registry sync` on a "
    "connected machine and bring it here with `kronos-registry export` / `kronos-registry "
    "import`; with the files already cached, use --offline"
)


def with_data(error: SourceError, **data: object) -> SourceError:
    """Attach the facts a caller may want (repo_id, revision, endpoint, ...) to an error."""
    for key, value in data.items():
        setattr(error, key, value)
    return error


def network_error(source: object, failures: Sequence[tuple[str, str]], endpoints: Endpoints) -> NetworkError:
    tried = "; ".join(f"{url} ({why})" for url, why in failures)
    error = NetworkError(
        endpoints.scrub(f"could not reach any endpoint for {source}: {tried}"),
        source=str(source), endpoints=[plain_url(url) for url, _ in failures], hint=NETWORK_HINT,
    )
    return with_data(error, failures=[(plain_url(url), endpoints.scrub(why)) for url, why in failures])


def _pickle_hint(missing: str, present: Sequence[str]) -> str | None:
    if missing == "model.safetensors" and "pytorch_model.bin" in present:
        return ("the source holds pytorch_model.bin (pickle weights) instead; to accept them, set "
                "`allow_pickle: true` and `files: [config.json, pytorch_model.bin]` on the entry "
                "(they are loaded with torch.load(weights_only=True))")
    return None


def missing_file_error(resolved: ResolvedSource, name: str, where: str) -> FileNotInSourceError:
    present = resolved.names
    listing = ", ".join(present) if present else "no files"
    hint = _pickle_hint(name, present) or (
        "check the entry's `files:` list and the source; the names must match exactly")
    error = FileNotInSourceError(f"{where} has no file '{name}' (it holds: {listing})",
                                 source=str(resolved.source), hint=hint)
    return with_data(error, file=name, revision=resolved.revision)


def check_name(name: str, source: object) -> PurePosixPath:
    """Refuse names that would escape the source or destination folder."""
    path = PurePosixPath(name)
    if not name or path.is_absolute() or ".." in path.parts or "\\" in name:
        raise FileNotInSourceError(
            f"file name {name!r} for {source} is not a plain relative path",
            source=str(source), hint="use names like config.json or subdir/model.safetensors",
        )
    return path
