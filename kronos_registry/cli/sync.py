"""`sync` and `verify`: fetch entries into the store, verified, and re-check what is there."""

from __future__ import annotations

from typing import Sequence

import click

from kronos_registry.cli.app import PROG, App, cli, pass_app
from kronos_registry.cli.output import emit_json, print_error, redact_secrets
from kronos_registry.services.catalog import human_size
from registry.errors import RegistryError, VerificationError

# ==============================================================================================
# sync / verify
# ==============================================================================================


def sync_records(result) -> list:
    """The tokenizer's result first, then the entry's own."""
    return ([result.tokenizer] if result.tokenizer is not None else []) + [result]


def sync_info(result) -> dict:
    report = result.report
    warnings = [str(p) for p in report.warnings] if report is not None else list(result.manifest.warnings)
    return {
        "name": result.entry.name,
        "kind": result.entry.kind,
        "status": "fetched" if result.fetched else "present",
        "artifact_id": result.artifact_id,
        "path": str(result.path),
        "revision": result.manifest.resolved_revision,
        "size": result.manifest.total_size,
        "warnings": warnings,
    }


def each_entry(names, action, results: list, failures: list, hints: set):
    """Yield (name, action(name)) for each name, going on past failures.

    A failure is printed and recorded in ``results`` and ``failures``; a single name
    re-raises instead, so its own message and exit code stand.
    """
    for name in names:
        try:
            outcome = action(name)
        except RegistryError as error:
            if len(names) == 1:
                raise
            print_error(error, hints)
            failures.append((name, error.exit_code))
            results.append(failure_info(name, error))
            continue
        yield name, outcome


def failure_info(name: str, error: RegistryError) -> dict:
    return {"name": name, "status": "failed", "error": redact_secrets(error.message),
            "hint": redact_secrets(error.hint or "") or None,
            "exit_code": error.exit_code}


def finish_batch(verb: str, failures: list[tuple[str, int]], total: int, hint: str | None = None) -> None:
    """After a command that went on past failures: say which failed, exit with the first's code."""
    if not failures:
        return
    names = ", ".join(name for name, _ in failures)
    click.echo(f"error: {len(failures)} of {total} entries failed to {verb}: {names}", err=True)
    if hint:
        click.echo(f"hint: {hint}", err=True)
    raise click.exceptions.Exit(failures[0][1])


@cli.command()
@click.argument("names", nargs=-1, metavar="[NAME]...")
@click.option("--all", "all_entries", is_flag=True, help="Sync every available entry.")
@click.option("--force", is_flag=True, help="Fetch and verify again even if a good copy is stored.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of results.")
@pass_app
def sync(app: App, names: tuple[str, ...], all_entries: bool, force: bool, as_json: bool):
    """Fetch entries into the store, verified (a model's tokenizer comes along).

    Hub files go through the Hugging Face cache, so weights that `from_pretrained`
    downloaded before are reused, also offline. A file is published only after its
    config, weights, hashes and pairing pass every check.
    """
    if bool(names) == all_entries:
        raise click.UsageError("name the entries to sync, or pass --all (not both)")
    registry = app.registry()
    if all_entries:
        names = tuple(e.name for e in registry.entries() if e.available and e.source is not None)
    results, failures, seen, hints = [], [], set(), set()
    for _, result in each_entry(names, lambda name: registry.sync(name, force=force), results, failures, hints):
        for record in sync_records(result):
            if record.entry.name in seen:
                continue
            seen.add(record.entry.name)
            info = sync_info(record)
            results.append(info)
            if not as_json:
                print_sync_line(info)
    if as_json:
        emit_json(results)
    finish_batch("sync", failures, len(names))


def print_sync_line(info: dict) -> None:
    click.echo(f"{info['status']:<8} {info['name']:<24} {info['artifact_id']}  {human_size(info['size'])}")
    for warning in info["warnings"]:
        click.echo(f"         {warning}")


def stored_candidates(registry) -> list[str]:
    """Entries that have something in the store (cheap: refs and pinned ids only)."""
    names = []
    for entry in registry.entries():
        if not entry.available or entry.source is None:
            continue
        if registry.loader.stored_artifact(entry) or registry.status(entry.name):
            names.append(entry.name)
    return names


@cli.command()
@click.argument("names", nargs=-1, metavar="[NAME]...")
@click.option("--deep", is_flag=True, help="Also re-hash every file against its manifest.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of reports.")
@pass_app
def verify(app: App, names: tuple[str, ...], deep: bool, as_json: bool):
    """Re-check stored entries (all that are synced, by default); changes nothing.

    Without --deep: the manifest, file sizes, config, tensor names, shapes and dtypes, the
    values (no NaN/Inf) and the pairing. With --deep also every sha256. Exit 6 on a problem.
    """
    registry = app.registry()
    targets = list(names) or stored_candidates(registry)
    if not targets:
        app.note(f"nothing is synced in {registry.store.root} yet; run `{PROG} sync NAME`")
        if as_json:
            emit_json([])
        return
    reports, failures, hints = [], [], set()
    for name, report in each_entry(targets, lambda name: registry.verify(name, deep=deep), reports, failures, hints):
        info = {"name": name, "artifact": report.artifact, "ok": report.ok, "deep": deep,
                "checks": list(report.checks_run), "errors": [str(p) for p in report.errors],
                "warnings": [str(p) for p in report.warnings]}
        reports.append(info)
        if not report.ok:
            failures.append((name, VerificationError.exit_code))
        if not as_json:
            print_verify_lines(info, report.problems)
    if as_json:
        emit_json(reports)
    finish_batch("pass verification", failures, len(targets),
                 hint=f"run `{PROG} sync --force NAME` to fetch a damaged entry again, or `{PROG} rm NAME` to remove it")


def print_verify_lines(info: dict, problems: Sequence) -> None:
    """One line per kind of problem (a count and two examples), its fix on the next line."""
    from registry.errors import render_problems

    mark = "ok" if info["ok"] else "FAILED"
    kind = "deep" if info["deep"] else "cheap"
    click.echo(f"{mark:<7} {info['artifact']}  ({len(info['checks'])} checks, {kind})")
    for line in render_problems(problems, indent=" " * 8):
        click.echo(line)


