"""The loopback fault proxy against a real HTTP/1.1 server on 127.0.0.1.

A stdlib ThreadingHTTPServer serves 1 MB of known random bytes (with Range and keep-alive);
clients talk to it through ``FaultProxy`` with ``http.client`` so that connection reuse is
explicit. Every outcome is observed at the client: bytes received, errors, timings.
"""

from __future__ import annotations

import hashlib
import http.client
import random
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.support.faultproxy import FaultProxy, _Framer

pytestmark = pytest.mark.timeout(60)

DATA = random.Random(20240606).randbytes(1_000_000)
CHUNKS = [b"alpha-", b"beta-" * 1000, b"gamma"]  # the chunked endpoint's pieces
CHUNKED_BODY = b"".join(CHUNKS)


class _Handler(BaseHTTPRequestHandler):
    """GET/HEAD /blob (Range aware), GET /chunked (Transfer-Encoding: chunked)."""

    protocol_version = "HTTP/1.1"  # keep-alive, so the proxy sees several requests per socket
    timeout = 10  # a forgotten client connection must not hold a server thread forever

    def do_HEAD(self):
        self._blob(send_body=False)

    def do_GET(self):
        if self.path == "/chunked":
            self._chunked()
        else:
            self._blob(send_body=True)

    def _blob(self, send_body: bool):
        if not self.path.startswith("/blob"):
            self.send_error(404)
            return
        start, end = 0, len(DATA) - 1
        ranged = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        if ranged:
            start = int(ranged[1])
            end = int(ranged[2]) if ranged[2] else end
        self.send_response(206 if ranged else 200)
        if ranged:
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(DATA)}")
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        if send_body:
            self._write(DATA[start:end + 1])

    def _chunked(self):
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for chunk in CHUNKS:
            self._write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        self._write(b"0\r\nX-Trailer: yes\r\n\r\n")

    def _write(self, data: bytes):
        try:
            self.wfile.write(data)
        except OSError:  # the proxy cut us off on purpose
            self.close_connection = True

    def log_message(self, *args):  # keep the test output clean
        pass


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):  # resets are expected here
        pass


@pytest.fixture(scope="module")
def server():
    httpd = _QuietServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1},
                              daemon=True)
    thread.start()
    yield httpd.server_address
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def proxy(server):
    with FaultProxy(server) as fault_proxy:
        yield fault_proxy


def fetch(proxy, path="/blob", *, headers=None, timeout=5.0, conn=None, method="GET"):
    """(status, body bytes received, error or None); reads until the body ends or breaks."""
    own = conn is None
    conn = conn or http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=timeout)
    got, status = bytearray(), None
    try:
        conn.request(method, path, headers=headers or {})
        resp = conn.getresponse()
        status = resp.status
        while chunk := resp.read(65536):
            got += chunk
        if resp.length:  # read(amt) reports a short body as a quiet end of data
            raise http.client.IncompleteRead(b"", resp.length)
        return status, bytes(got), None
    except (http.client.HTTPException, OSError) as exc:
        partial = getattr(exc, "partial", b"")  # IncompleteRead keeps the last short read
        return status, bytes(got) + partial, exc
    finally:
        if own:
            conn.close()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_clean_download_is_exact_and_counted(proxy):
    status, body, error = fetch(proxy)
    assert (status, error) == (200, None)
    assert body == DATA
    [request] = proxy.requests_for("/blob")
    assert (request.method, request.path) == ("GET", "/blob")
    assert request.headers["host"] == f"127.0.0.1:{proxy.port}"
    assert proxy.bytes_sent.total >= len(DATA)
    assert proxy.bytes_sent.by_path["/blob"] == proxy.bytes_sent.total
    [exchange] = proxy.exchanges
    assert (exchange.status, exchange.body_bytes, exchange.complete) == (200, len(DATA), True)


def test_cut_then_range_resume_fetches_only_the_rest(proxy):
    fault = proxy.cut_after(300_000)
    status, first, error = fetch(proxy)
    assert status == 200 and error is not None
    assert len(first) == 300_000 and first == DATA[:300_000]
    assert fault.fired == 1 and proxy.faults == []  # once: disarmed after firing

    proxy.reset_counters()
    status, rest, error = fetch(proxy, headers={"Range": f"bytes={len(first)}-"})
    assert (status, error) == (206, None)
    assert first + rest == DATA
    [request] = proxy.requests
    assert request.headers["range"] == "bytes=300000-"
    assert proxy.body_bytes_for("/blob") == len(DATA) - 300_000
    assert len(DATA) - 300_000 < proxy.bytes_sent.total < len(DATA) - 300_000 + 1000


def test_stall_trips_the_client_read_timeout(proxy):
    proxy.stall(5)
    started = time.monotonic()
    status, body, error = fetch(proxy, timeout=1.0)
    elapsed = time.monotonic() - started
    assert status == 200 and body == b""  # headers came, then nothing
    assert isinstance(error, (TimeoutError, socket.timeout))
    assert elapsed < 2.0


def test_stall_after_some_bytes(proxy):
    proxy.stall(5, after_bytes=100_000)
    status, body, error = fetch(proxy, timeout=1.0)
    assert isinstance(error, (TimeoutError, socket.timeout))
    assert body == DATA[:len(body)] and 0 < len(body) <= 100_000


