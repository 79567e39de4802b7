"""The error hierarchy of the registry engine.

Every error a user can cause or meet carries the data a caller needs (file, field, entry,
endpoint, ...) and a hint that says what to do. The CLI maps each class to its own exit
code (``exit_code``) and prints ``str(error)``: one short paragraph, no traceback.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import attrs


@attrs.frozen
class Location:
    """A place in a registry file: 1-based line and column (0 when unknown)."""

    path: str
    line: int = 0
    column: int = 0

    def __str__(self) -> str:
        if self.line:
            return f"{self.path}:{self.line}:{self.column}"
        return self.path


@attrs.frozen
class Problem:
    """One thing wrong with a file, a field or an artifact.

    ``file`` is the file the problem is in (a registry file, ``config.json``, a weights file),
    ``field`` the key or tensor name, ``message`` what is wrong and ``hint`` how to fix it.
    ``severity`` is ``"error"`` (blocks publishing or loading) or ``"warning"`` (reported only).
    ``kind`` names the sort of problem, plural, to follow a count (``"tensors of dtype U8"``),
    when one check may yield many alike: a report shows each kind once, with a count and two
    examples (see ``render_problems``).
    """

    message: str
    file: str | None = None
    field: str | None = None
    hint: str | None = None
    severity: str = attrs.field(default="error", validator=attrs.validators.in_(("error", "warning")))
    location: Location | None = None
    kind: str | None = None

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    @property
    def where(self) -> str:
        return str(self.location) if self.location else (self.file or "")

    def headline(self) -> str:
        """What is wrong and where, without the fix: one line."""
        parts = [self.where] if self.where else []
        if self.field:
            parts.append(f"'{self.field}'")
        head = ": ".join(parts)
        text = f"{head}: {self.message}" if head else self.message
        return f"warning: {text}" if self.severity == "warning" else text

    def __str__(self) -> str:
        return f"{self.headline()} Fix: {self.hint}" if self.hint else self.headline()


class RegistryError(Exception):
    """Base class: a failure the user can understand and act on."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\nhint: {self.hint}"
        return self.message


def _problem_lines(problems: Iterable[Problem]) -> str:
    return "\n".join(f"  - {p}" for p in problems)


# A report names the cause in a screenful: at most this many lines of problems (one per kind),
# each cut to a readable length; the rest is counted, never dropped silently.
MAX_LISTED_KINDS = 8
MAX_TEXT = 600


def _clip(text: str, limit: int = MAX_TEXT) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit:,} more characters)"


def group_problems(problems: Iterable[Problem]) -> list[list[Problem]]:
    """Problems of one kind in one file with one fix, together; errors first, in found order.

    A problem without a ``kind`` groups only with copies of itself.
    """
    groups: dict[tuple, list[Problem]] = {}
    for problem in problems:
        what = ("kind", problem.kind) if problem.kind else ("message", problem.field, problem.message)
        key = (not problem.is_error, problem.where, what, problem.hint)
        groups.setdefault(key, []).append(problem)
    return [groups[key] for key in sorted(groups, key=lambda k: k[0])]  # stable: found order kept


