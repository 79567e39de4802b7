"""Registering a fine-tune: its entries, with their lineage, written as `add` writes them.

The registry file is the commit point. Until it is replaced, nothing in it or in the store
has changed; the order is:

1. build the new file's text: the entries `add` would append for the checkpoint folders
   (``services/registry_file.py``), each with a ``lineage:`` block;
2. parse that text (from a temporary file beside the registry file, so relative sources
   resolve the same) and run every check a sync runs on the folders (config, weights,
   pairing with the tokenizer, parameter count): a problem stops here, nothing written;
3. replace the registry file with the new text, atomically (the commit);
4. sync the new entries into the store (publish is atomic there too). If that fails, the
   file is put back as it was, as `add` does. A kill -9 during this step leaves a valid
   entry whose folder is verified; its first use syncs it.
"""

from __future__ import annotations

import datetime
from pathlib import Path

from attrs import frozen

from kronos_registry.services.registry_file import entry_text, insert_entry, inspect_source, restore, write_text
from registry.errors import VerificationError

PROG = "kronos-registry"


@frozen
class NewEntry:
    name: str
    folder: Path
    lineage: dict
    description: str


def register(target: Path, spec, store, *, model: NewEntry, tokenizer: NewEntry | None, tokenizer_name: str,
             tokenizer_folder: Path, context_length: int, offline: bool | None) -> tuple[object, int]:
    """Append the entries to ``target`` and sync them (see the module doc) -> (sync result, line)."""
    from kronos_registry.services.registry import Registry

    original = target.read_bytes() if target.exists() else None
    text, line = _new_text(original, target, spec, model, tokenizer, tokenizer_name, context_length)
    candidate = target.with_name(f".{target.name}.finetune-{model.name}.yaml")
    try:
        write_text(candidate, text)
        preview = Registry(candidate, store.root, offline=True)
        _check_folders(preview, model, tokenizer, tokenizer_folder)
    finally:
        candidate.unlink(missing_ok=True)
    write_text(target, text)                      # the commit point
    try:
        result = Registry(target, store.root, offline=offline).sync(model.name)
    except BaseException:
        restore(target, original)
        raise
    return result, line


def _new_text(original: bytes | None, target: Path, spec, model: NewEntry, tokenizer: NewEntry | None,
              tokenizer_name: str, context_length: int) -> tuple[str, int]:
    text = original
    if tokenizer is not None:
        plan = inspect_source(str(tokenizer.folder), target, spec, None, None)
        rows = entry_text(tokenizer.name, plan, tokenizer.description, made_by=_made_by(tokenizer),
                          lineage=tokenizer.lineage)
        text = insert_entry(text, "tokenizers", rows, tokenizer.name)[0].encode("utf-8")
    plan = inspect_source(str(model.folder), target, spec, None, context_length)
    # the tokenizer is the run's choice (possibly trained by it), not a guess from the shape
    plan.update(tokenizer=tokenizer_name, chosen=None)
    rows = entry_text(model.name, plan, model.description, made_by=_made_by(model), lineage=model.lineage)
    return insert_entry(text, "models", rows, model.name)


def _made_by(entry: NewEntry) -> str:
    day = datetime.date.today().isoformat()
    return f"# written by `{PROG} finetune` on {day}: {entry.description}"


def _check_folders(preview, model: NewEntry, tokenizer: NewEntry | None, tokenizer_folder: Path) -> None:
    """Every check a sync runs, on the folders as they are, before anything is committed."""
    loader = preview.loader
    tokenizer_entry = preview.get(preview.get(model.name).tokenizer)
    if tokenizer is not None:
        loader.check_staged(tokenizer_entry, tokenizer.name, tokenizer.folder).raise_for_errors()
    report = loader.check_staged(preview.get(model.name), model.name, model.folder,
                                 tokenizer=(tokenizer_entry, tokenizer_folder))
    if not report.ok:
        raise VerificationError(f"'{model.name}' ({model.folder})", report.problems,
                                hint="nothing was registered; the checkpoint folders are kept for a look")


__all__ = ["NewEntry", "register"]
