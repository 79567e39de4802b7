"""`kronos-registry mcp`: the MCP server, driven by the official SDK's own client.

Each transport gets one real server process for the whole module, over a store holding
kronos-demo (tests/support/cli.py):

- stdio: `kronos-registry --offline mcp`, spawned by ``mcp.client.stdio.stdio_client``;
- streamable HTTP: `kronos-registry mcp --transport streamable-http --port 0 --offline` on
  127.0.0.1, reached through ``mcp.client.streamable_http.streamable_http_client``.

Both servers run with the socket guard installed in their process (tests/support/process_guard.py):
no name lookup, no connection and no send to anything but loopback and Unix sockets, every
attempt recorded. Neither has an offline variable in its environment: the `--offline` option
alone (before the command for one, after it for the other) must keep them off the network.

One scripted session per transport (``exercise``) makes every call once and records the
results; the tests below assert on them. A tool error must come back as ``isError`` with a text
that says what to fix, and the server must still answer afterwards (a ping after each one, and
a good forecast at the end).
"""

from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import sys
import threading
import traceback
from pathlib import Path

import pandas as pd
import pytest

from tests.support.cli import DEMO, DEMO_TOKENIZER, SAMPLE_CSV, Cli, console_script, synced_demo
from tests.support.process_guard import read_record, write_sitecustomize
from tests.support.processes import stop_process

pytest.importorskip("mcp", reason="the optional `mcp` package is not installed: pip install 'kronos-registry[mcp]'")
import anyio  # noqa: E402 - a dependency of mcp
from mcp import ClientSession, StdioServerParameters  # noqa: E402
from mcp.client.stdio import stdio_client  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402

PRED_LEN = 8
SEED = 7
COLUMNS = ["open", "high", "low", "close", "volume", "amount"]
START_TIMEOUT = 60


def sample_records() -> list[dict]:
    """The sample CSV as the `candles` argument: one object per bar."""
    frame = pd.read_csv(SAMPLE_CSV)
    frame = frame.rename(columns={"timestamps": "timestamp"})
    return frame.to_dict(orient="records")


def bad_calls() -> dict[str, tuple[str, dict]]:
    """Each caller mistake: (tool, arguments)."""
    csv = SAMPLE_CSV.read_text()
    records = sample_records()[:40]
    broken = [dict(row) for row in records]
    broken[3]["close"] = "abc"
    huge = [dict(row) for row in records]
    huge[-1].update(close=1e300, high=1e300)
    return {
        "unknown_model": ("forecast", {"model": "kronos-dem", "csv": csv, "pred_len": 4}),
        "not_synced_offline": ("forecast", {"model": "kronos-small", "csv": csv, "pred_len": 4}),
        "unavailable": ("forecast", {"model": "kronos-large", "csv": csv, "pred_len": 4}),
        "tokenizer_as_model": ("forecast", {"model": DEMO_TOKENIZER, "csv": csv, "pred_len": 4}),
        "csv_missing_column": ("forecast", {"model": DEMO, "csv": "timestamps,open,high,low\n"
                                            "2024-01-02 09:30:00,1,2,0.5\n2024-01-02 09:35:00,1,2,0.5\n",
                                            "pred_len": 4}),
        "bad_candle_value": ("forecast", {"model": DEMO, "candles": broken, "pred_len": 4}),
        "both_histories": ("forecast", {"model": DEMO, "candles": records, "csv": csv, "pred_len": 4}),
        "no_history": ("forecast", {"model": DEMO, "pred_len": 4}),
        "pred_len_zero": ("forecast", {"model": DEMO, "csv": csv, "pred_len": 0}),
        "pred_len_over_limit": ("forecast", {"model": DEMO, "csv": csv, "pred_len": 100_000}),
        "model_info_unknown": ("model_info", {"model": "kronos-smal"}),
        # 312 rows read x 200 bars x 64 samples x (1 + 50 quantiles): over the default cost limit.
        "cost_over_limit": ("forecast", {"model": DEMO, "csv": csv, "pred_len": 200, "samples": 64,
                                         "quantiles": [round(0.01 + i * 0.019, 3) for i in range(50)]}),
        "many_columns": ("forecast", {"model": DEMO, "pred_len": 4,
                                      "csv": ",".join(f"c{i}" for i in range(30_000)) + "\n" + "1," * 29_999 + "1\n"}),
        "pred_len_over_context": ("forecast", {"model": DEMO, "csv": csv, "pred_len": 600}),
        "too_many_quantiles": ("forecast", {"model": DEMO, "csv": csv, "pred_len": 4, "samples": 2,
                                            "quantiles": [i / 1000 for i in range(1, 101)]}),
        "temperature_below_floor": ("forecast", {"model": DEMO, "csv": csv, "pred_len": 4, "temperature": 1e-300}),
        "prices_too_large": ("forecast", {"model": DEMO, "candles": huge, "pred_len": 4}),
    }


