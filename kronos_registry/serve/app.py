"""The FastAPI app: thin routes over one ``ForecastService``.

Each route parses its request, calls the service (in a worker thread: loading and
forecasting block), and renders JSON; errors become problem+json in ``problems.py``.

    GET    /healthz                  alive (answers while models load)
    GET    /readyz                   200 once every --preload model is loaded, else 503
    GET    /v1/models                every registry entry (as `list --json`) + "loaded"
    GET    /v1/models/{name}         one entry (as `show --json`) + "loaded"
    GET    /v1/models/{name}/evals   its stored `eval` runs: the latest per data set, and all
    POST   /v1/models/{name}/load    load it now (200: the loaded model)
    DELETE /v1/models/{name}/load    unload it
    GET    /v1/loaded                resident models: device, bytes, last use, keep-alive expiry
    POST   /v1/forecast              JSON, or text/csv with ?model=&pred_len=...
    GET    /metrics                  Prometheus text format
    GET    /docs, /openapi.json      FastAPI's OpenAPI page and schema

With a token (``ServeSettings.token``), /v1 and /metrics need ``Authorization: Bearer
<token>``; the probes, the docs and the page (``/``, ``/static``) stay open.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import threading
import time
from typing import Callable

import anyio
import attrs
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from starlette.requests import ClientDisconnect

from kronos_registry import __version__
from kronos_registry.serve.guard import RequestGuard
from kronos_registry.serve.metrics import ServeMetrics
from kronos_registry.serve.page import mount_page
from kronos_registry.serve.problems import (
    BodyTimeoutError,
    BodyTooLargeError,
    TokenError,
    UnsupportedMediaError,
    install_problem_handlers,
    internal_problem,
)
from kronos_registry.services.errors import CancelledForecastError
from kronos_registry.services.exposure import LOOPBACK_HOSTS
from kronos_registry.services.wire import (
    FORECAST_FIELDS,
    EvalRuns,
    ForecastOptions,
    ForecastRequest,
    ForecastResponse,
    Health,
    LoadedModels,
    Problem,
    Readiness,
    Unloaded,
)
from registry.errors import InputDataError, RegistryError

log = logging.getLogger("kronos_registry.serve")

JSON_TYPES = ("application/json",)
CSV_TYPES = ("text/csv", "application/csv")
# Worker threads beyond the forecast queue: loads, listings and requests being parsed.
SPARE_THREADS = 16


@attrs.frozen
class ServeSettings:
    """What the server adds to the service: the token, the models to load at start."""

    token: str | None = attrs.field(default=None)
    preload: tuple[str, ...] = ()
    # Host names answered (421 otherwise) and page origins allowed to change state (403 otherwise).
    allowed_hosts: tuple[str, ...] = LOOPBACK_HOSTS
    allowed_origins: tuple[str, ...] = ()

    @token.validator
    def _token(self, _attribute, value):
        if value == "":
            raise ValueError("an empty token would accept an empty bearer: give a token, or none")


class Preloads:
    """The --preload models, loaded one by one in a background thread after startup."""

    def __init__(self, names: tuple[str, ...]):
        self._lock = threading.Lock()
        self._state = dict.fromkeys(names, "pending")

    def run(self, service) -> None:
        for name in list(self._state):
            try:
                service.load(name)
                outcome = "loaded"
            except RegistryError as error:
                outcome = f"failed: {error.message}"
            except Exception as error:  # noqa: BLE001 - a readiness report, not a crash
                log.error("preloading %s: unexpected error", name, exc_info=error)
                outcome = f"failed: unexpected {type(error).__name__} (see the server log)"
            log.info("preload %s: %s", name, outcome)
            with self._lock:
                self._state[name] = outcome

    def report(self) -> tuple[bool, dict]:
        with self._lock:
            state = dict(self._state)
        if any(value.startswith("failed") for value in state.values()):
            status = "failed"
        else:
            status = "ready" if all(value == "loaded" for value in state.values()) else "loading"
        return status == "ready", {"status": status, "preload": state}


# ----------------------------------------------------------------------------------------------
# middleware and dependencies
# ----------------------------------------------------------------------------------------------


class RequestLog:
    """One log line and the metrics per request; the last stop of an unexpected error.

    A plain ASGI middleware (not BaseHTTPMiddleware, which buffers and runs the app in a
    task). It sits outside FastAPI's exception handlers: what reaches it is a bug, logged
    here once with its traceback and answered with a 500 problem; the server carries on.
    """

    def __init__(self, app, metrics: ServeMetrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status: int | None = None

        async def watch(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception as error:
            log.error("%s %s: unexpected error", scope["method"], scope["path"], exc_info=error)
            if status is not None:
                raise  # the answer has begun: nothing sane to add; uvicorn closes the connection
            await internal_problem(error).response(scope["path"])(scope, receive, watch)
        finally:
            self._record(scope, status or 500, time.perf_counter() - started)

    def _record(self, scope, status: int, seconds: float) -> None:
        route = scope.get("route")
        endpoint = getattr(route, "path", None) or "(no route)"
        model = scope.get("state", {}).get("model")
        self.metrics.observe(endpoint=endpoint, model=model, status=status, seconds=seconds)
        client = scope.get("client")
        who = f"{client[0]}:{client[1]}" if client else "-"
        query = f"?{scope['query_string'].decode('latin-1')}" if scope.get("query_string") else ""
        log.info('%s "%s %s%s" %d %.1f ms%s', who, scope["method"], scope["path"], query, status,
                 seconds * 1000, f" model={model}" if model else "")


def require_token(request: Request) -> None:
    expected = request.app.state.settings.token
    if expected is None:
        return
    header = request.headers.get("authorization")
    if not header:
        raise TokenError(missing=True)
    scheme, _, given = header.partition(" ")
    # compare_digest: the time taken does not tell how much of a guess was right.
    if scheme.lower() != "bearer" or not secrets.compare_digest(given.strip().encode(), expected.encode()):
        raise TokenError(missing=False)


def service_of(request: Request):
    return request.app.state.service


async def run_blocking(request: Request, function: Callable, *args):
    """Run a blocking call (a load, a forecast) in a worker thread of the app's own pool.

    The pool is larger than the service's forecast queue, so a full queue is met by the
    service (503 with Retry-After), not by requests waiting silently for a thread.
    """
    return await anyio.to_thread.run_sync(function, *args, limiter=request.app.state.limiter)


# ----------------------------------------------------------------------------------------------
# routes
# ----------------------------------------------------------------------------------------------

PROBLEMS = {status: {"model": Problem, "content": {"application/problem+json": {}}}
            for status in (401, 404, 409, 413, 415, 422, 503)}

probes = APIRouter(tags=["probes"])
v1 = APIRouter(prefix="/v1", tags=["v1"], dependencies=[Depends(require_token)], responses=PROBLEMS)
monitoring = APIRouter(tags=["monitoring"], dependencies=[Depends(require_token)])


@probes.get("/healthz", response_model=Health)
def healthz():
    """Alive: answers as soon as the server listens, while models still load."""
    return {"status": "ok"}


@probes.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
def readyz(request: Request):
    """Ready (200) once every --preload model is loaded; 503 while loading or if one failed."""
    ready, body = request.app.state.preloads.report()
    return JSONResponse(body, status_code=200 if ready else 503)


@v1.get("/models")
def list_models(request: Request) -> list[dict]:
    """Every registry entry as `kronos-registry list --json` gives it, plus "loaded"."""
    return service_of(request).models()


@v1.get("/models/{name}")
def show_model(name: str, request: Request) -> dict:
    """One entry as `kronos-registry show NAME --json` gives it, plus "loaded"."""
    request.state.entry_field = "name"
    request.state.model = name
    return service_of(request).model_info(name)


@v1.get("/models/{name}/evals", response_model=EvalRuns)
def model_evals(name: str, request: Request):
    """Its stored `kronos-registry eval` runs: the latest per data set, and every run (oldest first)."""
    from kronos_registry.services.evaluation.results import evaluations_of

    request.state.entry_field = "name"
    request.state.model = name
    return evaluations_of(service_of(request).registry, name)


@v1.post("/models/{name}/load")
async def load_model(name: str, request: Request) -> dict:
    """Load a model now (from the store; synced first when online and allowed). 200: it is loaded."""
    request.state.entry_field = "name"
    request.state.model = name
    loaded = await run_blocking(request, service_of(request).load, name)
    return loaded.info()


@v1.delete("/models/{name}/load", response_model=Unloaded)
async def unload_model(name: str, request: Request):
    """Unload a model; "unloaded" is false when it was not loaded."""
    request.state.entry_field = "name"
    request.state.model = name
    unloaded = await run_blocking(request, service_of(request).unload, name)
    return {"name": name, "unloaded": bool(unloaded)}


@v1.get("/loaded", response_model=LoadedModels)
def loaded_models(request: Request):
    """Resident models (like `ollama ps`): device, bytes, last use, when keep-alive unloads them."""
    return {"models": [model.info() for model in service_of(request).manager.loaded()]}


FORECAST_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/ForecastRequest"}},
            "text/csv": {
                "schema": {"type": "string"},
                "example": "timestamps,open,high,low,close,volume,amount\n"
                           "2024-01-02 09:30:00,10.1,10.3,10.0,10.2,1200,12240\n...",
            },
        },
    },
    "description": "A JSON body (ForecastRequest), or a candle CSV (`Content-Type: text/csv`) with the "
                   "other fields of ForecastRequest in the query: `?model=kronos-small&pred_len=24&seed=7` "
                   "(`quantiles=0.1,0.5,0.9`).",
}


@v1.post("/forecast", response_model=ForecastResponse, openapi_extra=FORECAST_BODY)
async def forecast(request: Request):
    """Forecast the next pred_len candles with a model of the registry."""
    service = service_of(request)
    kind, query = media_type(request), query_options(request)
    limits = service.limits

    def parse(body: bytes):  # in a worker thread: parsing a large body is work too
        options, read = parse_forecast_request(kind, body, query, max_rows=limits.max_rows,
                                               content_type=request.headers.get("content-type"))
        return options, read()

    def forecast_render(options, candles, arrival, cancel):
        result = service.forecast(options.model, candles, options.params(), arrival=arrival, cancel=cancel)
        return JSONResponse(result.to_json())

    # Announced before it is parsed, so a batch forming now waits for it (see services/lanes.py).
    with service.arriving() as arrival:
        # Memory goes with the bodies held at once, not with the clients connected: at most
        # --max-parsing bodies are read and parsed together; the others wait unread.
        async with request.app.state.parsing:
            body = await read_body(request, limits.max_body_bytes, limits.body_timeout_s)
            options, candles = await run_blocking(request, parse, body)
            del body
        request.state.model = options.model
        return await until_disconnected(request, forecast_render, options, candles, arrival)


@monitoring.get("/metrics", response_class=Response)
def metrics(request: Request):
    """Prometheus metrics: requests, latency, batch sizes, loads, unloads, loaded bytes."""
    body, content_type = request.app.state.metrics.render()
    return Response(body, media_type=content_type)


# ----------------------------------------------------------------------------------------------
# the forecast body
# ----------------------------------------------------------------------------------------------


async def read_body(request: Request, limit: int, timeout: float | None = None) -> bytes:
    """The body, refused (413) as soon as it is known to exceed ``limit``: by its declared
    Content-Length before reading anything, else while it streams in (chunked); and refused
    (408) when it has not all arrived within ``timeout`` seconds (a slow or stalled client
    would otherwise hold its parse slot and its buffered bytes for ever)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLargeError(limit)
    chunks, size = [], 0
    with anyio.move_on_after(timeout) as scope:
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise BodyTooLargeError(limit)
                chunks.append(chunk)
        except ClientDisconnect:  # gone before its body arrived: nothing to compute, nobody to answer
            raise CancelledForecastError() from None
    if scope.cancelled_caught:
        raise BodyTimeoutError(timeout)
    return b"".join(chunks)


