"""`kronos-registry serve`: the HTTP face (FastAPI + uvicorn, the `serve` extra).

- ``app``: the routes (parse the request, call the one ``ForecastService``, render JSON) and
  ``create_app(service, settings)``, which builds the FastAPI app;
- ``problems``: every error as ``application/problem+json`` (RFC 9457), the status chosen
  in one table;
- ``metrics``: Prometheus metrics in a registry of their own (not the process-global one).

Nothing here is imported by ``import kronos_registry``: fastapi, uvicorn and prometheus_client
are optional, and only ``kronos_registry.cli.serve`` brings this package in, after checking
that they are installed.
"""
