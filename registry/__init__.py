"""A generic, declarative model registry engine: spec, sources, store, verification.

It knows nothing about any particular model family; families plug in their checks.

Its floors, imports only running downward (an import-linter contract in pyproject.toml
keeps them so; docs/ARCHITECTURE.md has the whole project's map)::

    bundle/    export to one tar file, import from one (checked as a sync checks)
    loader     entry -> verified object in the store: sync, locate, verify, status
    lookup     which stored artifact an entry uses: one rule, no network, no writes
    sources/   where artifacts come from: hf:// repos (online, or the HF cache), local folders
    checks     the verification framework and the generic checks
    store/     the local store: objects, manifests, refs, locks, gc, snapshots
    spec/      the registry file parsed, every mistake with file:line:column
    hashing    sha256 of files, whole or by their head
    fs         durable writes, private copies, trees
    redact     secrets out of everything written or shown
    errors     the error hierarchy, problems and how they are reported
"""
