"""What an import adds beyond hashes: the family's checks, and registry files found by name.

Checks. An imported artifact enters ``objects/`` only after the same checks a sync runs
(``Loader.check_staged``), against every entry that will use it: the bundle's own entry, and
any entry of the registry in use here that pins the same artifact (the packaged kronos-small
pins its config and parameter count, so a bundle cannot slip a different model in under its
commit id) or that the bundle's entry of the same name and repository would replace.

Registry files. Each import leaves the bundle's entries in ``<store>/registries/<name>.yaml``
(first line ``# bundle: <file name>``). ``registry_files`` lists them for the registry
resolution, which overlays them after the packaged file and before the user's, so an
imported entry works by name. Two imports never lose each other's entries: an entry name
already defined differently by an earlier import is refused with how to resolve it, and a
bundle whose file name was used before gets a fresh file unless it holds all of that one's
entries.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import attrs

from ..checks import CheckProvider, Report
from ..errors import InputDataError, Problem, VerificationError
from ..loader import Loader  # the one path that runs the family's checks
from ..spec import Entry, HfSource, RegistrySpec, parse_registry
from ..store import Store, hf_artifact_id, safe_component

REGISTRIES_DIR = "registries"
BUNDLE_LINE = "# bundle: "
REPLACES_LINE = "# replaces: "
# Keys that only describe an entry: two imports may disagree on them without clashing.
_DESCRIPTIVE = ("display_name", "description")


def registries_dir(store_root: str | os.PathLike) -> Path:
    return Path(store_root) / REGISTRIES_DIR


def registry_files(store_root: str | os.PathLike) -> list[Path]:
    """The registry files imports saved in the store, in a stable order (no clashes: see above)."""
    folder = registries_dir(store_root)
    try:
        return sorted(p for p in folder.iterdir() if p.suffix == ".yaml" and p.is_file()
                      and not p.name.startswith("."))
    except OSError:  # no imports yet (or no store)
        return []


def bundle_name(path: str | os.PathLike) -> str | None:
    """The bundle an imported registry file came from (its ``# bundle:`` line), else None."""
    return _header(path, BUNDLE_LINE)


def replaced_names(path: str | os.PathLike) -> frozenset[str]:
    """The names an imported registry file took over with ``--replace`` (its ``# replaces:``
    line): only these replace the registry's entry; the others carry the same files."""
    line = _header(path, REPLACES_LINE)
    return frozenset(n.strip() for n in line.split(",") if n.strip()) if line else frozenset()


def _header(path: str | os.PathLike, prefix: str) -> str | None:
    path = Path(path)
    if path.parent.name != REGISTRIES_DIR:
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            for _, line in zip(range(5), handle):
                if line.startswith(prefix):
                    return line[len(prefix):].strip() or None
    except (OSError, UnicodeDecodeError):
        return None
    return None


# --- where the bundle's entries go ------------------------------------------------------------

def registry_path_for(store: Store, bundle: Path, stem: str, entries: Mapping[str, Entry],
                      describe: Callable[[Entry], dict]) -> Path:
    """The file to save ``entries`` in; ``InputDataError`` when one clashes with an earlier import.

    ``describe`` renders an entry as registry data (with its source as it will be saved).
    """
    existing = [(path, parse_registry(path)) for path in registry_files(store.root)]
    wanted = {name: meaning(describe(entry)) for name, entry in entries.items()}
    for path, spec in existing:
        for other in spec.entries():
            if other.name in wanted and meaning(describe(other)) != wanted[other.name]:
                raise _clash(bundle, other.name, path)
    folder = registries_dir(store.root)
    base = safe_component(stem)
    for number in range(1, 10_000):
        path = folder / (f"{base}.yaml" if number == 1 else f"{base}-{number}.yaml")
        previous = next((spec for p, spec in existing if p == path), None)
        if not path.exists() or (previous is not None and set(previous.names()) <= set(entries)):
            return path  # free, or the same bundle again (or a superset): nothing is lost
    raise InputDataError(f"bundle {bundle}: too many imported registry files named {base}-N.yaml in {folder}",
                         path=str(bundle), hint="rename the bundle file before importing it")


def meaning(data: dict) -> dict:
    """An entry's registry data less what only describes it (what two definitions must share)."""
    return {key: value for key, value in data.items() if key not in _DESCRIPTIVE}


def _clash(bundle: Path, name: str, path: Path) -> InputDataError:
    origin = bundle_name(path)
    came = f" (imported from {origin})" if origin else ""
    return InputDataError(
        f"bundle {bundle}: entry '{name}' is already defined differently by {path}{came}; "
        "nothing was imported", path=str(bundle), field=name,
        hint=(f"to replace the earlier import, delete {path} and import again (`kronos-registry gc` "
              f"then frees what only it used); to keep both, rename '{name}' in the models.yaml of "
              "the exporting machine, sync and export it again"))


# --- the checks -------------------------------------------------------------------------------

@attrs.frozen
class _Use:
    spec: RegistrySpec
    entry: Entry


def check_artifacts(store: Store, bundle: Path, checks: CheckProvider, bundle_spec: RegistrySpec,
                    bundle_refs: Mapping[str, str], folders: Mapping[str, Path],
                    registry: RegistrySpec | None) -> list[Report]:
    """Run the family's checks on each artifact (in ``folders``) for every entry that will use it.

    ``bundle_refs`` maps each bundle entry to its artifact. Raises ``InputDataError`` for an
    artifact no entry uses (nothing to check it against) and ``VerificationError`` with every
    problem when any check fails; returns the reports otherwise.
    """
    uses = _uses(bundle_spec, bundle_refs, folders, registry)
    for artifact_id in folders:
        if not uses.get(artifact_id):
            raise InputDataError(f"bundle {bundle}: artifact {artifact_id} is used by no entry of the bundle, "
                                 "so it cannot be verified; nothing was imported", path=str(bundle),
                                 field=artifact_id, hint="export the bundle again on the source machine")
    loaders: dict[int, Loader] = {}
    reports, failed = [], []
    for artifact_id, used in uses.items():
        for use in used:
            loader = loaders.setdefault(id(use.spec), Loader(use.spec, store, checks=checks, offline=True))
            tokenizer = _tokenizer(use, bundle_spec, bundle_refs, folders, store)
            report = loader.check_staged(use.entry, artifact_id, folders[artifact_id], tokenizer=tokenizer)
            reports.append(report)
            if not report.ok:
                failed.append((use, report))
    if failed:
        raise _failure(bundle, failed, bundle_spec)
    return reports


def _uses(bundle_spec: RegistrySpec, bundle_refs: Mapping[str, str], folders: Mapping[str, Path],
          registry: RegistrySpec | None) -> dict[str, list[_Use]]:
    uses: dict[str, list[_Use]] = {artifact_id: [] for artifact_id in folders}

    def add(artifact_id: str, use: _Use) -> None:
        if artifact_id in uses and not any(u.spec is use.spec and u.entry.name == use.entry.name
                                           for u in uses[artifact_id]):
            uses[artifact_id].append(use)

    for name, artifact_id in bundle_refs.items():
        add(artifact_id, _Use(bundle_spec, bundle_spec.get(name)))
    for entry in bundle_spec.entries():
        if isinstance(entry.source, HfSource) and entry.source.is_pinned:
            add(hf_artifact_id(entry.source.repo_id, entry.source.revision, entry.source.repo_type),
                _Use(bundle_spec, entry))
    if registry is None:
        return uses
    for entry in registry.entries():
        if not entry.available or not isinstance(entry.source, HfSource):
            continue
        targets = set()
        if entry.source.is_pinned:
            targets.add(hf_artifact_id(entry.source.repo_id, entry.source.revision, entry.source.repo_type))
        replaced = bundle_refs.get(entry.name)
        ours = bundle_spec.models.get(entry.name) or bundle_spec.tokenizers.get(entry.name)
        if replaced and ours is not None and isinstance(ours.source, HfSource) \
                and ours.source.repo_id == entry.source.repo_id and ours.kind == entry.kind:
            targets.add(replaced)  # the bundle's entry replaces this one: it must still pass its checks
        for artifact_id in targets:
            add(artifact_id, _Use(registry, entry))
    return uses


def _tokenizer(use: _Use, bundle_spec: RegistrySpec, bundle_refs: Mapping[str, str],
               folders: Mapping[str, Path], store: Store) -> tuple[Entry, Path] | None:
    """The paired tokenizer's entry and folder (staged or stored), for the pairing checks."""
    if not use.entry.is_model or not use.entry.tokenizer:
        return None
    tokenizer = use.spec.tokenizers.get(use.entry.tokenizer)
    if tokenizer is None or tokenizer.source is None:
        return None
    artifact_id = None
    if use.spec is bundle_spec:
        artifact_id = bundle_refs.get(tokenizer.name)
    elif isinstance(tokenizer.source, HfSource) and tokenizer.source.is_pinned:
        source = tokenizer.source
        artifact_id = hf_artifact_id(source.repo_id, source.revision, source.repo_type)
    if artifact_id in folders:
        return tokenizer, folders[artifact_id]
    if artifact_id and store.has(artifact_id):
        return tokenizer, store.object_dir(artifact_id)
    return None


def _failure(bundle: Path, failed: Sequence[tuple[_Use, Report]], bundle_spec: RegistrySpec) -> VerificationError:
    # Models first: a report lists a bounded number of problems, and the model is what was named.
    failed = sorted(failed, key=lambda item: not item[0].entry.is_model)
    labels = " and ".join(dict.fromkeys(report.artifact for _, report in failed))
    problems: list[Problem] = []
    for use, report in failed:
        where = "the bundle's entry" if use.spec is bundle_spec else f"the entry in {use.entry.origin.path}"
        for problem in report.errors:
            problems.append(attrs.evolve(problem, message=f"as '{use.entry.name}' ({where}): {problem.message}"))
    return VerificationError(
        f"bundle {bundle}: {labels}", _unique(problems),
        hint=("nothing was imported; the bundle does not hold the checkpoint its entries (and this "
              "machine's registry) expect: export it again from a store where `kronos-registry verify` "
              "passes"))


def _unique(problems: Iterable[Problem]) -> list[Problem]:
    return list(dict.fromkeys(problems))