async def until_disconnected(request: Request, function: Callable, *args):
    """``function(*args, cancel)`` in a worker thread; ``cancel`` (a threading.Event) is set
    when the client disconnects meanwhile, so the service drops or stops its forecast."""
    cancel = threading.Event()

    async def watch():
        # The body has been read: the next ASGI message can only be the disconnect.
        while (await request.receive())["type"] != "http.disconnect":
            pass
        cancel.set()

    outcome: dict = {}
    async with anyio.create_task_group() as group:
        group.start_soon(watch)
        try:
            outcome["value"] = await run_blocking(request, function, *args, cancel)
        except Exception as error:  # raised after the group: inside, it would become an ExceptionGroup
            outcome["error"] = error
        finally:
            group.cancel_scope.cancel()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def parse_forecast_request(kind: str, body: bytes, query: dict, *, max_rows: int,
                           content_type: str | None = None) -> tuple[ForecastOptions, Callable]:
    """-> (the options, a function that reads the candles) from a JSON or CSV body."""
    from kronos_registry.candles import candles_from_records, read_candles_text

    if kind in JSON_TYPES or kind.endswith("+json"):
        parsed = ForecastRequest.model_validate_json(body)
        check_rows(len(parsed.candles), max_rows)
        options = ForecastOptions.model_validate(parsed.model_dump(exclude={"candles"}))
        return options, lambda: candles_from_records(parsed.candles, source="candles")
    if kind in CSV_TYPES:
        options = ForecastOptions.model_validate(query)
        text = decode_csv(body)
        check_rows(max(text.count("\n") - 1, 0), max_rows)
        return options, lambda: read_candles_text(text, source="the CSV body")
    raise UnsupportedMediaError(content_type)


