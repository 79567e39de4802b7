"""Resolving a hub source online: which commit a revision names, and the files there.

Every request is bounded (one short timeout, ``Endpoints.retries`` extra attempts on
connection failures only), and endpoints are tried in turn; "no such repo" is told from "no
such revision" even on mirrors that answer both alike.
"""

from __future__ import annotations

import json
import time
from typing import Callable, Sequence, TypeVar
from urllib.parse import quote

from ..errors import RepoNotFoundError, RevisionNotFoundError, SourceError
from ..spec import HfSource
from .endpoints import Endpoints, plain_url
from .failures import network_error, with_data
from .resolved import COMMIT_RE, SHA256_RE, RemoteFile, ResolvedSource

T = TypeVar("T")


def http_library():
    """The transport error base class of the HTTP library this huggingface_hub uses."""
    try:
        import httpx2 as http  # huggingface_hub >= 2
    except ImportError:  # pragma: no cover - huggingface_hub 1.x
        import httpx as http
    return http


def unreachable_reason(error: BaseException, timeout: float) -> str | None:
    """A short reason when ``error`` means "this endpoint did not answer"; None otherwise."""
    from huggingface_hub.errors import OfflineModeIsEnabled

    http = http_library()
    if isinstance(error, OfflineModeIsEnabled):
        return "huggingface_hub is in offline mode (HF_HUB_OFFLINE was set when it was imported)"
    if isinstance(error, http.TimeoutException):
        return f"no answer within {timeout:g} s"
    if isinstance(error, http.ConnectError):
        return f"connection failed: {error}"
    if isinstance(error, http.TransportError):
        return f"connection broken: {error}"
    return None


class EndpointDown(Exception):
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
            reason = unreachable_reason(error, endpoints.timeout)
            if reason is None:
                raise
            if attempt == endpoints.retries:
                raise EndpointDown(reason) from None
            time.sleep(0.2 * (attempt + 1))  # a short pause: a restarting proxy, a dropped keep-alive
    raise AssertionError("unreachable")


def each_endpoint(source: object, urls: Sequence[str], endpoints: Endpoints,
                  call: Callable[[str], T]) -> tuple[T, str]:
    """``call(url)`` on each endpoint in turn until one answers; NetworkError when none does."""
    failures: list[tuple[str, str]] = []
    for url in urls:
        try:
            return _attempt(lambda: call(url), endpoints), url
        except EndpointDown as down:
            failures.append((url, down.reason))
    raise network_error(source, failures, endpoints)


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
    except (HfHubHTTPError, EndpointDown):
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
        raise EndpointDown(f"HTTP {status} from the server")  # broken, not "no such repo"
    if isinstance(error, HfRevisionNotFound) or refs is not None:
        known = f" (branches and tags there: {', '.join(refs)})" if refs else ""
        return with_data(RevisionNotFoundError(
            f"{source.repo_id} has no revision '{source.revision}' at {plain_url(endpoint)}{known}",
            source=str(source), endpoints=[endpoint],
            hint="fix the part after '@' in `source:`: a commit sha (40 hex), a branch or a tag "
                 "of that repo",
        ), **data)
    return with_data(RepoNotFoundError(
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
    except (HfHubHTTPError, EndpointDown, ValueError, KeyError, TypeError):
        return {}  # sizes stay unknown; the store measures and hashes the files itself


def _remote_files(source: HfSource, endpoint: str, info, endpoints: Endpoints) -> tuple[RemoteFile, ...]:
    """Each file's size and recorded hash: an LFS file's sha256, else git's blob id (an LFS
    file's blob id is its pointer's, which says nothing of the content)."""
    known = {s.rfilename: _remote_file(s.rfilename, s.size, s.lfs, s.blob_id) for s in info.siblings or []}
    if any(f.size is None for f in known.values()):
        for path, item in _paths_info(source, endpoint, info.sha, list(known), endpoints).items():
            lfs = item.get("lfs") or None
            known[path] = _remote_file(path, lfs.get("size") if lfs else item.get("size"), lfs, item.get("oid"))
    return tuple(known[name] for name in sorted(known))


def _remote_file(name: str, size, lfs, blob_id) -> RemoteFile:
    """A RemoteFile from a hub's answer (``lfs`` a mapping or huggingface_hub's BlobLfsInfo)."""
    sha = (lfs.get("sha256") or lfs.get("oid")) if isinstance(lfs, dict) else getattr(lfs, "sha256", None)
    sha = sha if sha and SHA256_RE.match(str(sha)) else None
    blob = None if lfs or not blob_id or not COMMIT_RE.match(str(blob_id)) else str(blob_id)
    return RemoteFile(name, size, sha, blob)


def resolve_online(source: HfSource, endpoints: Endpoints) -> ResolvedSource:
    from huggingface_hub.errors import HfHubHTTPError

    def ask(endpoint: str):
        try:
            return _model_info(source, endpoint, endpoints)
        except json.JSONDecodeError as error:  # a captive portal, or a web server that is no hub
            raise EndpointDown(f"answered, but not like a Hugging Face hub API ({error})") from None
        except HfHubHTTPError as error:
            status = _status(error)
            if status in (401, 404) or (status is not None and status >= 500):
                raise _classify_not_found(source, endpoint, endpoints, error) from None
            raise with_data(SourceError(
                endpoints.scrub(f"{endpoint} refused {source}: HTTP {status}: {error}"),
                source=str(source), endpoints=[endpoint],
                hint="for a gated repo accept its terms on the hub and set HF_TOKEN",
            ), repo_id=source.repo_id, revision=source.revision, endpoint=endpoint) from None

    info, endpoint = each_endpoint(source, endpoints.urls, endpoints, ask)
    if not info.sha or not COMMIT_RE.match(info.sha):
        raise SourceError(f"{plain_url(endpoint)} did not report the commit of {source}",
                          source=str(source), endpoints=[endpoint],
                          hint="the endpoint may not be a Hugging Face compatible hub; check HF_ENDPOINT")
    files = _remote_files(source, endpoint, info, endpoints)
    return ResolvedSource(source=source, revision=info.sha, endpoint=endpoint, files=files)
