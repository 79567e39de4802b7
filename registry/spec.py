"""The registry file (models.yaml) parsed into frozen attrs classes.

The data classes come first; the parser that builds them from YAML, reporting every mistake
with file:line:column and a "did you mean", follows below them.
"""

from __future__ import annotations

import difflib
import os
import re
import urllib.parse
from decimal import Decimal
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import attrs
import yaml
from attrs import frozen

from .errors import Location, Problem, RegistryFileError, UnavailableEntryError, UnknownEntryError

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


_SUFFIXES = {"K": 10**3, "M": 10**6, "B": 10**9}


def format_param_count(count: int, like: str) -> str:
    """Render ``count`` with the suffix and number of decimals used in ``like`` ("24.7M")."""
    suffix = like[-1].upper()
    number = like[:-1]
    decimals = len(number.split(".")[1]) if "." in number else 0
    return f"{count / _SUFFIXES[suffix]:.{decimals}f}{like[-1]}"


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


# =============================================================================================
# The parser: YAML text -> RegistrySpec, every mistake reported with file:line:column.
# =============================================================================================

SUPPORTED_SCHEMAS = (1,)
REGISTRY_FILE_ENV = "KRONOS_REGISTRY_FILE"
REGISTRY_FILE_NAME = "models.yaml"
# The registry id of the packaged default file's entries (see Entry.registry).
PACKAGED_REGISTRY_ID = "packaged"

TOP_LEVEL_KEYS = ("schema", "tokenizers", "models", "endpoint", "mirrors")
SECTION_KINDS = {"tokenizers": "tokenizer", "models": "model"}
_COMMON_KEYS = (
    "source", "params", "config", "display_name", "description",
    "available", "reason", "sha256", "files", "allow_pickle", "lineage",
)
_MODEL_ONLY_KEYS = ("tokenizer", "context_length")
ENTRY_KEYS = {"model": _COMMON_KEYS + _MODEL_ONLY_KEYS, "tokenizer": _COMMON_KEYS}
REQUIRED_KEYS = {"model": ("source", "tokenizer", "context_length"), "tokenizer": ("source",)}
_REQUIRED_HINTS = {
    "source": "add `source: hf://ORG/REPO@REVISION` or `source: ./path/to/folder` "
    "(or mark it `available: false` with a `reason:`)",
    "tokenizer": "add `tokenizer: NAME`, naming an entry of the `tokenizers` section",
    "context_length": "add `context_length: N`, the longest context the model accepts (e.g. 512)",
}

ENTRY_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_PARAMS_TEXT_RE = re.compile(r"^(\d+(?:\.\d+)?)([KMB])$", re.IGNORECASE)
_SHA256_RE = re.compile(r"^[0-9a-fA-F]{64}$")
_URL_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
# PyYAML follows YAML 1.1, where `1e-5` (no dot) is a string; config.json would hold a number.
_BARE_EXPONENT_RE = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".ckpt")
_STR_TAG = "tag:yaml.org,2002:str"
_MERGE_TAG = "tag:yaml.org,2002:merge"

_INVALID = object()  # a value that failed validation; its problem is already recorded

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


# --- sources --------------------------------------------------------------------------------

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
        raise SourceSyntaxError("is empty", hint=_REQUIRED_HINTS["source"])
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


# --- one file -------------------------------------------------------------------------------

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
class _ParsedFile:
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


