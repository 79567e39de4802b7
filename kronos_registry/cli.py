"""`kronos-registry`: the command line face of the registry (also `python -m kronos_registry`).

Every command is a thin layer over ``kronos_registry.api.Registry`` and ``candles``: parse the
options, call the API, print a tidy table (or JSON with ``--json``). Errors the user can act on
are ``RegistryError``s: they are printed as one short paragraph and mapped to their exit code
in one place (``KronosGroup.invoke``), never as a traceback unless ``--debug`` is given.

Heavy imports (torch, pandas, matplotlib, huggingface_hub) happen inside the commands that need
them, so `--help`, `list` and `validate` stay quick.
"""

from __future__ import annotations

import errno
import json
import sys
import traceback
from pathlib import Path
from typing import Any, Iterable, Sequence

import click

from registry.errors import (
    ReadOnlyStoreError,
    RegistryError,
    VerificationError,
)

from . import __version__
from .catalog import entry_info, human_params, human_size, render_show, show_info

PROG = "kronos-registry"

EXIT_CODES_HELP = """\b
Exit codes:
  0   success
  1   unexpected error: a file system error (the message names the path),
      or a bug (rerun with --debug and report it)
  2   usage error: a bad option or argument, or a refused request
      (e.g. rm of a tokenizer that a synced model still uses)
  3   the registry file (models.yaml) is invalid
  4   unknown or unavailable entry, or the wrong kind (a tokenizer to predict)
  5   source or network error (hub unreachable, repo, revision or file missing)
  6   verification failed (config, weights, hashes, pairing, damaged store)
  7   not in the store, and it may not be fetched now (offline)
  8   gave up waiting for another process's lock on an artifact
  9   bad input data (candle CSV, bundle, argument value)
  10  an optional dependency is missing (matplotlib for --plot, pyarrow for
      Parquet, ray for --ray, fastapi/uvicorn for serve, mcp for mcp)
  11  the store is read-only: sync, rm, gc and import need to write it
      (predict never writes, so it works from a read-only store, and so
      does a sync of an entry already stored)

\b
Environment:
  KRONOS_REGISTRY_FILE          registry file (after --registry, before ./models.yaml)
  KRONOS_REGISTRY_HOME          store folder (default ~/.cache/kronos-registry)
  KRONOS_REGISTRY_OFFLINE=1     no network at all (HF_HUB_OFFLINE=1 too)
  KRONOS_REGISTRY_LOCK_TIMEOUT  seconds to wait for another sync (default 600)
  KRONOS_REGISTRY_TIMEOUT       seconds per hub request (default 10)
  HF_ENDPOINT                   hub or mirror URL (e.g. a self-hosted olah)
  HF_TOKEN                      hub token; never printed or written anywhere
"""


class MissingExtraError(RegistryError):
    """An optional dependency (a `pip install 'kronos-registry[EXTRA]'`) is not installed."""

    exit_code = 10

    def __init__(self, module: str, extra: str, purpose: str):
        super().__init__(
            f"{purpose} needs {module}, which is not installed",
            hint=f"pip install 'kronos-registry[{extra}]'  (or: pip install {module})",
        )


class RefusedError(RegistryError):
    """A request the user may repeat with --force once they mean it."""

    exit_code = 2


# ==============================================================================================
# Shared state, output and error handling
# ==============================================================================================


class App:
    """The global options, and the Registry built from them on first use."""

    def __init__(self, registry_file: str | None, store: str | None, offline: bool, debug: bool, quiet: bool):
        self.registry_file = registry_file
        self.store = store
        # None lets the environment decide (KRONOS_REGISTRY_OFFLINE, HF_HUB_OFFLINE).
        self.offline = True if offline else None
        self.debug = debug
        self.quiet = quiet
        self._registry = None

    def override(self, registry_file=None, store=None, offline=False, debug=False, quiet=False) -> None:
        """Global options given after the command (see ``KronosCommand``)."""
        self.registry_file = registry_file if registry_file is not None else self.registry_file
        self.store = store if store is not None else self.store
        self.offline = True if offline else self.offline
        self.debug = self.debug or debug
        self.quiet = self.quiet or quiet

    @property
    def progress(self) -> bool:
        # Bars only for a person watching: never in logs, pipes or CI output.
        return not self.quiet and sys.stderr.isatty()

    def registry(self):
        if self._registry is None:
            from .api import Registry

            self._registry = Registry(self.registry_file, self.store, offline=self.offline,
                                      progress=self.progress, on_wait=self.on_wait, on_note=self.note)
        return self._registry

    def note(self, text: str = "") -> None:
        """Talk to the person (stderr), unless -q. Data goes to stdout with click.echo."""
        if not self.quiet:
            click.echo(text, err=True)

    def on_wait(self, wait) -> None:
        limit = "" if wait.timeout is None or wait.timeout < 0 else f", giving up after {wait.timeout:g} s"
        self.note(f"waiting for another process syncing {wait.entry or wait.artifact_id} "
                  f"(lock {wait.lock_path}{limit})")


