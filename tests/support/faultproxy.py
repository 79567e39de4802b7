"""A loopback HTTP/1.1 fault proxy for the tests: it sits between a client and a server.

``FaultProxy(upstream)`` listens on a free 127.0.0.1 port (``proxy.url``) and forwards every
client connection to its own upstream connection, byte for byte. It parses just enough
HTTP/1.1 to tell requests and responses apart on keep-alive connections (Content-Length,
chunked, HEAD/204/304 without a body, bodies read until close), so that it can:

* count requests (``requests``, ``requests_for``) and the bytes it delivered to clients
  (``bytes_sent``, ``body_bytes_for``, ``exchanges``);
* inject faults into response bodies, armed and disarmed at run time from any thread:
  ``cut_after``, ``stall``, ``corrupt``, ``refuse``, ``throttle``, ``clear``.

Body offsets count raw bytes after the response header block, so for a chunked response
they include the chunk framing. Faults act only on bodies of 2xx responses: a HEAD, a
redirect or an error page passes untouched and does not use up a ``once`` fault.

Every socket has a short timeout and every thread is a daemon that checks a stop flag, so
``close()`` ends everything within about a second and a test can never hang here.
"""

from __future__ import annotations

import re
import socket
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace
from typing import NamedTuple
from urllib.parse import urlsplit

_POLL_S = 0.2  # how often blocked loops look at the stop flag
_RECV_SIZE = 64 * 1024
_MAX_HEAD = 64 * 1024  # a header block larger than this means we lost the framing
_PACE_SLICE = 16 * 1024  # largest piece a throttled response is sent in

# Which request paths a fault or a count is about: None means all, a string is a
# substring, a compiled pattern is searched.
Match = str | re.Pattern | None


# --------------------------------------------------------------------------- records


class Request(NamedTuple):
    """One request line as the client sent it; header names are lower-cased."""

    method: str
    path: str
    headers: dict


@dataclass
class Exchange:
    """One request and what the proxy delivered of its response."""

    method: str
    path: str
    headers: dict
    status: int | None = None  # None until the response headers arrived
    header_bytes: int = 0
    body_bytes: int = 0  # raw bytes after the header block (chunk framing included)
    complete: bool = False  # the whole response body went through
    faults: list = field(default_factory=list)  # kinds of the faults fired on it
    # Armed faults that select this response and have not acted yet (proxy-internal).
    candidates: list = field(default_factory=list, repr=False, compare=False)
    # The throttle pacing this response's body, if any (proxy-internal).
    pacer: "Fault | None" = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class ByteCounts:
    """Response bytes (headers and bodies) delivered to clients."""

    total: int
    by_path: dict

    def for_path(self, match: Match) -> int:
        """Bytes delivered for the paths that ``match`` selects."""
        return sum(n for path, n in self.by_path.items() if _matches(match, path))


@dataclass(eq=False)  # identity: two alike faults are still two faults
class Fault:
    """An armed fault; ``fired`` counts the responses (or connections) it hit."""

    kind: str  # "cut", "stall", "corrupt", "refuse" or "throttle"
    offset: int = 0  # body offset where it acts
    seconds: float = 0.0  # stall only
    mask: int = 0xFF  # corrupt only
    rate: float = 0.0  # throttle only: body bytes per second
    match: Match = None
    once: bool = True
    fired: int = 0

    def selects(self, path: str) -> bool:
        return _matches(self.match, path)


def _matches(match, path: str) -> bool:
    """None matches everything, a string is a substring, a compiled pattern is searched."""
    if match is None:
        return True
    if isinstance(match, re.Pattern):
        return match.search(path) is not None
    return match in path


# --------------------------------------------------------------------------- framing