def render_problems(problems: Sequence[Problem], *, indent: str = "  ",
                    limit: int = MAX_LISTED_KINDS) -> list[str]:
    """A report a person reads: one line per kind of problem (a count and two examples when
    there are several), its fix on its own line, at most ``limit`` kinds (the rest counted)."""
    lines: list[str] = []
    groups = group_problems(problems)
    for group in groups[:limit]:
        first = group[0]
        if len(group) == 1:
            head = first.headline()
        elif not first.kind:
            head = f"{first.headline()} ({len(group)} times)"
        else:
            what = f"{len(group):,} {first.kind}"
            if len({p.message for p in group}) == 1 and all(p.field for p in group):
                # One message for all (the same shape, NaN in each): say it once, name the fields.
                if first.message not in first.kind:
                    what += f" ({first.message})"
                examples = ", ".join(f"'{_clip(p.field, 80)}'" for p in group[:2])
            else:
                examples = "; ".join(_example(p) for p in group[:2])
            head = (f"{'warning: ' if not first.is_error else ''}{first.where + ': ' if first.where else ''}"
                    f"{what}, e.g. {examples}")
        lines.append(f"{indent}- {_clip(head)}")
        if first.hint:
            lines.append(f"{indent}  fix: {_clip(first.hint)}")
    rest = groups[limit:]
    if rest:
        count = sum(len(g) for g in rest)
        lines.append(f"{indent}- ... and {count:,} more problem{'s' if count != 1 else ''} of "
                     f"{len(rest):,} other kind{'s' if len(rest) != 1 else ''}, not listed")
    return lines


def _example(problem: Problem) -> str:
    detail = f"'{problem.field}': {problem.message}" if problem.field else problem.message
    return _clip(detail, 160)


class RegistryFileError(RegistryError):
    """The registry file (models.yaml) is unreadable or invalid. Carries every problem found."""

    exit_code = 3

    def __init__(self, path: str, problems: Sequence[Problem]):
        self.path = str(path)
        self.problems = list(problems)
        count = len(self.problems)
        noun = "problem" if count == 1 else "problems"
        super().__init__(
            f"registry file {self.path} has {count} {noun}:\n{_problem_lines(self.problems)}",
            hint=f"edit {self.path} and run `kronos-registry validate` to check it again",
        )


class UnknownEntryError(RegistryError):
    """No entry of that name in the registry."""

    exit_code = 4

    def __init__(self, name: str, suggestions: Sequence[str] = (), registry_path: str | None = None):
        self.name = name
        self.suggestions = list(suggestions)
        self.registry_path = registry_path
        where = f" in {registry_path}" if registry_path else ""
        hint = "run `kronos-registry list` to see the entries"
        if self.suggestions:
            hint = "did you mean " + " or ".join(f"'{s}'" for s in self.suggestions) + "? " + hint
        super().__init__(f"no entry named '{name}'{where}", hint=hint)


class UnavailableEntryError(RegistryError):
    """The entry exists but is marked ``available: false``."""

    exit_code = 4

    def __init__(self, name: str, reason: str | None, alternatives: Sequence[str] = ()):
        self.name = name
        self.reason = reason
        self.alternatives = list(alternatives)
        hint = None
        if self.alternatives:
            hint = "use one of the available entries: " + ", ".join(self.alternatives)
        super().__init__(
            f"'{name}' is not available: {reason or 'the registry marks it available: false'}", hint=hint
        )


class EntryKindError(RegistryError):
    """The entry exists but is of the wrong kind for the request (a tokenizer asked to predict)."""

    exit_code = 4

    def __init__(self, name: str, kind: str, wanted: str, alternatives: Sequence[str] = ()):
        self.name = name
        self.kind = kind
        self.wanted = wanted
        hint = f"name a {wanted} entry"
        if alternatives:
            hint += ", e.g. " + ", ".join(f"'{a}'" for a in alternatives)
        super().__init__(f"'{name}' is a {kind}, not a {wanted}", hint=hint)


class SourceError(RegistryError):
    """A source could not be reached or does not hold what the entry names."""

    exit_code = 5

    def __init__(self, message: str, *, source: str | None = None, endpoints: Sequence[str] = (),
                 hint: str | None = None):
        self.source = source
        self.endpoints = list(endpoints)
        super().__init__(message, hint=hint)


class NetworkError(SourceError):
    """Every endpoint tried failed to answer (refused, timed out, cut off)."""


class RepoNotFoundError(SourceError):
    """The endpoint answered, but has no such repository."""


class RevisionNotFoundError(SourceError):
    """The repository exists, but not at that revision."""


