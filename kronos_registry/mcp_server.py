"""The MCP face: the registry's models as tools an AI agent calls (`kronos-registry mcp`).

Three tools over the official `mcp` SDK (its ``MCPServer``, called FastMCP before mcp 2):

- ``list_models``: the registry's models (name, params, context, available, synced, loaded);
- ``model_info``: what `kronos-registry show NAME` prints, as text and as JSON, with the latest
  stored evaluation per data set (`kronos-registry eval`), so an agent can choose by evidence;
- ``forecast``: one forecast through the shared ForecastService (the path `predict` and the
  HTTP server take: same inputs and seed, same numbers), as structured content in the HTTP
  response's shape plus a short text summary.

Each tool is a thin translation: arguments -> one service call -> a ``CallToolResult``.
A mistake of the caller (unknown model, bad candles, offline and not synced, a parameter out
of range) comes back as a tool error (``isError``) whose text is the error's message and its
hint, so the agent can fix the call; the server keeps serving. The service's ModelManager
keeps models loaded between calls.

This module is the only one importing ``mcp`` (an optional extra); nothing imports it but
``cli/mcp.py``.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import sys
import threading
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

import anyio
import anyio.to_thread
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from pydantic import Field

from kronos_registry.candles import candles_from_records, read_candles_text
from kronos_registry.services import wire
from kronos_registry.services.catalog import DEMO_ENTRY, DEMO_NOTE
from kronos_registry.services.errors import error_text, remote_text
from kronos_registry.services.exposure import allowed_hosts, is_loopback
from kronos_registry.services.slow_clients import head_deadline_protocol
from kronos_registry.services.wire import ForecastResponse, ModelList, ModelSummary
from registry.errors import RegistryError

log = logging.getLogger("kronos_registry.mcp")

SERVER_NAME = "kronos-registry"
HTTP_PATH = "/mcp"

INSTRUCTIONS = """\
Forecast financial candlesticks (OHLCV bars) with Kronos models that run on this machine,
offline, from a verified local store. Call list_models to see which models exist and which
are synced (stored locally); then forecast with a model name, the history as `candles`
(a list of bar objects) or `csv` (CSV text), and `pred_len`, the number of bars to forecast.
Use samples > 1 for quantiles (an uncertainty band) and a seed to reproduce a forecast.
model_info carries each model's stored evaluations (rolling-origin backtests against naive
baselines, with a verdict): prefer a model that beats its baselines on data like yours.
kronos-demo is a tiny demo model trained on two stock indices' daily candles: use it to try the
tools; its model_info card says how it compares with a naive forecast."""


# ------------------------------------------------------------------------------------ tools


def build_server(service, *, stdio: bool = False) -> MCPServer:
    """An MCPServer whose tools call ``service`` (a ForecastService, which the caller closes)."""

    @contextlib.asynccontextmanager
    async def lifespan(_server) -> AsyncIterator[None]:
        # On stdio, fd 1 is the protocol: the SDK points it at stderr while serving, but text a
        # library print()s sits in Python's buffer and could reach the wire once fd 1 is given
        # back. Send Python-level stdout to stderr for the server's whole life instead.
        with contextlib.redirect_stdout(sys.stderr) if stdio else contextlib.nullcontext():
            yield None

    server = MCPServer(SERVER_NAME, instructions=INSTRUCTIONS, version=_version(), lifespan=lifespan,
                       log_level="WARNING")
    readonly = ToolAnnotations(read_only_hint=True, open_world_hint=False)

    @server.tool(title="List forecasting models", annotations=readonly)
    def list_models() -> ModelList:
        """List the Kronos models of the registry: name, description, parameter count, context length,
        whether each is available, synced (stored locally, usable offline) and loaded (in memory).
        Pass a name as `model` to forecast or model_info."""
        infos = _call(service.models)
        return ModelList(models=[ModelSummary.from_info(info) for info in infos
                                 if info.get("kind", "model") == "model"])

    @server.tool(title="Describe one model", annotations=readonly)
    def model_info(
        model: Annotated[str, Field(description="A model name from list_models, e.g. 'kronos-small'.")],
    ) -> CallToolResult:
        """Everything about one registry entry, as `kronos-registry show` prints it: source, tokenizer,
        context length, parameters, config, its stored copy (path, revision, files, checks), and under
        `evaluations` the latest stored backtest per data set: its metrics, the baselines' on the same
        windows, and whether it beats the best baseline ("better", "worse", "no detectable difference")."""
        info = _call(service.model_info, model)
        return CallToolResult(content=[TextContent(type="text", text=_show_text(service, model, info))],
                              structured_content=_jsonable(info))

    @server.tool(title="Forecast candles")
    async def forecast(
        model: wire.ModelName,
        pred_len: wire.PredLen,
        candles: Annotated[wire.Candles | None, Field(
            description=wire.CANDLES_DESCRIPTION + " Give this or `csv`.")] = None,
        csv: Annotated[str | None, Field(description=wire.CSV_DESCRIPTION + " Give this or `candles`.")] = None,
        samples: wire.Samples = wire.DEFAULTS.samples,
        seed: wire.Seed = None,
        # Plain floats here: ForecastParams.check names a bad quantile as a tool error the agent can fix.
        quantiles: Annotated[list[float] | None, Field(
            description="With samples > 1: quantiles of the sampled paths to return, each strictly "
                        "between 0 and 1 [default: 0.1, 0.5, 0.9].")] = None,
        temperature: wire.Temperature = wire.DEFAULTS.temperature,
        top_p: wire.TopP = wire.DEFAULTS.top_p,
        top_k: wire.TopK = wire.DEFAULTS.top_k,
        lookback: wire.Lookback = None,
        future_timestamps: wire.FutureTimestamps = None,
    ) -> Annotated[CallToolResult, ForecastResponse]:
        """Forecast the next `pred_len` bars of a candle history with a Kronos model, locally.

        Give the history as `candles` (a list of bar objects) or as `csv` text, not both. The
        structured result has the forecast's timestamps, the six columns (open, high, low, close,
        volume, amount) and, with samples > 1, quantiles; the text says the last close, the
        forecast close at the end, the change in percent, the spread across samples and the seed."""
        def run(cancel: threading.Event):  # parsing too stays off the event loop
            history = _history(candles, csv)
            params = wire.forecast_params(pred_len=pred_len, samples=samples, seed=seed, quantiles=quantiles,
                                          temperature=temperature, top_p=top_p, top_k=top_k, lookback=lookback,
                                          future_timestamps=future_timestamps)
            return _call(service.forecast, model, history, params, cancel=cancel)

        result = await _cancellable(run)
        text = result.summary_text()
        if model == DEMO_ENTRY:
            text += "\n" + DEMO_NOTE
        return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=result.to_json())

    return server


async def _cancellable(function: Callable[[threading.Event], Any]):
    """``function(cancel)`` in a worker thread. When the tool call is cancelled (the client sent
    notifications/cancelled, or closed its HTTP request), the tool returns at once and
    ``cancel`` is set, so the service drops the forecast from its queue or stops it between
    decoding steps: abandoned work must not hold the worker that the next call waits for."""
    cancel = threading.Event()
    try:
        return await anyio.to_thread.run_sync(function, cancel, abandon_on_cancel=True)
    except anyio.get_cancelled_exc_class():
        cancel.set()
        raise


def _call(function, *args, **kwargs):
    """Run one service call; a RegistryError becomes a tool error saying what to fix."""
    try:
        return function(*args, **kwargs)
    except RegistryError as error:
        raise ToolError(error_text(error)) from error
    except OSError as error:
        raise ToolError(remote_text(f"{error}\nhint: check that path, its permissions and the free space")) from error
    except ToolError:
        raise
    except Exception as error:
        # A bug, not the caller's mistake: say so (the SDK alone would say only "Error executing
        # tool"), keep the traceback in the server's log, and keep serving.
        log.exception("internal error in a tool call")
        raise ToolError(remote_text(f"internal error ({type(error).__name__}: {error}); this is a bug in "
                                    "kronos-registry, its traceback is in the server's log")) from error


def _history(candles: list[dict[str, Any]] | None, csv: str | None):
    if (candles is None) == (csv is None):
        raise ToolError(("both `candles` and `csv` were given" if candles is not None else
                         "no history given") + "\nhint: pass the history once: `candles` (a list of objects "
                         "with timestamp, open, high, low, close[, volume, amount]) or `csv` (CSV text)")
    if csv is not None:
        return _call(read_candles_text, csv, source="csv")
    return _call(candles_from_records, candles, source="candles")


def _show_text(service, name: str, info: dict) -> str:
    from kronos_registry.services.catalog import render_show

    return render_show(service.registry.get(name), info)


def _jsonable(value):
    """A JSON-ready copy: dicts, lists, str, numbers, bool and None (anything else as text)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _version() -> str:
    from kronos_registry import __version__

    return __version__


