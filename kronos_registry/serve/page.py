"""The web page of `kronos-registry serve`: `/`, its static files, and the sample candles.

The page (static/index.html, app.js, style.css) is plain JavaScript with no build step; it draws
with the vendored TradingView lightweight-charts (static/vendor/, see VENDORED.md there), so it
works offline. It only calls the public HTTP API (GET /v1/models, POST /v1/forecast with a
text/csv body), so the server validates uploads with the same messages as the CLI.

These routes carry no model data and no secrets, so they stay public when the server has a
token: the page must load before the user can type the token into it.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).with_name("static")
SAMPLE_CSV = Path(__file__).parent.parent / "data" / "sample_candles.csv"

# Paths that need no token (the auth layer of app.py may exempt exactly these).
PUBLIC_PATHS = ("/", "/sample.csv")
PUBLIC_PREFIXES = ("/static/",)

# A reload after an upgrade must not mix old and new files, and the page is small.
NO_CACHE = {"Cache-Control": "no-cache"}


def is_public_path(path: str) -> bool:
    """True for the page's own routes, which the token does not guard."""
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def add_page_routes(app: FastAPI) -> None:
    """Add `/` (the page), `/static/...` (its files) and `/sample.csv` (the packaged candles)."""
    if not (STATIC_DIR / "index.html").is_file():
        # A broken install (package data not shipped) should say so, not serve a blank 404.
        raise FileNotFoundError(f"the web page is missing from the installed package: {STATIC_DIR / 'index.html'} "
                                "(reinstall kronos-registry; pyproject's package-data must list serve/static)")
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html; charset=utf-8", headers=NO_CACHE)

    @app.get("/sample.csv", include_in_schema=False)
    def sample_candles() -> FileResponse:
        return FileResponse(SAMPLE_CSV, media_type="text/csv; charset=utf-8", filename="sample_candles.csv",
                            headers=NO_CACHE)
