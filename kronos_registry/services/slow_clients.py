"""Slow clients: a connection whose request head does not arrive in time is answered 408 and closed.

uvicorn bounds the idle time between requests (``timeout_keep_alive``) and h11 the size of a
request head (16 KiB), but not how long a head may take to arrive once its first byte has: a
client sending one header byte every few seconds holds its connection, a socket and a buffer
for as long as it likes, and some thousands of them exhaust the server's file descriptors
(slowloris). The deadline starts when a connection opens and again after each response, and
is cleared once a whole head has arrived; the body has its own (``Limits.body_timeout_s``).

Both HTTP faces (`serve`, `mcp --transport streamable-http`) run uvicorn with this protocol;
uvicorn and h11 are imported only when it is built.
"""

from __future__ import annotations

DEFAULT_HEAD_TIMEOUT_S = 10.0
REQUEST_TIMEOUT = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"


def head_deadline_protocol(timeout_s: float = DEFAULT_HEAD_TIMEOUT_S) -> type:
    """uvicorn's h11 protocol with a deadline of ``timeout_s`` on each request head; pass it
    as ``uvicorn.Config(http=...)``."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeadDeadlineProtocol(H11Protocol):
        _head_deadline = None

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._arm_head_deadline()

        def handle_events(self) -> None:
            super().handle_events()
            if self.conn.their_state is not h11.IDLE:  # a whole head has arrived (or was refused)
                self._clear_head_deadline()

        def on_response_complete(self) -> None:
            super().on_response_complete()  # may already have read a pipelined head
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                self._arm_head_deadline()  # the next request's head gets the same time

        def connection_lost(self, exc) -> None:
            self._clear_head_deadline()
            super().connection_lost(exc)

        def _arm_head_deadline(self) -> None:
            self._clear_head_deadline()
            self._head_deadline = self.loop.call_later(timeout_s, self._head_too_slow)

        def _clear_head_deadline(self) -> None:
            if self._head_deadline is not None:
                self._head_deadline.cancel()
                self._head_deadline = None

        def _head_too_slow(self) -> None:
            self._head_deadline = None
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                self.transport.write(REQUEST_TIMEOUT)  # h11 cannot answer a request it has not read
                self.transport.close()

    return HeadDeadlineProtocol
