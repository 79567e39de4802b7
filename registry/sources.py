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
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import os
import re
import threading
import time
from pathlib import Path, PurePosixPath
from typing import Callable, Mapping, Sequence, TypeVar
from urllib.parse import quote, urlsplit, urlunsplit

import attrs

from .checks import sha256_file
from .copying import blob_matches_its_name, private_copy
from .errors import (
    FileNotInSourceError,
    NetworkError,
    NotSyncedError,
    RegistryError,
    RepoNotFoundError,
    RevisionNotFoundError,
    SourceError,
)
from .spec import HfSource, LocalSource

DEFAULT_ENDPOINT = "https://huggingface.co"
COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_TRUE = {"1", "true", "yes", "on"}
T = TypeVar("T")


# --------------------------------------------------------------------------- data


@attrs.frozen
class RemoteFile:
    """One file a source holds. ``sha256`` is the hub's recorded hash (LFS files) or None."""

    name: str
    size: int | None = None
    sha256: str | None = None


@attrs.frozen
class ResolvedSource:
    """A source pinned down: the commit a revision points to, who answered, and its files.

    ``endpoint`` is None for local folders and for hub repos resolved from the Hugging Face
    cache alone (offline); then ``files`` lists only what the cache holds.
    """

    source: HfSource | LocalSource
    revision: str | None
    endpoint: str | None
    files: tuple[RemoteFile, ...]

    def file(self, name: str) -> RemoteFile | None:
        return next((f for f in self.files if f.name == name), None)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.files)

    @property
    def from_cache(self) -> bool:
        """True when the file list came from the local HF cache, so it may be partial."""
        return isinstance(self.source, HfSource) and self.endpoint is None

    def __str__(self) -> str:
        if isinstance(self.source, HfSource) and self.revision and self.revision != self.source.revision:
            return f"{self.source} (commit {self.revision})"
        return str(self.source)


