"""What `serve` costs and whom it answers, over a real server on 127.0.0.1 (issue 23, 3-5 and 7).

- cost: a forecast over --max-cost is refused with 422 saying its cost, the limit and the fix;
- bodies: one not received within --body-timeout gets 408; an abandoned forecast is cancelled
  (logged 499) instead of computing on;
- Host and Origin: another Host gets 421 (DNS rebinding), a cross-site Origin on a POST 403
  (CSRF), a body a page could send without a preflight 415; `--token ""` is refused;
- MCP over HTTP on a host that is not loopback warns and refuses a foreign Host;
- error details: bounded, free of server paths; control characters escaped in the log.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time

import pandas as pd
import pytest

from tests.support.cli import DEMO, SAMPLE_CSV, Cli, console_script, synced_demo
from tests.support.processes import stop_process
from tests.support.server import ServeProcess, free_port

CSV = SAMPLE_CSV.read_text()
PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Cli:
    return synced_demo(tmp_path_factory.mktemp("exposure"))


@pytest.fixture(scope="module")
def server(demo):
    process = ServeProcess(demo, ["--preload", DEMO, "--threads", "1", "--max-cost", "2000000",
                                  "--body-timeout", "2", "--header-timeout", "2", "--allow-host", "kronos.internal",
                                  "--allow-origin", "https://app.example"]).start()
    process.wait_until_ready()
    yield process
    process.stop()


def forecast(http, **params):
    return http.post("/v1/forecast", params={"model": DEMO, **params}, content=CSV,
                     headers={"Content-Type": "text/csv"})


# --------------------------------------------------------------------------- cost


def test_a_forecast_over_the_cost_limit_is_refused_with_its_cost_limit_and_fix(server):
    with server.client() as http:
        answer = forecast(http, pred_len=48, samples=8, quantiles=",".join(f"{q / 20:g}" for q in range(1, 20)))
        fine = forecast(http, pred_len=4, samples=2, seed=1)
    assert answer.status_code == 422, answer.text[:300]
    problem = answer.json()
    assert problem["field"] == "cost"
    # 464 rows read (512 - 48) x 48 bars x 8 samples x (1 + 19 quantiles)
    assert f"{464 * 48 * 8 * 20:,}" in problem["detail"] and "2,000,000" in problem["detail"]
    assert "fewer quantiles" in problem["hint"] and "--max-cost" in problem["hint"]
    assert fine.status_code == 200, fine.text


# --------------------------------------------------------------------------- bodies


def raw_request(server, head: str, body: bytes = b"") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=60)
    sock.sendall(head.encode() + b"\r\n" + body)
    return sock


def read_status(sock: socket.socket) -> int:
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return int(data.split(b" ", 2)[1])


def test_a_body_not_received_within_the_timeout_gets_408(server):
    head = (f"POST /v1/forecast?model={DEMO}&pred_len=4 HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
            "Content-Type: text/csv\r\nContent-Length: 100000\r\n")
    with raw_request(server, head, CSV[:100].encode()) as sock:  # and then nothing more
        assert read_status(sock) == 408


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (a timeout fails the test)."""
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    return data


def test_a_request_head_not_received_within_the_timeout_gets_408_and_the_connection_closes(server):
    # Slowloris: the request line and part of the headers, then nothing: no body timeout starts.
    with socket.create_connection(("127.0.0.1", server.port), timeout=60) as sock:
        sock.sendall(f"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nAccept: ".encode())
        assert read_until_closed(sock).startswith(b"HTTP/1.1 408 ")
    # A connection that never sends a byte is closed too; one whose head arrives is answered.
    with socket.create_connection(("127.0.0.1", server.port), timeout=60) as idle:
        assert read_until_closed(idle).startswith(b"HTTP/1.1 408 ")
    with server.client() as http:
        assert http.get("/v1/models").status_code == 200


def heavy_lines(server) -> list[str]:
    return [line for line in server.log_text().splitlines() if '"POST /v1/forecast?model=' in line
            and "pred_len=400" in line]


