"""`source:` values: ``hf://ORG/REPO@REVISION``, ``package://FOLDER`` and local paths."""

from __future__ import annotations

import os
import re
from pathlib import Path

from attrs import frozen

from .entries import HfSource, LocalSource, Source
from .schema import REQUIRED_HINTS

_URL_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


class SourceSyntaxError(ValueError):
    """A `source:` value that is neither a valid ``hf://`` URI nor a local path."""

    def __init__(self, message: str, hint: str):
        super().__init__(message)
        self.message = message
        self.hint = hint


try:  # huggingface_hub's own parser, where the installed version has one
    from huggingface_hub.utils import parse_hf_uri as _hub_parse_hf_uri
except ImportError:  # pragma: no cover - older huggingface_hub
    _hub_parse_hf_uri = None


@frozen
class _HfUri:
    type: str
    id: str
    revision: str | None
    path_in_repo: str


_FALLBACK_HF_URI_RE = re.compile(
    r"^hf://(?:(?P<type>models|datasets|spaces)/)?(?P<id>[\w.-]+/[\w.-]+)"
    r"(?:@(?P<revision>[^/]+))?(?:/(?P<path>.*))?$"
)


def _parse_hf_uri(uri: str) -> _HfUri:
    """``hf://[TYPE/]ORG/REPO[@REVISION][/PATH]``; raises ValueError when malformed."""
    if _hub_parse_hf_uri is not None:
        parsed = _hub_parse_hf_uri(uri)
        return _HfUri(parsed.type, parsed.id, parsed.revision, parsed.path_in_repo or "")
    match = _FALLBACK_HF_URI_RE.match(uri)
    if not match:
        raise ValueError(f"Invalid HF URI '{uri}'. Expected hf://[<TYPE>/]<ORG>/<REPO>[@<REVISION>]")
    kind = (match["type"] or "models").rstrip("s")
    return _HfUri(kind, match["id"], match["revision"], match["path"] or "")


_HF_FORM_HINT = "write it as hf://ORG/REPO@REVISION (e.g. hf://my-org/my-model@main)"


PACKAGE_SCHEME = "package://"


def parse_source(text: str, *, base_dir: Path, package_dir: Path | None = None) -> Source:
    """Turn a `source:` value into a Source. Relative local paths resolve against ``base_dir``
    (the real folder of the YAML file that names them); ``~`` is expanded.

    ``package://PATH`` names a folder shipped beside the packaged registry file
    (``package_dir``, else ``base_dir``): it resolves the same from the packaged file, a
    copy of it in a project, or a symlink to it, wherever the package is installed.
    """
    text = text.strip()
    if not text:
        raise SourceSyntaxError("is empty", hint=REQUIRED_HINTS["source"])
    if text.startswith("hf://"):
        return _parse_hf_source(text)
    if text.startswith(PACKAGE_SCHEME):
        return _parse_package_source(text, package_dir or base_dir)
    if _URL_SCHEME_RE.match(text):
        raise SourceSyntaxError(
            f"unsupported source '{text}': only hf:// URIs, package:// folders and local folders are supported",
            hint=_web_url_hint(text),
        )
    path = Path(text).expanduser()
    if not path.is_absolute():
        path = base_dir / path
    return LocalSource(Path(os.path.normpath(path)))


def _parse_package_source(text: str, package_dir: Path) -> LocalSource:
    relative = text[len(PACKAGE_SCHEME):].strip("/")
    parts = Path(relative).parts
    if not relative or ".." in parts or "\\" in relative:
        raise SourceSyntaxError(
            f"'{text}' does not name a folder inside the package",
            hint="write package://FOLDER/INSIDE/THE/PACKAGE (no '..'), e.g. package://data/demo/model",
        )
    return LocalSource(Path(os.path.normpath(package_dir / relative)))


def _parse_hf_source(text: str) -> HfSource:
    try:
        uri = _parse_hf_uri(text)
    except ValueError as error:
        raise SourceSyntaxError(f"invalid hf:// source: {error}".rstrip(), hint=_HF_FORM_HINT) from None
    revision = uri.revision or "main"
    if uri.type != "model":
        raise SourceSyntaxError(
            f"'{text}' is a {uri.type} repository; only model repositories are supported",
            hint=f"point it at the model repository: hf://ORG/REPO@{revision}",
        )
    if uri.path_in_repo:
        raise SourceSyntaxError(
            f"'{text}' names '{uri.path_in_repo}' inside the repository; a source is a whole repository",
            hint=f"write hf://{uri.id}@{revision}, and list the files under `files:`",
        )
    return HfSource(repo_id=uri.id, revision=revision, repo_type="model")


def _web_url_hint(text: str) -> str:
    """For a pasted hub web URL, the hf:// form to write instead."""
    try:
        uri = _parse_hf_uri(text)
    except ValueError:
        return "use hf://ORG/REPO@REVISION for a hub repository, or a path to a local folder"
    return f"write it as hf://{uri.id}@{uri.revision or 'main'}"
