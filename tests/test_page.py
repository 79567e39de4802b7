"""The web page at `/`, driven by a real headless Chromium against a real `kronos-registry serve`.

One server process per module (127.0.0.1, a free port, offline, `--token`, kronos-demo synced
and preloaded) and one browser; each test opens its own browser context, so sessionStorage
(the token) and page state never leak between tests. Every request the page makes to a host
other than the server is refused and recorded: the page must work offline (no CDN).

Chromium is Debian's (`apt-get install chromium`), driven through the playwright package;
`playwright install` (a browser download) is never needed. A screenshot of the page after a
forecast is written to $KRONOS_PAGE_SCREENSHOT (else a temporary folder) and its path printed.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.support.cli import DEMO, REPO_ROOT, SAMPLE_CSV, console_script, synced_demo
from tests.support.processes import stop_process

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TOKEN = "page-test-token"
PREFIX = "/kronos"   # the path prefix of the reverse-proxy test
START_TIMEOUT_S = 90
FORECAST_TIMEOUT_MS = 60_000
# The page's colours (js/chart.js COLORS): history up/down, forecast up/down, the median line.
HISTORY_RGB = [(0x26, 0xA6, 0x9A), (0xEF, 0x53, 0x50)]
FORECAST_RGB = [(0x1E, 0x6F, 0xD9), (0xF0, 0x8C, 0x00)]
MEDIAN_RGB = [(0x70, 0x48, 0xE8)]

STATIC_DIR = REPO_ROOT / "kronos_registry" / "serve" / "static"


def require_serve_extra() -> None:
    for module in ("fastapi", "uvicorn", "httpx"):
        pytest.importorskip(module, reason=f"{module} is not installed: pip install 'kronos-registry[serve,test]'")


def require_browser():
    """The playwright API, or a skip saying what is missing."""
    if not CHROMIUM.is_file():
        pytest.skip("Debian's chromium is not installed at /usr/bin/chromium (apt-get install -y chromium)")
    return pytest.importorskip("playwright.sync_api", reason="playwright (python) is not installed: "
                               "pip install playwright (no `playwright install` needed)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_ready(base: str, process: subprocess.Popen, log: Path) -> None:
    """Poll /readyz until the preload is done; fail with the server's log if it dies or hangs."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"kronos-registry serve exited with {process.returncode}:\n{log.read_text()}")
        try:
            import httpx

            if httpx.get(base + "/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass  # not listening yet
        time.sleep(0.3)
    pytest.fail(f"kronos-registry serve was not ready after {START_TIMEOUT_S} s:\n{log.read_text()}")


@contextlib.contextmanager
def running_server(demo, *options: str):
    """`kronos-registry serve` on 127.0.0.1 over the demo store, kronos-demo preloaded: its URL."""
    port = free_port()
    log = demo.root / f"serve-{port}.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [*console_script(), "serve", "--host", "127.0.0.1", "--port", str(port), "--preload", DEMO,
             "--offline", *options],
            cwd=demo.cwd, env=demo.env(), stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(base, process, log)
        yield base
    finally:
        stop_process(process)
    assert "Traceback" not in log.read_text(), log.read_text()


class PrefixProxy(ThreadingHTTPServer):
    """A reverse proxy publishing the server under PREFIX, as nginx's
    `location /kronos/ { proxy_pass http://127.0.0.1:PORT/; }` does: it strips the prefix."""

    daemon_threads = True

    def __init__(self, upstream: str):
        self.upstream = urlsplit(upstream)
        super().__init__(("127.0.0.1", 0), PrefixProxyHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class PrefixProxyHandler(BaseHTTPRequestHandler):
    HOP_HEADERS = {"host", "connection", "keep-alive", "transfer-encoding", "content-length"}

    def do_GET(self):
        self.forward()

    def do_POST(self):
        self.forward()

    def forward(self):
        if not self.path.startswith(PREFIX + "/"):
            self.send_error(404, f"outside {PREFIX}/")
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        upstream = http.client.HTTPConnection(self.server.upstream.hostname, self.server.upstream.port, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in self.HOP_HEADERS}
        upstream.request(self.command, self.path[len(PREFIX):], body=body, headers=headers)
        answer = upstream.getresponse()
        payload = answer.read()
        self.send_response(answer.status)
        for key, value in answer.getheaders():
            if key.lower() not in self.HOP_HEADERS:
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        upstream.close()

    def log_message(self, *args):
        pass  # quiet: pytest shows failures, not every proxied request


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory):
    require_serve_extra()
    return synced_demo(tmp_path_factory.mktemp("page-store"))


