"""`kronos-registry mcp`: serve the registry's models to AI agents over MCP.

The command only builds the shared services (a Registry from the global options, a
ForecastService with its ModelManager) and hands them to the MCP face
(``mcp_server.py``), which is imported only here, after checking that the optional
`mcp` package is installed.
"""

from __future__ import annotations

import logging

import click

from kronos_registry.cli.app import PROG, App, cli, pass_app
from kronos_registry.cli.params import DurationParam  # the same spelling of durations as `serve`
from kronos_registry.services.extras import require_extra

TRANSPORTS = ("stdio", "streamable-http")


@cli.command("mcp")
@click.option("--transport", type=click.Choice(TRANSPORTS), default="stdio", show_default=True,
              help="stdio: the client starts this command and talks over its stdin/stdout (Claude Desktop, "
              "Cursor); streamable-http: serve http://HOST:PORT/mcp for clients that connect by URL.")
@click.option("--host", default="127.0.0.1", show_default=True, metavar="HOST",
              help="With streamable-http: the address to listen on (127.0.0.1 keeps it on this machine).")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535), metavar="PORT",
              help="With streamable-http: the port (0: any free one, printed).")
@click.option("--allow-host", multiple=True, metavar="NAME",
              help="With streamable-http: also answer Host NAME (repeatable). Default: loopback names and --host; "
              "others are refused (DNS rebinding protection, always on).")
@click.option("--allow-origin", multiple=True, metavar="ORIGIN",
              help="With streamable-http: also accept browser requests from ORIGIN, e.g. https://app.example.")
@click.option("--device", metavar="DEVICE", help="cpu, cuda, cuda:1, mps [default: cuda, else mps, else cpu].")
@click.option("--max-models", default=2, show_default=True, type=click.IntRange(min=1), metavar="N",
              help="Models kept loaded at once; the least recently used is unloaded first.")
@click.option("--keep-alive", default="300", show_default=True, type=DurationParam(), metavar="SECONDS",
              help="Unload a model this long after its last forecast (5m, 1h; -1 or 'forever': never).")
@click.option("--threads", type=click.IntRange(min=1), metavar="N",
              help="CPU threads per forecast (torch) [default: one per core torch sees]; set it to the cores "
              "this server really has: an oversubscribed pool is many times slower.")
@pass_app
def mcp_command(app: App, transport: str, host: str, port: int, allow_host: tuple[str, ...],
                allow_origin: tuple[str, ...], device: str | None, max_models: int, keep_alive: float | None,
                threads: int | None):
    """Serve forecasts to AI agents over the Model Context Protocol (MCP).

    Tools: list_models, model_info, forecast. Models stay loaded between calls
    (at most --max-models, each until --keep-alive seconds after its last use).
    Logs go to stderr; on stdio, stdout carries only the protocol.
    Needs the optional extra: pip install 'kronos-registry[mcp]'.

    \b
    Examples:
      kronos-registry mcp                                   # stdio, for a client's config
      kronos-registry --offline mcp --transport streamable-http --port 8765
    """
    require_extra("mcp", f"`{PROG} mcp`")
    from kronos_registry import mcp_server
    from kronos_registry.cli.params import check_device
    from kronos_registry.services.lanes import ForecastService
    from kronos_registry.services.model_cache import ModelManager

    check_device(device)
    if threads:
        import torch

        torch.set_num_threads(threads)
    from kronos_registry.services.logsafe import SafeFormatter

    handler = logging.StreamHandler()  # stderr; control characters a client sent are escaped
    handler.setFormatter(SafeFormatter("%(name)s: %(levelname)s: %(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler])
    registry = mcp_registry(app)
    manager = ModelManager(registry, max_models=max_models, keep_alive=keep_alive, device=device)
    manager.start()  # the keep-alive reaper
    service = ForecastService(registry, manager=manager)
    try:
        if transport == "stdio":
            app.note(f"{PROG}: MCP server on stdio (store {service.registry.store.root})")
            mcp_server.run_stdio(service)
        else:
            mcp_server.run_http(service, host=host, port=port, announce=lambda line: app.note(f"{PROG}: {line}"),
                                allow_hosts=allow_host, allow_origins=allow_origin)
    except KeyboardInterrupt:
        pass
    finally:
        service.close()


def mcp_registry(app: App):
    """The registry of the global options, with no progress bars (stderr is a client's log)."""
    from kronos_registry.services.registry import Registry

    return Registry(app.registry_file, app.store, offline=app.offline, progress=False,
                    on_wait=app.on_wait, on_note=app.note)


__all__ = ["mcp_command"]
