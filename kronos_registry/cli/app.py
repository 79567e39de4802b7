"""The `kronos-registry` group: global options, the shared ``App`` state, exit codes, errors.

The commands live in their own modules (one per command group) and register themselves on
``cli``; ``main`` imports them all, so imports run one way: main -> commands -> app. Every
command is a thin layer over the services (``kronos_registry.services.registry.Registry``,
the forecast job) and ``candles``: parse the options, call a service, print a tidy table (or
JSON with ``--json``). Errors the user can act on
are ``RegistryError``s: they are printed as one short paragraph and mapped to their exit code
in one place (``KronosGroup.invoke``), never as a traceback unless ``--debug`` is given.

Heavy imports (torch, pandas, matplotlib, huggingface_hub) happen inside the commands that need
them, so `--help`, `list` and `validate` stay quick.
"""

from __future__ import annotations

import errno
import sys
import traceback

import click

from kronos_registry import __version__
from kronos_registry.cli.output import print_error, redact_secrets
from kronos_registry.services.extras import MissingExtraError  # noqa: F401 - commands raise it
from kronos_registry.services.registry_file import RefusedError  # noqa: F401 - commands raise it
from registry.errors import (
    ReadOnlyStoreError,
    RegistryError,
)

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
  6   verification failed (config, weights, hashes, pairing, damaged store,
      or --strict and a file checked against no trusted record)
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
  KRONOS_REGISTRY_STRICT=1      as --strict
  KRONOS_REGISTRY_LOCK_TIMEOUT  seconds to wait for another sync (default 600)
  KRONOS_REGISTRY_TIMEOUT       seconds per hub request (default 10)
  HF_ENDPOINT                   hub or mirror URL (e.g. a self-hosted olah)
  HF_TOKEN                      hub token; never printed or written anywhere
"""


# ==============================================================================================
# Shared state, output and error handling
# ==============================================================================================


class App:
    """The global options, and the Registry built from them on first use."""

    def __init__(self, registry_file: str | None, store: str | None, offline: bool, debug: bool, quiet: bool,
                 strict: bool = False):
        self.registry_file = registry_file
        self.store = store
        # None lets the environment decide (KRONOS_REGISTRY_OFFLINE, HF_HUB_OFFLINE; KRONOS_REGISTRY_STRICT).
        self.offline = True if offline else None
        self.strict = True if strict else None
        self.debug = debug
        self.quiet = quiet
        self._registry = None

    def override(self, registry_file=None, store=None, offline=False, debug=False, quiet=False,
                 strict=False) -> None:
        """Global options given after the command (see ``KronosCommand``)."""
        self.registry_file = registry_file if registry_file is not None else self.registry_file
        self.store = store if store is not None else self.store
        self.offline = True if offline else self.offline
        self.strict = True if strict else self.strict
        self.debug = self.debug or debug
        self.quiet = self.quiet or quiet

    @property
    def progress(self) -> bool:
        # Bars only for a person watching: never in logs, pipes or CI output.
        return not self.quiet and sys.stderr.isatty()

    def registry(self):
        if self._registry is None:
            from kronos_registry.services.registry import Registry

            self._registry = Registry(self.registry_file, self.store, offline=self.offline,
                                      progress=self.progress, on_wait=self.on_wait, on_note=self.note,
                                      strict=self.strict)
        return self._registry

    def note(self, text: str = "") -> None:
        """Talk to the person (stderr), unless -q. Data goes to stdout with click.echo."""
        if not self.quiet:
            click.echo(text, err=True)

    def on_wait(self, wait) -> None:
        limit = "" if wait.timeout is None or wait.timeout < 0 else f", giving up after {wait.timeout:g} s"
        self.note(f"waiting for another process syncing {wait.entry or wait.artifact_id} "
                  f"(lock {wait.lock_path}{limit})")


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
        click.Option(["--strict", "_strict"], is_flag=True, hidden=True),
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
@click.option("--strict", is_flag=True,
              help="Serve, sync and import only files checked against a trusted record: a sha256 pin, "
                   "the hub's own hashes or your own folder (also KRONOS_REGISTRY_STRICT=1).")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.option("-q", "--quiet", is_flag=True, help="Print only results: no notes, no progress bars.")
@click.version_option(__version__, "--version", prog_name=PROG, message="%(prog)s %(version)s")
@click.pass_context
def cli(ctx: click.Context, registry_file, store, offline, strict, debug, quiet):
    """Verified Kronos models for candlestick forecasting, online or offline.

    The registry (models.yaml) names every Kronos variant, pinned; `sync` fetches an
    entry into a local store only after verifying it; `predict` forecasts candles
    from a CSV. The `kronos-demo` entry ships in the package (a tiny model trained on
    S&P 500 and NASDAQ daily candles), so this works on a fresh machine with no network:

    \b
      kronos-registry list
      kronos-registry predict kronos-demo --input candles.csv --pred-len 24 \\
          --output forecast.csv --plot forecast.png
      kronos-registry sync kronos-small
      kronos-registry export kronos-small -o kronos.tar   # carry it offline

    The options below may also follow the command (`predict ... -q --offline`).
    """
    ctx.obj = App(registry_file, store, offline, debug, quiet, strict)


cli.command_class = KronosCommand  # every command also takes the global options after its name


pass_app = click.make_pass_decorator(App)
