"""Names in the store: artifact ids (one safe folder name each) and ref namespaces.

An id is deterministic: a hub repo at a commit always gets the same one (so a repo shared by
several entries is stored once), a local folder gets one from its content (so a folder whose
files change gets a new one).
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import PurePath
from typing import Mapping

from ..errors import InputDataError

ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


def validate_id(artifact_id: str) -> str:
    """An artifact id is one safe folder name: no separators, no '..', no leading dot."""
    if not isinstance(artifact_id, str) or not ID_RE.match(artifact_id) or ".." in artifact_id:
        raise InputDataError(
            f"'{artifact_id}' is not a valid artifact id", field="artifact_id",
            hint="artifact ids look like hf--ORG--REPO--<commit> or local--NAME--<digest>; "
            "list them with `kronos-registry list`",
        )
    return artifact_id


def safe_component(text: str) -> str:
    """``text`` made safe as a folder or file name; a short hash keeps rewritten names distinct."""
    cleaned = _UNSAFE_CHARS.sub("_", text).strip("._") or "_"
    cleaned = cleaned.replace("..", "_")
    if cleaned != text:
        cleaned += "-" + hashlib.sha256(text.encode()).hexdigest()[:8]
    return cleaned


def hf_artifact_id(repo_id: str, commit: str, repo_type: str = "model") -> str:
    """Deterministic per repo and commit, so one repo shared by several entries is stored once."""
    prefix = "hf" if repo_type == "model" else f"hf-{safe_component(repo_type)}"
    parts = [safe_component(part) for part in repo_id.split("/")]
    return validate_id("--".join([prefix, *parts, safe_component(commit)]))


def content_digest(hashes: Mapping[str, str]) -> str:
    """A digest over file names and their sha256: equal content, equal digest."""
    digest = hashlib.sha256()
    for name in sorted(hashes):
        digest.update(f"{name}\0{hashes[name].lower()}\n".encode())
    return digest.hexdigest()


def local_artifact_id(entry_name: str, hashes: Mapping[str, str]) -> str:
    """Content-addressed: a local folder whose files change gets a new id."""
    return validate_id(f"local--{safe_component(entry_name)}--{content_digest(hashes)[:16]}")


def ref_namespace(registry: str | None) -> str | None:
    """The folder under ``refs/`` holding the refs of one registry file; None: flat (legacy).

    An absolute path becomes its folder and file name (for people reading the store) plus a
    digest of the whole path (so two projects' ``models.yaml`` never share a folder); any
    other id (the packaged file's ``packaged``) is used as it is, made safe.
    """
    if registry is None:
        return None
    if not os.path.isabs(registry):
        return safe_component(registry)
    path = PurePath(registry)
    label = _UNSAFE_CHARS.sub("_", f"{path.parent.name}-{path.name}").replace("..", "_").strip("._-")[:48]
    return f"{label or 'registry'}-{hashlib.sha256(registry.encode()).hexdigest()[:16]}"
