"""Bundles: carry verified artifacts to an air-gapped machine in one tar file.

A bundle is a plain tar (gzip-compressed when the output name ends in ``.gz``/``.tgz``)::

    bundle.json               what is inside: format version, tool, date, artifacts, refs
    registry.yaml             a schema-1 registry file holding just the exported entries
    objects/<id>/MANIFEST.json
    objects/<id>/<file>...    every file of each artifact, byte for byte as stored

``export_bundle`` reads published objects from a store; ``import_bundle`` checks every member
name and every hash before anything is published, then publishes each artifact through the
store's normal path (artifact lock, staging folder, one atomic rename) and sets the refs.

Local sources: a folder on the exporting machine will not exist on the target, so
``registry.yaml`` in the bundle names each local entry's source as ``../objects/<id>``
(relative to a file saved in ``<store>/registries/``: the artifact's own copy in the store).
Import rewrites it to the absolute path of that copy; the registry resolution overlays the
saved file on the packaged one (see ``registry.bundle.imported``), so imported entries work by
name.
``hf://`` sources are written pinned to the commit that was exported, so the target resolves
the very same artifact.

The modules::

    layout     what a bundle holds: member names, format version, limits; registry.yaml written
    export     the stored artifacts of some entries, verified, into one tar
    reading    every member name, the metadata and each manifest checked before anything is written
    importing  staged, hashed, checked, published; refs set, entries saved by name
    imported   the family's checks on imported artifacts, and the registry files imports left
"""

from .export import BundleSummary, export_bundle
from .importing import ImportSummary, import_bundle
from .layout import (
    BUNDLE_FORMAT,
    BUNDLE_JSON,
    BUNDLE_VERSION,
    DEFAULT_MAX_BYTES,
    MAX_MEMBERS,
    MAX_METADATA_BYTES,
    OBJECTS,
    REGISTRY_YAML,
)

__all__ = [
    "BUNDLE_FORMAT", "BUNDLE_JSON", "BUNDLE_VERSION", "DEFAULT_MAX_BYTES", "MAX_MEMBERS", "MAX_METADATA_BYTES",
    "OBJECTS", "REGISTRY_YAML", "BundleSummary", "ImportSummary", "export_bundle", "import_bundle",
]
