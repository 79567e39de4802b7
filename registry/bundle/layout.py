"""What a bundle holds (member names, format version, limits) and how its registry.yaml is written."""

from __future__ import annotations

from typing import Sequence

import yaml

from ..redact import redact_secrets
from ..spec import DEFAULT_FILES, Entry

BUNDLE_FORMAT = "registry-bundle"
BUNDLE_VERSION = 1
BUNDLE_JSON = "bundle.json"
REGISTRY_YAML = "registry.yaml"
OBJECTS = "objects"
# Bounds that keep a hostile or broken bundle from filling the disk or the memory.
DEFAULT_MAX_BYTES = 64 * 2**30
MAX_MEMBERS = 10_000
MAX_METADATA_BYTES = 16 * 2**20
REEXPORT_HINT = "export the bundle again on the source machine and copy it over once more"


def entry_data(entry: Entry, source: str) -> dict:
    """One entry as schema-1 YAML data; optional keys only when they say something."""
    data: dict[str, object] = {}
    if entry.display_name:
        data["display_name"] = entry.display_name
    if entry.description:
        data["description"] = entry.description
    data["source"] = source
    if entry.is_model:
        data["tokenizer"] = entry.tokenizer
        data["context_length"] = entry.context_length
    if entry.params is not None:
        data["params"] = entry.params.value if entry.params.exact else entry.params.text
    if entry.files != DEFAULT_FILES:
        data["files"] = list(entry.files)
    if entry.sha256:
        data["sha256"] = dict(entry.sha256)
    if entry.allow_pickle:
        data["allow_pickle"] = True
    if entry.config is not None:
        data["config"] = dict(entry.config)
    if entry.lineage is not None:
        data["lineage"] = dict(entry.lineage)
    return data


def render_registry(entries: Sequence[tuple[Entry, str]], header: str) -> str:
    # endpoint/mirrors are left out on purpose: overlaid on the target's own file they would
    # replace that machine's settings, and the bundled entries need no network anyway.
    data: dict[str, object] = {"schema": 1}
    for section, kind in (("tokenizers", "tokenizer"), ("models", "model")):
        chosen = {e.name: entry_data(e, source) for e, source in entries if e.kind == kind}
        if chosen:
            data[section] = chosen
    body = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False)
    return redact_secrets(header + body)