@pytest.fixture(scope="module")
def server(demo_store):
    """The server with a token: its URL."""
    with running_server(demo_store, "--token", TOKEN) as base:
        yield base


@pytest.fixture(scope="module")
def proxied_server(demo_store):
    """The server behind PrefixProxy, started with `--root-path PREFIX` and no token: the page's URL."""
    with running_server(demo_store, "--root-path", PREFIX) as base:
        proxy = PrefixProxy(base)
        thread = threading.Thread(target=proxy.serve_forever, name="prefix-proxy", daemon=True)
        thread.start()
        try:
            yield proxy.url + PREFIX + "/"
        finally:
            proxy.shutdown()
            proxy.server_close()


@pytest.fixture(scope="module")
def browser():
    playwright_api = require_browser()
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class PageUnderTest:
    """A fresh browser context on the page, recording console errors and outside requests."""

    def __init__(self, browser, base: str, *, token: str | None, width: int = 1280):
        self.base = base
        self.context = browser.new_context(viewport={"width": width, "height": 900}, accept_downloads=True)
        if token is not None:
            # As if the user had typed it earlier in this tab.
            self.context.add_init_script(f"sessionStorage.setItem('kronos-registry.token', {token!r});")
        self.outside_requests: list[str] = []
        self.requests: list[str] = []
        self.page_errors: list[str] = []
        self.context.route("**/*", self._only_the_server)
        self.page = self.context.new_page()
        self.page.on("pageerror", lambda error: self.page_errors.append(str(error)))

    def _only_the_server(self, route):
        url = route.request.url
        self.requests.append(url)
        if urlsplit(url).netloc == urlsplit(self.base).netloc:
            route.continue_()
        else:
            self.outside_requests.append(url)
            route.abort()

    def open(self, path: str = "/") -> "PageUnderTest":
        self.page.goto(self.base + path)
        self.page.wait_for_function("window.kronosPage && window.kronosPage.status !== 'starting'")
        return self

    def state(self, expression: str):
        return self.page.evaluate(f"window.kronosPage.{expression}")

    def run_forecast(self, *, model: str, pred_len: int, samples: int, seed: int) -> None:
        page = self.page
        page.select_option("#model", model)
        page.fill("#pred-len", str(pred_len))
        page.fill("#samples", str(samples))
        page.fill("#seed", str(seed))
        runs = self.state("forecastRuns")
        page.get_by_role("button", name="Run forecast").click()
        page.wait_for_function(f"window.kronosPage.forecastRuns > {runs} || window.kronosPage.status === 'error'",
                               timeout=FORECAST_TIMEOUT_MS)

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def open_page(browser, server):
    pages = []

    def opener(*, token: str | None = TOKEN, width: int = 1280, url: str | None = None) -> PageUnderTest:
        if url is None:
            pages.append(PageUnderTest(browser, server, token=token, width=width).open())
        else:
            parts = urlsplit(url)
            pages.append(PageUnderTest(browser, f"{parts.scheme}://{parts.netloc}", token=token,
                                       width=width).open(parts.path))
        return pages[-1]

    yield opener
    for page in pages:
        assert page.page_errors == [], f"JavaScript errors in the page: {page.page_errors}"
        assert page.outside_requests == [], f"the page reached outside the server: {page.outside_requests}"
        page.close()


def api(server: str, method: str, path: str, **kwargs):
    import httpx

    headers = {"Authorization": f"Bearer {TOKEN}", **kwargs.pop("headers", {})}
    return httpx.request(method, server + path, headers=headers, timeout=60, **kwargs)


def chart_pixels(page) -> dict:
    """How many pixels of each of the page's series colours the chart's canvases hold."""
    return page.evaluate("""(palette) => {
        const counts = Object.fromEntries(Object.keys(palette).map((name) => [name, 0]));
        for (const canvas of document.querySelectorAll('#chart canvas')) {
            if (!canvas.width || !canvas.height) continue;
            const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
            for (let i = 0; i < data.length; i += 4) {
                if (data[i + 3] < 200) continue;
                for (const [name, colours] of Object.entries(palette)) {
                    if (colours.some(([r, g, b]) => Math.abs(data[i] - r) + Math.abs(data[i + 1] - g)
                                                    + Math.abs(data[i + 2] - b) < 24)) counts[name] += 1;
                }
            }
        }
        return counts;
    }""", {"history": HISTORY_RGB, "forecast": FORECAST_RGB, "median": MEDIAN_RGB})


def screenshot_path(tmp_path_factory) -> Path:
    wanted = os.environ.get("KRONOS_PAGE_SCREENSHOT")
    return Path(wanted) if wanted else tmp_path_factory.mktemp("page-shot") / "page.png"


