"""Stored evaluations through the machine faces (issue 21, item 7): `GET /v1/models/NAME/evals`
on a real `kronos-registry serve` (uvicorn on 127.0.0.1), the page's evaluation view in a
headless Chromium, and MCP's `model_info` over stdio, all over one store holding kronos-demo
and one `eval` run of it."""

from __future__ import annotations

import json

import pytest

from tests.support.cli import DEMO, SAMPLE_CSV, Cli, console_script, synced_demo
from tests.support.server import ServeProcess

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install 'kronos-registry[serve]'")
pytest.importorskip("httpx", reason="httpx (a test extra) is not installed")

TOKEN = "eval-faces-token"


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> tuple[Cli, dict]:
    """A store with kronos-demo and one kept `eval` run of it: (cli, the run's record)."""
    cli = synced_demo(tmp_path_factory.mktemp("eval-faces"))
    result = cli("eval", DEMO, "-i", SAMPLE_CSV, "-n", "4", "--origins", "6", "--lookback", "40", "--samples", "3",
                 "--seed", "2")
    assert result.code == 0, result.output
    (path,) = (cli.store / "evals" / DEMO).glob("*.json")
    return cli, json.loads(path.read_text())


@pytest.fixture(scope="module")
def server(store):
    cli, _ = store
    process = ServeProcess(cli, ["--max-models", "1"], token=TOKEN)
    yield process.start()
    process.stop()


def test_the_evals_route_returns_the_stored_runs(server, store):
    _, record = store
    with server.client() as http:
        answer = http.get(f"/v1/models/{DEMO}/evals")
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["name"] == DEMO and body["artifact"] == record["artifact"]
        (latest,) = body["latest"]
        assert latest["run_id"] == record["run_id"] and latest["current"] is True
        assert latest["windows"] == 6 and latest["horizon"] == 4 and latest["samples"] == 3
        assert latest["data"]["sha256"] == record["data"]["sha256"]
        overall = {r["metric"]: r["value"] for r in record["rows"]
                   if r["model"] == DEMO and r["step"] == "all" and r["column"] == "close"}
        assert latest["metrics"]["mase"] == pytest.approx(overall["mase"])
        assert set(latest["baselines"]) == {"naive", "drift", "random-walk"}
        assert {s["loss"] for s in latest["skill"]} == {"mase", "crps"}
        assert [r["run_id"] for r in body["runs"]] == [record["run_id"]]

        empty = http.get("/v1/models/kronos-small/evals")
        assert empty.status_code == 200 and empty.json()["latest"] == [] and empty.json()["runs"] == []
        unknown = http.get("/v1/models/kronos-smal/evals")
        assert unknown.status_code == 404 and unknown.headers["content-type"].startswith("application/problem+json")
        assert "kronos-small" in unknown.json()["detail"] + str(unknown.json().get("hint"))
        schema = http.get("/openapi.json").json()
        route = schema["paths"]["/v1/models/{name}/evals"]["get"]
        assert route["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/EvalRuns")
        assert "EvalSummary" in schema["components"]["schemas"]
    with server.client(token=None) as anonymous:
        assert anonymous.get(f"/v1/models/{DEMO}/evals").status_code == 401
        module = anonymous.get("/static/js/evals.js")
        assert module.status_code == 200 and "export function renderEvals" in module.text


def test_the_page_shows_the_evaluation_of_the_chosen_model(server, store):
    from tests.test_page import CHROMIUM, CHROMIUM_ARGS, require_browser

    _, record = store
    playwright_api = require_browser()
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context()
            context.add_init_script(f"sessionStorage.setItem('kronos-registry.token', {TOKEN!r});")
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(server.url + "/")
            page.wait_for_selector("#evals table", timeout=30_000)
            text = page.inner_text("#evals")
            assert f"Evaluations of {DEMO}" in text and record["run_id"] in text
            assert "sample_candles.csv" in text and ("does not beat" in text or "beats" in text)
            page.screenshot(path=str(server.cli.root / "evals-view.png"), full_page=True)
            verdict = page.get_attribute("#evals td[data-verdict]", "data-verdict")
            assert verdict == next(s["verdict"] for s in record["skill"] if s["loss"] == "mase")
            assert errors == []
        finally:
            browser.close()


def test_mcp_model_info_carries_the_latest_results(store):
    pytest.importorskip("mcp", reason="the optional `mcp` package is not installed")
    import anyio
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    cli, record = store
    command = console_script()
    params = StdioServerParameters(command=command[0], args=[*command[1:], "--offline", "mcp", "--device", "cpu",
                                                                 "--threads", "1"], env=cli.env(), cwd=str(cli.cwd))

    async def call():
        with (cli.root / "mcp.log").open("w") as log:
            async with stdio_client(params, errlog=log) as (read, write):
                async with ClientSession(read, write) as session:
                    with anyio.fail_after(120):
                        await session.initialize()
                        return await session.call_tool("model_info", {"model": DEMO})

    result = anyio.run(call)
    assert not result.is_error
    (latest,) = result.structured_content["evaluations"]
    assert latest["run_id"] == record["run_id"]
    assert {s["verdict"] for s in latest["skill"]} <= {"better", "worse", "no detectable difference",
                                                        "too few origins"}
    text = "\n".join(block.text for block in result.content if block.type == "text")
    assert "evaluated" in text and record["run_id"] in text