# ----------------------------------------------------------------------------------- running


def run_stdio(service) -> None:
    build_server(service, stdio=True).run("stdio")


def transport_security(host: str, allow_hosts: tuple[str, ...] = (), allow_origins: tuple[str, ...] = ()):
    """DNS rebinding protection, on whatever the host: the Host header must be one of the loopback
    names, the bound host or --allow-host (any port), an Origin one of theirs or --allow-origin."""
    from mcp.server.transport_security import TransportSecuritySettings

    names = [f"[{name}]" if ":" in name else name for name in allowed_hosts(host, allow_hosts)]
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=[pattern for name in names for pattern in (name, f"{name}:*")],
        allowed_origins=[*(f"{scheme}://{name}:*" for name in names for scheme in ("http", "https")),
                         *(f"{scheme}://{name}" for name in names for scheme in ("http", "https")),
                         *allow_origins])


def run_http(service, *, host: str, port: int, announce, allow_hosts: tuple[str, ...] = (),
             allow_origins: tuple[str, ...] = ()) -> None:
    """Serve streamable HTTP at http://HOST:PORT/mcp until interrupted.

    The socket is bound and listening here, before the server starts, so that port 0 (any free
    port) works and ``announce`` can say the address actually bound.
    """
    import anyio
    import uvicorn

    server = build_server(service)
    if not is_loopback(host):
        announce(f"warning: MCP over HTTP on {host} has no authentication: anyone who reaches it may use it "
                 "(Host names other than loopback, {host} and --allow-host are refused)")
    app = server.streamable_http_app(streamable_http_path=HTTP_PATH, host=host,
                                     transport_security=transport_security(host, allow_hosts, allow_origins))
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    # Listening before the address is announced: a client that connects at once waits in the
    # backlog until uvicorn accepts, instead of being refused while the server still starts.
    listener.listen(128)
    bound = listener.getsockname()[1]
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    config = uvicorn.Config(app, log_level="warning", lifespan="on", http=head_deadline_protocol())
    announce(f"MCP server (streamable HTTP) at http://{shown}:{bound}{HTTP_PATH}")
    anyio.run(lambda: uvicorn.Server(config).serve(sockets=[listener]))


__all__ = ["build_server", "run_stdio", "run_http"]
