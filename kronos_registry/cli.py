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
import os
import platform
import secrets
import shutil
import sys
import tempfile
import time
import traceback
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable, Sequence

import click

from registry.errors import (
    EntryKindError,
    InputDataError,
    NotSyncedError,
    ReadOnlyStoreError,
    RegistryError,
    VerificationError,
)

from . import __version__
from .catalog import entry_info, human_params, human_size, render_show, show_info

PROG = "kronos-registry"
DEMO_ENTRY = "kronos-demo"  # ships in the package with random weights: say so wherever it forecasts

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
      Parquet, ray for --ray)
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
# predict
# ==============================================================================================


def check_device(device: str | None) -> None:
    if device is None:
        return
    import torch

    try:
        kind = torch.device(device).type
    except (RuntimeError, ValueError) as exc:
        raise click.BadParameter(f"'{device}' is not a torch device ({exc})", param_hint="--device") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise click.BadParameter("CUDA is not available on this machine; use --device cpu",
                                 param_hint="--device")


def need_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise MissingExtraError("matplotlib", "plot", "--plot") from None


@cli.command()
@click.argument("name")
@click.option("--input", "-i", "input_path", required=True, metavar="CSV",
              help="Candle CSV: a timestamp column (timestamps/timestamp/date/datetime/time), "
              "open, high, low, close; volume and amount optional.")
@click.option("--pred-len", "-n", required=True, type=click.IntRange(min=1), metavar="N",
              help="Number of bars to forecast.")
@click.option("--lookback", type=click.IntRange(min=1), metavar="N",
              help="Bars of history the model sees [default: what fits the context with the forecast: "
              "context - N, at most the rows]. A longer one recomputes the window every step (slow).")
@click.option("--future-timestamps", "future_file", metavar="CSV",
              help="The forecast's timestamps, one column, N rows, after the last input bar "
              "[default: continue the input's interval, or its daily session; business days when it "
              "has no weekend bars].")
@click.option("--output", "-o", metavar="CSV", help="Write the forecast here (else print a short table).")
@click.option("--samples", default=1, show_default=True, type=click.IntRange(min=1), metavar="N",
              help="Sampled paths to average; with --plot their spread is drawn.")
@click.option("--temperature", "-T", default=1.0, show_default=True,
              type=click.FloatRange(min=0, min_open=True), metavar="T",
              help="Sampling temperature: lower is more conservative.")
@click.option("--top-p", default=0.9, show_default=True, type=click.FloatRange(0, 1, min_open=True),
              metavar="P", help="Nucleus sampling: keep the smallest set of tokens with this much probability.")
@click.option("--top-k", default=0, show_default=True, type=click.IntRange(min=0), metavar="K",
              help="Keep only the K likeliest tokens (0: no limit).")
@click.option("--seed", type=click.IntRange(min=0), metavar="S", help="Random seed: same seed, same forecast "
              "[default: a random one, printed].")
@click.option("--device", metavar="DEVICE", help="cpu, cuda, cuda:1, mps [default: cuda, else mps, else cpu].")
@click.option("--plot", metavar="PNG", help="Save a chart of history, forecast and spread (needs matplotlib).")
@click.option("--by", metavar="COLUMN", help="Many series: --input is long format (CSV or Parquet), one row per "
              "bar, COLUMN naming each row's series; every series is forecast (see README).")
@click.option("--on-error", type=click.Choice(["fail", "skip"]), help="With --by: a bad series stops the job "
              "[fail, the default: report them all, write nothing] or is skipped with a warning [skip].")
@click.option("--quantiles", metavar="Q,Q,...", help="With --by and --samples > 1: quantile columns "
              "{col}_q{q} over the sampled paths [default: 0.1,0.5,0.9].")
@click.option("--ray", "ray_address", is_flag=False, flag_value="", default=None, metavar="[ADDRESS]",
              help="With --by: run on Ray (pip install 'kronos-registry[ray]'); no ADDRESS starts a local "
              "cluster, 'auto' or an address joins one.")
