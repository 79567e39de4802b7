"""The local store: verified, immutable artifacts published with one atomic rename.

Layout under the store root::

    objects/<artifact-id>/     published artifacts, each with MANIFEST.json; never modified
    staging/<artifact-id>/     downloads in progress (same filesystem, so publish is a rename,
                               and a fixed name per artifact, so an interrupted download resumes)
    locks/<artifact-id>.lock   one filelock per artifact: N processes fetch it once
    refs/<namespace>/<entry>.json  which artifact an entry of one registry file points at, and
                               at what revision (refs/<entry>.json: of no known registry)
    trash/                     objects being deleted (renamed here first, then removed)

A reader only ever looks under ``objects/``; a folder appears there complete, with its
manifest, or not at all, whatever moment a writer is killed at.

The modules, one concern each::

    ids        artifact ids and ref namespaces: safe folder names
    records    what the store writes down: Manifest (with FileRecord), Ref
    store      Store: the root, read-only handling, objects, their check, staging, publish
    locks      one filelock per artifact (a part of Store)
    refs       which artifact an entry points at (a part of Store)
    gc         what nothing needs, removed (a part of Store)
    snapshot   a published object read as one consistent, cheaply checked snapshot

Only ``snapshot`` is not imported here (``from registry.store.snapshot import open_snapshot``).
"""

from ..fs import FILE_MODE, FOLDER_MODE, atomic_file, list_files, make_dirs, write_atomic
from ..redact import redact_secrets
from .gc import GcResult
from .ids import content_digest, hf_artifact_id, local_artifact_id, ref_namespace, safe_component, validate_id
from .locks import LockWait
from .records import MANIFEST_NAME, MANIFEST_SCHEMA, FileRecord, Manifest, Ref, file_stamp, tool_version, utc_now
from .store import Store, default_store_root

__all__ = [
    "FILE_MODE", "FOLDER_MODE", "MANIFEST_NAME", "MANIFEST_SCHEMA", "FileRecord", "GcResult", "LockWait",
    "Manifest", "Ref", "Store", "atomic_file", "content_digest", "default_store_root", "file_stamp",
    "hf_artifact_id", "list_files", "local_artifact_id", "make_dirs", "redact_secrets", "ref_namespace",
    "safe_component", "tool_version", "utc_now", "validate_id", "write_atomic",
]