def print_error(error: BaseException, hints_shown: set[str] | None = None) -> None:
    """One short paragraph: `error: ...` and, when the error knows one, `hint: ...`.

    ``hints_shown`` collects the hints of a batch (`sync --all`), so each is said once.
    """
    if isinstance(error, RegistryError):
        click.echo(f"error: {redact_secrets(error.message)}", err=True)
        if error.hint and (hints_shown is None or error.hint not in hints_shown):
            click.echo(f"hint: {redact_secrets(error.hint)}", err=True)
            if hints_shown is not None:
                hints_shown.add(error.hint)
    else:
        click.echo(f"error: {redact_secrets(str(error))}", err=True)


def redact_secrets(text: str) -> str:
    """Tokens and URL credentials out of anything shown (see registry.store.redact_secrets)."""
    from registry.store import redact_secrets as redact

    return redact(text)


def os_error_hint(error: OSError) -> str:
    """What to do about a file-system error: a full disk gets its own advice."""
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return ("the disk (or quota) is full; what this command had written is removed. Free space "
                f"there: `{PROG} gc` removes unreferenced artifacts and stale downloads, `{PROG} rm NAME` "
                f"removes an entry, `{PROG} doctor` shows the store's free space; then run it again")
    return f"check that path, its permissions and the free space (`{PROG} doctor` shows the store's)"


class KronosGroup(click.Group):
    """Maps every RegistryError to its exit code, and anything unexpected to exit 1."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise  # click's own: usage errors keep exit 2
        except RegistryError as error:
            if _debug(ctx):
                traceback.print_exc()
            print_error(error)
            raise click.exceptions.Exit(error.exit_code) from None
        except OSError as error:
            # The file system said no (permissions, a full disk, a file where a folder belongs):
            # not a bug, and the message names the path.
            if error.errno == errno.EPIPE:
                raise  # `kronos-registry list | head`: click exits quietly
            if error.errno == errno.EROFS:  # a write the store's own checks did not foresee
                read_only = ReadOnlyStoreError(_store_root(ctx), str(error.filename or ""), error.strerror or "")
                print_error(read_only)
                raise click.exceptions.Exit(read_only.exit_code) from None
            if _debug(ctx):
                traceback.print_exc()
            click.echo(f"error: {redact_secrets(str(error))}", err=True)
            click.echo(f"hint: {os_error_hint(error)}", err=True)
            raise click.exceptions.Exit(1) from None
        except Exception as error:  # noqa: BLE001 - the last line of defence for the user
            if _debug(ctx):
                traceback.print_exc()
            click.echo(f"error: internal error ({type(error).__name__}: {error}); this is a bug in "
                       f"{PROG}: rerun with --debug for the traceback and report it", err=True)
            raise click.exceptions.Exit(1) from None


def _debug(ctx: click.Context) -> bool:
    return isinstance(ctx.obj, App) and ctx.obj.debug


def _global_options() -> list[click.Option]:
    """The group's options, repeated on every command so that they may follow it too."""
    return [
        click.Option(["--registry", "_registry_file"], metavar="FILE", hidden=True),
        click.Option(["--store", "_store"], metavar="DIR", hidden=True),
        click.Option(["--offline", "_offline"], is_flag=True, hidden=True),
        click.Option(["--debug", "_debug"], is_flag=True, hidden=True),
        click.Option(["-q", "--quiet", "_quiet"], is_flag=True, hidden=True),
    ]


