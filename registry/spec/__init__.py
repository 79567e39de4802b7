"""The registry file (models.yaml) parsed into frozen attrs classes.

``load_registry`` reads the packaged file overlaid by the user's (and by what imports left in
the store), reporting every mistake in every file at once with file:line:column and a "did
you mean"; the result is a ``RegistrySpec`` of ``Entry`` objects.

The modules, from the result down to the YAML::

    entries        HfSource, LocalSource, ParamCount, Entry, RegistrySpec: the parsed data
    loading        load_registry, parse_registry: files overlaid, cross-references, the result
    file_parser    one file: top level, sections, entries
    fields         each key of an entry, read and checked
    source_syntax  `source:` values (hf://, package://, local paths)
    yaml_nodes     reading YAML nodes, every problem recorded where it sits
    schema         the keys of a schema-1 file, which are required, entry names
"""

from ..errors import Location
from .entries import (
    COMMIT_RE,
    DEFAULT_FILES,
    Entry,
    HfSource,
    LocalSource,
    ParamCount,
    RegistrySpec,
    Source,
    format_param_count,
)
from .loading import load_registry, parse_registry, resolve_registry_path
from .schema import (
    ENTRY_KEYS,
    ENTRY_NAME_RE,
    PACKAGED_REGISTRY_ID,
    REGISTRY_FILE_ENV,
    REGISTRY_FILE_NAME,
    REQUIRED_KEYS,
    SECTION_KINDS,
    SUPPORTED_SCHEMAS,
    TOP_LEVEL_KEYS,
)
from .source_syntax import PACKAGE_SCHEME, SourceSyntaxError, parse_source
from .yaml_nodes import MAX_NESTING, did_you_mean

__all__ = [
    "COMMIT_RE", "DEFAULT_FILES", "ENTRY_KEYS", "ENTRY_NAME_RE", "MAX_NESTING", "PACKAGED_REGISTRY_ID",
    "PACKAGE_SCHEME", "REGISTRY_FILE_ENV", "REGISTRY_FILE_NAME", "REQUIRED_KEYS", "SECTION_KINDS",
    "SUPPORTED_SCHEMAS", "TOP_LEVEL_KEYS", "Entry", "HfSource", "LocalSource", "Location", "ParamCount",
    "RegistrySpec", "Source", "SourceSyntaxError", "did_you_mean", "format_param_count", "load_registry",
    "parse_registry", "parse_source", "resolve_registry_path",
]