# --- the package ---------------------------------------------------------------------------------


def test_pyproject_ships_every_static_file():
    """A file added under static/ that package-data does not match would vanish from a wheel."""
    tomllib = pytest.importorskip("tomllib", reason="tomllib needs Python 3.11+")

    patterns = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    serve_patterns = patterns["kronos_registry.serve"]
    package_dir = STATIC_DIR.parent
    shipped = {path for pattern in serve_patterns for path in package_dir.glob(pattern) if path.is_file()}
    present = {path for path in STATIC_DIR.rglob("*") if path.is_file()}
    assert present - shipped == set(), f"not matched by package-data {serve_patterns}: {present - shipped}"
    assert {"index.html", "app.js", "style.css"} <= {path.name for path in present}


@pytest.mark.parametrize("library", ["lightweight-charts", "swagger-ui"])
def test_each_vendored_library_is_the_one_recorded(library):
    """VENDORED.md records each file's sha256; an edit or a partial update must show up."""
    import hashlib

    folder = STATIC_DIR / "vendor" / library
    record = (folder / "VENDORED.md").read_text()
    shipped = [path for path in folder.iterdir() if path.suffix in (".js", ".css")]
    assert shipped, f"nothing vendored in {folder}"
    for path in shipped:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert f"`{digest}`" in record, f"{path.name} has sha256 {digest}, not the one in VENDORED.md"
    assert (folder / "LICENSE").read_text().lstrip().startswith("Apache License")
    assert (folder / "NOTICE").read_text().strip()


# --- the page in a browser -----------------------------------------------------------------------


def test_without_the_token_the_page_says_so_and_lists_models_once_given(open_page, server):
    view = open_page(token=None)
    page = view.page
    alert = page.get_by_role("alert")
    assert alert.is_visible()
    assert view.state("error.status") == 401
    assert "Access token" in alert.inner_text()

    assert page.locator("#token-box").get_attribute("open") is not None   # opened for the user
    page.get_by_label("Bearer token").fill(TOKEN)
    page.get_by_label("Bearer token").press("Enter")
    page.wait_for_function("window.kronosPage.models.length > 0")

    names = view.state("models.map((m) => m.name)")
    expected = [entry["name"] for entry in api(server, "GET", "/v1/models").json() if entry["kind"] == "model"]
    assert names == expected and DEMO in names
    assert not alert.is_visible()
    assert page.evaluate("sessionStorage.getItem('kronos-registry.token')") == TOKEN


def test_the_page_lists_the_registry_with_params_context_synced_loaded(open_page):
    view = open_page()
    page = view.page
    options = page.locator("#model option").all_inner_texts()
    assert any(text.startswith("Kronos-small") for text in options), options
    assert page.locator("#model").input_value() == DEMO          # loaded (preloaded) is preferred
    details = page.evaluate("Object.fromEntries([...document.querySelectorAll('#model-details dt')]"
                            ".map((dt) => [dt.textContent, dt.nextElementSibling.textContent]))")
    assert details["Params"] == "380.6k" and details["Context"] == "512 bars", details
    assert details["Synced"].startswith("yes") and details["Loaded"] == "yes", details
    # kronos-large is listed but cannot be picked.
    large = page.locator("#model option[value='kronos-large']")
    if large.count():
        assert large.is_disabled()
    unlabelled = page.evaluate("[...document.querySelectorAll('input, select')]"
                               ".filter((field) => !field.labels || field.labels.length === 0).map((f) => f.id)")
    assert unlabelled == [], f"form fields without a <label>: {unlabelled}"
    # The sample was loaded on start.
    assert view.state("csv.history.length") == len(SAMPLE_CSV.read_text().strip().splitlines()) - 1


