"""Fetching hub files: through the Hugging Face cache, from the first endpoint that answers.

A cached copy is reused when sound (also offline); else the file is downloaded into the cache
with a bounded probe first and a bounded read timeout, then copied privately into staging.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import threading
from pathlib import Path
from typing import Sequence

from ..errors import SourceError
from ..spec import HfSource
from .endpoints import Endpoints, plain_url
from .failures import NotInCacheError, check_name, missing_file_error, with_data
from .hub_api import EndpointDown, each_endpoint, http_library, unreachable_reason
from .hub_cache import from_cache, known_absent, record_ref, sound_or_evicted
from .resolved import ResolvedSource, already_there, place


@functools.cache
def _download_kwargs(progress: bool) -> dict:
    """Extra hf_hub_download arguments: a silent progress bar when progress is off."""
    from huggingface_hub import hf_hub_download
    from tqdm.auto import tqdm

    if progress or "tqdm_class" not in inspect.signature(hf_hub_download).parameters:
        return {}

    class Silent(tqdm):
        def __init__(self, *args, **kwargs):
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

    return {"tqdm_class": Silent}


_TIMEOUT_LOCK = threading.Lock()
_timeout_state = {"users": 0, "saved": None}  # downloads in flight, and the value to restore


@contextlib.contextmanager
def _download_timeout(seconds: float):
    """Make huggingface_hub's read timeout for file bodies ``seconds`` while downloading.

    hf_hub_download takes no such argument and reads the module constant (default 10 s, up
    to six tries): without this, a stalled transfer hangs for a minute whatever
    KRONOS_REGISTRY_TIMEOUT says. The constant is process-wide, so threads downloading at
    once share it (the last to start wins); the original value comes back when the last
    download in flight ends, never one a concurrent download had set.
    """
    from huggingface_hub import constants

    with _TIMEOUT_LOCK:
        if _timeout_state["users"] == 0:
            _timeout_state["saved"] = constants.HF_HUB_DOWNLOAD_TIMEOUT
        _timeout_state["users"] += 1
        constants.HF_HUB_DOWNLOAD_TIMEOUT = seconds
    try:
        yield
    finally:
        with _TIMEOUT_LOCK:
            _timeout_state["users"] -= 1
            if _timeout_state["users"] == 0:
                constants.HF_HUB_DOWNLOAD_TIMEOUT = _timeout_state["saved"]


def _download(resolved: ResolvedSource, name: str, endpoints: Endpoints, cache_dir: Path,
              progress: bool) -> Path:
    """Download one file into the HF cache from the first endpoint that answers."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError

    source: HfSource = resolved.source
    where = f"{source.repo_id}@{resolved.revision}"

    def get(endpoint: str) -> Path:
        url = hf_hub_url(source.repo_id, name, repo_type=source.repo_type, revision=resolved.revision,
                         endpoint=endpoint)
        try:
            # A bounded probe first: huggingface_hub retries a failed HEAD for minutes when
            # nothing is cached, and we want a dead endpoint to fail in seconds.
            get_hf_file_metadata(url, token=endpoints.token, timeout=endpoints.timeout, endpoint=endpoint)
            try:
                with _download_timeout(endpoints.timeout):
                    return Path(hf_hub_download(
                        source.repo_id, name, repo_type=source.repo_type, revision=resolved.revision,
                        cache_dir=cache_dir, endpoint=endpoint, token=endpoints.token,
                        etag_timeout=endpoints.timeout, **_download_kwargs(progress)))
            except http_library().TransportError as error:
                # huggingface_hub already retried the transfer (resuming with Range) five
                # times; retrying all of that again here would only multiply the wait.
                reason = unreachable_reason(error, endpoints.timeout)
                raise EndpointDown(f"transfer of '{name}' failed: {reason}") from None
        except LocalEntryNotFoundError as error:
            # huggingface_hub's own request failed after our probe passed: the endpoint went away.
            raise EndpointDown(f"download failed: {error}") from None
        except EntryNotFoundError:  # the hub answered 404 for this file
            raise missing_file_error(resolved, name, f"{where} at {plain_url(endpoint)}") from None
        except HfHubHTTPError as error:
            raise with_data(SourceError(
                endpoints.scrub(f"{endpoint} failed to serve '{name}' of {where}: {error}"),
                source=str(source), endpoints=[endpoint],
                hint="retry later or try another mirror (HF_ENDPOINT / `mirrors:`)",
            ), file=name, endpoint=endpoint) from None

    path, _ = each_endpoint(f"'{name}' of {where}", endpoints.starting_with(resolved.endpoint),
                            endpoints, get)
    return path


def fetch_hf(resolved: ResolvedSource, names: Sequence[str], dest: Path, endpoints: Endpoints,
             offline: bool, progress: bool, cache_dir: Path) -> dict[str, Path]:
    source: HfSource = resolved.source
    commit = resolved.revision
    if not commit:
        raise SourceError(f"{source} was not resolved to a commit", source=str(source),
                          hint="call resolve() first")
    placed = {}
    for name in names:
        check_name(name, source)
        remote, target = resolved.file(name), dest / name
        if already_there(target, remote):
            placed[name] = target
            continue
        if not resolved.from_cache and remote is None:
            raise missing_file_error(resolved, name, f"{source.repo_id}@{commit} at {resolved.endpoint}")
        cached = sound_or_evicted(from_cache(source, commit, name, cache_dir), remote)
        if cached is None and offline:
            if known_absent(source, commit, name, cache_dir):
                raise missing_file_error(resolved, name, f"{source.repo_id}@{commit} (HF cache)")
            raise with_data(NotInCacheError(source, cache_dir, missing=name), file=name)
        if cached is None:
            cached = _download(resolved, name, endpoints, cache_dir, progress)
        placed[name] = place(cached, target)
    if not offline:
        record_ref(resolved, cache_dir)
    return placed