class FileNotInSourceError(SourceError):
    """The repository or folder lacks a file the entry needs."""


class VerificationError(RegistryError):
    """An artifact failed verification. Carries every problem found, warnings included."""

    exit_code = 6

    def __init__(self, artifact: str, problems: Sequence[Problem], *, hint: str | None = None):
        self.artifact = artifact
        self.problems = list(problems)
        errors = [p for p in self.problems if p.is_error]
        count = len(errors)
        noun = "problem" if count == 1 else "problems"
        listed = "\n".join(render_problems(self.problems))
        super().__init__(
            f"{artifact} failed verification ({count:,} {noun}):\n{listed}",
            hint=hint or "nothing was written to the store; fix the files or the entry and sync again",
        )


class NotSyncedError(RegistryError):
    """The artifact is not in the store and may not be fetched now (offline)."""

    exit_code = 7

    def __init__(self, name: str, store_root: str, *, reason: str | None = None):
        self.name = name
        self.store_root = store_root
        why = f" ({reason})" if reason else ""
        super().__init__(
            f"'{name}' is not in the store at {store_root}{why}",
            hint=(
                f"run `kronos-registry sync {name}` on a machine with network access, or carry it here "
                f"with `kronos-registry export {name} -o bundle.tar` there and "
                "`kronos-registry import bundle.tar` here"
            ),
        )


class LockTimeoutError(RegistryError):
    """Another process held the artifact's lock for longer than the timeout."""

    exit_code = 8

    def __init__(self, artifact: str, lock_path: str, timeout: float):
        self.artifact = artifact
        self.lock_path = lock_path
        self.timeout = timeout
        super().__init__(
            f"gave up after {timeout:g} s waiting for another process to finish with {artifact} "
            f"(lock {lock_path})",
            hint="wait for the other sync to end and retry; if no other process runs, "
            "`kronos-registry gc` removes stale locks",
        )


class InputDataError(RegistryError):
    """User data (a candle CSV, a bundle, an argument) is malformed."""

    exit_code = 9

    def __init__(self, message: str, *, path: str | None = None, field: str | None = None,
                 hint: str | None = None):
        self.path = path
        self.field = field
        super().__init__(message, hint=hint)


class ShadowingError(InputDataError):
    """An import would give names of the registry in use another meaning, unasked.

    ``names`` maps each such entry to the registry file that defines it now.
    """

    def __init__(self, bundle: str, names: dict[str, str]):
        self.names = dict(names)
        listed = ", ".join(f"'{n}' (defined in {p})" for n, p in self.names.items())
        flags = " ".join(f"--replace {n}" for n in self.names)
        super().__init__(
            f"bundle {bundle} would replace {listed} with a different checkpoint; nothing was imported",
            path=bundle, field=next(iter(self.names)),
            hint=(f"if the bundle's entries are meant to take over these names, import again with {flags}; "
                  "otherwise rename them in the models.yaml of the exporting machine and export again"))


class ObjectVanishedError(NotSyncedError):
    """A stored object was removed (or replaced) by another process while it was being read.

    The loader retries by looking the entry up again; this reaches a user only when the
    entry stays gone (an `rm` that won the race), and then reads as "not in the store".
    """

    def __init__(self, artifact: str, store_root: str, *, name: str | None = None):
        self.artifact = artifact
        super().__init__(name or artifact, store_root, reason=f"{artifact} was removed while being read")


class ReadOnlyStoreError(RegistryError):
    """A command that changes the store met a store it may not write (a read-only mount)."""

    exit_code = 11

    def __init__(self, store_root: str, path: str, detail: str):
        self.store_root = store_root
        self.path = path
        super().__init__(
            f"the store at {store_root} is read-only: cannot write {path} ({detail})",
            hint="loading works from a read-only store; run sync, rm, gc and import where the store "
            "is writable, or point --store / KRONOS_REGISTRY_HOME at a writable folder",
        )