@pass_app
def predict(app: App, name, input_path, pred_len, lookback, future_file, output, samples, temperature, top_p,
            top_k, seed, device, plot, by, on_error, quantiles, ray_address):
    """Forecast the next N candles of a CSV with the model NAME.

    The model is loaded from the store (synced first when missing and online).
    Future timestamps continue the input's bar interval or daily session (business
    days when it has no weekend bars), or come from --future-timestamps. Prints a summary; the
    forecast (timestamps, open, high, low, close, volume, amount) goes to
    --output, or to the screen as a short table.

    \b
    Example:
      kronos-registry predict kronos-small -i btc_5min.csv -n 48 \\
          --samples 20 --seed 1 -o forecast.csv --plot forecast.png
    """
    if by is not None or on_error or quantiles or ray_address is not None:
        from .cli_many import predict_many

        return predict_many(app, name, input_path=input_path, by=by, pred_len=pred_len, lookback=lookback,
                            future_file=future_file, output=output, samples=samples, sampling=(temperature,
                            top_p, top_k), seed=seed, device=device, plot=plot, on_error=on_error,
                            quantiles=quantiles, ray_address=ray_address)
    from .candles import read_candles, write_forecast
    from .forecast import ForecastParams, prepare_forecast, run_forecast

    registry = app.registry()
    entry = registry.spec.get_available(name)  # fail fast, before reading anything
    if entry.kind != "model":
        users = [m.name for m in registry.spec.models.values() if m.tokenizer == name and m.available]
        raise EntryKindError(name, entry.kind, "model", users)
    if plot:
        need_matplotlib()
    check_device(device)

    job = prepare_forecast(read_candles(input_path), pred_len=pred_len, context=entry.context_length or 512,
                           lookback=lookback, future_file=future_file)
    for note in job.notes:
        app.note(note)
    candles, future = job.candles, job.future.timestamps
    seed = secrets.randbelow(2**31) if seed is None else seed

    started = time.perf_counter()
    predictor = load_model(registry, name, device)
    loaded = time.perf_counter()
    params = ForecastParams(pred_len=pred_len, samples=samples, seed=seed, temperature=temperature,
                            top_p=top_p, top_k=top_k, lookback=lookback)
    forecast, paths = run_forecast(predictor, job, params, seed=seed)
    finished = time.perf_counter()
    if paths is None:  # one sample: its path is the forecast
        paths = forecast[["open", "high", "low", "close", "volume", "amount"]].to_numpy()[None]

    if output:
        write_forecast(output, future, forecast)
    else:
        click.echo(forecast_table(future, forecast))
    if plot:
        save_plot(plot, candles, future, forecast, paths, title=plot_title(name, pred_len))
    app.note(predict_summary(
        entry=entry, artifact=registry.status(name), job=job,
        forecast=forecast, samples=samples, seed=seed, sampling=(temperature, top_p, top_k),
        device=str(predictor.device), times=(loaded - started, finished - loaded), output=output, plot=plot))


def load_model(registry, name: str, device: str | None):
    try:
        return registry.load_predictor(name, device=device)
    except NotSyncedError as error:
        if error.name == name:
            raise
        # The tokenizer is located first; `sync NAME` of the model brings both, so name the model.
        raise NotSyncedError(name, error.store_root,
                             reason=f"it needs the tokenizer '{error.name}', which is missing too") from error


def plot_title(name: str, pred_len: int) -> str:
    title = f"{name}: {pred_len}-bar forecast"
    return f"{title} (demo: random weights, meaningless)" if name == DEMO_ENTRY else title


def forecast_table(future, forecast, head: int = 10) -> str:
    """The forecast for a terminal; long ones show their first and last `head` rows."""
    rows = [[ts.strftime("%Y-%m-%d %H:%M:%S")] + [f"{v:.4f}" for v in row[:4]] + [f"{v:.1f}" for v in row[4:]]
            for ts, row in zip(future, forecast[["open", "high", "low", "close", "volume", "amount"]].to_numpy())]
    if len(rows) > 2 * head:
        rows = rows[:head] + [["..."] + [""] * 6] + rows[-head:]
    return table(["TIMESTAMP", "OPEN", "HIGH", "LOW", "CLOSE", "VOLUME", "AMOUNT"], rows)