class _Framer:
    """Splits one direction of an HTTP/1.1 byte stream into message pieces.

    ``feed(data)`` returns ``(kind, tag, bytes)`` events in stream order: ``"head"`` with the
    whole header block, ``"body"`` with raw body bytes, ``"end"`` (no bytes) when a body is
    over. ``on_head(head) -> (tag, framing)`` is called once per header block; framing is
    ``("none",)``, ``("length", n)``, ``("chunked",)`` or ``("eof",)``. If the stream stops
    making sense, the rest is passed on as body of the current message.
    """

    def __init__(self, on_head):
        self._on_head = on_head
        self._mode = "head"
        self._head = b""
        self._tag = None
        self._remaining = 0  # bytes left in a Content-Length body or a chunk (+ CRLF)
        self._chunk_state = "size"  # "size", "data" or "trailer"
        self._line = b""

    def feed(self, data: bytes) -> list:
        events = []
        i = 0
        while i < len(data):
            if self._mode == "head":
                i = self._feed_head(data, i, events)
            elif self._mode == "length":
                take = min(self._remaining, len(data) - i)
                events.append(("body", self._tag, data[i:i + take]))
                i += take
                self._remaining -= take
                if self._remaining == 0:
                    self._finish(events)
            elif self._mode == "chunked":
                start = i
                try:
                    i, done = self._scan_chunked(data, i)
                except ValueError:  # not chunked after all: stop parsing
                    self._mode, i = "eof", len(data)
                    done = False
                events.append(("body", self._tag, data[start:i]))
                if done:
                    self._finish(events)
            else:  # "eof": everything until the connection closes is body
                events.append(("body", self._tag, data[i:]))
                i = len(data)
        return events

    def _feed_head(self, data: bytes, i: int, events: list) -> int:
        """Collect a header block; return how far into ``data`` it reached."""
        before = len(self._head)
        self._head += data[i:]
        end = self._head.find(b"\r\n\r\n")
        if end < 0:
            if len(self._head) > _MAX_HEAD:  # garbage: give up on framing
                self._mode = "eof"
                events.append(("body", self._tag, self._head))
                self._head = b""
            return len(data)
        head, self._head = self._head[:end + 4], b""
        consumed = end + 4 - before
        self._tag, framing = self._on_head(head)
        events.append(("head", self._tag, head))
        kind = framing[0]
        if kind == "length" and framing[1] > 0:
            self._mode, self._remaining = "length", framing[1]
        elif kind == "chunked":
            self._mode, self._chunk_state, self._line = "chunked", "size", b""
        elif kind == "eof":
            self._mode = "eof"
        else:
            self._finish(events)
        return i + consumed

    def _scan_chunked(self, data: bytes, i: int) -> tuple[int, bool]:
        """Step over chunk framing from ``data[i:]``; return (new index, body finished)."""
        while i < len(data):
            if self._chunk_state == "data":
                take = min(self._remaining, len(data) - i)
                i += take
                self._remaining -= take
                if self._remaining == 0:
                    self._chunk_state = "size"
                continue
            newline = data.find(b"\n", i)
            if newline < 0:
                self._line += data[i:]
                if len(self._line) > _MAX_HEAD:
                    raise ValueError("chunk line too long")
                return len(data), False
            line, self._line = self._line + data[i:newline], b""
            i = newline + 1
            if self._chunk_state == "size":
                size = int(line.split(b";")[0].strip(), 16)
                if size == 0:
                    self._chunk_state = "trailer"
                else:
                    self._chunk_state, self._remaining = "data", size + 2  # data + CRLF
            elif not line.strip():  # the empty line that ends the trailers
                return i, True
        return i, False

    def _finish(self, events: list) -> None:
        events.append(("end", self._tag, b""))
        self._mode = "head"


def _parse_head(head: bytes) -> tuple[list[str], dict]:
    """The start line's words and the headers (names lower-cased) of a header block."""
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return lines[0].split(" ", 2), headers


def _body_framing(headers: dict) -> tuple:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return ("chunked",)
    if "content-length" in headers:
        try:
            return ("length", int(headers["content-length"]))
        except ValueError:
            return ("eof",)
    return None


# --------------------------------------------------------------------------- sockets


class _Abort(Exception):
    """The connection must end now (a fault fired, a peer vanished or the proxy closes).

    ``args[0]``, when given, is how many bytes of the last send never left.
    """


class _Connection:
    """A client socket, its upstream socket and the requests awaiting a response."""

    def __init__(self, client: socket.socket, upstream: socket.socket):
        self.client = client
        self.upstream = upstream
        self.pending: deque[Exchange] = deque()  # FIFO: responses come back in order

    def shutdown(self) -> None:
        """Wake every thread blocked on these sockets; the peers see the connection end."""
        for sock in (self.client, self.upstream):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        for sock in (self.client, self.upstream):
            sock.close()