def test_a_forecast_on_the_sample_draws_the_chart_and_downloads(open_page, server, tmp_path_factory, tmp_path):
    view = open_page()
    page = view.page
    started = time.monotonic()
    view.run_forecast(model=DEMO, pred_len=24, samples=8, seed=7)
    seconds = time.monotonic() - started
    assert view.state("status") == "done", view.state("error")

    body = view.state("forecast")
    direct = api(server, "POST", "/v1/forecast", params={"model": DEMO, "pred_len": 24, "samples": 8, "seed": 7},
                 headers={"Content-Type": "text/csv"}, content=SAMPLE_CSV.read_bytes()).json()
    assert body["timestamps"] == direct["timestamps"] and len(body["timestamps"]) == 24
    assert body["forecast"]["close"] == pytest.approx(direct["forecast"]["close"], abs=1e-5)
    assert set(body["quantiles"]) == {"0.1", "0.5", "0.9"}

    # History candles, forecast candles, the band's two edges and its median line.
    assert view.state("seriesCount") == 5
    page.wait_for_timeout(300)  # the chart paints on the next animation frame
    pixels = chart_pixels(page)
    assert pixels["history"] > 500 and pixels["forecast"] > 20 and pixels["median"] > 10, pixels
    assert "24 forecast bars" in page.locator("#chart").get_attribute("aria-label")
    summary = page.locator("#summary").inner_text()
    assert "Seed" in summary and "7" in summary

    with page.expect_download() as download_info:
        page.get_by_role("button", name="Download forecast CSV").click()
    saved = tmp_path / download_info.value.suggested_filename
    download_info.value.save_as(saved)
    import pandas as pd

    frame = pd.read_csv(saved)
    assert list(frame.columns[:7]) == ["timestamps", "open", "high", "low", "close", "volume", "amount"]
    assert "close_q0.9" in frame.columns and len(frame) == 24
    assert frame["close"].to_numpy() == pytest.approx(direct["forecast"]["close"], abs=1e-9)

    shot = screenshot_path(tmp_path_factory)
    shot.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shot), full_page=True)
    print(f"\npage screenshot: {shot} (forecast in the page took {seconds:.2f} s)")


def test_a_bad_csv_shows_the_servers_problem_in_the_page(open_page, server, tmp_path):
    view = open_page()
    page = view.page
    bad = SAMPLE_CSV.read_text().replace(",close,", ",klose,", 1).encode()
    page.set_input_files("#csv-file", files=[{"name": "bad.csv", "mimeType": "text/csv", "buffer": bad}])
    page.wait_for_function("window.kronosPage.csv && window.kronosPage.csv.name === 'bad.csv'")
    assert "cannot draw it" in page.locator("#data-status").inner_text()
    assert view.state("seriesCount") == 0

    view.run_forecast(model=DEMO, pred_len=12, samples=1, seed=1)
    problem = api(server, "POST", "/v1/forecast", params={"model": DEMO, "pred_len": 12},
                  headers={"Content-Type": "text/csv"}, content=bad)
    assert problem.status_code == 422
    expected = problem.json()
    alert = page.get_by_role("alert")
    assert alert.is_visible()
    assert view.state("status") == "error"
    assert view.state("error.status") == 422
    text = alert.inner_text()
    assert expected["detail"] in text, text
    if expected.get("hint"):
        assert expected["hint"] in text, text
    assert page.get_by_role("button", name="Download forecast CSV").is_disabled()


def test_the_page_fits_a_narrow_screen(open_page):
    view = open_page(width=390)
    page = view.page
    view.run_forecast(model=DEMO, pred_len=8, samples=1, seed=3)
    assert view.state("status") == "done", view.state("error")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    chart_box = page.locator("#chart").bounding_box()
    assert chart_box["width"] <= 390 and chart_box["height"] >= 200
    assert view.state("seriesCount") == 2   # one sample: history and forecast, no band


def test_the_api_docs_page_works_offline(browser, server):
    """/docs is Swagger UI from the vendored copy: it renders the schema, nothing from elsewhere."""
    view = PageUnderTest(browser, server, token=None)
    try:
        view.page.goto(server + "/docs")
        view.page.wait_for_selector(".opblock-summary-path[data-path='/v1/forecast']", timeout=30_000)
        assert "kronos-registry" in view.page.inner_text(".swagger-ui .info .title")
        assert view.page_errors == [] and view.outside_requests == [], (view.page_errors, view.outside_requests)
        assert any(url.endswith("/static/vendor/swagger-ui/swagger-ui-bundle.js") for url in view.requests)
    finally:
        view.close()


def test_behind_a_reverse_proxy_under_a_path_prefix(open_page, proxied_server):
    """`serve --root-path /kronos` behind a proxy that strips /kronos: every URL keeps the prefix."""
    view = open_page(token=None, url=proxied_server)
    assert view.state("status") == "ready", view.state("error")
    assert DEMO in view.state("models.map((m) => m.name)")
    view.run_forecast(model=DEMO, pred_len=6, samples=1, seed=5)
    assert view.state("status") == "done", view.state("error")
    assert len(view.state("forecast.timestamps")) == 6
    strays = [url for url in view.requests if not url.startswith(proxied_server) and not url.startswith("data:")]
    assert strays == [], f"requests that skipped the prefix {PREFIX}: {strays}"
    assert any(url.startswith(proxied_server + "v1/forecast?") for url in view.requests), view.requests
