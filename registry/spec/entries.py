"""What a parsed registry is made of: sources, entries and the registry itself (frozen attrs).

``RegistrySpec`` is what ``load_registry`` returns; every other part of the engine reads
entries through these classes, never through YAML.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Mapping

import attrs
from attrs import frozen

from ..errors import Location, Problem, UnavailableEntryError, UnknownEntryError

COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
DEFAULT_FILES = ("config.json", "model.safetensors")


@frozen
class HfSource:
    """A repository on a Hugging Face compatible hub, at a revision (branch, tag or commit)."""

    repo_id: str
    revision: str = "main"
    repo_type: str = "model"

    @property
    def is_pinned(self) -> bool:
        return bool(COMMIT_RE.match(self.revision))

    def __str__(self) -> str:
        return f"hf://{self.repo_id}@{self.revision}"


@frozen
class LocalSource:
    """A folder on this machine (absolute; relative paths in YAML resolve against the file)."""

    path: Path

    def __str__(self) -> str:
        return str(self.path)


Source = HfSource | LocalSource


@frozen
class ParamCount:
    """A declared parameter count: exact (``24741376``) or rounded (``"24.7M"``)."""

    value: int
    text: str
    exact: bool

    def matches(self, actual: int) -> bool:
        """True when ``actual`` rounds to the declared text (or equals it when exact)."""
        if self.exact:
            return actual == self.value
        return format_param_count(actual, like=self.text) == self.text

    def __str__(self) -> str:
        return self.text


PARAM_SUFFIXES = {"K": 10**3, "M": 10**6, "B": 10**9}


def format_param_count(count: int, like: str) -> str:
    """Render ``count`` with the suffix and number of decimals used in ``like`` ("24.7M")."""
    suffix = like[-1].upper()
    number = like[:-1]
    decimals = len(number.split(".")[1]) if "." in number else 0
    return f"{count / PARAM_SUFFIXES[suffix]:.{decimals}f}{like[-1]}"


@frozen
class Entry:
    """One artifact the registry knows: a model or a tokenizer.

    ``kind`` is the section it came from (``"model"`` or ``"tokenizer"``); a model names its
    tokenizer by entry name. ``source`` is None only for an unavailable entry without one.
    ``config`` is the expected ``config.json`` (checked at sync), ``sha256`` pins files by
    hash, ``files`` are the files to fetch and require, ``allow_pickle`` lets a legacy
    ``pytorch_model.bin`` through (loaded with ``weights_only=True`` only). ``lineage`` is
    what made the artifact (a fine-tune's base, data and settings): a plain mapping the engine
    carries and never interprets; the model family reads it (docs/ARCHITECTURE.md).
    """

    name: str
    kind: str = attrs.field(validator=attrs.validators.in_(("model", "tokenizer")))
    source: Source | None
    origin: Location
    tokenizer: str | None = None
    context_length: int | None = None
    params: ParamCount | None = None
    config: Mapping[str, object] | None = None
    display_name: str | None = None
    description: str | None = None
    available: bool = True
    reason: str | None = None
    sha256: Mapping[str, str] = attrs.field(factory=dict)
    files: tuple[str, ...] = DEFAULT_FILES
    allow_pickle: bool = False
    lineage: Mapping[str, object] | None = None
    # Which registry file defined the entry, for its ref in a shared store: the file's real
    # absolute path, or PACKAGED_REGISTRY_ID for the packaged default (whose path changes
    # with every install). None for an entry not read from a file.
    registry: str | None = attrs.field(default=None, eq=False)
    # The registry file whose entry of the same name this one replaces (an overlay: the
    # user's file or an import over the packaged one), so every face can say so; else None.
    replaces: str | None = attrs.field(default=None, eq=False)
    # Where each key's value sits in the YAML ("context_length", "config.d_model", ...), so a
    # later check (a config mismatch at sync) can point at the line to edit.
    locations: Mapping[str, Location] = attrs.field(factory=dict, eq=False, repr=False)

    @property
    def is_model(self) -> bool:
        return self.kind == "model"

    def location_of(self, key: str) -> Location:
        """Where ``key`` is set in the registry file, else where the entry starts."""
        return self.locations.get(key, self.origin)


@frozen
class RegistrySpec:
    """A parsed, validated registry: the packaged file overlaid by the user's, if any."""

    schema: int
    paths: tuple[str, ...]
    tokenizers: Mapping[str, Entry]
    models: Mapping[str, Entry]
    endpoint: str | None = None
    mirrors: tuple[str, ...] = ()
    # Things that are legal but probably not meant (an overlay entry named one letter away
    # from a packaged one adds a new entry instead of replacing it). Shown by `validate`.
    warnings: tuple[Problem, ...] = attrs.field(default=(), eq=False)

    @property
    def path(self) -> str:
        """The file that had the last word (the user's overlay, else the packaged default)."""
        return self.paths[-1]

    def entries(self) -> list[Entry]:
        return [*self.models.values(), *self.tokenizers.values()]

    def names(self) -> list[str]:
        return [entry.name for entry in self.entries()]

    def get(self, name: str) -> Entry:
        """The entry called ``name`` (model or tokenizer); a clear error with suggestions if none."""
        entry = self.models.get(name) or self.tokenizers.get(name)
        if entry is None:
            suggestions = difflib.get_close_matches(name, self.names(), n=3, cutoff=0.5)
            raise UnknownEntryError(name, suggestions, registry_path=self.path)
        return entry

    def get_available(self, name: str) -> Entry:
        entry = self.get(name)
        if not entry.available:
            alternatives = [e.name for e in self.models.values() if e.available]
            raise UnavailableEntryError(name, entry.reason, alternatives)
        return entry

    def tokenizer_of(self, model: Entry) -> Entry | None:
        return self.tokenizers.get(model.tokenizer) if model.tokenizer else None
