"""`kronos-registry serve`: the HTTP forecasting service (FastAPI + uvicorn, the `serve` extra).

This module only parses the options, builds the model manager, the forecast service and
the app (``kronos_registry.serve``), and runs uvicorn. It is imported by cli.py (one line
at its end) to register the command; fastapi and uvicorn are imported only when the
command runs, so `list` and `--help` stay fast and work without the extra.
"""

from __future__ import annotations

import logging
import os

import click

from kronos_registry.cli.app import PROG, App, cli, pass_app
from kronos_registry.cli.params import DurationParam, SizeParam, check_device
from kronos_registry.services.exposure import WILDCARD_BINDS, allowed_hosts, is_loopback
from kronos_registry.services.extras import require_extra
from kronos_registry.services.limits import MIB, Limits
from kronos_registry.services.slow_clients import DEFAULT_HEAD_TIMEOUT_S, head_deadline_protocol

DEFAULT_LIMITS = Limits()
TOKEN_VARIABLE = "KRONOS_REGISTRY_TOKEN"

LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"


@cli.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0: every interface; then set --token).")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="Port to listen on.")
@click.option("--preload", multiple=True, metavar="NAME",
              help="Load this model at start (repeatable); /readyz answers 200 once all are loaded.")
@click.option("--max-models", default=2, show_default=True, type=click.IntRange(min=1), metavar="N",
              help="Models resident at once; loading one more unloads the least recently used.")
@click.option("--max-memory", type=SizeParam(), metavar="SIZE",
              help="Bytes of weights resident at once (e.g. 4GiB); LRU unloading keeps under it [default: no limit].")
@click.option("--keep-alive", default="300", show_default=True, type=DurationParam(), metavar="SECONDS",
              help="Unload a model this long after its last use (5m, 1h; -1 or 'forever': never).")
@click.option("--token", envvar=TOKEN_VARIABLE, metavar="TOKEN", callback=lambda _c, _p, v: check_token(v),
              help="Require 'Authorization: Bearer TOKEN' on /v1 and /metrics (also $KRONOS_REGISTRY_TOKEN, "
              "which keeps it out of the process list).")
@click.option("--max-batch", default=8, show_default=True, type=click.IntRange(min=1), metavar="N",
              help="Concurrent forecasts of one model run as one batch of at most N (1: no batching).")
@click.option("--batch-window", default=10.0, show_default=True, type=click.FloatRange(min=0), metavar="MS",
              help="How long the first request of a batch waits for others to join it (up to 10 "
              "windows while requests that have arrived are still being read).")
@click.option("--max-pred-len", default=DEFAULT_LIMITS.max_pred_len, show_default=True, type=click.IntRange(min=1),
              metavar="N", help="Longest forecast a request may ask for (422 beyond).")
@click.option("--max-samples", default=DEFAULT_LIMITS.max_samples, show_default=True, type=click.IntRange(min=1),
              metavar="N", help="Most sampled paths a request may ask for (422 beyond).")
@click.option("--max-rows", default=DEFAULT_LIMITS.max_rows, show_default=True, type=click.IntRange(min=2),
              metavar="N", help="Most candles in one request (422 beyond).")
@click.option("--max-body", default=f"{DEFAULT_LIMITS.max_body_bytes // MIB}MiB", show_default=True, type=SizeParam(),
              metavar="SIZE", help="Largest request body (413 beyond).")
@click.option("--max-queue", default=DEFAULT_LIMITS.max_queue, show_default=True, type=click.IntRange(min=1),
              metavar="N", help="Forecasts waiting at once; more are refused with 503 and Retry-After.")
@click.option("--max-cost", default=DEFAULT_LIMITS.max_cost, show_default=True, type=click.IntRange(min=1),
              metavar="CELLS", help="Most work one forecast may ask: rows read x bars x samples x (1 + quantiles) "
              "(422 beyond; the default admits the other limits at their defaults with 3 quantiles).")
@click.option("--max-parsing", default=DEFAULT_LIMITS.max_parsing, show_default=True, type=click.IntRange(min=1),
              metavar="N", help="Request bodies read and parsed at once (memory grows with it); others wait unread.")
@click.option("--body-timeout", default=DEFAULT_LIMITS.body_timeout_s, show_default=True,
              type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
              help="A request body not received within this is refused (408): slow clients hold no memory.")
@click.option("--header-timeout", default=DEFAULT_HEAD_TIMEOUT_S, show_default=True,
              type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
              help="A connection whose request head (line and headers) has not arrived within this is answered "
              "408 and closed: slow clients hold no connection.")
@click.option("--allow-host", multiple=True, metavar="NAME",
              help="Also answer requests whose Host is NAME (repeatable; '*': any). Default: loopback names and "
              "--host; others get 421, which stops DNS rebinding.")
@click.option("--allow-origin", multiple=True, metavar="ORIGIN",
              help="Also accept POST/DELETE from pages of ORIGIN, e.g. https://app.example (repeatable); other "
              "sites' pages get 403.")
@click.option("--device", metavar="DEVICE", help="cpu, cuda, cuda:1, mps [default: cuda, else mps, else cpu].")
@click.option("--threads", type=click.IntRange(min=1), metavar="N",
              help="CPU threads per forecast (torch) [default: torch's, one per core it sees]. Set it to the "
              "cores this server really has (a container's CPU quota): an oversubscribed pool is many times slower.")
