"""One registry file: its top level, its sections and each entry, read into a ``ParsedFile``.

An entry with any problem is left out (its draft's ``entry`` is None) after every problem in
it is recorded; cross-references between entries are checked later, over all files at once.
"""

from __future__ import annotations

import os
import urllib.parse
from pathlib import Path

import attrs
import yaml

from ..errors import Location, Problem
from .entries import DEFAULT_FILES, Entry
from .fields import FIELD_PARSERS
from .schema import (
    ENTRY_KEYS,
    ENTRY_NAME_RE,
    MODEL_ONLY_KEYS,
    PICKLE_SUFFIXES,
    REQUIRED_HINTS,
    REQUIRED_KEYS,
    SECTION_KINDS,
    SUPPORTED_SCHEMAS,
    TOP_LEVEL_KEYS,
)
from .yaml_nodes import INVALID, NodeReader, did_you_mean


@attrs.define
class _EntryDraft:
    """An entry as read from one file; ``entry`` is None when it had problems (already reported).
    ``reference`` is the tokenizer a model names, kept even for a broken entry so that a
    dangling reference is reported in the same run."""

    name: str
    kind: str
    origin: Location
    entry: Entry | None = None
    reference: tuple[str, Location] | None = None


@attrs.define
class ParsedFile:
    paths: tuple[str, ...]
    problems: list[Problem] = attrs.Factory(list)
    schema: int | None = None
    tokenizers: dict[str, _EntryDraft] = attrs.Factory(dict)
    models: dict[str, _EntryDraft] = attrs.Factory(dict)
    endpoint: str | None = None
    mirrors: tuple[str, ...] = ()
    declared: set[str] = attrs.Factory(set)  # top-level keys the file sets (overlay needs it)

    def section(self, name: str) -> dict[str, _EntryDraft]:
        return self.models if name == "models" else self.tokenizers