def wait_for(condition, timeout: float = 300) -> None:
    """Poll ``condition`` (how long it takes is not asserted: only that it comes true)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition did not come true"
        time.sleep(0.1)


def test_an_abandoned_forecast_is_cancelled_not_computed(server):
    before = len(heavy_lines(server))
    body = CSV.encode()
    head = (f"POST /v1/forecast?model={DEMO}&pred_len=400&samples=16&quantiles=0.5 HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{server.port}\r\nContent-Type: text/csv\r\nContent-Length: {len(body)}\r\n")
    sock = raw_request(server, head, body)
    with server.client() as http:  # wait until it is queued or running, then go away
        wait_for(lambda: "kronos_forecasts_waiting 1.0" in http.get("/metrics").text)
    sock.close()
    wait_for(lambda: len(heavy_lines(server)) > before)
    line = heavy_lines(server)[before]
    assert " 499 " in line, line
    with server.client() as http:  # and the server goes on
        assert forecast(http, pred_len=4, seed=1).status_code == 200


# --------------------------------------------------------------------------- Host, Origin, content type


def test_another_host_is_misdirected_but_allowed_names_and_probes_answer(server):
    with server.client() as http:
        evil = http.get("/v1/models", headers={"Host": "evil.example"})
        allowed = http.get("/v1/models", headers={"Host": "kronos.internal:8000"})
        probe = http.get("/healthz", headers={"Host": "10.1.2.3:8000"})
        loopback = http.get("/v1/models")
    assert evil.status_code == 421 and evil.headers["content-type"] == PROBLEM
    assert "--allow-host" in evil.json()["hint"]
    assert allowed.status_code == 200 and probe.status_code == 200 and loopback.status_code == 200


def test_a_cross_site_post_is_refused_but_this_page_and_allowed_origins_pass(server):
    with server.client() as http:
        cross = http.post(f"/v1/models/{DEMO}/load", headers={"Origin": "https://evil.example"})
        own = http.post(f"/v1/models/{DEMO}/load", headers={"Origin": server.url})
        allowed = http.post(f"/v1/models/{DEMO}/load", headers={"Origin": "https://app.example"})
        read = http.get("/v1/models", headers={"Origin": "https://evil.example"})
    assert cross.status_code == 403 and cross.json()["field"] == "Origin"
    assert own.status_code == 200 and allowed.status_code == 200 and read.status_code == 200


@pytest.mark.parametrize("kind", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; b=x", None])
def test_a_post_any_page_could_send_without_preflight_gets_415(server, kind):
    headers = {"Content-Type": kind} if kind else {}
    with server.client() as http:
        answer = http.post(f"/v1/models/{DEMO}/load", content=b'{"a": 1}', headers=headers)
    assert answer.status_code == 415, answer.text
    assert "application/json" in answer.json()["hint"]


@pytest.mark.parametrize("how", ["option", "variable"])
def test_an_empty_token_is_refused(demo, how):
    if how == "option":
        result = demo("serve", "--token", "", "--port", str(free_port()))
    else:
        result = demo("serve", "--port", str(free_port()), env={"KRONOS_REGISTRY_TOKEN": ""})
    assert result.code == 2, result.output
    assert "--token" in result.output and "empty" in result.output


def test_mcp_over_http_off_loopback_warns_and_refuses_a_foreign_host(demo, tmp_path):
    import httpx

    port = free_port()
    server = subprocess.Popen([*console_script(), "--offline", "mcp", "--transport", "streamable-http",
                               "--host", "127.0.0.2", "--port", str(port)], cwd=demo.cwd, env=demo.env(),
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        for line in server.stderr:
            lines.append(line)
            if "/mcp" in line and "http://" in line:
                break
        assert any("warning" in line and "127.0.0.2" in line for line in lines), lines
        body = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
        headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
        url = f"http://127.0.0.2:{port}/mcp"
        evil = httpx.post(url, json=body, headers={**headers, "Host": "evil.example"}, timeout=30)
        cross = httpx.post(url, json=body, headers={**headers, "Origin": "https://evil.example"}, timeout=30)
    finally:
        stop_process(server)
    assert evil.status_code == 421 and cross.status_code == 403


# --------------------------------------------------------------------------- error details and logs


def test_error_details_are_bounded(server):
    wide = ",".join(f"c{i}" for i in range(300_000)) + "\n" + ",".join("1" * 300_000) + "\n"
    with server.client() as http:
        answer = http.post("/v1/forecast", params={"model": DEMO, "pred_len": 4}, content=wide,
                           headers={"Content-Type": "text/csv"})
    assert answer.status_code == 422
    assert len(answer.content) < 5000, len(answer.content)
    assert "... and 299,988 more" in answer.json()["detail"]


def test_error_details_name_no_server_path(demo, tmp_path):
    registry = tmp_path / "models.yaml"
    registry.write_text(f"schema: 1\nmodels:\n  elsewhere:\n    source: {tmp_path / 'nowhere'}\n"
                        "    tokenizer: kronos-demo-tokenizer\n    context_length: 64\n")
    process = ServeProcess(demo, ["--no-sync"], env={"KRONOS_REGISTRY_FILE": str(registry)}).start()
    try:
        with process.client() as http:
            answer = http.post(
                "/v1/forecast", params={"model": "elsewhere", "pred_len": 4}, content=CSV,
                headers={"Content-Type": "text/csv"})
    finally:
        process.stop()
    assert answer.status_code == 409, answer.text
    assert str(demo.root) not in answer.text and str(tmp_path) not in answer.text
    assert "<server path>" in answer.json()["detail"]


def test_a_newline_in_a_model_name_cannot_forge_a_log_line(server):
    forged = "x\n2099-01-01 00:00:00,000 INFO forged line"
    candles = pd.read_csv(SAMPLE_CSV).rename(columns={"timestamps": "timestamp"}).head(40).to_dict(orient="records")
    with server.client() as http:
        answer = http.post("/v1/forecast", content=json.dumps({"model": forged, "pred_len": 4, "candles": candles}),
                           headers={"Content-Type": "application/json"})
        http.get("/v1/models/a%0Aforged%20path")
    assert answer.status_code in (404, 422)
    log = server.log_text()
    assert not re.search(r"^(2099-01-01|forged)", log, flags=re.MULTILINE), log[-2000:]
    assert "\\n2099-01-01" in log or "\\nforged" in log
