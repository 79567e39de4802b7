"""`kronos-registry add NAME SOURCE`: register a checkpoint without hand-editing YAML.

Inspect the checkpoint (config.json: its role, its shape, its parameter count), choose its
tokenizer and context (given, else those of the published model it has the shape of), append
a commented entry to the registry file, and sync it, which runs every check a sync runs
(config, weights, pairing with the tokenizer, parameter count).

The registry file is edited as text, never re-serialised (``services/registry_file.py``, which
`finetune` shares): the user's comments, order and formatting stay byte for byte; the entry is
inserted at the end of its section (or the file is created). If the sync fails, the file is
put back as it was, so a refused checkpoint never lingers in the registry.
"""

from __future__ import annotations

from pathlib import Path

import click

from kronos_registry.cli.app import PROG, App, RefusedError, cli, pass_app
from kronos_registry.cli.output import emit_json
from kronos_registry.cli.sync import print_sync_line, sync_info, sync_records
from kronos_registry.services.registry_file import (
    DEFAULT_CONTEXT,
    DEFAULT_TOKENIZER,
    entry_text,
    insert_entry,
    inspect_source,
    registry_target,
    restore,
    write_text,
)
from registry.spec import ENTRY_NAME_RE


@cli.command("add")
@click.argument("name")
@click.argument("source")
@click.option("--tokenizer", metavar="NAME",
              help="The model's tokenizer entry [default: that of the published model with the "
              f"checkpoint's shape, else {DEFAULT_TOKENIZER}].")
@click.option("--context-length", type=click.IntRange(min=1), metavar="N",
              help=f"The longest context [default: that of the published model with the checkpoint's "
              f"shape, else {DEFAULT_CONTEXT}].")
@click.option("--description", metavar="TEXT", help="A line saying what the checkpoint is.")
@click.option("--no-sync", is_flag=True, help="Only write the entry; sync it later.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
@pass_app
def add(app: App, name: str, source: str, tokenizer: str | None, context_length: int | None,
        description: str | None, no_sync: bool, as_json: bool):
    """Register the checkpoint SOURCE as NAME, verified, and sync it.

    SOURCE is a checkpoint folder (config.json + model.safetensors) or hf://ORG/REPO@REV.
    The entry is appended to the registry file given with --registry (else
    $KRONOS_REGISTRY_FILE, else ./models.yaml, created when absent), with a comment
    saying where it came from; nothing else in the file changes. A tokenizer checkpoint
    is added to the `tokenizers:` section. If the sync fails, the file is left as it was.

    \b
    Example:
      kronos-registry add my-finetune ./outputs/finetune/model --tokenizer kronos-tokenizer-base
      kronos-registry predict my-finetune -i candles.csv -n 24
    """
    from kronos_registry.services.registry import PACKAGED_REGISTRY, Registry

    target = registry_target(app.registry_file)
    # The registry as it stands: the target file over the packaged one (validating the target),
    # or the packaged one alone while the target does not exist yet.
    registry = app.registry() if target.exists() else Registry(PACKAGED_REGISTRY, app.store, offline=app.offline)
    if not ENTRY_NAME_RE.match(name):
        raise click.BadParameter(f"'{name}' is not a valid entry name: start with a letter or digit and use "
                                 "only letters, digits, '.', '_' and '-'", param_hint="NAME")
    if name in registry.spec.names():
        where = registry.spec.get(name).origin
        raise RefusedError(f"an entry named '{name}' already exists ({where})",
                           hint=f"choose another name, or edit that entry in {where.path}")
    plan = inspect_source(source, target, registry.spec, tokenizer, context_length)
    original = target.read_bytes() if target.exists() else None
    text, line = insert_entry(original, plan["section"], entry_text(name, plan, description), name)
    write_text(target, text)
    app._registry = None  # the file changed: read it again
    app.registry_file = str(target)
    result = None
    try:
        registry = app.registry()
        if not no_sync:
            result = registry.sync(name)
    except BaseException:
        restore(target, original)
        app.note(f"note: the entry was not added; {target} is as it was")
        raise
    report(app, name, plan, target, line, result, as_json)


def report(app: App, name: str, plan: dict, target: Path, line: int, result, as_json: bool) -> None:
    info = {"name": name, "kind": plan["role"], "registry": str(target), "line": line,
            "source": plan["source"], "params": plan["params"], "tokenizer": plan["tokenizer"],
            "context_length": plan["context_length"], "chosen": plan["chosen"],
            "synced": [sync_info(r) for r in sync_records(result)] if result is not None else []}
    if as_json:
        emit_json(info)
        return
    params = f", {plan['params']:,} params" if plan["params"] is not None else ""
    paired = (f", tokenizer {plan['tokenizer']}, context {plan['context_length']}"
              if plan["role"] == "model" else "")
    click.echo(f"added    {name} to {target}:{line} ({plan['role']}{params}{paired})")
    for record in info["synced"]:
        print_sync_line(record)
    if plan["chosen"]:
        app.note(f"note: tokenizer and context come from {plan['chosen']}; pass --tokenizer and "
                 "--context-length to choose them")
    if result is None:
        app.note(f"next: {PROG} --registry {target} sync {name}")
    elif plan["role"] == "model":
        app.note(f"next: {PROG} --registry {target} predict {name} --input candles.csv --pred-len 24")


__all__ = ["add", "insert_entry"]