class FileParser(NodeReader):
    """Reads one registry file into a ``ParsedFile``, recording problems instead of raising."""

    def __init__(self, path: Path, package_dir: Path | None = None, registry_id: str | None = None):
        super().__init__(path, package_dir)
        self.registry_id = registry_id or os.path.realpath(self.path)
        self.result = ParsedFile(paths=(self.file,), problems=self.problems)

    # the file -------------------------------------------------------------------------------

    def parse(self) -> ParsedFile:
        root = self.compose()
        if root is not None:
            self._parse_top_level(root)
        return self.result

    def _parse_top_level(self, root: yaml.Node) -> None:
        items = self.mapping_items(
            root, None, "a registry file",
            hint="write `schema: 1` and `models:`/`tokenizers:` sections at the top level, not a list",
        )
        if items is None:
            return
        for key, key_node, value_node in items:
            if key not in TOP_LEVEL_KEYS:
                self._unknown_key(key_node, key, key, TOP_LEVEL_KEYS)
                continue
            self.result.declared.add(key)
            if key == "schema":
                self.result.schema = self._parse_schema(value_node)
            elif key in SECTION_KINDS:
                self._parse_section(key, value_node)
            elif key == "endpoint":
                self.result.endpoint = self._parse_url(value_node, "endpoint")
            else:
                self.result.mirrors = self._parse_mirrors(value_node)
        if "schema" not in self.result.declared:
            self.report(root, "schema", "the file does not say its schema version",
                        hint="add `schema: 1` as the first line")

    def _unknown_key(self, key_node: yaml.Node, key: str, field: str, allowed: tuple[str, ...]) -> None:
        guess = did_you_mean(key, allowed)
        hint = f"did you mean '{guess}'?" if guess else "the keys allowed here are " + ", ".join(allowed)
        self.report(key_node, field, f"unknown key '{key}'", hint=hint)

    def _parse_schema(self, node: yaml.Node) -> int | None:
        value = self.scalar(node, "schema", "a version number")
        supported = ", ".join(str(s) for s in SUPPORTED_SCHEMAS)
        if value is INVALID:
            return None
        if type(value) is not int:
            self.report(node, "schema", f"must be a whole number, got {self.describe(node)}",
                        hint="write `schema: 1`")
            return None
        if value not in SUPPORTED_SCHEMAS:
            self.report(node, "schema", f"unsupported schema {value}; this version reads schema {supported}",
                        hint="write `schema: 1`, or upgrade the tool if the file was written for a newer one")
            return None
        return value

    def _parse_url(self, node: yaml.Node, field: str) -> str | None:
        value = self.scalar(node, field, "an http(s) URL")
        if value is INVALID:
            return None
        parts = urllib.parse.urlsplit(str(value)) if isinstance(value, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
            self.report(node, field, f"must be an http(s) URL, got {self.describe(node)}",
                        hint="write it like https://hf-mirror.example.com")
            return None
        return value.rstrip("/")

    def _parse_mirrors(self, node: yaml.Node) -> tuple[str, ...]:
        if not isinstance(node, yaml.SequenceNode):
            self.report(node, "mirrors", f"must be a list of URLs, got {self.describe(node)}",
                        hint="write one `- https://...` line per mirror, in the order to try them")
            return ()
        urls = [self._parse_url(item, f"mirrors[{i}]") for i, item in enumerate(node.value)]
        return tuple(url for url in urls if url is not None)

    # sections and entries -------------------------------------------------------------------

    def _parse_section(self, section: str, node: yaml.Node) -> None:
        if isinstance(node, yaml.ScalarNode) and self._construct_quietly(node) is None:
            return  # `models:` with every entry commented out: an empty section
        items = self.mapping_items(node, section, f"the `{section}` section",
                                   hint=f"indent one `NAME:` block per entry under `{section}:`")
        for name, key_node, value_node in items or ():
            if not ENTRY_NAME_RE.match(name):
                self.report(key_node, f"{section}.{name}", f"'{name}' is not a valid entry name",
                            hint="start it with a letter or digit and use only letters, digits, "
                            "'.', '_' and '-' (e.g. my-model)")
                continue
            draft = self._parse_entry(section, name, key_node, value_node)
            self.result.section(section)[name] = draft

    def _parse_entry(self, section: str, name: str, name_node: yaml.Node, node: yaml.Node) -> _EntryDraft:
        kind = SECTION_KINDS[section]
        field = f"{section}.{name}"
        draft = _EntryDraft(name, kind, self.at(name_node))
        problems_before = len(self.result.problems)
        items = self.mapping_items(node, field, f"entry '{name}'",
                                   hint="give it keys such as `source:` on indented lines below its name")
        if items is None:
            return draft
        values: dict[str, object] = {}
        locations: dict[str, Location] = {}
        for key, key_node, value_node in items:
            if key not in ENTRY_KEYS[kind]:
                self._unknown_entry_key(kind, key_node, key, f"{field}.{key}")
                continue
            locations[key] = self.at(value_node)
            locations.update(self._sub_locations(key, value_node))
            value = FIELD_PARSERS[key](self, value_node, f"{field}.{key}")
            if value is not INVALID:
                values[key] = value
        present = {key for key, _, _ in items}
        # A misspelt required key (`contxt_length`) already got a "did you mean"; do not also
        # report the real one as missing.
        present |= {did_you_mean(key, ENTRY_KEYS[kind]) for key in present} - {None}
        self._check_required(kind, name, name_node, field, present, values, locations)
        self._check_files(field, values, locations)
        if "tokenizer" in values:
            draft.reference = (values["tokenizer"], locations["tokenizer"])
        if len(self.result.problems) == problems_before:
            values.setdefault("source", None)  # an unavailable entry may have none
            draft.entry = Entry(name=name, kind=kind, origin=draft.origin, locations=locations,
                                registry=self.registry_id, **values)
        return draft

    def _sub_locations(self, key: str, node: yaml.Node) -> dict[str, Location]:
        """``config.d_model`` -> where that value sits, so later checks can point at it."""
        if not isinstance(node, yaml.MappingNode):
            return {}
        return {f"{key}.{k.value}": self.at(v) for k, v in node.value if isinstance(k, yaml.ScalarNode)}

    def _unknown_entry_key(self, kind: str, key_node: yaml.Node, key: str, field: str) -> None:
        if kind == "tokenizer" and key in MODEL_ONLY_KEYS:
            self.report(key_node, field, f"'{key}' applies to models only, not tokenizers",
                        hint="remove it, or move this entry under `models:`")
            return
        self._unknown_key(key_node, key, field, ENTRY_KEYS[kind])

    def _check_required(self, kind: str, name: str, name_node: yaml.Node, field: str, present: set[str],
                        values: dict[str, object], locations: dict[str, Location]) -> None:
        # When `available` itself is malformed we cannot tell whether a source is needed: say nothing.
        available = values.get("available", None if "available" in present else True)
        for key in REQUIRED_KEYS[kind]:
            if key == "source" and available is not True:
                continue  # an unavailable entry may have nothing to fetch
            if key not in present:
                self.report(name_node, f"{field}.{key}", f"entry '{name}' lacks the required key '{key}'",
                            hint=REQUIRED_HINTS[key])
        if available is False and "reason" not in present:
            self.report(locations["available"], f"{field}.reason",
                        f"entry '{name}' is marked unavailable without a reason",
                        hint="add `reason: ...` telling users why and what to use instead")

    def _check_files(self, field: str, values: dict[str, object], locations: dict[str, Location]) -> None:
        files = values.get("files", DEFAULT_FILES)
        for file_name in values.get("sha256", {}):
            if file_name not in files:
                self.report(locations[f"sha256.{file_name}"], f"{field}.sha256.{file_name}",
                            f"pins '{file_name}', which is not among the files fetched ({', '.join(files)})",
                            hint="add it to `files:` or remove the pin")
        pickled = [name for name in files if name.endswith(PICKLE_SUFFIXES)]
        if pickled and values.get("allow_pickle") is not True:
            self.report(locations.get("files"), f"{field}.files",
                        f"lists pickle weights ({', '.join(pickled)}) without `allow_pickle: true`",
                        hint="convert them to model.safetensors, or opt in with `allow_pickle: true` "
                        "(they are then loaded with weights_only=True)")