def _parse_timeout(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise SourceError(
            f"KRONOS_REGISTRY_TIMEOUT={text!r} is not a positive number of seconds",
            hint="set it to e.g. 10 or unset it",
        )
    return value


@attrs.frozen
class Endpoints:
    """Hub endpoints tried in order when one cannot be reached, and how to talk to them."""

    urls: tuple[str, ...] = attrs.field(converter=lambda urls: tuple(u.rstrip("/") for u in urls))
    # The token is a secret: kept out of repr, never logged, never written anywhere.
    token: str | None = attrs.field(default=None, repr=False)
    timeout: float = 10.0
    retries: int = 1

    @urls.validator
    def _check_urls(self, _attribute, urls) -> None:
        if not urls:
            raise ValueError("Endpoints needs at least one URL")

    @classmethod
    def from_settings(cls, file_endpoint: str | None, file_mirrors: Sequence[str],
                      env: Mapping[str, str] = os.environ) -> "Endpoints":
        """HF_ENDPOINT, else the registry file's ``endpoint:``, else huggingface.co; then mirrors."""
        first = env.get("HF_ENDPOINT") or file_endpoint or DEFAULT_ENDPOINT
        urls: list[str] = []
        for url in (first, *file_mirrors):
            url = url.rstrip("/")
            if url and url not in urls:
                urls.append(url)
        token = env.get("HF_TOKEN") or env.get("HUGGING_FACE_HUB_TOKEN") or None
        timeout_text = env.get("KRONOS_REGISTRY_TIMEOUT")
        timeout = _parse_timeout(timeout_text) if timeout_text else 10.0
        return cls(urls=tuple(urls), token=token, timeout=timeout)

    def starting_with(self, url: str | None) -> tuple[str, ...]:
        """The URLs with ``url`` (the one that answered before) moved to the front."""
        if url is None or url not in self.urls:
            return self.urls
        return (url, *(u for u in self.urls if u != url))

    def scrub(self, text: str) -> str:
        """``text`` without the token or any endpoint's credentials, fit to show or log."""
        from .store import redact_secrets

        for url in self.urls:
            shown = plain_url(url)
            if shown and shown != url:
                text = text.replace(url, shown)
        text = text.replace(self.token, "***") if self.token else text
        return redact_secrets(text)


def plain_url(url: str | None) -> str | None:
    """The endpoint without credentials or query: fit to show, log or record."""
    if not url:
        return None
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def is_offline(explicit: bool | None = None, env: Mapping[str, str] = os.environ) -> bool:
    """``explicit`` when given; else KRONOS_REGISTRY_OFFLINE or HF_HUB_OFFLINE set to 1/true."""
    if explicit is not None:
        return explicit
    return any(env.get(name, "").strip().lower() in _TRUE
               for name in ("KRONOS_REGISTRY_OFFLINE", "HF_HUB_OFFLINE"))


def hf_cache_dir(env: Mapping[str, str] = os.environ) -> Path:
    """The Hugging Face hub cache, read from the environment now (not at import time)."""
    from huggingface_hub import constants

    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if env.get(name):
            return Path(os.path.expandvars(env[name])).expanduser()
    if env.get("HF_HOME"):
        return Path(os.path.expandvars(env["HF_HOME"])).expanduser() / "hub"
    return Path(constants.HF_HUB_CACHE)


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


# --------------------------------------------------------------------------- errors

_NETWORK_HINT = (
    "check the network, proxy (HTTPS_PROXY) and firewall; set HF_ENDPOINT to a reachable "
    "mirror or list one under `mirrors:` in models.yaml; or run `kronos-registry sync` on a "
    "connected machine and bring it here with `kronos-registry export` / `kronos-registry "
    "import`; with the files already cached, use --offline"
)


def _with_data(error: SourceError, **data: object) -> SourceError:
    """Attach the facts a caller may want (repo_id, revision, endpoint, ...) to an error."""
    for key, value in data.items():
        setattr(error, key, value)
    return error


def _network_error(source: object, failures: Sequence[tuple[str, str]], endpoints: Endpoints) -> NetworkError:
    tried = "; ".join(f"{url} ({why})" for url, why in failures)
    error = NetworkError(
        endpoints.scrub(f"could not reach any endpoint for {source}: {tried}"),
        source=str(source), endpoints=[plain_url(url) for url, _ in failures], hint=_NETWORK_HINT,
    )
    return _with_data(error, failures=[(plain_url(url), endpoints.scrub(why)) for url, why in failures])


def _pickle_hint(missing: str, present: Sequence[str]) -> str | None:
    if missing == "model.safetensors" and "pytorch_model.bin" in present:
        return ("the source holds pytorch_model.bin (pickle weights) instead; to accept them, set "
                "`allow_pickle: true` and `files: [config.json, pytorch_model.bin]` on the entry "
                "(they are loaded with torch.load(weights_only=True))")
    return None


def _missing_file_error(resolved: ResolvedSource, name: str, where: str) -> FileNotInSourceError:
    present = resolved.names
    listing = ", ".join(present) if present else "no files"
    hint = _pickle_hint(name, present) or (
        "check the entry's `files:` list and the source; the names must match exactly")
    error = FileNotInSourceError(f"{where} has no file '{name}' (it holds: {listing})",
                                 source=str(resolved.source), hint=hint)
    return _with_data(error, file=name, revision=resolved.revision)


def _check_name(name: str, source: object) -> PurePosixPath:
    """Refuse names that would escape the source or destination folder."""
    path = PurePosixPath(name)
    if not name or path.is_absolute() or ".." in path.parts or "\\" in name:
        raise FileNotInSourceError(
            f"file name {name!r} for {source} is not a plain relative path",
            source=str(source), hint="use names like config.json or subdir/model.safetensors",
        )
    return path


# --------------------------------------------------------------------------- local folders


def _local_folder(source: LocalSource) -> Path:
    path = Path(source.path)
    if not path.is_dir():
        what = "is not a folder" if path.exists() else "does not exist"
        raise _with_data(FileNotInSourceError(
            f"local source {path} {what}",
            source=str(path),
            hint="fix `source:` in models.yaml (relative paths resolve against that file) "
                 "to the folder holding config.json and model.safetensors",
        ), path=str(path))
    return path


def _walk_files(root: Path) -> list[Path]:
    """Regular files (symlinks to files included) under ``root``, skipping dot-folders like .git."""
    found = []
    for folder, dirs, files in os.walk(root, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [Path(folder) / f for f in sorted(files) if (Path(folder) / f).is_file()]
    return found


def _refuse_escaping_link(root: Path, name: str, source: object) -> None:
    """Refuse a file that is a link (or lies under a linked folder) leading out of ``root``.

    Copying it would put another file's bytes (``/etc/shadow``, another user's data) into the
    store, and the checks would echo some of them in their messages. Links inside the folder
    are fine.
    """
    real_root = os.path.realpath(root)
    real = os.path.realpath(root / name)
    if os.path.commonpath([real_root, real]) != real_root:
        raise _with_data(SourceError(
            f"'{name}' in the local source {root} is a symbolic link leading outside that folder; refused",
            source=str(source),
            hint="copy the file into the checkpoint folder (or link to a file inside it) and sync again",
        ), file=name, path=str(root))


def _resolve_local(source: LocalSource) -> ResolvedSource:
    root = _local_folder(source)
    files = tuple(
        RemoteFile(name=path.relative_to(root).as_posix(), size=path.stat().st_size)
        for path in _walk_files(root)
    )
    return ResolvedSource(source=source, revision=None, endpoint=None, files=files)


# --------------------------------------------------------------------------- hub: online


def _http():
    """The transport error base class of the HTTP library this huggingface_hub uses."""
    try:
        import httpx2 as http  # huggingface_hub >= 2
    except ImportError:  # pragma: no cover - huggingface_hub 1.x
        import httpx as http
    return http


def _unreachable_reason(error: BaseException, timeout: float) -> str | None:
    """A short reason when ``error`` means "this endpoint did not answer"; None otherwise."""
    from huggingface_hub.errors import OfflineModeIsEnabled

    http = _http()
    if isinstance(error, OfflineModeIsEnabled):
        return "huggingface_hub is in offline mode (HF_HUB_OFFLINE was set when it was imported)"
    if isinstance(error, http.TimeoutException):
        return f"no answer within {timeout:g} s"
    if isinstance(error, http.ConnectError):
        return f"connection failed: {error}"
    if isinstance(error, http.TransportError):
        return f"connection broken: {error}"
    return None


class _EndpointDown(Exception):
    """Internal: one endpoint could not be reached after its attempts."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _attempt(call: Callable[[], T], endpoints: Endpoints) -> T:
    """Run ``call`` with ``endpoints.retries`` bounded retries on connection failures only."""
    for attempt in range(endpoints.retries + 1):
        try:
            return call()
        except Exception as error:  # noqa: BLE001 - classified just below
            reason = _unreachable_reason(error, endpoints.timeout)
            if reason is None:
                raise
            if attempt == endpoints.retries:
                raise _EndpointDown(reason) from None
            time.sleep(0.2 * (attempt + 1))  # a short pause: a restarting proxy, a dropped keep-alive
    raise AssertionError("unreachable")


def _each_endpoint(source: object, urls: Sequence[str], endpoints: Endpoints,
                   call: Callable[[str], T]) -> tuple[T, str]:
    """``call(url)`` on each endpoint in turn until one answers; NetworkError when none does."""
    failures: list[tuple[str, str]] = []
    for url in urls:
        try:
            return _attempt(lambda: call(url), endpoints), url
        except _EndpointDown as down:
            failures.append((url, down.reason))
    raise _network_error(source, failures, endpoints)


def _api_request(method: str, url: str, endpoints: Endpoints, **kwargs):
    """One bounded HTTP request through huggingface_hub's session (its headers, its errors)."""
    from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

    response = get_session().request(method, url, headers=build_hf_headers(token=endpoints.token),
                                     timeout=endpoints.timeout, **kwargs)
    hf_raise_for_status(response)
    return response


def _api_url(endpoint: str, source: HfSource, tail: str) -> str:
    return f"{endpoint}/api/{source.repo_type}s/{source.repo_id}/{tail}"


def _status(error: BaseException) -> int | None:
    response = getattr(error, "response", None)
    return getattr(response, "status_code", None)


def _refs(source: HfSource, endpoint: str, endpoints: Endpoints) -> list[str] | None:
    """Branch and tag names of the repo, or None when the endpoint says it has no such repo."""
    from huggingface_hub.errors import HfHubHTTPError

    try:
        data = _attempt(lambda: _api_request("GET", _api_url(endpoint, source, "refs"), endpoints),
                        endpoints).json()
    except (HfHubHTTPError, _EndpointDown):
        return None
    return [ref["name"] for group in ("branches", "tags") for ref in data.get(group) or []]


def _classify_not_found(source: HfSource, endpoint: str, endpoints: Endpoints,
                        error: BaseException) -> SourceError:
    """Tell "no such repo" from "no such revision".

    The hub answers 404 RevisionNotFound for a bad revision, but mirrors differ: olah answers
    401 "Repository not found" for an unknown branch and 500 for an unknown commit. So when the
    answer is ambiguous, ask for the repo's refs: if it has any, the revision is what is wrong.
    """
    from huggingface_hub.errors import RevisionNotFoundError as HfRevisionNotFound

    data = dict(repo_id=source.repo_id, revision=source.revision, endpoint=endpoint)
    refs = None if isinstance(error, HfRevisionNotFound) else _refs(source, endpoint, endpoints)
    status = _status(error)
    if refs is None and status is not None and status >= 500:
        raise _EndpointDown(f"HTTP {status} from the server")  # broken, not "no such repo"
    if isinstance(error, HfRevisionNotFound) or refs is not None:
        known = f" (branches and tags there: {', '.join(refs)})" if refs else ""
        return _with_data(RevisionNotFoundError(
            f"{source.repo_id} has no revision '{source.revision}' at {plain_url(endpoint)}{known}",
            source=str(source), endpoints=[endpoint],
            hint="fix the part after '@' in `source:`: a commit sha (40 hex), a branch or a tag "
                 "of that repo",
        ), **data)
    return _with_data(RepoNotFoundError(
        f"{plain_url(endpoint)} has no repository {source.repo_id} (asked for revision '{source.revision}', "
        f"HTTP {status})",
        source=str(source), endpoints=[endpoint],
        hint="check the repo id in `source:`; for a private or gated repo set HF_TOKEN to a "
             "token with access; a mirror must hold the repo too",
    ), **data)


def _model_info(source: HfSource, endpoint: str, endpoints: Endpoints):
    from huggingface_hub import HfApi

    api = HfApi(endpoint=endpoint, token=endpoints.token)
    info_of = {"model": api.model_info, "dataset": api.dataset_info, "space": api.space_info}
    return info_of[source.repo_type](source.repo_id, revision=source.revision,
                                     timeout=endpoints.timeout, files_metadata=True)


def _paths_info(source: HfSource, endpoint: str, commit: str, names: Sequence[str],
                endpoints: Endpoints) -> dict[str, dict]:
    """Sizes and LFS hashes per path, for endpoints whose repo info omits them (olah does)."""
    from huggingface_hub.errors import HfHubHTTPError

    url = _api_url(endpoint, source, f"paths-info/{quote(commit, safe='')}")
    try:
        response = _attempt(lambda: _api_request(
            "POST", url, endpoints, data={"paths": list(names), "expand": False}), endpoints)
        return {item["path"]: item for item in response.json() if item.get("type") == "file"}
    except (HfHubHTTPError, _EndpointDown, ValueError, KeyError, TypeError):
        return {}  # sizes stay unknown; the store measures and hashes the files itself


def _remote_files(source: HfSource, endpoint: str, info, endpoints: Endpoints) -> tuple[RemoteFile, ...]:
    siblings = list(info.siblings or [])
    known = {s.rfilename: (s.size, getattr(s.lfs, "sha256", None) if s.lfs else None) for s in siblings}
    if any(size is None for size, _ in known.values()):
        for path, item in _paths_info(source, endpoint, info.sha, list(known), endpoints).items():
            lfs = item.get("lfs") or {}
            size = lfs.get("size", item.get("size"))
            known[path] = (size, lfs.get("sha256") or lfs.get("oid"))
    return tuple(RemoteFile(name, size, sha if sha and SHA256_RE.match(sha) else None)
                 for name, (size, sha) in sorted(known.items()))


def _resolve_online(source: HfSource, endpoints: Endpoints) -> ResolvedSource:
    from huggingface_hub.errors import HfHubHTTPError

    def ask(endpoint: str):
        try:
            return _model_info(source, endpoint, endpoints)
        except json.JSONDecodeError as error:  # a captive portal, or a web server that is no hub
            raise _EndpointDown(f"answered, but not like a Hugging Face hub API ({error})") from None
        except HfHubHTTPError as error:
            status = _status(error)
            if status in (401, 404) or (status is not None and status >= 500):
                raise _classify_not_found(source, endpoint, endpoints, error) from None
            raise _with_data(SourceError(
                endpoints.scrub(f"{endpoint} refused {source}: HTTP {status}: {error}"),
                source=str(source), endpoints=[endpoint],
                hint="for a gated repo accept its terms on the hub and set HF_TOKEN",
            ), repo_id=source.repo_id, revision=source.revision, endpoint=endpoint) from None

    info, endpoint = _each_endpoint(source, endpoints.urls, endpoints, ask)
    if not info.sha or not COMMIT_RE.match(info.sha):
        raise SourceError(f"{plain_url(endpoint)} did not report the commit of {source}",
                          source=str(source), endpoints=[endpoint],
                          hint="the endpoint may not be a Hugging Face compatible hub; check HF_ENDPOINT")
    files = _remote_files(source, endpoint, info, endpoints)
    return ResolvedSource(source=source, revision=info.sha, endpoint=endpoint, files=files)


# --------------------------------------------------------------------------- hub: offline (cache)


def _storage_folder(source: HfSource, cache_dir: Path) -> Path:
    from huggingface_hub.file_download import repo_folder_name

    return cache_dir / repo_folder_name(repo_id=source.repo_id, repo_type=source.repo_type)


def _cached_commit(source: HfSource, storage: Path) -> str | None:
    """The commit the revision names: itself when pinned, else what the cache's refs/ recorded."""
    if source.is_pinned:
        return source.revision
    ref = storage / "refs" / source.revision
    if ref.is_file():
        commit = ref.read_text().strip()
        return commit if COMMIT_RE.match(commit) else None
    return None


def _resolve_cached(source: HfSource, cache_dir: Path) -> ResolvedSource:
    storage = _storage_folder(source, cache_dir)
    commit = _cached_commit(source, storage)
    snapshot = storage / "snapshots" / commit if commit else None
    if snapshot is None or not snapshot.is_dir():
        raise NotInCacheError(source, cache_dir)
    # The snapshot lists only the files downloaded before: a partial view of the repo.
    files = tuple(RemoteFile(name=p.relative_to(snapshot).as_posix(), size=p.stat().st_size)
                  for p in _walk_files(snapshot))
    return ResolvedSource(source=source, revision=commit, endpoint=None, files=files)


def resolve(source: HfSource | LocalSource, endpoints: Endpoints, *, offline: bool,
            cache_dir: Path | None = None) -> ResolvedSource:
    """Pin ``source`` down: its commit (hub) and the files it holds.

    Offline, a hub source is looked up in the Hugging Face cache only (no socket is opened).
    ``cache_dir`` overrides the cache location (default: HF_HUB_CACHE / HF_HOME, read now).
    """
    if isinstance(source, LocalSource):
        return _resolve_local(source)
    if offline:
        return _resolve_cached(source, Path(cache_dir) if cache_dir else hf_cache_dir())
    return _resolve_online(source, endpoints)


# --------------------------------------------------------------------------- fetch


def _place(origin: Path, target: Path) -> Path:
    """Put a private copy of ``origin``'s bytes at ``target``, atomically (see ``private_copy``)."""
    return private_copy(Path(os.path.realpath(origin)), target)


def _already_there(target: Path, remote: RemoteFile | None) -> bool:
    return (remote is not None and remote.size is not None and target.is_file()
            and target.stat().st_size == remote.size)


# A local copy this large gets a progress bar (when bars are on): a few hundred MB of weights
# take seconds to copy, and a silent terminal looks hung.
LOCAL_PROGRESS_BYTES = 8 * 1024 * 1024
_COPY_CHUNK = 4 * 1024 * 1024


def _fetch_local(resolved: ResolvedSource, names: Sequence[str], dest: Path,
                 progress: bool = False) -> dict[str, Path]:
    root = _local_folder(resolved.source)
    placed, todo = {}, []
    for name in names:
        origin = root / _check_name(name, resolved.source)
        if not origin.is_file():
            raise _missing_file_error(resolved, name, f"local folder {root}")
        _refuse_escaping_link(root, name, resolved.source)
        target = dest / name
        if _already_there(target, RemoteFile(name, origin.stat().st_size)):
            placed[name] = target
        else:
            todo.append((name, origin, target))
    total = sum(origin.stat().st_size for _, origin, _ in todo)
    if not progress or total < LOCAL_PROGRESS_BYTES:
        placed.update((name, _place(origin, target)) for name, origin, target in todo)
        return placed
    from tqdm.auto import tqdm

    # A private copy (the loader would detach a hard link right after anyway), with a bar.
    with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
              desc=f"copying {root.name}", leave=False) as bar:
        for name, origin, target in todo:
            placed[name] = _copy_with_progress(origin, target, bar.update)
    return placed


def _copy_with_progress(origin: Path, target: Path, advance) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.partial")
    partial.unlink(missing_ok=True)
    with open(os.path.realpath(origin), "rb") as source, open(partial, "wb") as sink:
        while chunk := source.read(_COPY_CHUNK):
            sink.write(chunk)
            advance(len(chunk))
    os.replace(partial, target)
    return target


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


def _from_cache(source: HfSource, commit: str, name: str, cache_dir: Path) -> Path | None:
    """The cached copy of ``name`` at ``commit``, without touching the network."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    try:
        return Path(hf_hub_download(source.repo_id, name, repo_type=source.repo_type, revision=commit,
                                    cache_dir=cache_dir, local_files_only=True))
    except (EntryNotFoundError, FileNotFoundError):
        return None


def _sound_or_evicted(cached: Path | None, remote: RemoteFile | None) -> Path | None:
    """``cached``, unless it contradicts what the hub recorded or its own name: then evict it.

    huggingface_hub does not hash what it downloads or serves from its cache, so a transfer
    corrupted on the way, or a cached file edited in place, stays there; reusing it would
    fail (or poison) every later sync. A cache hit is checked against the size and sha256
    the hub recorded and against the hash its blob is named by; a mismatch evicts the
    snapshot link and its blob, so the file is downloaded afresh (online) or reported missing
    (offline). Only cache hits pay this hash; fresh downloads are hashed once, by the store.
    """
    if cached is None:
        return None
    blob = Path(os.path.realpath(cached))
    sound = blob.is_file()
    if sound and remote is not None and remote.size is not None:
        sound = blob.stat().st_size == remote.size
    if sound and remote is not None and remote.sha256:
        sound = sha256_file(blob) == remote.sha256.lower()
        if sound and blob.name.lower() == remote.sha256.lower():
            return cached  # already hashed against its name
    if sound:
        sound = blob_matches_its_name(blob) is not False
    if sound:
        return cached
    for path in (cached, blob):
        with contextlib.suppress(OSError):
            path.unlink()
    return None


def _known_absent(source: HfSource, commit: str, name: str, cache_dir: Path) -> bool:
    """huggingface_hub records files a hub said do not exist under .no_exist/<commit>/."""
    return (_storage_folder(source, cache_dir) / ".no_exist" / commit / name).exists()


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
            except _http().TransportError as error:
                # huggingface_hub already retried the transfer (resuming with Range) five
                # times; retrying all of that again here would only multiply the wait.
                reason = _unreachable_reason(error, endpoints.timeout)
                raise _EndpointDown(f"transfer of '{name}' failed: {reason}") from None
        except LocalEntryNotFoundError as error:
            # huggingface_hub's own request failed after our probe passed: the endpoint went away.
            raise _EndpointDown(f"download failed: {error}") from None
        except EntryNotFoundError:  # the hub answered 404 for this file
            raise _missing_file_error(resolved, name, f"{where} at {plain_url(endpoint)}") from None
        except HfHubHTTPError as error:
            raise _with_data(SourceError(
                endpoints.scrub(f"{endpoint} failed to serve '{name}' of {where}: {error}"),
                source=str(source), endpoints=[endpoint],
                hint="retry later or try another mirror (HF_ENDPOINT / `mirrors:`)",
            ), file=name, endpoint=endpoint) from None

    path, _ = _each_endpoint(f"'{name}' of {where}", endpoints.starting_with(resolved.endpoint),
                             endpoints, get)
    return path


def _record_ref(resolved: ResolvedSource, cache_dir: Path) -> None:
    """Note branch -> commit in the cache's refs/, so an offline resolve of the branch works later."""
    source: HfSource = resolved.source
    if source.is_pinned or not resolved.revision or resolved.endpoint is None:
        return
    ref = _storage_folder(source, cache_dir) / "refs" / source.revision
    try:
        ref.parent.mkdir(parents=True, exist_ok=True)
        partial = ref.with_name(f".{ref.name}.{os.getpid()}.partial")
        partial.write_text(resolved.revision)
        os.replace(partial, ref)
    except OSError:
        pass  # a read-only cache: offline branch lookups will need the commit instead


def _fetch_hf(resolved: ResolvedSource, names: Sequence[str], dest: Path, endpoints: Endpoints,
              offline: bool, progress: bool, cache_dir: Path) -> dict[str, Path]:
    source: HfSource = resolved.source
    commit = resolved.revision
    if not commit:
        raise SourceError(f"{source} was not resolved to a commit", source=str(source),
                          hint="call resolve() first")
    placed = {}
    for name in names:
        _check_name(name, source)
        remote, target = resolved.file(name), dest / name
        if _already_there(target, remote):
            placed[name] = target
            continue
        if not resolved.from_cache and remote is None:
            raise _missing_file_error(resolved, name, f"{source.repo_id}@{commit} at {resolved.endpoint}")
        cached = _sound_or_evicted(_from_cache(source, commit, name, cache_dir), remote)
        if cached is None and offline:
            if _known_absent(source, commit, name, cache_dir):
                raise _missing_file_error(resolved, name, f"{source.repo_id}@{commit} (HF cache)")
            raise _with_data(NotInCacheError(source, cache_dir, missing=name), file=name)
        if cached is None:
            cached = _download(resolved, name, endpoints, cache_dir, progress)
        placed[name] = _place(cached, target)
    if not offline:
        _record_ref(resolved, cache_dir)
    return placed


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
        return _fetch_local(resolved, names, dest, progress)
    cache = Path(cache_dir) if cache_dir else hf_cache_dir()
    return _fetch_hf(resolved, names, dest, endpoints, offline, progress, cache)
