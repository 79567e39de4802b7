"""Registry files into a ``RegistrySpec``: one file, or the packaged one overlaid by others.

Every mistake in every file is reported at once (``RegistryFileError``), in reading order;
a model's tokenizer is looked up after the overlay, since a user's file may name one of the
packaged file's tokenizers.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Callable, Mapping, Sequence

import attrs

from ..errors import Location, Problem, RegistryFileError
from .entries import RegistrySpec
from .file_parser import FileParser, ParsedFile, _EntryDraft
from .schema import PACKAGED_REGISTRY_ID, REGISTRY_FILE_ENV, REGISTRY_FILE_NAME, SECTION_KINDS
from .yaml_nodes import did_you_mean

# --- several files: overlay, cross-references, the result ------------------------------------

def _overlay(base: ParsedFile, top: ParsedFile) -> tuple[ParsedFile, list[Problem]]:
    """``top`` over ``base``: an entry of the same name replaces, a new name adds; the top-level
    endpoint/mirrors of ``top`` win where it sets them."""
    merged = ParsedFile(
        paths=base.paths + top.paths,
        problems=[*base.problems, *top.problems],
        schema=top.schema if top.schema is not None else base.schema,
        tokenizers={**base.tokenizers, **_replacing(base.tokenizers, top.tokenizers)},
        models={**base.models, **_replacing(base.models, top.models)},
        endpoint=top.endpoint if "endpoint" in top.declared else base.endpoint,
        mirrors=top.mirrors if "mirrors" in top.declared else base.mirrors,
        declared=base.declared | top.declared,
    )
    return merged, _near_miss_warnings(base, top)


def _replacing(base: dict[str, _EntryDraft], top: dict[str, _EntryDraft]) -> dict[str, _EntryDraft]:
    """``top``'s drafts, each that replaces a different entry of ``base`` marked with its file:
    a name that now means another checkpoint must say so wherever it is shown."""
    marked = {}
    for name, draft in top.items():
        old = base.get(name)
        if draft.entry is not None and old is not None and old.entry is not None \
                and attrs.evolve(draft.entry, origin=old.entry.origin) != old.entry:
            draft = attrs.evolve(draft, entry=attrs.evolve(draft.entry, replaces=old.origin.path))
        marked[name] = draft
    return marked


def _near_miss_warnings(base: ParsedFile, top: ParsedFile) -> list[Problem]:
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


def _reference_problems(parsed: ParsedFile) -> list[Problem]:
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


def _finish(parsed: ParsedFile, warnings: list[Problem] = ()) -> RegistrySpec:
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
    parsed = FileParser(Path(path)).parse()
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
    parsed = FileParser(Path(default_path), package_dir, PACKAGED_REGISTRY_ID).parse()
    warnings: list[Problem] = []
    user_path = resolve_registry_path(path, env, cwd)
    layers = [Path(p) for p in overlays if not _same_file(Path(p), Path(default_path))]
    if user_path is not None and not _same_file(user_path, Path(default_path)):
        layers = [p for p in layers if not _same_file(p, user_path)] + [user_path]
    for layer in layers:
        parsed, found = _overlay(parsed, FileParser(layer, package_dir).parse())
        warnings += found
    parsed.problems.extend(_reference_problems(parsed))
    return _finish(parsed, warnings)


def _same_file(a: Path, b: Path) -> bool:
    """True for the same file, also through a symlink (./models.yaml -> the packaged file)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return a.resolve() == b.resolve()