def predict_summary(*, entry, artifact, job, forecast, samples, seed, sampling, device,
                    times, output, plot) -> str:
    def stamp(ts) -> str:
        return ts.strftime("%Y-%m-%d %H:%M")

    from .timestamps import EPOCH_UNIT_NAMES

    candles, used, future = job.candles, job.used, job.future.timestamps
    temperature, top_p, top_k = sampling
    interval = job.future.interval
    if interval is None:
        interval = future.iloc[1] - future.iloc[0] if len(future) > 1 else future.iloc[0] - used.timestamps.iloc[-1]
    closes = forecast["close"].to_numpy()
    rows = [
        ("model", f"{entry.name} ({artifact})" if artifact else entry.name),
        ("input", f"{candles.source}: {len(candles)} rows, used the last {len(used)} ({job.lookback_reason}; "
                  f"{stamp(used.timestamps.iloc[0])} .. {stamp(used.timestamps.iloc[-1])})"
                  + (f"; timestamps read as Unix {EPOCH_UNIT_NAMES[candles.epoch_unit]} (UTC)"
                     if candles.epoch_unit else "")),
        ("gaps", job.gaps.describe() if job.gaps is not None else "n/a (one bar)"),
        ("horizon", f"{len(future)} bars of {_interval_text(interval)} "
                    f"({stamp(future.iloc[0])} .. {stamp(future.iloc[-1])})"),
        ("future", job.future.method),
        ("sampling", f"{samples} sample{'s' if samples != 1 else ''}, T={temperature:g}, top_p={top_p:g}, "
                     f"top_k={top_k}, seed {seed}"),
        ("close", f"last {used.frame['close'].iloc[-1]:.4f} -> forecast first {closes[0]:.4f}, "
                  f"last {closes[-1]:.4f}"),
        ("time", f"{sum(times):.2f} s on {device} (load {times[0]:.2f} s, forecast {times[1]:.2f} s)"),
    ]
    if output:
        rows.append(("wrote", f"{output} ({len(future)} rows)"))
    if plot:
        rows.append(("plot", str(plot)))
    width = max(len(label) for label, _ in rows)
    lines = [f"{label.ljust(width)}  {value}" for label, value in rows]
    if entry.name == DEMO_ENTRY:
        lines.append("note: kronos-demo has random weights; its forecasts are meaningless "
                     "(use kronos-mini, kronos-small or kronos-base for real ones)")
    return "\n".join(lines)


