"""No network: a guard on outgoing connections that fails them and records who tried.

``guard_sockets(monkeypatch)`` replaces ``socket.socket.connect`` and ``connect_ex`` (until the
test ends) with a refusal that records the address and raises ``NetworkAttempted``. That is an
``AssertionError``, not an ``OSError``: code under test that handles network errors cannot mistake
it for an unreachable host and carry on. Tests also assert the returned list is empty, which
fails them even when the code swallowed the error.

The ``no_sockets`` fixture in ``tests/conftest.py`` guards from the test's start; a test that
needs the network first calls ``guard_sockets`` itself once it is done with it.
"""

from __future__ import annotations

import socket


class NetworkAttempted(AssertionError):
    """A connection attempted while the sockets were guarded."""


def guard_sockets(monkeypatch) -> list:
    """From now on, fail any outgoing connection; the list records the addresses tried."""
    tried: list = []

    def refuse(self, address, *args):
        tried.append(address)
        raise NetworkAttempted(f"test guard: network connection attempted to {address!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    return tried