class KronosCommand(click.Command):
    """A command that also takes the global options after its name: `predict ... -q --offline`.

    Given after the command, an option overrides the same one given before it. They are
    hidden from each command's --help (the group's --help lists them once).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        taken = {opt for param in self.params for opt in param.opts + param.secondary_opts}
        self.params += [option for option in _global_options() if not taken & set(option.opts)]

    def invoke(self, ctx: click.Context):
        values = {name: ctx.params.pop(name) for name in list(ctx.params) if name.startswith("_")}
        app = ctx.find_object(App)
        if app is not None:
            app.override(**{name[1:]: value for name, value in values.items()})
        return super().invoke(ctx)


def _store_root(ctx: click.Context) -> str:
    from registry.store import default_store_root

    return str(default_store_root(ctx.obj.store if isinstance(ctx.obj, App) else None))


pass_app = click.make_pass_decorator(App)


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """Plain aligned columns, two spaces apart: readable, greppable, no extra dependency."""
    rows = [["" if cell is None else str(cell) for cell in row] for row in rows]
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows)]
    lines = [headers, *rows]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip()
                     for line in lines)


def shorten(text: str | None, width: int) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= width else text[: width - 3].rstrip() + "..."


# ==============================================================================================
# The group
# ==============================================================================================


@click.group(cls=KronosGroup, epilog=EXIT_CODES_HELP, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--registry", "registry_file", metavar="FILE",
              help="Registry file overlaying the packaged one [default: $KRONOS_REGISTRY_FILE, "
              "else ./models.yaml, else the packaged file].")
@click.option("--store", metavar="DIR",
              help="Store folder [default: $KRONOS_REGISTRY_HOME, else ~/.cache/kronos-registry].")
@click.option("--offline", is_flag=True, help="Make no network call at all (also KRONOS_REGISTRY_OFFLINE=1).")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.option("-q", "--quiet", is_flag=True, help="Print only results: no notes, no progress bars.")
@click.version_option(__version__, "--version", prog_name=PROG, message="%(prog)s %(version)s")
@click.pass_context
def cli(ctx: click.Context, registry_file, store, offline, debug, quiet):
    """Verified Kronos models for candlestick forecasting, online or offline.

    The registry (models.yaml) names every Kronos variant, pinned; `sync` fetches an
    entry into a local store only after verifying it; `predict` forecasts candles
    from a CSV. The `kronos-demo` entry ships in the package (random weights), so
    this works on a fresh machine with no network:

    \b
      kronos-registry list
      kronos-registry predict kronos-demo --input candles.csv --pred-len 24 \\
          --output forecast.csv --plot forecast.png
      kronos-registry sync kronos-small
      kronos-registry export kronos-small -o kronos.tar   # carry it offline

    The options below may also follow the command (`predict ... -q --offline`).
    """
    ctx.obj = App(registry_file, store, offline, debug, quiet)


cli.command_class = KronosCommand  # every command also takes the global options after its name


# ==============================================================================================
# list / show
# ==============================================================================================


def revision_text(info: dict) -> str:
    """The stored revision, short: a hub commit's first 12 digits, a local copy's content digest."""
    if info.get("revision"):
        return info["revision"][:12]
    if info.get("artifact_id"):
        return "local@" + info["artifact_id"].rsplit("--", 1)[-1][:12]
    return "-"


def status_word(info: dict) -> str:
    if not info["available"]:
        return "unavailable"
    return "synced" if info["synced"] else "-"


@cli.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of entries.")
@click.option("--stored", is_flag=True, help="List every object in the store instead, with the entries "
              "(of any registry file) whose refs name it; `rm ARTIFACT_ID` removes one.")
@pass_app
def list_entries(app: App, as_json: bool, stored: bool):
    """List the registry's models and tokenizers, whether each is synced, its size and revision."""
    registry = app.registry()
    if stored:
        list_stored(app, registry, as_json)
        return
    infos = [entry_info(registry, entry) for entry in registry.entries()]
    if as_json:
        emit_json(infos)
        return
    rows = [[i["name"], i["kind"], human_params(registry.get(i["name"])), i["context_length"] or "-",
             status_word(i), human_size(i["size"]) if i["synced"] else "-",
             revision_text(i) if i["synced"] else "-", shorten(described(i), 48)]
            for i in infos]
    click.echo(table(["NAME", "KIND", "PARAMS", "CONTEXT", "STATUS", "SIZE", "REVISION", "DESCRIPTION"], rows))
    app.note(f"\nregistry: {', '.join(registry.spec.paths)}\nstore:    {registry.store.root}")