class _FileParser:
    """Reads one registry file into a ``_ParsedFile``, recording problems instead of raising."""

    def __init__(self, path: Path, package_dir: Path | None = None, registry_id: str | None = None):
        self.path = Path(path)
        self.file = str(path)
        self.registry_id = registry_id or os.path.realpath(self.path)
        # The real folder: ./models.yaml may be a symlink to a file whose relative sources
        # point beside it, not beside the link.
        self.base_dir = Path(os.path.realpath(self.path)).parent
        self.package_dir = package_dir
        self.result = _ParsedFile(paths=(self.file,))
        self._constructor = yaml.constructor.SafeConstructor()

    # reporting ------------------------------------------------------------------------------

    def at(self, node: yaml.Node) -> Location:
        mark = node.start_mark
        return Location(self.file, mark.line + 1, mark.column + 1)

    def report(self, where: "yaml.Node | Location | None", field: str | None, message: str,
               hint: str | None = None) -> None:
        location = self.at(where) if isinstance(where, yaml.Node) else where or Location(self.file)
        self.result.problems.append(
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
            return _INVALID

    def scalar(self, node: yaml.Node, field: str, expected: str) -> object:
        """The Python value of a single-value node, or _INVALID (reported) for a list/mapping."""
        if not isinstance(node, yaml.ScalarNode):
            key = field.rsplit(".", 1)[-1]
            self.report(node, field, f"must be {expected}, got {self.describe(node)}",
                        hint=f"write a single value after `{key}:`, not a list or a nested block")
            return _INVALID
        value = self._construct_quietly(node)
        if value is _INVALID:
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

    # the file -------------------------------------------------------------------------------

    def parse(self) -> _ParsedFile:
        root = self._compose()
        if root is not None:
            self._parse_top_level(root)
        return self.result

    def _compose(self) -> yaml.Node | None:
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
        if value is _INVALID:
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
        if value is _INVALID:
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
            value = _FIELD_PARSERS[key](self, value_node, f"{field}.{key}")
            if value is not _INVALID:
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
        if kind == "tokenizer" and key in _MODEL_ONLY_KEYS:
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
                            hint=_REQUIRED_HINTS[key])
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
        pickled = [name for name in files if name.endswith(_PICKLE_SUFFIXES)]
        if pickled and values.get("allow_pickle") is not True:
            self.report(locations.get("files"), f"{field}.files",
                        f"lists pickle weights ({', '.join(pickled)}) without `allow_pickle: true`",
                        hint="convert them to model.safetensors, or opt in with `allow_pickle: true` "
                        "(they are then loaded with weights_only=True)")

    # field parsers: (node, field) -> value, or _INVALID after reporting --------------------------

    def _text(self, node: yaml.Node, field: str) -> object:
        value = self.scalar(node, field, "text")
        if value is _INVALID:
            return _INVALID
        if value is None or not node.value.strip():
            self.report(node, field, "is empty", hint="write some text, or remove the key")
            return _INVALID
        return node.value  # as written: `description: no` is text here, not the boolean false

    def _flag(self, node: yaml.Node, field: str) -> object:
        value = self.scalar(node, field, "true or false")
        if value is _INVALID or isinstance(value, bool):
            return value
        key = field.rsplit(".", 1)[-1]
        self.report(node, field, f"must be true or false, got {self.describe(node)}",
                    hint=f"write `{key}: true` or `{key}: false`, without quotes")
        return _INVALID

    def _source(self, node: yaml.Node, field: str) -> object:
        text = self._text(node, field)
        if text is _INVALID:
            return _INVALID
        try:
            return parse_source(text, base_dir=self.base_dir, package_dir=self.package_dir)
        except SourceSyntaxError as error:
            self.report(node, field, error.message, hint=error.hint)
            return _INVALID

    def _entry_reference(self, node: yaml.Node, field: str) -> object:
        text = self._text(node, field)
        if text is not _INVALID and not ENTRY_NAME_RE.match(text):
            self.report(node, field, f"'{text}' is not a valid entry name",
                        hint="name an entry of the `tokenizers` section")
            return _INVALID
        return text

    def _context_length(self, node: yaml.Node, field: str) -> object:
        value = self.scalar(node, field, "a positive whole number")
        if value is _INVALID:
            return _INVALID
        if type(value) is not int or value <= 0:
            self.report(node, field, f"must be a positive whole number, got {self.describe(node)}",
                        hint="write a number of time steps without quotes, e.g. `context_length: 512`")
            return _INVALID
        return value

    def _params(self, node: yaml.Node, field: str) -> object:
        value = self.scalar(node, field, "a parameter count")
        if value is _INVALID:
            return _INVALID
        count = _param_count(value)
        if count is None:
            self.report(node, field, f"must be a positive whole number or a rounded count like '24.7M', "
                        f"got {self.describe(node)}",
                        hint="write the exact count (`params: 24741376`) or a rounded one with K, M or B "
                        "(`params: 24.7M`)")
            return _INVALID
        return count

    def _config(self, node: yaml.Node, field: str) -> object:
        items = self.mapping_items(node, field, "`config`",
                                   hint="write the expected config.json keys as `key: value` lines")
        if items is None:
            return _INVALID
        config: dict[str, object] = {}
        for key, _, value_node in items:
            value = self.scalar(value_node, f"{field}.{key}", "a single value (number, true/false, text)")
            if value is _INVALID:
                continue
            if value is not None and not isinstance(value, (bool, int, float, str)):
                self.report(value_node, f"{field}.{key}", f"must be a number, true/false, text or null, "
                            f"got '{value_node.value}'", hint="quote it if it is meant as text")
                continue
            config[key] = value
        return config if len(config) == len(items) else _INVALID

    def _plain_mapping(self, node: yaml.Node, field: str) -> object:
        """Any mapping of plain YAML values (nested mappings and lists too), kept as data."""
        if not isinstance(node, yaml.MappingNode):
            key = field.rsplit(".", 1)[-1]
            self.report(node, field, f"must be a mapping, got {self.describe(node)}",
                        hint=f"write `{key}:` followed by indented `key: value` lines")
            return _INVALID
        try:
            return self._constructor.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError) as error:
            self.report(node, field, f"does not parse ({error})", hint="write plain YAML values")
            return _INVALID

    def _sha256(self, node: yaml.Node, field: str) -> object:
        items = self.mapping_items(node, field, "`sha256`",
                                   hint="write one `FILE_NAME: HEX_DIGEST` line per pinned file")
        if items is None:
            return _INVALID
        pins: dict[str, str] = {}
        for file_name, key_node, value_node in items:
            name_ok = self._check_file_name(key_node, file_name, f"{field}.{file_name}")
            digest = self.scalar(value_node, f"{field}.{file_name}", "a sha256 hex digest")
            if digest is _INVALID:
                continue
            if not _SHA256_RE.match(value_node.value):
                self.report(value_node, f"{field}.{file_name}", f"'{value_node.value}' is not a sha256 digest",
                            hint="write the 64 hex characters printed by `sha256sum FILE`")
            elif name_ok:
                pins[file_name] = value_node.value.lower()
        return pins if len(pins) == len(items) else _INVALID

    def _files(self, node: yaml.Node, field: str) -> object:
        if not isinstance(node, yaml.SequenceNode) or not node.value:
            self.report(node, field, f"must be a non-empty list of file names, got {self.describe(node)}",
                        hint="write one `- FILE_NAME` line per file, e.g. `- config.json`")
            return _INVALID
        names: list[str] = []
        for index, item in enumerate(node.value):
            item_field = f"{field}[{index}]"
            if self.scalar(item, item_field, "a file name") is _INVALID:
                continue
            if not self._check_file_name(item, item.value, item_field):
                continue
            if item.value in names:
                self.report(item, item_field, f"'{item.value}' is listed twice", hint="remove the repeat")
                continue
            names.append(item.value)
        return tuple(names) if len(names) == len(node.value) else _INVALID

    def _check_file_name(self, node: yaml.Node, name: str, field: str) -> bool:
        # The name becomes a path inside the store: it must never climb out of the artifact's folder.
        if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
            self.report(node, field, f"'{name}' is not a plain file name",
                        hint="name a file at the top of the repository or folder (no '/', no '..')")
            return False
        return True