async def exercise(session: ClientSession) -> dict:
    """Every call of the scenario, in order; the results keyed by what they test."""
    out: dict = {"initialize": await session.initialize()}
    out["tools"] = {tool.name: tool for tool in (await session.list_tools()).tools}
    out["list_models"] = await session.call_tool("list_models", {})
    out["info_before"] = await session.call_tool("model_info", {"model": DEMO})
    csv = SAMPLE_CSV.read_text()
    out["forecast_csv"] = await session.call_tool("forecast", {"model": DEMO, "csv": csv, "pred_len": PRED_LEN,
                                                               "seed": SEED})
    out["forecast_records"] = await session.call_tool("forecast", {"model": DEMO, "candles": sample_records(),
                                                                   "pred_len": PRED_LEN, "seed": SEED})
    out["info_after"] = await session.call_tool("model_info", {"model": DEMO})
    out["concurrent"] = {}

    async def concurrent(seed: int) -> None:  # an agent's parallel tool calls: one batch in the service
        out["concurrent"][seed] = await session.call_tool("forecast", {"model": DEMO, "csv": csv,
                                                                       "pred_len": PRED_LEN, "seed": seed})
    async with anyio.create_task_group() as group:
        for seed in (SEED, SEED + 1, SEED + 2):
            group.start_soon(concurrent, seed)
    sampled = {"model": DEMO, "csv": csv, "pred_len": PRED_LEN, "samples": 4, "seed": 1,
               "quantiles": [0.25, 0.75]}
    out["sampled"] = await session.call_tool("forecast", sampled)
    out["sampled_again"] = await session.call_tool("forecast", sampled)
    out["errors"], out["pings"] = {}, {}
    for case, (tool, arguments) in bad_calls().items():
        out["errors"][case] = await session.call_tool(tool, arguments)
        out["pings"][case] = await session.send_ping()
    out["after_errors"] = await session.call_tool("forecast", {"model": DEMO, "csv": csv, "pred_len": PRED_LEN,
                                                               "seed": SEED})
    return out


class Transcript:
    """The scenario's results, what the client saw on the wire, and the server's guard record."""

    def __init__(self, results: dict, wire_errors: list, record: Path, log: str):
        self.results, self.wire_errors, self.record, self.log = results, wire_errors, record, log

    def __getitem__(self, key):
        return self.results[key]


def guarded_env(runner: Cli, root: Path) -> tuple[dict, Path]:
    """The runner's environment (online: no offline variable) with the socket guard installed."""
    record = root / "guard.jsonl"
    site = write_sitecustomize(root / "site", record)
    env = runner.env()
    env.pop("KRONOS_REGISTRY_OFFLINE", None)
    env.pop("HF_HUB_OFFLINE", None)
    env["PYTHONPATH"] = os.pathsep.join([str(site), env["PYTHONPATH"]])
    return env, record


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Cli:
    """A store holding kronos-demo and its tokenizer. Do not modify it."""
    return synced_demo(tmp_path_factory.mktemp("mcp-demo"))


@pytest.fixture(scope="module")
def stdio_transcript(demo, tmp_path_factory) -> Transcript:
    root = tmp_path_factory.mktemp("mcp-stdio")
    env, record = guarded_env(demo, root)
    command = console_script()
    params = StdioServerParameters(command=command[0], args=[*command[1:], "--offline", "mcp", "--device", "cpu",
                                                                 "--max-models", "1", "--keep-alive", "forever",
                                                                 "--threads", "1"], env=env,
                                   cwd=str(demo.cwd))
    wire_errors: list = []
    log_path = root / "server.log"

    async def on_message(message) -> None:
        if isinstance(message, Exception):  # a line on stdout that is not JSON-RPC, say
            wire_errors.append(message)

    async def run() -> dict:
        with log_path.open("w") as log:
            async with stdio_client(params, errlog=log) as (read, write):
                async with ClientSession(read, write, message_handler=on_message) as session:
                    with anyio.fail_after(START_TIMEOUT * 2):
                        return await exercise(session)

    results = run_scenario(run, lambda: log_path.read_text(), "stdio")
    return Transcript(results, wire_errors, record, log_path.read_text())


