"""The config.json checks of a Kronos artifact, as problems naming the file, the field and a fix.

The reading and the judging are config.py's (the one validator, shared with
``from_pretrained``); this module words them for a registry entry and adds what only the
registry knows: the config pinned in models.yaml (a mismatch in a key that does not change
inference is a warning). ``accepted_config`` is the gate of every costly check: a config
refused here builds nothing, however large it claims to be.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Mapping

import attrs

from kronos_registry.kronos.config import (
    CONFIG_FILE,
    INFERENCE_NEUTRAL_KEYS,
    ConfigFileError,
    check_config,
    other_role,
    read_config_file,
    short_repr,
)
from registry.checks import CheckContext, Problem
from registry.spec import Entry

# At most this many key names are listed in one problem; the rest are counted.
MAX_LISTED_KEYS = 5


def read_config(folder: Path) -> tuple[dict | None, Problem | None]:
    """``folder``'s config.json as a dict, or the problem that keeps it from being one."""
    try:
        return read_config_file(Path(folder) / CONFIG_FILE), None
    except ConfigFileError as error:
        return None, Problem(error.message, file=CONFIG_FILE, hint=error.hint)


def listing(keys) -> str:
    """Up to MAX_LISTED_KEYS names (each cut short), then how many more were left out."""
    keys = list(keys)
    shown = ", ".join(k if len(k) <= 40 else f"{k[:40]}..." for k in keys[:MAX_LISTED_KEYS])
    rest = len(keys) - MAX_LISTED_KEYS
    return f"{shown} and {rest:,} more" if rest > 0 else shown


def schema_problems(config: Mapping, role: str, entry_name: str) -> Iterator[Problem]:
    """Missing, unknown, mistyped and impossible keys for the role's constructor."""
    report = check_config(config, role)
    if report.swapped:
        other = other_role(role)
        yield Problem(
            f"this is a Kronos {other} checkpoint, but '{entry_name}' is declared as a {role}",
            file=CONFIG_FILE, field="role",
            hint=f"point '{entry_name}' at a {role} checkpoint, or move the entry to "
            f"`{other}s:` (the {other} and {role} folders look swapped)",
        )
        return
    missing = sorted(report.missing)
    if missing:
        yield Problem(f"missing keys: {listing(missing)}", file=CONFIG_FILE, field=missing[0],
                      hint=f"add them with the values the {role} was trained with")
    if report.unknown:
        yield Problem(f"unknown keys: {listing(report.unknown)}", file=CONFIG_FILE,
                      field=listing(report.unknown[:1]),
                      hint=f"remove them: the Kronos {role} constructor does not take them")
    for bad in report.bad:
        yield Problem(bad.message, file=CONFIG_FILE, field=bad.key, hint=bad.hint)


def config_problems(folder: Path, entry: Entry) -> tuple[dict | None, list[Problem]]:
    """The cheap config checks, in order: read (size-capped), parse, schema and size limits,
    the pinned config. Returns the config (None when unreadable) and every problem."""
    config, problem = read_config(folder)
    if problem:
        return None, [problem]
    problems = list(schema_problems(config, entry.kind, entry.name))
    if entry.config and not any(p.field == "role" for p in problems):
        flagged = {p.field for p in problems}
        problems += [p for p in _pinned_config_problems(config, entry) if p.field not in flagged]
    return config, problems


def accepted_config(folder: Path, entry: Entry) -> dict | None:
    """The config when every cheap config check passes; None means nothing may be built from it."""
    config, problems = config_problems(folder, entry)
    return None if config is None or any(p.is_error for p in problems) else config


def valid_config(folder: Path, role: str) -> dict | None:
    """The config when it fits the role's constructor (no pins compared); else None."""
    config, problem = read_config(folder)
    if problem or not check_config(config, role).ok:
        return None
    return config


def _pinned_config_problems(config: Mapping, entry: Entry) -> Iterator[Problem]:
    for key, expected in sorted(entry.config.items()):
        actual = config.get(key)
        if actual == expected:
            continue
        neutral = key in INFERENCE_NEUTRAL_KEYS
        yield Problem(
            f"{key} is {short_repr(actual)} but the registry pins {expected!r}"
            + (" (does not change inference)" if neutral else ""),
            file=CONFIG_FILE, field=key, severity="warning" if neutral else "error",
            hint=f"this is not the checkpoint '{entry.name}' expects: check its source, or update "
            f"config.{key} of '{entry.name}' at {entry.location_of(f'config.{key}')} if the new checkpoint is intended",
        )


@attrs.frozen
class ConfigCheck:
    """config.json exists, is a JSON object, fits the role's constructor and the pinned config."""

    name: str = "kronos-config"

    def run(self, ctx: CheckContext) -> Iterator[Problem]:
        if CONFIG_FILE in ctx.entry.files and not (ctx.folder / CONFIG_FILE).is_file():
            return  # RequiredFiles reports a missing required file
        yield from config_problems(ctx.folder, ctx.entry)[1]


__all__ = ["read_config", "schema_problems", "config_problems", "accepted_config", "valid_config", "ConfigCheck",
           "listing", "MAX_LISTED_KEYS"]