def _reset_close(sock: socket.socket) -> None:
    """Close with a TCP reset rather than a polite FIN, so the client fails at once."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


def _parse_upstream(upstream) -> tuple[str, int]:
    if isinstance(upstream, str):
        parts = urlsplit(upstream if "//" in upstream else f"//{upstream}")
        return parts.hostname or "127.0.0.1", parts.port or 80
    host, port = upstream
    return host, int(port)


# --------------------------------------------------------------------------- the proxy


class FaultProxy:
    """Forward 127.0.0.1:PORT to ``upstream`` (``(host, port)`` or ``"http://host:port"``).

    Starts at once; use as a context manager or call ``close()``.
    """

    def __init__(self, upstream, *, connect_timeout: float = 2.0):
        self.upstream = _parse_upstream(upstream)
        self._connect_timeout = connect_timeout
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._faults: list[Fault] = []
        self._exchanges: list[Exchange] = []
        self._total = 0
        self._by_path: dict[str, int] = {}
        self._connections = 0
        self._live: set[_Connection] = set()
        self._threads: list[threading.Thread] = []

        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self._listener.settimeout(_POLL_S)
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._spawn(self._accept_loop, "faultproxy-accept")

    # ----------------------------------------------------------------- faults

    def cut_after(self, n_bytes: int, *, match: Match = None, once: bool = True) -> Fault:
        """Forward the first ``n_bytes`` of a longer matching body, then close both sockets.

        The client sees the connection end mid-body (a short read); a new request is
        served normally unless ``once=False`` keeps the fault armed.
        """
        return self._arm(Fault("cut", offset=n_bytes, match=match, once=once))

    def stall(self, seconds: float, *, after_bytes: int = 0, match: Match = None,
              once: bool = True) -> Fault:
        """Forward the headers and ``after_bytes`` of a matching body, then send nothing.

        After ``seconds`` (or at ``close()``) both sockets are closed; a client with a
        shorter read timeout times out first.
        """
        return self._arm(Fault("stall", offset=after_bytes, seconds=seconds, match=match,
                               once=once))

    def corrupt(self, offset: int, *, mask: int = 0xFF, match: Match = None,
                once: bool = True) -> Fault:
        """XOR the body byte at ``offset`` with ``mask``; the length stays the same."""
        if not 0 < mask < 256:
            raise ValueError("mask must flip at least one bit of one byte")
        return self._arm(Fault("corrupt", offset=offset, mask=mask, match=match, once=once))

    def refuse(self, *, once: bool = False) -> Fault:
        """Reset new connections as soon as they are accepted (until ``clear()`` by default)."""
        return self._arm(Fault("refuse", once=once))

    def throttle(self, bytes_per_second: float, *, match: Match = None,
                 once: bool = False) -> Fault:
        """Deliver matching bodies at about ``bytes_per_second`` (until ``clear()`` by default).

        Nothing is lost or changed, only slowed: a transfer that lasts long enough to be
        interrupted at a chosen moment. The rate is decided when the response headers arrive.
        """
        if bytes_per_second <= 0:
            raise ValueError("bytes_per_second must be positive")
        return self._arm(Fault("throttle", rate=float(bytes_per_second), match=match, once=once))

    def clear(self) -> None:
        """Disarm every fault; responses already being faulted are not rescued."""
        with self._lock:
            self._faults.clear()

    @property
    def faults(self) -> list[Fault]:
        """The faults still armed."""
        with self._lock:
            return list(self._faults)

    def _arm(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def _claim(self, fault: Fault) -> bool:
        """Fire ``fault`` if it is still armed; a ``once`` fault fires a single time."""
        with self._lock:
            if fault not in self._faults:
                return False
            fault.fired += 1
            if fault.once:
                self._faults.remove(fault)
            return True

    # ----------------------------------------------------------------- counters

    @property
    def requests(self) -> list[Request]:
        """Every request seen since the last reset, in the order they arrived."""
        with self._lock:
            return [Request(e.method, e.path, dict(e.headers)) for e in self._exchanges]

    def requests_for(self, match: Match) -> list[Request]:
        """The requests whose path ``match`` selects (substring or compiled regex)."""
        return [r for r in self.requests if _matches(match, r.path)]

    @property
    def exchanges(self) -> list[Exchange]:
        """A snapshot of every request with its response status and delivered bytes."""
        with self._lock:
            return [replace(e, headers=dict(e.headers), faults=list(e.faults), candidates=[])
                    for e in self._exchanges]

    @property
    def bytes_sent(self) -> ByteCounts:
        """Response bytes delivered to clients since the last reset: total and per path."""
        with self._lock:
            return ByteCounts(self._total, dict(self._by_path))

    def body_bytes_for(self, match: Match) -> int:
        """Response body bytes delivered for the requests ``match`` selects."""
        return sum(e.body_bytes for e in self.exchanges if _matches(match, e.path))

    @property
    def connections(self) -> int:
        """Client connections accepted since the last reset (refused ones included)."""
        with self._lock:
            return self._connections

    def reset_counters(self) -> None:
        """Forget requests and byte counts (call it between transfers, not during one)."""
        with self._lock:
            self._exchanges.clear()
            self._total = 0
            self._by_path.clear()
            self._connections = 0

    def _record_request(self, head: bytes) -> Exchange:
        words, headers = _parse_head(head)
        method = words[0] if words else "?"
        path = words[1] if len(words) > 1 else "?"
        exchange = Exchange(method, path, headers)
        with self._lock:
            self._exchanges.append(exchange)
        return exchange

    def _count(self, exchange: Exchange, n: int, *, body: bool) -> None:
        with self._lock:
            self._total += n
            self._by_path[exchange.path] = self._by_path.get(exchange.path, 0) + n
            if body:
                exchange.body_bytes += n
            else:
                exchange.header_bytes += n

    # ----------------------------------------------------------------- lifecycle

    def close(self) -> None:
        """Stop accepting, end every connection (stalled ones too) and join the threads."""
        self._stop.set()  # the accept loop closes the listener itself
        with self._lock:
            live = list(self._live)
        for conn in live:
            conn.shutdown()
        with self._lock:
            threads = list(self._threads)
        deadline = time.monotonic() + 1.0
        for thread in threads:  # they all see the stop flag within _POLL_S
            thread.join(timeout=max(0.0, deadline - time.monotonic()))

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"FaultProxy({self.url} -> {self.upstream[0]}:{self.upstream[1]})"

    def _spawn(self, target, name: str, *args) -> threading.Thread:
        thread = threading.Thread(target=target, name=name, args=args, daemon=True)
        with self._lock:
            # Forget finished threads so a long test run does not pile them up.
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
        thread.start()
        return thread

    def _accept_loop(self) -> None:
        # Only this thread touches the listener, so closing it cannot race an accept().
        try:
            while not self._stop.is_set():
                try:
                    client, _ = self._listener.accept()
                except socket.timeout:
                    continue
                self._admit(client)
        except OSError:
            pass
        finally:
            self._listener.close()

    def _admit(self, client: socket.socket) -> None:
        with self._lock:
            self._connections += 1
            refusal = next((f for f in self._faults if f.kind == "refuse"), None)
        if refusal is not None and self._claim(refusal):
            _reset_close(client)
        else:
            self._spawn(self._serve, "faultproxy-conn", client)

    def _serve(self, client: socket.socket) -> None:
        """Run one client connection: requests in a helper thread, responses here."""
        try:
            upstream = socket.create_connection(self.upstream, timeout=self._connect_timeout)
        except OSError:  # upstream down: the client sees its connection reset
            _reset_close(client)
            return
        for sock in (client, upstream):
            sock.settimeout(_POLL_S)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = _Connection(client, upstream)
        with self._lock:
            self._live.add(conn)
        requests = self._spawn(self._pump_requests, "faultproxy-req", conn)
        try:
            self._pump_responses(conn)
        except (_Abort, OSError):
            pass
        finally:
            conn.shutdown()
            requests.join(timeout=1.0)
            conn.close()
            with self._lock:
                self._live.discard(conn)

    def _recv(self, sock: socket.socket) -> bytes:
        """The next bytes from ``sock``; b"" at end of stream; _Abort when stopping."""
        while not self._stop.is_set():
            try:
                return sock.recv(_RECV_SIZE)
            except socket.timeout:
                continue
            except OSError:
                return b""
        raise _Abort

    def _send_all(self, sock: socket.socket, data: bytes) -> None:
        """Send everything, or raise _Abort carrying how many bytes were not sent.

        Plain ``sendall`` could time out with an unknown part sent; ``send`` either sends
        some bytes and says how many, or raises having sent none.
        """
        view = memoryview(data)
        while view:
            if self._stop.is_set():
                raise _Abort(len(view))
            try:
                sent = sock.send(view)
            except socket.timeout:
                continue
            except OSError as exc:
                raise _Abort(len(view)) from exc
            view = view[sent:]

    def _deliver(self, conn: _Connection, exchange: Exchange, data: bytes, *, body: bool,
                 completes: bool = False) -> None:
        """Send response bytes to the client and account for them.

        Counts go up before the send, so a client that has read a whole response never
        looks at a stale count; bytes that could not be sent are taken back afterwards.
        """
        self._count(exchange, len(data), body=body)
        exchange.complete = completes
        try:
            self._send_all(conn.client, data)
        except _Abort as abort:
            self._count(exchange, -abort.args[0], body=body)
            exchange.complete = False
            raise

    # ----------------------------------------------------------------- client -> upstream

    def _pump_requests(self, conn: _Connection) -> None:
        framer = _Framer(lambda head: self._on_request_head(conn, head))
        try:
            while True:
                data = self._recv(conn.client)
                if not data:
                    # The client is done sending; let upstream finish its answer.
                    conn.upstream.shutdown(socket.SHUT_WR)
                    return
                # Parse before forwarding so the exchange is queued before any response.
                framer.feed(data)
                self._send_all(conn.upstream, data)
        except (_Abort, OSError):
            conn.shutdown()

    def _on_request_head(self, conn: _Connection, head: bytes):
        exchange = self._record_request(head)
        conn.pending.append(exchange)
        return exchange, _body_framing(exchange.headers) or ("none",)

    # ----------------------------------------------------------------- upstream -> client

    def _pump_responses(self, conn: _Connection) -> None:
        framer = _Framer(lambda head: self._on_response_head(conn, head))
        while True:
            data = self._recv(conn.upstream)
            if not data:
                return
            events = framer.feed(data)
            for i, (kind, exchange, piece) in enumerate(events):
                # The framer puts "end" right after the piece that finishes a response.
                completes = i + 1 < len(events) and events[i + 1][0] == "end"
                if kind == "head":
                    self._deliver(conn, exchange, piece, body=False, completes=completes)
                elif kind == "body":
                    self._forward_body(conn, exchange, piece, completes)

    def _on_response_head(self, conn: _Connection, head: bytes):
        words, headers = _parse_head(head)
        try:
            status = int(words[1])
        except (IndexError, ValueError):
            status = 0
        if 100 <= status < 200 and status != 101:
            # An interim answer (100 Continue): the real response is still to come.
            exchange = conn.pending[0] if conn.pending else Exchange("?", "?", {})
            return exchange, ("none",)
        exchange = conn.pending.popleft() if conn.pending else Exchange("?", "?", {})
        exchange.status = status
        if 200 <= status < 300:
            with self._lock:
                selected = [f for f in self._faults if f.selects(exchange.path)]
                exchange.candidates = [f for f in selected if f.kind not in ("refuse", "throttle")]
                pacer = next((f for f in selected if f.kind == "throttle"), None)
            if pacer is not None and self._claim(pacer):
                exchange.pacer = pacer
                exchange.faults.append("throttle")
        if exchange.method == "HEAD" or status in (204, 304):
            return exchange, ("none",)
        if status == 101:
            return exchange, ("eof",)  # the connection becomes a raw tunnel
        return exchange, _body_framing(headers) or ("eof",)

    def _forward_body(self, conn: _Connection, exchange: Exchange, data: bytes,
                      completes: bool) -> None:
        """Deliver body bytes, applying the faults whose offset falls inside them."""
        while data:
            start = exchange.body_bytes
            hit = self._next_fault(exchange, start, start + len(data))
            if hit is None:
                break
            fault, at = hit
            if fault.kind == "corrupt":
                data = bytearray(data)
                data[at] ^= fault.mask
                continue
            self._deliver(conn, exchange, data[:at], body=True)
            if fault.kind == "stall":
                self._stop.wait(fault.seconds)
            raise _Abort  # cut, or the end of a stall: drop both sides
        if exchange.pacer is not None:
            self._deliver_paced(conn, exchange, data, completes, exchange.pacer.rate)
            return
        self._deliver(conn, exchange, data, body=True, completes=completes)

    def _deliver_paced(self, conn: _Connection, exchange: Exchange, data: bytes,
                       completes: bool, rate: float) -> None:
        """Deliver ``data`` in small slices, waiting between them to keep to ``rate``."""
        step = max(1, min(_PACE_SLICE, int(rate / 20)))  # ~20 slices a second: smooth pacing
        for start in range(0, len(data), step):
            piece = data[start:start + step]
            if self._stop.wait(len(piece) / rate):
                raise _Abort
            last = start + step >= len(data)
            self._deliver(conn, exchange, piece, body=True, completes=completes and last)

    def _next_fault(self, exchange: Exchange, start: int, end: int):
        """The earliest fault of this response acting in body range [start, end).

        Returns (fault, index into the piece) or None. A fault is taken off the response
        once looked at, and fires only if no other response used up a ``once`` fault.
        """
        for fault in sorted(exchange.candidates, key=lambda f: f.offset):
            if not start <= fault.offset < end:
                continue
            exchange.candidates.remove(fault)
            if self._claim(fault):
                with self._lock:
                    exchange.faults.append(fault.kind)
                return fault, fault.offset - start
        return None