_FIELD_PARSERS: dict[str, Callable[[_FileParser, yaml.Node, str], object]] = {
    "source": _FileParser._source,
    "tokenizer": _FileParser._entry_reference,
    "context_length": _FileParser._context_length,
    "params": _FileParser._params,
    "config": _FileParser._config,
    "display_name": _FileParser._text,
    "description": _FileParser._text,
    "reason": _FileParser._text,
    "available": _FileParser._flag,
    "allow_pickle": _FileParser._flag,
    "sha256": _FileParser._sha256,
    "files": _FileParser._files,
    "lineage": _FileParser._plain_mapping,
}


def _join(prefix: str | None, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


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
    amount = int(Decimal(match[1]) * _SUFFIXES[match[2].upper()])
    return ParamCount(amount, text, False) if amount > 0 else None


# --- several files: overlay, cross-references, the result ------------------------------------

def _overlay(base: _ParsedFile, top: _ParsedFile) -> tuple[_ParsedFile, list[Problem]]:
    """``top`` over ``base``: an entry of the same name replaces, a new name adds; the top-level
    endpoint/mirrors of ``top`` win where it sets them."""
    merged = _ParsedFile(
        paths=base.paths + top.paths,
        problems=[*base.problems, *top.problems],
        schema=top.schema if top.schema is not None else base.schema,
        tokenizers={**base.tokenizers, **top.tokenizers},
        models={**base.models, **top.models},
        endpoint=top.endpoint if "endpoint" in top.declared else base.endpoint,
        mirrors=top.mirrors if "mirrors" in top.declared else base.mirrors,
        declared=base.declared | top.declared,
    )
    return merged, _near_miss_warnings(base, top)


def _near_miss_warnings(base: _ParsedFile, top: _ParsedFile) -> list[Problem]:
    """A user entry one typo away from a packaged one adds a second entry instead of replacing."""
    warnings = []
    for section in SECTION_KINDS:
        existing = base.section(section)
        for name, draft in top.section(section).items():
            if name in existing:
                continue
            close = [n for n in existing if abs(len(n) - len(name)) <= 1
                     and difflib.SequenceMatcher(None, n, name).ratio() >= 0.85]
            if close:
                warnings.append(Problem(
                    f"'{name}' adds a new entry; the packaged '{close[0]}' stays as it is",
                    file=draft.origin.path, field=f"{section}.{name}", severity="warning",
                    location=draft.origin,
                    hint=f"rename it '{close[0]}' if it is meant to replace that entry",
                ))
    return warnings


def _reference_problems(parsed: _ParsedFile) -> list[Problem]:
    """A model's `tokenizer` must name a tokenizer entry; no name may be both a model and a tokenizer."""
    problems = []
    tokenizer_names = list(parsed.tokenizers)
    for draft in parsed.models.values():
        if draft.reference is None or draft.reference[0] in parsed.tokenizers:
            continue
        name, where = draft.reference
        if name in parsed.models:
            message = f"'{name}' is a model, not a tokenizer"
        else:
            message = f"no tokenizer named '{name}'"
        guess = did_you_mean(name, tokenizer_names)
        hint = (f"did you mean '{guess}'?" if guess
                else "name one of the tokenizers: " + (", ".join(tokenizer_names) or "(none defined)"))
        problems.append(Problem(message, file=where.path, field=f"models.{draft.name}.tokenizer",
                                hint=hint, location=where))
    for name in parsed.models.keys() & parsed.tokenizers.keys():
        where = parsed.models[name].origin
        problems.append(Problem(
            f"'{name}' names both a model and a tokenizer", file=where.path, field=f"models.{name}",
            hint="rename one of them: entries are looked up by name alone", location=where,
        ))
    return problems


def _finish(parsed: _ParsedFile, warnings: list[Problem] = ()) -> RegistrySpec:
    if parsed.problems:
        files = {p.file for p in parsed.problems}
        blamed = files.pop() if len(files) == 1 else parsed.paths[-1]
        raise RegistryFileError(blamed, sorted(parsed.problems, key=_reading_order(parsed.paths)))
    return RegistrySpec(
        schema=parsed.schema,
        paths=parsed.paths,
        tokenizers={name: draft.entry for name, draft in parsed.tokenizers.items()},
        models={name: draft.entry for name, draft in parsed.models.items()},
        endpoint=parsed.endpoint,
        mirrors=parsed.mirrors,
        warnings=tuple(warnings),
    )


def _reading_order(paths: tuple[str, ...]) -> Callable[[Problem], tuple[int, int, int]]:
    """Problems in the order a person reads the files: file by file, top to bottom."""
    def key(problem: Problem) -> tuple[int, int, int]:
        where = problem.location or Location(problem.file or "")
        rank = paths.index(where.path) if where.path in paths else len(paths)
        return rank, where.line, where.column
    return key


# --- public entry points --------------------------------------------------------------------

def parse_registry(path: str | Path, *, check_references: bool = False) -> RegistrySpec:
    """Parse and validate one registry file; raise RegistryFileError naming every mistake.

    Cross-references (a model's tokenizer) are checked by ``load_registry`` after the overlay,
    since a user file may name a tokenizer of the packaged one; ``check_references=True``
    checks them within this file alone.
    """
    parsed = _FileParser(Path(path)).parse()
    if check_references:
        parsed.problems.extend(_reference_problems(parsed))
    return _finish(parsed)


def resolve_registry_path(explicit: str | Path | None, env: Mapping[str, str] = os.environ,
                          cwd: str | Path | None = None, *, env_var: str = REGISTRY_FILE_ENV) -> Path | None:
    """The user's registry file: ``explicit`` (--registry) > ``$env_var`` > ``./models.yaml``;
    None means "the packaged default only". An explicit or env path is returned even if missing,
    so that parsing reports it rather than silently falling back."""
    base = Path(cwd) if cwd is not None else Path.cwd()
    for chosen in (explicit, env.get(env_var)):
        if chosen is not None and str(chosen).strip():
            path = Path(chosen).expanduser()
            return path if path.is_absolute() else base / path
    local = base / REGISTRY_FILE_NAME
    return local if local.is_file() else None


def load_registry(path: str | Path | None = None, *, default_path: str | Path,
                  env: Mapping[str, str] = os.environ, cwd: str | Path | None = None,
                  overlays: Sequence[str | Path] = ()) -> RegistrySpec:
    """The packaged registry at ``default_path``, overlaid in turn by each of ``overlays`` (the
    registry files imports left in the store) and last by the user's file, if one resolves
    (see ``resolve_registry_path``) and is not one of those; cross-references are checked on
    the result. Every mistake in any file is reported at once."""
    package_dir = Path(os.path.realpath(default_path)).parent  # what package:// sources name
    parsed = _FileParser(Path(default_path), package_dir, PACKAGED_REGISTRY_ID).parse()
    warnings: list[Problem] = []
    user_path = resolve_registry_path(path, env, cwd)
    layers = [Path(p) for p in overlays if not _same_file(Path(p), Path(default_path))]
    if user_path is not None and not _same_file(user_path, Path(default_path)):
        layers = [p for p in layers if not _same_file(p, user_path)] + [user_path]
    for layer in layers:
        parsed, found = _overlay(parsed, _FileParser(layer, package_dir).parse())
        warnings += found
    parsed.problems.extend(_reference_problems(parsed))
    return _finish(parsed, warnings)


def _same_file(a: Path, b: Path) -> bool:
    """True for the same file, also through a symlink (./models.yaml -> the packaged file)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return a.resolve() == b.resolve()
