"""Requests a browser could forge or redirect, refused before any route runs.

- Host: only the names of ``ServeSettings.allowed_hosts`` (loopback and the bound host by
  default, ``--allow-host`` for more, ``*`` for any): otherwise 421, so a DNS name that an
  attacker points at 127.0.0.1 cannot drive the server from a web page (DNS rebinding).
  The probes stay open: an orchestrator probes by IP address, and they tell nothing.
- Origin: a state-changing request (POST, PUT, PATCH, DELETE) that carries one must come
  from a page of a host the server answers to (any port: a reverse proxy publishes the page
  on its own), of the request's own Host, or an ``--allow-origin``: otherwise 403 (CSRF).
- Content type: a state-changing request with a body must not be one a page can send
  without a CORS preflight (text/plain, a form, or no type): otherwise 415.
"""

from __future__ import annotations

from kronos_registry.serve.problems import HttpProblem
from kronos_registry.services.exposure import host_name

STATE_CHANGING = ("POST", "PUT", "PATCH", "DELETE")
# The content types a cross-site page may send without a preflight (the Fetch standard's list).
SIMPLE_TYPES = ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data")
OPEN_PATHS = ("/healthz", "/readyz")


class RequestGuard:
    """A plain ASGI middleware (see the module doc)."""

    def __init__(self, app, *, hosts: tuple[str, ...], origins: tuple[str, ...]):
        self.app = app
        self.hosts = frozenset(hosts)
        self.origins = frozenset(origin.rstrip("/").lower() for origin in origins)

    async def __call__(self, scope, receive, send):
        problem = self.check(scope) if scope["type"] == "http" else None
        if problem is None:
            await self.app(scope, receive, send)
        else:
            await problem.response(scope["path"])(scope, receive, send)

    def check(self, scope) -> HttpProblem | None:
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", ())}
        host = headers.get("host", "")
        if scope["path"] not in OPEN_PATHS and "*" not in self.hosts and host_name(host) not in self.hosts:
            return HttpProblem(421, "misdirected-request", "Misdirected request",
                               "this server does not answer to that Host name", field="Host",
                               hint="use the address the server listens on, or start it with --allow-host NAME")
        if scope["method"] not in STATE_CHANGING:
            return None
        origin = headers.get("origin")
        if origin is not None and not self._same_origin(origin, host):
            return HttpProblem(403, "cross-origin", "Cross-origin request refused",
                               "a state-changing request from another site's page is refused", field="Origin",
                               hint="call the API from this server's page or a program, or start the server with "
                                    "--allow-origin ORIGIN (e.g. https://app.example)")
        kind = headers.get("content-type", "").split(";")[0].strip().lower()
        has_body = headers.get("content-length", "0") != "0" or "transfer-encoding" in headers
        if kind in SIMPLE_TYPES or (has_body and not kind):
            return HttpProblem(415, "unsupported-media-type", "Unsupported media type",
                               f"a {scope['method']} body of type '{kind or '(none)'}' is refused: any web page "
                               "could send it without asking", field="Content-Type",
                               hint="send 'Content-Type: application/json' (or text/csv to /v1/forecast)")
        return None

    def _same_origin(self, origin: str, host: str) -> bool:
        origin = origin.rstrip("/").lower()
        if origin in self.origins or "*" in self.origins:
            return True
        scheme, _, authority = origin.partition("://")
        if scheme not in ("http", "https"):
            return False  # "null" (a sandboxed frame, a file) and anything stranger
        # Not "*": --allow-host '*' answers any Host, it does not let any site's page post.
        return authority == host.strip().lower() or host_name(authority) in self.hosts - {"*"}


__all__ = ["RequestGuard"]
