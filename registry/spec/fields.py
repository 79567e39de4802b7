"""Reading each key of an entry: (reader, node, field) -> value, or INVALID after reporting.

``FIELD_PARSERS`` maps every entry key to its reader; a value that fails is reported where
it sits in the file, with a hint, and the entry is then left out of the result.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Callable

import yaml

from .entries import PARAM_SUFFIXES, ParamCount
from .schema import ENTRY_NAME_RE
from .source_syntax import SourceSyntaxError, parse_source
from .yaml_nodes import INVALID, NodeReader

_PARAMS_TEXT_RE = re.compile(r"^(\d+(?:\.\d+)?)([KMB])$", re.IGNORECASE)
_SHA256_RE = re.compile(r"^[0-9a-fA-F]{64}$")


def _text(reader: NodeReader, node: yaml.Node, field: str) -> object:
    value = reader.scalar(node, field, "text")
    if value is INVALID:
        return INVALID
    if value is None or not node.value.strip():
        reader.report(node, field, "is empty", hint="write some text, or remove the key")
        return INVALID
    return node.value  # as written: `description: no` is text here, not the boolean false


def _flag(reader: NodeReader, node: yaml.Node, field: str) -> object:
    value = reader.scalar(node, field, "true or false")
    if value is INVALID or isinstance(value, bool):
        return value
    key = field.rsplit(".", 1)[-1]
    reader.report(node, field, f"must be true or false, got {reader.describe(node)}",
                  hint=f"write `{key}: true` or `{key}: false`, without quotes")
    return INVALID


def _source(reader: NodeReader, node: yaml.Node, field: str) -> object:
    text = _text(reader, node, field)
    if text is INVALID:
        return INVALID
    try:
        return parse_source(text, base_dir=reader.base_dir, package_dir=reader.package_dir)
    except SourceSyntaxError as error:
        reader.report(node, field, error.message, hint=error.hint)
        return INVALID


def _entry_reference(reader: NodeReader, node: yaml.Node, field: str) -> object:
    text = _text(reader, node, field)
    if text is not INVALID and not ENTRY_NAME_RE.match(text):
        reader.report(node, field, f"'{text}' is not a valid entry name",
                      hint="name an entry of the `tokenizers` section")
        return INVALID
    return text


def _context_length(reader: NodeReader, node: yaml.Node, field: str) -> object:
    value = reader.scalar(node, field, "a positive whole number")
    if value is INVALID:
        return INVALID
    if type(value) is not int or value <= 0:
        reader.report(node, field, f"must be a positive whole number, got {reader.describe(node)}",
                      hint="write a number of time steps without quotes, e.g. `context_length: 512`")
        return INVALID
    return value


def _params(reader: NodeReader, node: yaml.Node, field: str) -> object:
    value = reader.scalar(node, field, "a parameter count")
    if value is INVALID:
        return INVALID
    count = _param_count(value)
    if count is None:
        reader.report(node, field, f"must be a positive whole number or a rounded count like '24.7M', "
                      f"got {reader.describe(node)}",
                      hint="write the exact count (`params: 24741376`) or a rounded one with K, M or B "
                      "(`params: 24.7M`)")
        return INVALID
    return count


def _config(reader: NodeReader, node: yaml.Node, field: str) -> object:
    items = reader.mapping_items(node, field, "`config`",
                                 hint="write the expected config.json keys as `key: value` lines")
    if items is None:
        return INVALID
    config: dict[str, object] = {}
    for key, _, value_node in items:
        value = reader.scalar(value_node, f"{field}.{key}", "a single value (number, true/false, text)")
        if value is INVALID:
            continue
        if value is not None and not isinstance(value, (bool, int, float, str)):
            reader.report(value_node, f"{field}.{key}", f"must be a number, true/false, text or null, "
                          f"got '{value_node.value}'", hint="quote it if it is meant as text")
            continue
        config[key] = value
    return config if len(config) == len(items) else INVALID


def _sha256(reader: NodeReader, node: yaml.Node, field: str) -> object:
    items = reader.mapping_items(node, field, "`sha256`",
                                 hint="write one `FILE_NAME: HEX_DIGEST` line per pinned file")
    if items is None:
        return INVALID
    pins: dict[str, str] = {}
    for file_name, key_node, value_node in items:
        name_ok = _check_file_name(reader, key_node, file_name, f"{field}.{file_name}")
        digest = reader.scalar(value_node, f"{field}.{file_name}", "a sha256 hex digest")
        if digest is INVALID:
            continue
        if not _SHA256_RE.match(value_node.value):
            reader.report(value_node, f"{field}.{file_name}", f"'{value_node.value}' is not a sha256 digest",
                          hint="write the 64 hex characters printed by `sha256sum FILE`")
        elif name_ok:
            pins[file_name] = value_node.value.lower()
    return pins if len(pins) == len(items) else INVALID


def _plain_mapping(reader: NodeReader, node: yaml.Node, field: str) -> object:
    """Any mapping of plain YAML values (nested mappings and lists too), kept as data."""
    if not isinstance(node, yaml.MappingNode):
        key = field.rsplit(".", 1)[-1]
        reader.report(node, field, f"must be a mapping, got {reader.describe(node)}",
                      hint=f"write `{key}:` followed by indented `key: value` lines")
        return INVALID
    try:
        return reader.construct(node)
    except (yaml.YAMLError, ValueError) as error:
        reader.report(node, field, f"does not parse ({error})", hint="write plain YAML values")
        return INVALID


def _files(reader: NodeReader, node: yaml.Node, field: str) -> object:
    if not isinstance(node, yaml.SequenceNode) or not node.value:
        reader.report(node, field, f"must be a non-empty list of file names, got {reader.describe(node)}",
                      hint="write one `- FILE_NAME` line per file, e.g. `- config.json`")
        return INVALID
    names: list[str] = []
    for index, item in enumerate(node.value):
        item_field = f"{field}[{index}]"
        if reader.scalar(item, item_field, "a file name") is INVALID:
            continue
        if not _check_file_name(reader, item, item.value, item_field):
            continue
        if item.value in names:
            reader.report(item, item_field, f"'{item.value}' is listed twice", hint="remove the repeat")
            continue
        names.append(item.value)
    return tuple(names) if len(names) == len(node.value) else INVALID


def _check_file_name(reader: NodeReader, node: yaml.Node, name: str, field: str) -> bool:
    # The name becomes a path inside the store: it must never climb out of the artifact's folder.
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        reader.report(node, field, f"'{name}' is not a plain file name",
                      hint="name a file at the top of the repository or folder (no '/', no '..')")
        return False
    return True


FIELD_PARSERS: dict[str, Callable[[NodeReader, yaml.Node, str], object]] = {
    "source": _source,
    "tokenizer": _entry_reference,
    "context_length": _context_length,
    "params": _params,
    "config": _config,
    "display_name": _text,
    "description": _text,
    "reason": _text,
    "available": _flag,
    "allow_pickle": _flag,
    "sha256": _sha256,
    "files": _files,
    "lineage": _plain_mapping,
}


def _param_count(value: object) -> ParamCount | None:
    """An exact int (``24741376``, also as text) or a rounded text (``"24.7M"``); None if neither."""
    if type(value) is int:
        return ParamCount(value, str(value), True) if value > 0 else None
    if not isinstance(value, str):
        return None
    text = value.strip()
    if text.isdigit() and int(text) > 0:
        return ParamCount(int(text), text, True)
    match = _PARAMS_TEXT_RE.match(text)
    if not match:
        return None
    amount = int(Decimal(match[1]) * PARAM_SUFFIXES[match[2].upper()])
    return ParamCount(amount, text, False) if amount > 0 else None
