"""Every error of the server as ``application/problem+json`` (RFC 9457).

A problem body has the RFC's members ``type`` (a URN naming the kind of problem), ``title``
(the same for every problem of that kind), ``status``, ``detail`` (this occurrence, in the
words the CLI uses) and ``instance`` (the request path), plus two of ours: ``field``, the
request field at fault (``pred_len``, ``candles``, ``model``), and ``hint``, what to do.

The status, kind and title of each registry error come from the renderer every face shares
(``kronos_registry.services.errors``); this module adds the HTTP-only problems (validation,
token, body size, media type, internal errors) and the handlers.
"""

from __future__ import annotations

import difflib
import logging
from typing import Any, Iterable, Mapping

import attrs
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from kronos_registry.services.errors import describe_error
from registry.errors import RegistryError
from registry.redact import redact_secrets

PROBLEM_JSON = "application/problem+json"
TYPE_PREFIX = "urn:kronos-registry:problem:"

log = logging.getLogger("kronos_registry.serve")


@attrs.frozen
class HttpProblem:
    """One problem, ready to be sent."""

    status: int
    kind: str      # the end of the type URN: "unknown-entry"
    title: str
    detail: str
    field: str | None = None
    hint: str | None = None
    headers: Mapping[str, str] = attrs.field(factory=dict)
    extra: Mapping[str, Any] = attrs.field(factory=dict)

    def body(self, instance: str | None = None) -> dict:
        body = {"type": TYPE_PREFIX + self.kind, "title": self.title, "status": self.status,
                "detail": redact_secrets(self.detail)}
        if instance:
            body["instance"] = instance
        if self.field:
            body["field"] = self.field
        if self.hint:
            body["hint"] = redact_secrets(self.hint)
        body.update(self.extra)
        return body

    def response(self, instance: str | None = None) -> JSONResponse:
        return JSONResponse(self.body(instance), status_code=self.status, headers=dict(self.headers),
                            media_type=PROBLEM_JSON)


class TokenError(Exception):
    """The request lacks the bearer token the server was started with, or has another one."""

    def __init__(self, *, missing: bool):
        super().__init__("missing token" if missing else "wrong token")
        self.missing = missing


class BodyTooLargeError(Exception):
    """A request body over the server's --max-body."""

    def __init__(self, limit: int):
        super().__init__(f"body over {limit} bytes")
        self.limit = limit


class BodyTimeoutError(Exception):
    """A request body that did not all arrive within the server's --body-timeout."""

    def __init__(self, timeout: float):
        super().__init__(f"body not received within {timeout} s")
        self.timeout = timeout


class UnsupportedMediaError(Exception):
    """A forecast body that is neither JSON nor CSV."""

    def __init__(self, content_type: str | None):
        super().__init__(content_type or "")
        self.content_type = content_type


def problem_from_error(error: RegistryError, *, entry_field: str | None = "model") -> HttpProblem:
    """The problem body of a RegistryError, from the one renderer every face shares."""
    report = describe_error(error, remote=True)
    headers = {"Retry-After": str(report.retry_after)} if report.retry_after is not None else {}
    field = entry_field if report.names_entry else report.field
    return HttpProblem(report.status, report.kind, report.title, report.message, field=field, hint=report.hint,
                       headers=headers)


def problem_from_validation(errors: Iterable[Mapping[str, Any]], *, known_fields: Iterable[str] = ()
                            ) -> HttpProblem:
    """A 422 naming every invalid field (``pred_len``, ``candles.3``), the first in ``detail``."""
    listed = []
    for error in errors:
        # FastAPI's locations start with where the value came from ("body", "query", "path").
        location = [str(part) for part in error.get("loc", ())]
        if location and location[0] in ("body", "query", "path", "header"):
            location = location[1:]
        listed.append({"field": ".".join(location) or "(body)", "message": error.get("msg", "invalid"),
                       "type": error.get("type")})
    if not listed:
        listed.append({"field": "(body)", "message": "invalid request", "type": None})
    first = listed[0]
    hint = None
    if first["type"] == "extra_forbidden":
        close = difflib.get_close_matches(first["field"], list(known_fields), n=1)
        hint = (f"did you mean '{close[0]}'? " if close else "") + "see the request schema at /docs"
    detail = f"{first['field']}: {first['message']}"
    if len(listed) > 1:
        detail += f" (and {len(listed) - 1} more problem{'s' if len(listed) > 2 else ''})"
    return HttpProblem(422, "invalid-request", "Invalid request", detail, field=first["field"],
                       hint=hint or "see the request schema at /docs",
                       extra={"errors": [{"field": e["field"], "message": e["message"]} for e in listed]})


