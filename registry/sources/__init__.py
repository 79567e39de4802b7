"""Where artifacts come from: ``hf://`` repositories through huggingface_hub, and local folders.

Two steps:

- ``resolve`` asks a source what it holds: for a hub repo, the commit a revision points to and
  its file list (asking each endpoint in turn, or, offline, only the Hugging Face cache); for a
  local folder, its files.
- ``fetch`` puts the named files into a destination folder: hub files go through
  huggingface_hub's cache (so weights a user already downloaded with ``from_pretrained`` are
  reused, also offline, and an interrupted download resumes), then copied (a reflink where
  the filesystem can) into place: never hard-linked, so damage to one copy never reaches the other.

Network behaviour is bounded on purpose: one short timeout per attempt, ``Endpoints.retries``
extra attempts, then the next endpoint. huggingface_hub's own slow path (60 s timeout, five
retries with backoff) is only reached after a probe of ours has just succeeded.

The modules::

    resolved      RemoteFile, ResolvedSource: what a source holds once resolved
    endpoints     Endpoints (URLs, token, timeout), offline mode, the HF cache folder
    failures      the errors a source raises, with their facts and hints
    local         local folders: listed, and copied into staging
    hub_api       a hub source resolved online, each request bounded, endpoints in turn
    hub_cache     the HF cache: offline resolve, reuse of sound copies, eviction of bad ones
    hub_download  hub files fetched through the cache from the first endpoint that answers
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ..spec import HfSource, LocalSource
from .endpoints import DEFAULT_ENDPOINT, Endpoints, hf_cache_dir, is_offline, plain_url
from .failures import NotInCacheError
from .hub_api import resolve_online
from .hub_cache import resolve_cached
from .hub_download import fetch_hf
from .local import LOCAL_PROGRESS_BYTES, fetch_local, resolve_local
from .resolved import COMMIT_RE, SHA256_RE, RemoteFile, ResolvedSource

__all__ = [
    "COMMIT_RE", "DEFAULT_ENDPOINT", "LOCAL_PROGRESS_BYTES", "SHA256_RE", "Endpoints", "NotInCacheError",
    "RemoteFile", "ResolvedSource", "fetch", "hf_cache_dir", "is_offline", "plain_url", "resolve",
]


def resolve(source: HfSource | LocalSource, endpoints: Endpoints, *, offline: bool,
            cache_dir: Path | None = None) -> ResolvedSource:
    """Pin ``source`` down: its commit (hub) and the files it holds.

    Offline, a hub source is looked up in the Hugging Face cache only (no socket is opened).
    ``cache_dir`` overrides the cache location (default: HF_HUB_CACHE / HF_HOME, read now).
    """
    if isinstance(source, LocalSource):
        return resolve_local(source)
    if offline:
        return resolve_cached(source, Path(cache_dir) if cache_dir else hf_cache_dir())
    return resolve_online(source, endpoints)


def fetch(resolved: ResolvedSource, names: Sequence[str], dest: Path, endpoints: Endpoints, *,
          offline: bool, progress: bool = False, cache_dir: Path | None = None) -> dict[str, Path]:
    """Make ``dest/<name>`` for each name; return name -> path.

    Hub files come through the Hugging Face cache (reused when present, also offline), at the
    resolved commit; local files are copied. Files already complete in ``dest``
    (same size as the source reports) are left as they are.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    if isinstance(resolved.source, LocalSource):
        return fetch_local(resolved, names, dest, progress)
    cache = Path(cache_dir) if cache_dir else hf_cache_dir()
    return fetch_hf(resolved, names, dest, endpoints, offline, progress, cache)
