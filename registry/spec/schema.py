"""The shape of a schema-1 registry file: its keys, which are required, and how entries are named."""

from __future__ import annotations

import re

SUPPORTED_SCHEMAS = (1,)
REGISTRY_FILE_ENV = "KRONOS_REGISTRY_FILE"
REGISTRY_FILE_NAME = "models.yaml"
# The registry id of the packaged default file's entries (see Entry.registry).
PACKAGED_REGISTRY_ID = "packaged"

TOP_LEVEL_KEYS = ("schema", "tokenizers", "models", "endpoint", "mirrors")
SECTION_KINDS = {"tokenizers": "tokenizer", "models": "model"}
COMMON_KEYS = (
    "source", "params", "config", "display_name", "description",
    "available", "reason", "sha256", "files", "allow_pickle", "lineage",
)
MODEL_ONLY_KEYS = ("tokenizer", "context_length")
ENTRY_KEYS = {"model": COMMON_KEYS + MODEL_ONLY_KEYS, "tokenizer": COMMON_KEYS}
REQUIRED_KEYS = {"model": ("source", "tokenizer", "context_length"), "tokenizer": ("source",)}
REQUIRED_HINTS = {
    "source": "add `source: hf://ORG/REPO@REVISION` or `source: ./path/to/folder` "
    "(or mark it `available: false` with a `reason:`)",
    "tokenizer": "add `tokenizer: NAME`, naming an entry of the `tokenizers` section",
    "context_length": "add `context_length: N`, the longest context the model accepts (e.g. 512)",
}

ENTRY_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
# Weights that load through pickle: an entry lists them only with `allow_pickle: true`.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".ckpt")