HTTP_KINDS = {
    401: ("unauthorized", "Unauthorized"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    408: ("request-timeout", "Request timeout"),
    413: ("body-too-large", "Request body too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
}


def problem_from_http(error: StarletteHTTPException) -> HttpProblem:
    kind, title = HTTP_KINDS.get(error.status_code, ("http-error", "HTTP error"))
    detail, hint = str(error.detail), None
    if error.status_code == 404:
        hint = "the API is under /v1 (see /docs); /healthz and /readyz are the probes"
    return HttpProblem(error.status_code, kind, title, detail, hint=hint, headers=dict(error.headers or {}))


def body_problem(error: BodyTooLargeError) -> HttpProblem:
    return HttpProblem(413, "body-too-large", "Request body too large",
                       f"the request body is larger than this server's limit of {error.limit:,} bytes",
                       hint="send fewer candles per request (the model sees at most its context), or start "
                       "the server with a larger --max-body")


def timeout_problem(error: BodyTimeoutError) -> HttpProblem:
    return HttpProblem(408, "request-timeout", "Request timeout",
                       f"the request body did not arrive within {error.timeout:g} s", field="(body)",
                       hint="send the whole body at once, or start the server with a larger --body-timeout",
                       headers={"Connection": "close"})


def token_problem(error: TokenError) -> HttpProblem:
    challenge = 'Bearer realm="kronos-registry"'
    if not error.missing:
        challenge += ', error="invalid_token"'
    detail = ("this server needs a bearer token" if error.missing
              else "the bearer token does not match the server's")
    return HttpProblem(401, "unauthorized", "Unauthorized", detail, field="Authorization",
                       hint="send the header 'Authorization: Bearer <token>' with the token given to "
                       "`kronos-registry serve --token`",
                       headers={"WWW-Authenticate": challenge})


def media_problem(error: UnsupportedMediaError) -> HttpProblem:
    return HttpProblem(415, "unsupported-media-type", "Unsupported media type",
                       f"a forecast body must be application/json or text/csv, not "
                       f"'{error.content_type or '(none)'}'",
                       field="Content-Type",
                       hint="send JSON with 'Content-Type: application/json', or a candle CSV with "
                       "'Content-Type: text/csv' and ?model=...&pred_len=... in the query")


def internal_problem(error: BaseException) -> HttpProblem:
    return HttpProblem(500, "internal-error", "Internal server error",
                       f"an unexpected error ({type(error).__name__}) while serving this request; the "
                       "server logged it and keeps serving",
                       hint="this is a bug in kronos-registry: report it with the server log's traceback")


def install_problem_handlers(app: FastAPI, *, known_fields: Iterable[str] = ()) -> None:
    """Route every exception to its problem response; nothing escapes as a traceback."""
    known = tuple(known_fields)

    def entry_field(request: Request) -> str:
        return getattr(request.state, "entry_field", "model")

    async def on_registry_error(request: Request, error: RegistryError):
        problem = problem_from_error(error, entry_field=entry_field(request))
        if problem.status >= 500:
            log.error("%s %s: %s", request.method, request.url.path, error.message)
        return problem.response(request.url.path)

    async def on_validation(request: Request, error: RequestValidationError | ValidationError):
        return problem_from_validation(error.errors(), known_fields=known).response(request.url.path)

    async def on_http(request: Request, error: StarletteHTTPException):
        return problem_from_http(error).response(request.url.path)

    async def on_token(request: Request, error: TokenError):
        return token_problem(error).response(request.url.path)

    async def on_body(request: Request, error: BodyTooLargeError):
        return body_problem(error).response(request.url.path)

    async def on_timeout(request: Request, error: BodyTimeoutError):
        return timeout_problem(error).response(request.url.path)

    async def on_media(request: Request, error: UnsupportedMediaError):
        return media_problem(error).response(request.url.path)

    app.add_exception_handler(RegistryError, on_registry_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(ValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(TokenError, on_token)
    app.add_exception_handler(BodyTooLargeError, on_body)
    app.add_exception_handler(BodyTimeoutError, on_timeout)
    app.add_exception_handler(UnsupportedMediaError, on_media)
    # Anything else reaches the request-log middleware (app.py), which logs it once with its
    # traceback and answers internal_problem(): Starlette's own handler for Exception would
    # re-raise it after answering, and uvicorn would log it a second time.