def described(info: dict) -> str:
    """The description, marked with the bundle an imported entry came from."""
    text = info["description"] or info["reason"] or ""
    return f"[from {info['bundle']}] {text}".strip() if info["bundle"] else text


def list_stored(app: App, registry, as_json: bool) -> None:
    from .cli_store import stored_objects

    objects = stored_objects(registry)
    if as_json:
        emit_json(objects)
        return
    rows = [[o["artifact_id"], o["kind"] or "?", human_size(o["size"]),
             (o["revision"] or "-")[:12],
             ", ".join(r["entry"] + (f" ({r['registry']})" if r["registry"] else "") for r in o["refs"])
             or "(no ref: `gc` removes it)"]
            for o in objects]
    click.echo(table(["ARTIFACT", "KIND", "SIZE", "REVISION", "NAMED BY"], rows))
    total = sum(o["size"] or 0 for o in objects)
    app.note(f"\n{len(objects)} object{'s' if len(objects) != 1 else ''}, {human_size(total)}; "
             f"store: {registry.store.root}")


@cli.command()
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
@pass_app
def show(app: App, name: str, as_json: bool):
    """Show everything about one entry: source, config, and its copy in the store."""
    registry = app.registry()
    info = show_info(registry, name)
    if as_json:
        emit_json(info)
        return
    click.echo(render_show(registry.get(name), info))


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
        ref = registry.store.get_ref(entry.name, entry.registry)
        if (ref is not None and ref.source == str(entry.source) and registry.store.has(ref.artifact_id)) \
                or registry.status(entry.name):
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


# ==============================================================================================
# validate
# ==============================================================================================


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object (also when the file is invalid).")
@pass_app
def validate(app: App, as_json: bool):
    """Parse and check the registry file in use; exit 3 naming every problem (file:line:column).

    An available entry whose local source folder does not exist is a problem too: a
    sync of it could only fail.
    """
    from registry.errors import Problem, RegistryFileError
    from registry.spec import LocalSource

    try:
        spec = app.registry().spec
    except RegistryFileError as error:
        if as_json:
            emit_json({"valid": False, "files": [], "problems": [str(p) for p in error.problems],
                       "warnings": []})
        raise
    problems = [
        Problem(f"the source folder {entry.source} of '{entry.name}' does not exist",
                file=entry.location_of("source").path, field=f"{entry.kind}s.{entry.name}.source",
                location=entry.location_of("source"),
                hint="point `source:` at the checkpoint folder (relative paths start at the registry "
                     "file's folder), or mark the entry `available: false` with a `reason:`")
        for entry in spec.entries()
        if isinstance(entry.source, LocalSource) and entry.available and not Path(entry.source.path).is_dir()]
    models = list(spec.models.values())
    available = sum(1 for m in models if m.available)
    if as_json:
        emit_json({"valid": not problems, "files": list(spec.paths), "models": len(models),
                   "available_models": available, "tokenizers": len(spec.tokenizers),
                   "problems": [str(p) for p in problems], "warnings": [str(w) for w in spec.warnings]})
    if problems:
        blamed = {p.file for p in problems}
        raise RegistryFileError(blamed.pop() if len(blamed) == 1 else spec.path, problems)
    if as_json:
        return
    click.echo(f"OK: {len(models)} models ({available} available), {len(spec.tokenizers)} tokenizers")
    for path in spec.paths:
        click.echo(f"  file  {path}")
    for warning in spec.warnings:
        click.echo(f"  {warning}")


# ==============================================================================================
# entry points
# ==============================================================================================


def main(argv: Sequence[str] | None = None, prog_name: str = PROG) -> None:
    """The console script `kronos-registry`."""
    cli.main(args=list(argv) if argv is not None else None, prog_name=prog_name)


# The commands defined in their own modules register themselves on the group (they import from here).
# Optional faces (serve, mcp) import their extras only when they run.
from . import cli_add, cli_bundle, cli_doctor, cli_mcp, cli_predict, cli_remove, cli_serve  # noqa: E402,F401

__all__ = ["cli", "main", "MissingExtraError"]
