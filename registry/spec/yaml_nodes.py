"""Reading one YAML file node by node, every mistake recorded with file:line:column.

``NodeReader`` composes the file (refusing runaway nesting), reads single values and
mappings (a duplicate key is a mistake here, not silently the last one), and records each
problem instead of raising, so one run reports every mistake in the file.
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path
from typing import Iterable

import yaml

from ..errors import Location, Problem
from .schema import REGISTRY_FILE_ENV

# PyYAML follows YAML 1.1, where `1e-5` (no dot) is a string; config.json would hold a number.
_BARE_EXPONENT_RE = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")
_STR_TAG = "tag:yaml.org,2002:str"
_MERGE_TAG = "tag:yaml.org,2002:merge"

INVALID = object()  # a value that failed validation; its problem is already recorded

# A registry file needs five levels (models > entry > config > key); PyYAML composes nested
# nodes recursively, so a 5,000-deep `[[[...]]]` would end in RecursionError. Refuse far
# deeper than any real file, far shallower than Python's recursion limit.
MAX_NESTING = 32


class _TooDeep(Exception):
    def __init__(self, mark: yaml.Mark):
        super().__init__("nested too deeply")
        self.mark = mark


class _DepthLimitedLoader(yaml.SafeLoader):
    """SafeLoader that stops composing at ``MAX_NESTING`` levels of lists and mappings."""

    _depth = 0

    def compose_node(self, parent, index):
        self._depth += 1
        try:
            if self._depth > MAX_NESTING:
                raise _TooDeep(self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    """The closest candidate to a misspelt ``word``, if one is close enough to be a typo."""
    matches = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None


def _join(prefix: str | None, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


class NodeReader:
    """One YAML file being read: where its values are, and the problems found in it."""

    def __init__(self, path: Path, package_dir: Path | None = None):
        self.path = Path(path)
        self.file = str(path)
        # The real folder: ./models.yaml may be a symlink to a file whose relative sources
        # point beside it, not beside the link.
        self.base_dir = Path(os.path.realpath(self.path)).parent
        self.package_dir = package_dir
        self.problems: list[Problem] = []
        self._constructor = yaml.constructor.SafeConstructor()

    # reporting ------------------------------------------------------------------------------

    def at(self, node: yaml.Node) -> Location:
        mark = node.start_mark
        return Location(self.file, mark.line + 1, mark.column + 1)

    def report(self, where: "yaml.Node | Location | None", field: str | None, message: str,
               hint: str | None = None) -> None:
        location = self.at(where) if isinstance(where, yaml.Node) else where or Location(self.file)
        self.problems.append(
            Problem(message, file=self.file, field=field, hint=hint, location=location)
        )

    def describe(self, node: yaml.Node) -> str:
        """How a value reads to a person: 'the text '512'', 'a list', ..."""
        if isinstance(node, yaml.MappingNode):
            return "a mapping"
        if isinstance(node, yaml.SequenceNode):
            return "a list"
        value = self._construct_quietly(node)
        if value is None:
            return "nothing (null)"
        if isinstance(value, bool):
            return f"the true/false value {node.value}"
        if isinstance(value, (int, float)):
            return f"the number {node.value}"
        return f"the text '{node.value}'"

    # reading values -------------------------------------------------------------------------

    def _construct_quietly(self, node: yaml.ScalarNode) -> object:
        if node.tag == _STR_TAG and node.style is None and _BARE_EXPONENT_RE.match(node.value):
            return float(node.value)
        try:
            return self._constructor.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError):
            return INVALID

    def construct(self, node: yaml.Node) -> object:
        """The plain Python value of any node (mappings and lists too); YAMLError if it has none."""
        return self._constructor.construct_object(node, deep=True)

    def scalar(self, node: yaml.Node, field: str, expected: str) -> object:
        """The Python value of a single-value node, or INVALID (reported) for a list/mapping."""
        if not isinstance(node, yaml.ScalarNode):
            key = field.rsplit(".", 1)[-1]
            self.report(node, field, f"must be {expected}, got {self.describe(node)}",
                        hint=f"write a single value after `{key}:`, not a list or a nested block")
            return INVALID
        value = self._construct_quietly(node)
        if value is INVALID:
            self.report(node, field, f"cannot read the value '{node.value}' (tag {node.tag})",
                        hint=f"write {expected} without YAML tags")
        return value

    def mapping_items(self, node: yaml.Node, field: str | None, what: str,
                      hint: str | None = None) -> list[tuple[str, yaml.Node, yaml.Node]] | None:
        """The (key, key node, value node) triples of a mapping, duplicates reported and dropped.
        PyYAML would silently keep the last of two equal keys; here it is a mistake."""
        if not isinstance(node, yaml.MappingNode):
            self.report(node, field, f"{what} must be a mapping of `key: value` lines, "
                        f"got {self.describe(node)}", hint=hint)
            return None
        first_line: dict[str, int] = {}
        items = []
        for key_node, value_node in node.value:
            key_field = _join(field, getattr(key_node, "value", "?"))
            if not isinstance(key_node, yaml.ScalarNode):
                self.report(key_node, field, f"a key must be a plain name, got {self.describe(key_node)}")
                continue
            if key_node.tag == _MERGE_TAG:
                self.report(key_node, field, "YAML merge keys ('<<') are not supported",
                            hint="write the keys out in full")
                continue
            key = key_node.value
            if key in first_line:
                self.report(key_node, key_field, f"duplicate key '{key}' (first set on line "
                            f"{first_line[key]})", hint="keep one of them; YAML would silently use the last")
                continue
            first_line[key] = key_node.start_mark.line + 1
            items.append((key, key_node, value_node))
        return items

    def compose(self) -> yaml.Node | None:
        try:
            text = self.path.read_bytes().decode("utf-8")
        except FileNotFoundError:
            self.report(None, None, "the registry file does not exist",
                        hint="check the path given with --registry or $" + REGISTRY_FILE_ENV)
            return None
        except UnicodeDecodeError as error:
            self.report(None, None, f"the file is not UTF-8 text (bad byte at offset {error.start})",
                        hint="save it as UTF-8")
            return None
        except OSError as error:
            self.report(None, None, f"cannot read the file: {error.strerror or error}",
                        hint="check that it is a readable file, not a folder")
            return None
        try:
            root = yaml.compose(text, Loader=_DepthLimitedLoader)
        except _TooDeep as error:
            self.report(Location(self.file, error.mark.line + 1, error.mark.column + 1), None,
                        f"lists or mappings nested more than {MAX_NESTING} levels deep",
                        hint="a registry file needs a few levels (models > entry > config); "
                        "remove the runaway nesting there")
            return None
        except yaml.MarkedYAMLError as error:
            self._report_yaml_syntax(error)
            return None
        except yaml.YAMLError as error:
            self.report(None, None, f"invalid YAML: {error}", hint="fix the YAML syntax")
            return None
        if root is None:
            self.report(Location(self.file, 1, 1), None, "the file is empty",
                        hint="start it with `schema: 1`, then a `models:` or `tokenizers:` section")
        return root

    def _report_yaml_syntax(self, error: yaml.MarkedYAMLError) -> None:
        mark = error.problem_mark or error.context_mark
        location = Location(self.file, mark.line + 1, mark.column + 1) if mark else None
        detail = error.problem or "syntax error"
        if error.context:
            detail = f"{detail} ({error.context})"
        self.report(location, None, f"invalid YAML: {detail}",
                    hint="fix the syntax there: indentation, a missing ':', an unclosed quote or bracket, "
                    "or tabs instead of spaces")