@pytest.fixture(scope="module")
def http_transcript(demo, tmp_path_factory) -> Transcript:
    root = tmp_path_factory.mktemp("mcp-http")
    env, record = guarded_env(demo, root)
    server = subprocess.Popen([*console_script(), "mcp", "--transport", "streamable-http", "--host", "127.0.0.1",
                               "--port", "0", "--offline"], cwd=demo.cwd, env=env, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log: list[str] = []
    try:
        url = wait_for_url(server, log)
        wire_errors: list = []

        async def on_message(message) -> None:
            if isinstance(message, Exception):
                wire_errors.append(message)

        async def run() -> dict:
            async with streamable_http_client(url) as (read, write):
                async with ClientSession(read, write, message_handler=on_message) as session:
                    with anyio.fail_after(START_TIMEOUT * 2):
                        return await exercise(session)

        results = run_scenario(run, lambda: "".join(log), "streamable HTTP")
        results["url"] = url
    finally:
        stop_process(server)
    results["stdout"] = server.stdout.read()
    return Transcript(results, wire_errors, record, "".join(log))


def run_scenario(run, server_log, transport: str) -> dict:
    """``anyio.run(run)``; a failure names the exception and shows the server's log."""
    try:
        return anyio.run(run)
    except Exception as error:  # noqa: BLE001 - reported with its context, not swallowed
        detail = "".join(traceback.format_exception(error))
        pytest.fail(f"the scenario over {transport} failed:\n{detail}\nserver log:\n{server_log()}")


def wait_for_url(server: subprocess.Popen, log: list[str]) -> str:
    """Read the server's stderr until it says where it listens; keep draining it after."""
    found: dict = {}
    ready = threading.Event()

    def drain() -> None:
        for line in server.stderr:
            log.append(line)
            match = re.search(r"http://127\.0\.0\.1:\d+/mcp", line)
            if match and not ready.is_set():
                found["url"] = match.group(0)
                ready.set()
        ready.set()

    threading.Thread(target=drain, daemon=True).start()
    if not ready.wait(START_TIMEOUT) or "url" not in found:
        server.kill()
        pytest.fail(f"the MCP server did not start within {START_TIMEOUT} s:\n{''.join(log)}")
    return found["url"]


@pytest.fixture(scope="module", params=["stdio", "http"])
def transcript(request) -> Transcript:
    return request.getfixturevalue(f"{request.param}_transcript")


@pytest.fixture(scope="module")
def predicted(demo, tmp_path_factory) -> pd.DataFrame:
    """`kronos-registry predict` of the same candles, horizon and seed, as a frame."""
    out = tmp_path_factory.mktemp("mcp-predict") / "forecast.csv"
    result = demo("predict", DEMO, "-i", SAMPLE_CSV, "-n", str(PRED_LEN), "--seed", str(SEED), "-o", out)
    assert result.code == 0, result.output
    return pd.read_csv(out, parse_dates=["timestamps"])


def text_of(result) -> str:
    return "\n".join(block.text for block in result.content if block.type == "text")


# --- tools and schemas -------------------------------------------------------------------------


def test_the_server_lists_three_tools_with_described_schemas(transcript):
    assert transcript["initialize"].server_info.name == "kronos-registry"
    tools = transcript["tools"]
    assert sorted(tools) == ["forecast", "list_models", "model_info"]
    forecast = tools["forecast"]
    properties = forecast.input_schema["properties"]
    assert forecast.input_schema["required"] == ["model", "pred_len"]
    for name in ("model", "candles", "csv", "pred_len", "samples", "seed", "quantiles", "temperature", "top_p",
                 "top_k", "lookback", "future_timestamps"):
        assert properties[name].get("description"), f"forecast's '{name}' has no description"
    assert properties["pred_len"]["minimum"] == 1
    candle = properties["candles"]["anyOf"][0]["items"]
    assert candle["required"] == ["timestamp", "open", "high", "low", "close"]
    assert set(forecast.output_schema["required"]) >= {"model", "timestamps", "forecast", "seed", "timing"}
    assert tools["list_models"].annotations.read_only_hint is True
    assert all(tool.description and len(tool.description) > 60 for tool in tools.values())


def test_list_models_says_what_is_synced_and_loaded(transcript):
    result = transcript["list_models"]
    assert not result.is_error, text_of(result)
    models = {m["name"]: m for m in result.structured_content["models"]}
    assert DEMO_TOKENIZER not in models  # tokenizers cannot forecast: not listed
    demo = models[DEMO]
    assert demo["synced"] is True and demo["available"] is True and demo["context_length"] == 512
    assert demo["params"] == 380608 and "Held-out evaluation" in demo["description"]
    assert models["kronos-small"]["synced"] is False
    assert models["kronos-large"]["available"] is False and models["kronos-large"]["reason"]
    assert json.loads(text_of(result))["models"] == result.structured_content["models"]


def test_model_info_is_what_show_prints(transcript, demo):
    result = transcript["info_before"]
    assert not result.is_error, text_of(result)
    shown = demo("show", DEMO)
    assert shown.code == 0, shown.output
    assert text_of(result).strip() == shown.stdout.strip()
    info = result.structured_content
    assert info["name"] == DEMO and info["artifact_id"].startswith("local--kronos-demo--")


# --- forecast --------------------------------------------------------------------------------------


def test_forecast_equals_cli_predict_for_the_same_seed(transcript, predicted):
    for key in ("forecast_csv", "forecast_records", "after_errors"):
        result = transcript[key]
        assert not result.is_error, text_of(result)
        body = result.structured_content
        assert body["model"] == DEMO and body["seed"] == SEED
        assert pd.DatetimeIndex(body["timestamps"]).equals(pd.DatetimeIndex(predicted["timestamps"]))
        for column in COLUMNS:
            got = pd.Series(body["forecast"][column], dtype="float64")
            want = predicted[column].astype("float64")
            assert (got - want).abs().max() <= 1e-5 * max(1.0, want.abs().max()), (key, column)


def test_concurrent_calls_each_get_what_they_would_get_alone(transcript):
    results = transcript["concurrent"]
    assert sorted(results) == [SEED, SEED + 1, SEED + 2]
    assert not any(r.is_error for r in results.values()), [text_of(r) for r in results.values()]
    alone = transcript["forecast_csv"].structured_content["forecast"]
    together = results[SEED].structured_content["forecast"]
    for column in COLUMNS:
        assert max(abs(a - b) for a, b in zip(alone[column], together[column])) <= 1e-5, column
    assert results[SEED + 1].structured_content["forecast"] != together  # another seed, another path


def test_forecast_text_summarises_close_change_and_seed(transcript):
    result = transcript["forecast_csv"]
    text = text_of(result)
    last_close = pd.read_csv(SAMPLE_CSV)["close"].iloc[-1]
    end_close = result.structured_content["forecast"]["close"][-1]
    change = (end_close / last_close - 1) * 100
    assert f"last close {last_close:.4f}" in text and f"forecast close {end_close:.4f}" in text
    assert f"({change:+.2f}%)" in text and f"Seed {SEED} reproduces it" in text
    assert "kronos-demo is a tiny demo model" in text
    assert "quantiles" not in result.structured_content  # one sample: no spread to report


def test_sampled_forecast_has_the_asked_quantiles_and_repeats_with_its_seed(transcript):
    result, again = transcript["sampled"], transcript["sampled_again"]
    assert not result.is_error, text_of(result)
    quantiles = result.structured_content["quantiles"]
    assert sorted(quantiles) == ["0.25", "0.75"]
    for column in COLUMNS:
        low, high = quantiles["0.25"][column], quantiles["0.75"][column]
        assert len(low) == len(high) == PRED_LEN
        assert all(a <= b + 1e-9 for a, b in zip(low, high))
    assert again.structured_content["forecast"] == result.structured_content["forecast"]
    assert again.structured_content["quantiles"] == quantiles
    assert "across 4 samples the final close spans" in text_of(result) and "Seed 1 reproduces it" in text_of(result)


def test_the_model_stays_loaded_between_calls(transcript):
    assert transcript["info_before"].structured_content["loaded"] is False
    assert transcript["info_after"].structured_content["loaded"] is True
    first = transcript["forecast_csv"].structured_content["timing"]
    later = [transcript[key].structured_content["timing"] for key in ("forecast_records", "sampled", "after_errors")]
    # The first call loaded the model (milliseconds even for the tiny demo); later calls found it
    # resident (microseconds: a dictionary lookup, plus whatever a loaded machine adds to it, so
    # the bound is a fraction of a load rather than an absolute time).
    assert first["load_ms"] > 5, first
    assert all(timing["load_ms"] < max(2.0, first["load_ms"] / 4) for timing in later), (first, later)


# --- caller mistakes ---------------------------------------------------------------------------


EXPECTED_ERROR_TEXT = {
    "unknown_model": ["kronos-dem", "did you mean 'kronos-demo'"],
    "not_synced_offline": ["kronos-small", "not in the store", "sync kronos-small"],
    "unavailable": ["kronos-large"],
    "tokenizer_as_model": [DEMO_TOKENIZER, "tokenizer"],
    "csv_missing_column": ["close"],
    "bad_candle_value": ["close"],
    "both_histories": ["both", "`candles`", "`csv`"],
    "no_history": ["no history", "`candles`", "`csv`"],
    "pred_len_zero": ["pred_len", "greater than or equal to 1"],
    "pred_len_over_limit": ["pred_len", "100000"],
    "model_info_unknown": ["kronos-smal", "did you mean 'kronos-small'"],
    "cost_over_limit": ["costs", "over this server's limit of 134,217,728", "fewer quantiles", "--max-cost"],
    "many_columns": ["'c0'", "... and 29,988 more"],
    "pred_len_over_context": ["pred_len is 600", "context of 512"],
    "too_many_quantiles": ["quantiles", "over the limit of 99"],
    "temperature_below_floor": ["temperature", "0.001"],
    "prices_too_large": ["high", "1e+300", "rescale"],
}


def test_tool_errors_are_bounded_and_name_no_server_path(transcript, demo):
    for case, result in transcript["errors"].items():
        text = text_of(result)
        assert len(text) < 3000, f"{case}: {len(text)} characters"
        assert str(demo.root) not in text, f"{case} names a server path: {text}"
    assert "<server path>" in text_of(transcript["errors"]["not_synced_offline"])


@pytest.mark.parametrize("case", sorted(EXPECTED_ERROR_TEXT))
def test_a_mistake_is_a_tool_error_saying_what_to_fix_and_the_server_answers_after(transcript, case):
    result = transcript["errors"][case]
    text = text_of(result)
    assert result.is_error is True, text
    for needle in EXPECTED_ERROR_TEXT[case]:
        assert needle in text, f"{case}: {needle!r} missing from {text!r}"
    assert "Traceback" not in text and "internal error" not in text
    assert transcript["pings"][case] is not None  # answered the ping right after
    assert not transcript["after_errors"].is_error


def test_not_synced_offline_hint_says_how_to_bring_the_model(transcript):
    text = text_of(transcript["errors"]["not_synced_offline"])
    assert "hint:" in text and ("import" in text or "sync" in text)


# --- transport hygiene and offline --------------------------------------------------------------


def test_offline_option_keeps_the_server_off_the_network(transcript):
    header, attempts = read_record(transcript.record)
    assert header == {"installed": True, "self_test_refused": True}
    assert attempts == []


def test_stdio_stdout_carries_only_the_protocol(stdio_transcript):
    assert stdio_transcript.wire_errors == []
    assert "MCP server on stdio" in stdio_transcript.log


def test_http_server_says_where_it_listens_and_prints_nothing_on_stdout(http_transcript):
    assert http_transcript.wire_errors == []
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/mcp", http_transcript["url"])
    assert http_transcript["stdout"] == ""


def test_without_the_mcp_package_the_command_names_the_extra_exit_10(demo, tmp_path):
    site = tmp_path / "no-mcp"
    site.mkdir()
    (site / "sitecustomize.py").write_text("import sys\nsys.modules['mcp'] = None  # `import mcp` fails\n")
    env = {"PYTHONPATH": os.pathsep.join([str(site), demo.env()["PYTHONPATH"]])}
    result = demo("mcp", env=env, timeout=60)
    assert result.code == 10, result.output
    assert "pip install 'kronos-registry[mcp]'" in result.stderr
    assert "Traceback" not in result.output


def test_importing_the_cli_does_not_import_mcp(demo):
    code = "import sys, kronos_registry.cli.app; print(sorted(m for m in sys.modules if m.split('.')[0] == 'mcp'))"
    done = subprocess.run([sys.executable, "-c", code], env=demo.env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


class _FlakyService:
    """A service whose first catalogue call hits a bug (any unexpected exception stands for one)."""

    registry = None

    def __init__(self):
        self.calls = 0

    def models(self) -> list[dict]:
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("injected bug")
        return [{"name": DEMO, "kind": "model", "available": True, "synced": True, "loaded": False}]


def test_a_bug_in_a_tool_is_an_internal_error_result_and_the_server_goes_on():
    # In-process (the SDK's in-memory transport): the face alone, over a service that breaks once.
    from mcp import Client

    from kronos_registry.mcp_server import build_server

    async def run():
        async with Client(build_server(_FlakyService())) as client:
            return [await client.call_tool("list_models", {}) for _ in range(2)]

    broken, working = anyio.run(run)
    assert broken.is_error is True
    text = text_of(broken)
    assert "internal error (RuntimeError: injected bug)" in text and "bug in kronos-registry" in text
    assert not working.is_error and working.structured_content["models"][0]["name"] == DEMO


class _WatchedService:
    """The real ForecastService, each forecast's start and outcome (result or error) recorded."""

    def __init__(self, service):
        self.inner = service
        self.registry = service.registry
        self.started = threading.Event()
        self.outcomes: queue.Queue = queue.Queue()

    def forecast(self, *args, **kwargs):
        self.started.set()
        try:
            result = self.inner.forecast(*args, **kwargs)
        except Exception as error:
            self.outcomes.put(error)
            raise
        self.outcomes.put(result)
        return result


def test_a_cancelled_forecast_call_stops_its_forecast_and_the_server_goes_on(demo):
    # Issue 23 item 4 over MCP: a client that gives up (notifications/cancelled, what the SDK sends
    # when the caller's scope is cancelled) must not leave its forecast holding the worker.
    from mcp import Client

    from kronos_registry.mcp_server import build_server
    from kronos_registry.services.errors import CancelledForecastError
    from kronos_registry.services.lanes import ForecastService
    from kronos_registry.services.registry import Registry

    watched = _WatchedService(ForecastService(Registry(None, demo.store, offline=True, env={})))
    csv = SAMPLE_CSV.read_text()
    heavy = {"model": DEMO, "csv": csv, "pred_len": 400, "samples": 16, "quantiles": [0.5]}

    async def run():
        async with Client(build_server(watched)) as client:
            async with anyio.create_task_group() as group:
                group.start_soon(client.call_tool, "forecast", heavy)
                assert await anyio.to_thread.run_sync(watched.started.wait, 120)
                await anyio.sleep(0.5)  # into its decoding steps
                group.cancel_scope.cancel()
            outcome = await anyio.to_thread.run_sync(lambda: watched.outcomes.get(timeout=600))
            small = await client.call_tool("forecast", {"model": DEMO, "csv": csv, "pred_len": 4, "seed": 1})
            return outcome, small

    try:
        outcome, small = anyio.run(run)
    finally:
        watched.inner.close()
    assert isinstance(outcome, CancelledForecastError), f"the abandoned forecast ran on: {outcome!r}"
    assert not small.is_error and len(small.structured_content["timestamps"]) == 4, small


def test_the_announced_http_address_accepts_connections_while_the_server_still_starts(demo, tmp_path):
    """A client may connect as soon as the address is printed, however slowly the server then
    starts (a loaded machine): here uvicorn is held back 3 s, and the connection must not be
    refused in the meantime."""
    import socket
    from urllib.parse import urlsplit

    site = tmp_path / "slow-start"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import time, uvicorn\n"
        "serve = uvicorn.Server.serve\n"
        "async def slow_serve(self, sockets=None):\n"
        "    time.sleep(3)\n"
        "    return await serve(self, sockets=sockets)\n"
        "uvicorn.Server.serve = slow_serve\n")
    env = demo.env({"PYTHONPATH": os.pathsep.join([str(site), demo.env()["PYTHONPATH"]])})
    server = subprocess.Popen([*console_script(), "mcp", "--transport", "streamable-http", "--port", "0"],
                              cwd=demo.cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    log: list[str] = []
    try:
        address = urlsplit(wait_for_url(server, log))
        with socket.create_connection((address.hostname, address.port), timeout=2):
            pass  # refused (ConnectionRefusedError) when the socket was bound but not yet listening
        assert server.poll() is None, "".join(log)
    finally:
        stop_process(server)