def _interval_text(delta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def save_plot(path: str, candles, future, forecast, paths, *, title: str) -> None:
    """History (the last bars), the forecast's mean close and the spread across samples."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    # A Figure without pyplot: no global state, no GUI backend, nothing to close.
    shown = min(len(candles), max(3 * len(future), 96))
    history_ts = candles.timestamps.iloc[-shown:].to_numpy()
    history_close = candles.frame["close"].iloc[-shown:].to_numpy()
    # Start the forecast at the last real bar so the two lines join.
    future_ts = np.concatenate([history_ts[-1:], future.to_numpy()])
    mean_close = np.concatenate([history_close[-1:], forecast["close"].to_numpy()])
    closes = paths[:, :, 3]  # (samples, pred_len): column 3 is close

    figure = Figure(figsize=(10, 4.8), dpi=110)
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    ax.plot(history_ts, history_close, color="0.25", linewidth=1.1, label="history (close)")
    if len(closes) > 1:
        ax.fill_between(future.to_numpy(), closes.min(axis=0), closes.max(axis=0), color="tab:blue",
                        alpha=0.15, linewidth=0, label=f"min-max of {len(closes)} samples")
        if len(closes) >= 5:
            low, high = np.quantile(closes, [0.1, 0.9], axis=0)
            ax.fill_between(future.to_numpy(), low, high, color="tab:blue", alpha=0.25, linewidth=0,
                            label="10-90% of samples")
    label = "forecast (close)" if len(closes) == 1 else f"forecast (mean close of {len(closes)})"
    ax.plot(future_ts, mean_close, color="tab:blue", linewidth=1.6, label=label)
    ax.axvline(history_ts[-1], color="0.5", linestyle=":", linewidth=1)
    ax.set_title(title)
    ax.set_ylabel("price")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize="small")
    figure.autofmt_xdate()
    figure.tight_layout()
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(target, format="png")
    except OSError as exc:
        raise InputDataError(f"cannot write {target}: {exc.strerror or exc}", path=str(target),
                             hint="choose a --plot path in a folder you can write to") from exc


# ==============================================================================================
# doctor
# ==============================================================================================


def package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def probe_endpoint(url: str, timeout: float = 3.0) -> dict:
    """Whether ``url`` answers HTTP within ``timeout`` (any status counts as an answer)."""
    import urllib.error
    import urllib.request

    import base64
    from urllib.parse import unquote, urlsplit

    from registry.sources import plain_url

    # urllib cannot open http://user:password@host/ itself: probe the plain URL, with the
    # credentials as the Basic authorization the hub client would send them.
    parts = urlsplit(url)
    request = urllib.request.Request(plain_url(url) or url, method="HEAD")
    if parts.username is not None:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        request.add_header("Authorization", "Basic " + base64.b64encode(pair.encode()).decode())
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            status = reply.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return {"url": url, "reachable": False, "detail": redact_secrets(f"no answer: {reason}")}
    elapsed = (time.perf_counter() - started) * 1000
    return {"url": url, "reachable": True, "detail": f"HTTP {status} in {elapsed:.0f} ms"}


def store_state(store: dict) -> str:
    if store["exists"]:
        return ""
    return " (NOT A FOLDER)" if store["not_a_folder"] else " (not created yet)"


def store_health(root: Path) -> dict:
    existing = root
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    writable = existing.is_dir() and os.access(existing, os.W_OK)
    if root.is_dir():
        try:  # os.access lies on some network filesystems: try for real
            with tempfile.NamedTemporaryFile(dir=root, prefix=".doctor-"):
                writable = True
        except OSError:
            writable = False
    from .cli_store import disk_usage

    return {"path": str(root), "exists": root.is_dir(), "not_a_folder": root.exists() and not root.is_dir(),
            "writable": writable, "free_bytes": shutil.disk_usage(existing).free,
            "usage": disk_usage(root)}


def entry_health(registry, entry) -> dict:
    """Synced and passing the cheap check (manifest and sizes)? Never touches the network."""
    info = {"name": entry.name, "kind": entry.kind, "available": entry.available, "synced": False,
            "check": None, "artifact_id": None}
    if not entry.available or entry.source is None:
        info["check"] = "unavailable"
        return info
    artifact = registry.status(entry.name)
    if artifact:
        info.update(synced=True, check="ok", artifact_id=artifact)
        return info
    ref = registry.store.get_ref(entry.name, entry.registry)
    if ref is None or ref.source != str(entry.source) or not registry.store.has(ref.artifact_id):
        info["check"] = "not synced"
        return info
    problems = registry.store.check(ref.artifact_id)
    info.update(synced=True, artifact_id=ref.artifact_id,
                check=f"damaged: {problems[0]}" if problems else "stale: its source folder changed since sync")
    return info


def doctor_report(app: App) -> tuple[dict, RegistryError | None]:
    report: dict[str, Any] = {
        "version": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "torch": package_version("torch"),
        "huggingface_hub": package_version("huggingface_hub"),
        "matplotlib": package_version("matplotlib"),
        "hf_token": "set" if (os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")) else "not set",
    }
    try:
        registry = app.registry()
    except RegistryError as error:
        # Report what can be known without a registry, then fail with the file's problems.
        from registry.sources import is_offline
        from registry.store import default_store_root

        report.update(registry={"files": [], "valid": False, "problems": error.message},
                      store=store_health(default_store_root(app.store).expanduser().absolute()),
                      offline=is_offline(app.offline), endpoints=[], entries=[])
        return report, error
    report["registry"] = {"files": list(registry.spec.paths), "valid": True,
                          "warnings": [str(w) for w in registry.spec.warnings]}
    report["store"] = store_health(registry.store.root)
    report["offline"] = registry.offline
    from registry.sources import plain_url

    urls = list(registry.endpoints.urls)
    report["endpoints"] = [{"url": url, "reachable": None, "detail": "not checked (offline)"} for url in urls]
    if not registry.offline and urls:
        report["endpoints"][0] = probe_endpoint(urls[0])
    for probe in report["endpoints"]:  # a token may ride in the URL (user:token@host): never show it
        probe["url"] = plain_url(probe["url"])
    report["entries"] = [entry_health(registry, entry) for entry in registry.entries()]
    return report, None


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
@pass_app
def doctor(app: App, as_json: bool):
    """Check the set-up: versions, registry file, store, endpoint, offline mode, entries.

    Asks the first endpoint for an answer (3 s at most) unless offline. Never
    prints HF_TOKEN, only whether it is set.
    """
    report, error = doctor_report(app)
    if as_json:
        emit_json(report)
    else:
        click.echo(render_doctor(report))
    if error is not None:
        raise error


def usage_text(usage: dict | None) -> str:
    if not usage:
        return "-"
    parts = ", ".join(f"{name} {human_size(size)}" for name, size in usage["parts"].items() if size)
    count = usage["objects"]
    return (f"{human_size(usage['total_bytes'])} ({count} object{'s' if count != 1 else ''}"
            + (f"; {parts}" if parts else "") + ")")


def render_doctor(report: dict) -> str:
    store = report["store"]
    lines = [
        f"kronos-registry  {report['version']}",
        f"python           {report['python']} ({report['platform']})",
        f"torch            {report['torch'] or 'not installed'}",
        f"huggingface_hub  {report['huggingface_hub'] or 'not installed'}",
        f"matplotlib       {report['matplotlib'] or 'not installed (needed for --plot)'}",
        "",
        f"registry         {'valid' if report['registry']['valid'] else 'INVALID'}",
    ]
    lines += [f"  file           {path}" for path in report["registry"]["files"]]
    lines += [f"  {w}" for w in report["registry"].get("warnings", [])]
    lines += [
        f"store            {store['path']}{store_state(store)}",
        f"  writable       {'yes' if store['writable'] else 'NO'}",
        f"  disk usage     {usage_text(store.get('usage'))}",
        f"  free space     {human_size(store['free_bytes'])}",
        f"offline          {'yes' if report['offline'] else 'no'}",
        f"HF_TOKEN         {report['hf_token']}",
    ]
    for probe in report["endpoints"]:
        lines.append(f"endpoint         {probe['url']}  {probe['detail']}")
    if report["entries"]:
        lines += ["", table(["ENTRY", "KIND", "STORE"],
                            [[e["name"], e["kind"], e["check"]] for e in report["entries"]])]
    return "\n".join(lines)


# ==============================================================================================
# export / import
# ==============================================================================================


@cli.command("export")
@click.argument("names", nargs=-1, required=True, metavar="NAME...")
@click.option("--output", "-o", required=True, metavar="FILE.tar",
              help="The bundle to write (gzip-compressed when it ends in .gz or .tgz).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object describing the bundle.")
@pass_app
def export_entries(app: App, names: tuple[str, ...], output: str, as_json: bool):
    """Write synced entries (with their tokenizers) into a tar bundle for offline machines.

    The bundle holds the artifacts, their manifests and the entries' YAML; `import`
    on the other machine checks every member and hash before publishing anything.
    """
    from registry.bundle import export_bundle

    registry = app.registry()
    summary = export_bundle(registry.store, registry.spec, list(names), output)
    if as_json:
        emit_json({"path": str(summary.path), "entries": list(summary.entries),
                   "artifacts": list(summary.artifacts), "bytes": summary.bytes})
        return
    click.echo(f"exported {', '.join(summary.entries)} to {summary.path} ({human_size(summary.bytes)})")
    for artifact in summary.artifacts:
        click.echo(f"  {artifact}")
    app.note(f"on the offline machine: {PROG} import {Path(output).name}")


@cli.command("import")
@click.argument("bundle", metavar="FILE.tar")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object of what was imported.")
@pass_app
def import_entries(app: App, bundle: str, as_json: bool):
    """Import a bundle made by `export`: verify it as a sync would, then publish.

    Every member and hash is checked, unsafe members are refused, and every artifact
    passes the Kronos checks against the entries that will use it before anything is
    published. The bundle's entries are saved in the store (registries/) and work by
    name from then on: `predict NAME`, `list` shows where they came from.
    """
    from registry.bundle import import_bundle

    from .checks import kronos_checks

    registry = app.registry()
    summary = import_bundle(registry.store, bundle, checks=kronos_checks, registry=registry.spec,
                            lock_timeout=registry.loader.lock_timeout)
    if as_json:
        emit_json({"imported": list(summary.artifacts), "present": list(summary.skipped),
                   "entries": list(summary.refs), "bytes": summary.bytes,
                   "registry": str(summary.registry_path)})
        return
    for artifact in summary.artifacts:
        click.echo(f"imported {artifact}")
    for artifact in summary.skipped:
        click.echo(f"present  {artifact}")
    click.echo(f"entries  {', '.join(summary.refs)} ({human_size(summary.bytes)} written)")
    click.echo(f"registry {summary.registry_path}")
    app.note(f"use them by name, e.g. {PROG} list")


# ==============================================================================================
# rm / gc
# ==============================================================================================


def stored_artifact(registry, entry) -> str | None:
    """The artifact the entry points at in the store, if it is there."""
    from registry.spec import HfSource
    from registry.store import hf_artifact_id

    ref = registry.store.get_ref(entry.name, entry.registry)
    if ref is not None and ref.source == str(entry.source) and registry.store.has(ref.artifact_id):
        return ref.artifact_id
    source = entry.source
    if isinstance(source, HfSource) and source.is_pinned:
        artifact = hf_artifact_id(source.repo_id, source.revision, source.repo_type)
        return artifact if registry.store.has(artifact) else None
    return None


def own_refs(store, entry) -> list[tuple[str, str | None]]:
    """(entry, registry) of the entry's refs: its registry's, and a flat ref of no known
    registry with the same name and source (written by an older version or by `import`)."""
    own = [(entry.name, entry.registry)]
    legacy = store.get_ref(entry.name)
    if entry.registry is not None and legacy is not None and legacy.source == str(entry.source):
        own.append((entry.name, None))
    return own


def remove_refs(store, refs: Iterable[tuple[str, str | None]]) -> None:
    for name, registry_id in refs:
        store.remove_ref(name, registry_id)


def ref_label(ref) -> str:
    """How another entry pointing at an artifact is named: its name and registry file."""
    return f"{ref.entry} ({ref.registry})" if ref.registry else ref.entry


@cli.command("rm")
@click.argument("names", nargs=-1, required=True, metavar="NAME|ARTIFACT_ID...")
@click.option("--force", is_flag=True, help="Also remove a tokenizer that a synced model still uses.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of what was removed.")
@pass_app
def remove(app: App, names: tuple[str, ...], force: bool, as_json: bool):
    """Remove entries' stored artifacts and refs (a model's tokenizer stays).

    An artifact that another entry (of this or any other registry file sharing the store)
    also points at is kept; only this entry's ref goes. An ARTIFACT_ID (from `list --stored`)
    removes that object and every ref naming it, also one synced through another registry file.
    """
    from .cli_store import remove_artifact

    registry = app.registry()
    entries = set(registry.spec.names())
    results = []
    for name in names:
        if name not in entries and name in registry.store.list_artifacts():
            info = remove_artifact(registry, name, registry.loader.lock_timeout, on_wait=app.on_wait)
        else:
            info = remove_entry(app, registry, name, force)
        results.append(info)
        if not as_json:
            print_removed(app, info)
    if as_json:
        emit_json(results)


def print_removed(app: App, info: dict) -> None:
    if not info["removed"] and info["artifact_id"] is None:
        app.note(f"'{info['name']}' is not in the store; nothing to remove")
    elif not info["removed"]:
        click.echo(f"removed {info['name']} (kept {info['artifact_id']}: also used by {', '.join(info['kept_because'])})")
    elif info["name"] == info["artifact_id"]:
        named = f"; refs removed: {', '.join(info['refs'])}" if info["refs"] else ""
        click.echo(f"removed {info['artifact_id']} ({human_size(info['size'])}{named})")
    else:
        click.echo(f"removed {info['name']} ({info['artifact_id']}, {human_size(info['size'])})")


def remove_entry(app: App, registry, name: str, force: bool) -> dict:
    store = registry.store
    entry = registry.get(name)
    artifact = stored_artifact(registry, entry)
    own = own_refs(store, entry)
    if artifact is None:
        remove_refs(store, own)
        return {"name": name, "artifact_id": None, "removed": False, "size": None, "refs": [],
                "kept_because": None}
    if entry.kind == "tokenizer" and not force:
        users = [m.name for m in registry.spec.models.values()
                 if m.tokenizer == name and stored_artifact(registry, m) is not None]
        if users:
            raise RefusedError(f"kept '{name}': the synced model(s) {', '.join(users)} use it",
                               hint=f"remove them first, or pass --force to remove '{name}' anyway")
    sharing = [ref_label(ref) for ref in store.refs().values()
               if ref.artifact_id == artifact and (ref.entry, ref.registry) not in own]
    size = store.read_manifest(artifact).total_size
    with store.lock(artifact, registry.loader.lock_timeout, on_wait=app.on_wait):
        remove_refs(store, own)
        if not sharing:
            store.remove(artifact)
    return {"name": name, "artifact_id": artifact, "removed": not sharing, "size": size, "refs": [name],
            "kept_because": sharing or None}


@cli.command()
@click.option("--dry-run", is_flag=True, help="Only say what would be removed.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object of what was (or would be) removed.")
@pass_app
def gc(app: App, dry_run: bool, as_json: bool):
    """Remove what nothing needs: unreferenced artifacts, stale staging, locks and trash.

    Artifacts that an entry of the registry names (a pinned hub commit) are kept,
    as is anything a running sync holds locked.
    """
    from registry.spec import HfSource
    from registry.store import hf_artifact_id

    registry = app.registry()
    store = registry.store
    keep = {hf_artifact_id(e.source.repo_id, e.source.revision, e.source.repo_type)
            for e in registry.entries() if isinstance(e.source, HfSource) and e.source.is_pinned}
    sizes = {}
    for artifact in store.list_artifacts():
        try:
            sizes[artifact] = store.read_manifest(artifact).total_size
        except RegistryError:
            sizes[artifact] = None
    result = store.gc(keep=keep, dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    freed = sum(sizes.get(a) or 0 for a in result.objects)
    if as_json:
        emit_json({"dry_run": dry_run, "freed_bytes": freed,
                   "objects": [{"artifact_id": a, "size": sizes.get(a)} for a in result.objects],
                   "staging": list(result.staging), "refs": list(result.refs), "trash": list(result.trash),
                   "locks": list(result.locks), "temp_files": list(result.temp_files)})
        return
    for artifact in result.objects:
        click.echo(f"{verb} {artifact} ({human_size(sizes.get(artifact))})")
    for label, items in (("staging folder", result.staging), ("dangling ref", result.refs),
                         ("trash item", result.trash), ("lock file", result.locks),
                         ("temp file", result.temp_files)):
        if items:
            click.echo(f"{verb} {len(items)} {label}{'s' if len(items) != 1 else ''}")
    if not result.removed_anything:
        click.echo("nothing to remove")
    elif result.objects:
        click.echo(f"{'would free' if dry_run else 'freed'} {human_size(freed)}")


# ==============================================================================================
# entry points
# ==============================================================================================


def main(argv: Sequence[str] | None = None, prog_name: str = PROG) -> None:
    """The console script `kronos-registry`."""
    cli.main(args=list(argv) if argv is not None else None, prog_name=prog_name)


from . import cli_add  # noqa: E402,F401 - registers `add` on the group (it imports from here)
from . import cli_serve  # noqa: E402,F401 - registers `serve` (fastapi/uvicorn imported only when it runs)

__all__ = ["cli", "main", "MissingExtraError"]