def test_corrupt_flips_exactly_one_byte(proxy):
    proxy.corrupt(1000)
    status, body, error = fetch(proxy)
    assert (status, error) == (200, None)
    assert len(body) == len(DATA) and sha(body) != sha(DATA)
    assert [i for i in range(len(DATA)) if body[i] != DATA[i]] == [1000]
    assert fetch(proxy)[1] == DATA  # once: the next download is clean


def test_keep_alive_requests_are_all_counted(proxy):
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
    try:
        assert fetch(proxy, conn=conn)[1] == DATA
        assert fetch(proxy, conn=conn, method="HEAD")[:2] == (200, b"")
        assert fetch(proxy, "/chunked", conn=conn)[1] == CHUNKED_BODY
        assert fetch(proxy, conn=conn, headers={"Range": "bytes=10-19"})[1] == DATA[10:20]
    finally:
        conn.close()
    assert proxy.connections == 1
    assert [(r.method, r.path) for r in proxy.requests] == [
        ("GET", "/blob"), ("HEAD", "/blob"), ("GET", "/chunked"), ("GET", "/blob")]
    assert [e.status for e in proxy.exchanges] == [200, 200, 200, 206]
    assert all(e.complete for e in proxy.exchanges)
    assert [e.body_bytes for e in proxy.exchanges if e.path == "/blob"] == [len(DATA), 0, 10]


def test_pipelined_requests_are_matched_to_their_responses(proxy):
    requests = (b"GET /chunked HTTP/1.1\r\nHost: x\r\n\r\n"
                b"HEAD /blob HTTP/1.1\r\nHost: x\r\n\r\n"
                b"GET /blob HTTP/1.1\r\nHost: x\r\nRange: bytes=0-9\r\n\r\n")
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
        sock.sendall(requests)  # all three before any answer
        received = b""
        while not received.endswith(DATA[:10]):
            chunk = sock.recv(65536)
            assert chunk, f"connection ended early after {received[-200:]!r}"
            received += chunk
    assert [(e.method, e.status, e.complete) for e in proxy.exchanges] == [
        ("GET", 200, True), ("HEAD", 200, True), ("GET", 206, True)]
    assert proxy.bytes_sent.total == len(received)


def test_framer_survives_one_byte_at_a_time():
    # Keep-alive stream: a chunked body with an extension and a trailer, then a sized one.
    stream = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
              b"5;ext=1\r\nhello\r\n0\r\nX-T: 1\r\n\r\n"
              b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc")
    heads = []

    def on_head(head):
        heads.append(head)
        framing = ("chunked",) if b"chunked" in head else ("length", 3)
        return len(heads), framing  # tag each message with its number

    framer = _Framer(on_head)
    events = [e for i in range(len(stream)) for e in framer.feed(stream[i:i + 1])]
    bodies = {1: b"", 2: b""}
    for kind, tag, piece in events:
        if kind == "body":
            bodies[tag] += piece
    assert [(k, t) for k, t, _ in events if k != "body"] == [
        ("head", 1), ("end", 1), ("head", 2), ("end", 2)]
    assert bodies == {1: b"5;ext=1\r\nhello\r\n0\r\nX-T: 1\r\n\r\n", 2: b"abc"}
    assert b"".join(piece for _, _, piece in events) == stream  # nothing lost or added


def test_faults_follow_match_and_skip_bodiless_responses(proxy):
    proxy.corrupt(5, match=re.compile(r"^/chunked$"))
    cut = proxy.cut_after(50_000, match="/blob")
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
    try:
        # A HEAD has no body, so it neither suffers nor uses up the cut.
        assert fetch(proxy, conn=conn, method="HEAD")[:2] == (200, b"")
        assert cut.fired == 0
        status, body, error = fetch(proxy, "/chunked", conn=conn)
        assert error is None and len(body) == len(CHUNKED_BODY) and body != CHUNKED_BODY
    finally:
        conn.close()
    status, body, error = fetch(proxy)
    assert error is not None and body == DATA[:50_000]
    assert [e.faults for e in proxy.exchanges] == [[], ["corrupt"], ["cut"]]


def test_fault_left_armed_hits_every_matching_response(proxy):
    proxy.cut_after(10, once=False)
    for _ in range(2):
        assert fetch(proxy)[1] == DATA[:10]
    proxy.clear()
    assert fetch(proxy)[1] == DATA


def test_refuse_fails_fast_until_cleared(proxy):
    proxy.refuse()
    started = time.monotonic()
    status, body, error = fetch(proxy)
    assert isinstance(error, (ConnectionError, http.client.RemoteDisconnected))
    assert time.monotonic() - started < 1.0
    proxy.clear()
    assert fetch(proxy)[1] == DATA


def test_close_returns_quickly_during_a_stall(server):
    proxy = FaultProxy(f"http://{server[0]}:{server[1]}")
    proxy.stall(30)
    outcome = {}
    client = threading.Thread(target=lambda: outcome.update(r=fetch(proxy, timeout=20)),
                              daemon=True)
    client.start()
    deadline = time.monotonic() + 5
    while not any(e.status for e in proxy.exchanges) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proxy.exchanges[0].status == 200  # the stall is under way

    started = time.monotonic()
    proxy.close()
    assert time.monotonic() - started < 1.0
    client.join(timeout=2)
    assert outcome["r"][2] is not None  # the client saw the connection end