@click.option("--no-sync", is_flag=True,
              help="Serve only what is in the store: never sync a missing model on first use (409 instead).")
@click.option("--root-path", default="", metavar="PATH",
              help="The path prefix a reverse proxy serves this under (e.g. /kronos), for links and /docs.")
@click.option("--forwarded-allow-ips", default="127.0.0.1", show_default=True, metavar="IPS",
              help="Proxies whose X-Forwarded-For/-Proto are trusted (comma-separated, '*' for any).")
@pass_app
def serve(app: App, host, port, preload, max_models, max_memory, keep_alive, token, max_batch, batch_window,
          max_pred_len, max_samples, max_rows, max_body, max_queue, max_cost, max_parsing, body_timeout,
          header_timeout, allow_host, allow_origin, device, threads, no_sync, root_path, forwarded_allow_ips):
    """Serve forecasts over HTTP: models by name from the store, loaded on first use.

    JSON API under /v1 (OpenAPI page at /docs), probes /healthz and /readyz, Prometheus
    metrics at /metrics. Concurrent forecasts of one model are batched; at most --max-models
    models (and --max-memory bytes) stay resident, least recently used unloaded first, each
    unloaded --keep-alive after its last use. Loading never writes to the store, so a
    read-only store works; with --offline nothing touches the network.

    \b
    Example:
      kronos-registry --offline serve --preload kronos-small --token "$TOKEN"
      curl -s -H "Authorization: Bearer $TOKEN" -H 'Content-Type: text/csv' \\
           --data-binary @candles.csv \\
           'localhost:8000/v1/forecast?model=kronos-small&pred_len=24&seed=7'
    """
    uvicorn = require_serve_extra()
    import prometheus_client

    prometheus_client.disable_created_metrics()  # no *_created series beside each counter: this process is ours
    from kronos_registry.serve.app import ServeSettings, create_app
    from kronos_registry.services.lanes import ForecastService
    from kronos_registry.services.model_cache import ModelManager

    check_device(device)
    if threads:
        import torch

        torch.set_num_threads(threads)
    registry = app.registry()
    for name in preload:  # a misspelt --preload fails now, not as a 503 from /readyz forever
        registry.model_entry(name)
    if not is_loopback(host) and not token:
        app.note(f"warning: listening on {host} without --token: anyone who reaches it may use it")
    if host in WILDCARD_BINDS and not allow_host:
        app.note(f"note: listening on {host}: only loopback names are answered; add --allow-host NAME for the "
                 "names clients use")

    manager = ModelManager(registry, max_models=max_models, max_bytes=max_memory, keep_alive=keep_alive,
                           device=device)
    limits = Limits(max_pred_len=max_pred_len, max_samples=max_samples, max_rows=max_rows,
                    max_body_bytes=max_body, max_queue=max_queue, max_cost=max_cost, max_parsing=max_parsing,
                    body_timeout_s=body_timeout)
    service = ForecastService(registry, manager=manager, max_batch=max_batch, batch_window_ms=batch_window,
                              limits=limits, allow_sync=not no_sync)
    settings = ServeSettings(token=token, preload=tuple(preload), allowed_hosts=allowed_hosts(host, allow_host),
                             allowed_origins=tuple(allow_origin))
    web = create_app(service, settings)
    config = uvicorn.Config(web, host=host, port=port, access_log=False, log_config=log_config(app.quiet),
                            root_path=root_path, proxy_headers=True, forwarded_allow_ips=forwarded_allow_ips,
                            timeout_graceful_shutdown=10, http=head_deadline_protocol(header_timeout))
    try:
        uvicorn.Server(config).run()
    finally:
        service.close()  # closes the manager too


def check_token(token: str | None) -> str | None:
    """An empty --token would accept an empty bearer, and an empty $KRONOS_REGISTRY_TOKEN (an
    unset variable expanded into it) would serve without any token, silently: both refused."""
    if token is None and os.environ.get(TOKEN_VARIABLE) is not None and not os.environ[TOKEN_VARIABLE].strip():
        raise click.BadParameter(f"${TOKEN_VARIABLE} is set but empty; set it to a real token (e.g. `openssl "
                                 f"rand -hex 32`), or unset it to serve without one", param_hint="'--token'")
    if token is not None and not token.strip():
        raise click.BadParameter("is empty, which would let anyone in with an empty bearer; give a real token "
                                 "(e.g. `openssl rand -hex 32`), or leave --token out to serve without one",
                                 param_hint="'--token'")
    return token


def require_serve_extra():
    """uvicorn, after checking the whole extra is importable (fastapi, prometheus_client too)."""
    require_extra("serve", f"`{PROG} serve`", "fastapi", "uvicorn", "prometheus_client")
    import uvicorn

    return uvicorn


def log_config(quiet: bool) -> dict:
    """uvicorn's logs and ours (one line per request), with a timestamp, on stderr."""
    level = "WARNING" if quiet else "INFO"
    handler = {"class": "logging.StreamHandler", "formatter": "plain", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        # Control characters in what clients sent (a model name, a path) are escaped: a newline
        # in a request must not forge a log line.
        "formatters": {"plain": {"()": "kronos_registry.services.logsafe.SafeFormatter", "fmt": LOG_FORMAT}},
        "handlers": {"stderr": handler},
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": level, "propagate": False},
            "kronos_registry": {"handlers": ["stderr"], "level": level, "propagate": False},
        },
    }


logging.getLogger("kronos_registry.serve").addHandler(logging.NullHandler())
