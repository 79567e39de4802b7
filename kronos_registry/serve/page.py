"""The web page of `kronos-registry serve`: `/`, its static files, and the sample candles.

The page (static/index.html, style.css, and static/js/: ES modules, app.js the entry) is plain
JavaScript with no build step; it draws with the vendored TradingView lightweight-charts
(static/vendor/, see VENDORED.md there), so it works offline. It only calls the public HTTP API (GET /v1/models, POST /v1/forecast with a
text/csv body), so the server validates uploads with the same messages as the CLI.

These routes carry no model data and no secrets, so they stay public when the server has a
token (app.py guards only its routers): the page must load before the user can type the token.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).with_name("static")
SAMPLE_CSV = Path(__file__).parent.parent / "data" / "sample_candles.csv"
SWAGGER_UI = "static/vendor/swagger-ui"   # see VENDORED.md there

# index.html's <base>, rewritten per request to the server's root path.
BASE_TAG = '<base href="/">'
# A reload after an upgrade must not mix old and new files, and the page is small.
NO_CACHE = {"Cache-Control": "no-cache"}


def mount_page(app: FastAPI) -> None:
    """Add `/` (the page), `/static/...` (its files), `/sample.csv` (the packaged candles) and
    `/docs` (Swagger UI over the OpenAPI schema, from the vendored copy: works offline)."""
    # check_dir=False: an install without the package data still serves the API; `/` says why.
    app.mount("/static", StaticFiles(directory=STATIC_DIR, check_dir=False), name="static")

    @app.get("/", include_in_schema=False)
    def page(request: Request) -> Response:
        index = STATIC_DIR / "index.html"
        if not index.is_file():
            return missing_page(index)
        html = with_base(index.read_text(encoding="utf-8"), request.scope.get("root_path", ""))
        return HTMLResponse(html, headers=NO_CACHE)

    @app.get("/docs", include_in_schema=False)
    def docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} - API",
            swagger_js_url=f"{root}/{SWAGGER_UI}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}/{SWAGGER_UI}/swagger-ui.css",
            swagger_favicon_url="data:,",                    # no request for an icon elsewhere
            swagger_ui_parameters={"validatorUrl": None})    # no call to swagger.io's validator

    @app.get("/sample.csv", include_in_schema=False)
    def sample_candles() -> FileResponse:
        return FileResponse(SAMPLE_CSV, media_type="text/csv; charset=utf-8", filename="sample_candles.csv",
                            headers=NO_CACHE)


def with_base(html: str, root_path: str) -> str:
    """The page with its <base> at the server's root path (`--root-path /kronos` behind a proxy).

    Every URL in the page is relative, so the page, its files and its API calls all go
    through the proxy's prefix.
    """
    base = escape(root_path.rstrip("/") + "/", quote=True)
    return html.replace(BASE_TAG, f'<base href="{base}">', 1)


def missing_page(index: Path) -> JSONResponse:
    return JSONResponse(
        {"type": "urn:kronos-registry:problem:page-missing", "title": "Web page not installed", "status": 500,
         "detail": f"the web page is missing from the installed package: {index}",
         "hint": "reinstall kronos-registry (its package data must include kronos_registry/serve/static); "
                 "the HTTP API under /v1 works without it"},
        status_code=500, media_type="application/problem+json")
