"""No network: a guard on name lookups, connections and sends that fails them and records who tried.

``guard_sockets(monkeypatch)`` replaces, until the test ends, every way this process starts talking
to another host: the name lookups (``socket.getaddrinfo``, ``gethostbyname``, ``gethostbyname_ex``),
the connections (``socket.create_connection``, ``socket.socket.connect`` and ``connect_ex``), and
sending on a socket connected before the guard (``send``, ``sendall``, ``sendto``, ``sendmsg``): an
HTTP client keeps connections alive in a pool, so a request made after an earlier online step in
the same test needs neither a lookup nor a connect. Each records what was asked for and raises
``NetworkAttempted``.

Offline means no DNS either: a client resolves the host name before it connects, so a guard on
``connect`` alone never fires where DNS fails (a sandbox, an air-gapped CI runner). The code under
test then meets a ``gaierror``, reports "cannot reach huggingface.co" and the test fails for the
wrong reason, or passes where a retry or a fallback swallows the error. With the lookups guarded,
the first network step is the guard's.

``NetworkAttempted`` derives from ``BaseException``, not ``Exception``: code under test that
handles network errors (``except OSError``, ``except Exception`` around a transport) cannot take it
for an unreachable host, wrap it or carry on; the test fails with the guard's own message. Tests
also assert the returned list is empty, which fails them even if the error was swallowed.

The ``no_sockets`` fixture in ``tests/conftest.py`` guards from the test's start; a test that
needs the network first calls ``guard_sockets`` itself once it is done with it.
"""

from __future__ import annotations

import socket

GUARD_MESSAGE = "test socket guard: network use attempted"


class NetworkAttempted(BaseException):
    """A name lookup or a connection attempted while the sockets were guarded."""


def guard_sockets(monkeypatch) -> list:
    """From now on, fail any name lookup or outgoing connection; the list records what was tried.

    Entries are ``(call, target)``, e.g. ``("getaddrinfo", ("huggingface.co", 443))``,
    ``("connect", ("127.0.0.1", 8080))`` or ``("sendall", ("127.0.0.1", 8080))`` (the peer).
    """
    tried: list = []

    def refuse(call: str, target) -> NetworkAttempted:
        tried.append((call, target))
        return NetworkAttempted(f"{GUARD_MESSAGE}: {call}({target!r})")

    def getaddrinfo(host, port, *args, **kwargs):
        raise refuse("getaddrinfo", (host, port))

    def gethostbyname(host):
        raise refuse("gethostbyname", host)

    def gethostbyname_ex(host):
        raise refuse("gethostbyname_ex", host)

    def create_connection(address, *args, **kwargs):
        raise refuse("create_connection", address)

    def connect(self, address, *args):
        raise refuse("connect", address)

    def connect_ex(self, address, *args):
        raise refuse("connect_ex", address)

    def sender(name: str):
        def send(self, *args, **kwargs):
            try:
                peer = self.getpeername()
            except OSError:
                peer = None
            raise refuse(name, peer)
        return send

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket, "gethostbyname", gethostbyname)
    monkeypatch.setattr(socket, "gethostbyname_ex", gethostbyname_ex)
    monkeypatch.setattr(socket, "create_connection", create_connection)
    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    for name in ("send", "sendall", "sendto", "sendmsg"):
        monkeypatch.setattr(socket.socket, name, sender(name))
    return tried