def query_options(request: Request) -> dict:
    """The query as ForecastOptions fields: lists from repeated or comma-separated values."""
    options: dict = {}
    for key in request.query_params:
        values = request.query_params.getlist(key)
        if key in ("quantiles", "future_timestamps"):
            options[key] = [part.strip() for value in values for part in value.split(",") if part.strip()]
        else:
            options[key] = values[-1] if len(values) == 1 else values
    return options


def decode_csv(body: bytes) -> str:
    try:
        return body.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InputDataError(f"the CSV body is not UTF-8 text (byte {error.start}: {error.reason})",
                             field="candles", hint="send the CSV as UTF-8") from None


def check_rows(rows: int, max_rows: int) -> None:
    if rows > max_rows:
        raise InputDataError(f"{rows:,} candles exceed the server's limit of {max_rows:,} per request",
                             field="candles", hint="send only the history the model needs (its context is "
                             "at most a few thousand bars), or start the server with a larger --max-rows")


# ----------------------------------------------------------------------------------------------
# the app
# ----------------------------------------------------------------------------------------------


def create_app(service, settings: ServeSettings | None = None) -> FastAPI:
    """The FastAPI app over ``service`` (a ForecastService). The caller closes the service.

    Starting it (the lifespan) starts the model manager's keep-alive reaper and the
    preloads in a background thread; stopping it closes the manager's reaper.
    """
    settings = settings or ServeSettings()
    preloads = Preloads(tuple(settings.preload))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        service.manager.start()
        threading.Thread(target=preloads.run, args=(service,), name="preload", daemon=True).start()
        yield

    # /docs is our own (page.py: Swagger UI vendored, so it works offline); no ReDoc (a CDN script).
    app = FastAPI(title="kronos-registry", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Kronos forecasts by model name, from a verified local store. "
                              "Errors are application/problem+json (RFC 9457).")
    app.state.service = service
    app.state.settings = settings
    app.state.preloads = preloads
    app.state.metrics = ServeMetrics(service, known_models=service.registry.spec.names())
    app.state.limiter = anyio.CapacityLimiter(service.limits.max_queue + SPARE_THREADS)
    app.state.parsing = anyio.Semaphore(service.limits.max_parsing)
    install_problem_handlers(app, known_fields=FORECAST_FIELDS)
    # Added first, so it runs inside the request log: refused requests are logged and counted too.
    app.add_middleware(RequestGuard, hosts=settings.allowed_hosts, origins=settings.allowed_origins)
    app.add_middleware(RequestLog, metrics=app.state.metrics)
    for router in (probes, v1, monitoring):
        app.include_router(router)
    mount_page(app)  # the web page: /, /static, /sample.csv
    app.openapi = lambda: openapi_schema(app)
    return app




def openapi_schema(app: FastAPI) -> dict:
    """FastAPI's schema plus ForecastRequest, which the forecast route parses itself (JSON or CSV)."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        request_schema = ForecastRequest.model_json_schema(ref_template="#/components/schemas/{model}")
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.update(request_schema.pop("$defs", {}))
        components["ForecastRequest"] = request_schema
        app.openapi_schema = schema
    return app.openapi_schema
