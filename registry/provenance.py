"""What each stored file's content was checked against: the record a pinned name rests on.

A hash proves nothing by itself: a file placed in the Hugging Face cache under a blob named
by its own hash "matches" that name. What a name can be trusted for is the record its files
were compared with before they were published, kept per file in the manifest
(``FileRecord.checked_against``):

    pin      the sha256 pinned in the registry entry (models.yaml ``sha256:``)
    hub      the hash the hub recorded for the file at the pinned commit (an LFS file's
             sha256, git's blob id for a file kept in git), from the endpoint the manifest names
    source   the user's own folder (a local entry): its files are what the entry means
    bundle   the hash the exporting store recorded: only as good as that store and its bundle
    none     nothing: adopted from the Hugging Face cache offline, or from an endpoint that
             recorded no hash. The file may be anything of the right name and shape.

``pin``, ``hub`` and ``source`` are first-hand; strict mode (``--strict``,
``KRONOS_REGISTRY_STRICT=1``) serves, publishes and imports nothing else. Without it, files
checked against nothing are marked unverified on every face.
"""

from __future__ import annotations

from typing import Mapping, Sequence

from .errors import Problem
from .sources import RemoteFile
from .spec import Entry, LocalSource
from .store import FileRecord, Manifest

PIN, HUB, SOURCE, BUNDLE, NONE = "pin", "hub", "source", "bundle", "none"
FIRST_HAND = frozenset({PIN, HUB, SOURCE})
STRICT_ENV = "KRONOS_REGISTRY_STRICT"

DESCRIPTIONS = {
    PIN: "the sha256 pinned in the registry",
    HUB: "the hub's recorded hash",
    SOURCE: "the entry's own folder",
    BUNDLE: "the exporting store's record (bundle)",
    NONE: "NOTHING (no trusted record: unverified)",
    None: "not recorded (stored by an older version)",
}


def is_strict(env: Mapping[str, str]) -> bool:
    return env.get(STRICT_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def checked_against(entry: Entry, name: str, remote: RemoteFile | None) -> str:
    """The record a sync compares ``entry``'s file ``name`` with (mismatches are refused
    elsewhere: the sha256-pins check, the loader's comparison with the hub's record)."""
    if name in entry.sha256:
        return PIN
    if isinstance(entry.source, LocalSource):
        return SOURCE
    return HUB if remote is not None and remote.recorded else NONE


def unverified(manifest: Manifest | None) -> tuple[str, ...]:
    """The files of ``manifest`` checked against nothing (adopted with no trusted record)."""
    return tuple(r.name for r in manifest.files if r.checked_against == NONE) if manifest else ()


def trust_problems(records: Sequence[FileRecord], entry: str, *, strict: bool) -> list[Problem]:
    """What ``records`` (the files of the entry named ``entry``) owe to trust, as at most one
    problem: under strict mode an error naming every file not checked against a first-hand
    record, else a warning naming those checked against nothing; [] when there are none."""
    refused = (lambda how: how not in FIRST_HAND) if strict else (lambda how: how == NONE)
    files = {r.name: r.checked_against for r in records if refused(r.checked_against)}
    return [unverified_problem(files, entry, strict=strict)] if files else []


# Why strict mode refuses a file, by what it was checked against.
_REFUSED = {NONE: "checked against nothing", BUNDLE: "checked only against the bundle's own record",
            None: "no record of what it was checked against"}


def unverified_problem(files: Mapping[str, str | None], entry: str, *, strict: bool) -> Problem:
    """One problem naming ``files`` (name -> what each was checked against) of the entry named
    ``entry`` and the ways out: an error under strict mode, else a warning (which marks the
    name unverified)."""
    listed = ", ".join(f"{name} ({_REFUSED.get(how, how)})" for name, how in files.items())
    first = next(iter(files))
    fix = (f"check the file and pin it in models.yaml (under '{entry}': `sha256: {{{first}: <sha256sum>}}`), "
           f"or sync it from the hub online (`kronos-registry sync {entry} --force`)")
    if strict:
        return Problem(f"strict mode refuses {listed}: not checked against a first-hand record",
                       hint=f"{fix}; or run without --strict")
    return Problem(f"unverified: {listed}; no trusted record says what these files must hold",
                   severity="warning", hint=fix)
