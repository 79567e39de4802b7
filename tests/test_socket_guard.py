"""The offline tests' socket guard (tests/support/sockets.py) fires first, and cannot be swallowed.

With offline mode broken, an offline test must fail because the guard fired, not because a DNS
lookup failed on a machine without network: so the guard covers name lookups as well as
connections, and its error passes through every ``except Exception`` of the code under test.
"""

from __future__ import annotations

import socket
from contextlib import closing

import pytest

from registry.sources import Endpoints, resolve
from registry.spec import HfSource
from tests.support.sockets import GUARD_MESSAGE, NetworkAttempted, guard_sockets

COMMIT = "f4e68697d9d5aed55cef5c96aabc3376bcad9f81"


@pytest.fixture
def listener():
    """A loopback server socket that would accept a connection (opened before the guard)."""
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        yield server.getsockname()


def test_every_lookup_and_connection_is_refused_and_recorded(monkeypatch, listener):
    tried = guard_sockets(monkeypatch)
    calls = [
        ("getaddrinfo", lambda: socket.getaddrinfo("huggingface.co", 443)),
        ("gethostbyname", lambda: socket.gethostbyname("huggingface.co")),
        ("gethostbyname_ex", lambda: socket.gethostbyname_ex("huggingface.co")),
        ("create_connection", lambda: socket.create_connection(listener, timeout=1)),
    ]
    for name, call in calls:
        with pytest.raises(NetworkAttempted, match=GUARD_MESSAGE):
            call()
    for method in ("connect", "connect_ex"):
        with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
            with pytest.raises(NetworkAttempted, match=GUARD_MESSAGE):
                getattr(sock, method)(listener)
    assert [call for call, _ in tried] == [name for name, _ in calls] + ["connect", "connect_ex"]
    assert tried[0] == ("getaddrinfo", ("huggingface.co", 443))


def test_a_connection_opened_before_the_guard_cannot_send(monkeypatch, listener):
    # What a keep-alive pool holds after an online step earlier in the same test.
    with closing(socket.create_connection(listener, timeout=5)) as sock:
        tried = guard_sockets(monkeypatch)
        for method, args in (("send", (b"x",)), ("sendall", (b"x",)), ("sendto", (b"x", listener)),
                             ("sendmsg", ([b"x"],))):
            with pytest.raises(NetworkAttempted, match=GUARD_MESSAGE):
                getattr(sock, method)(*args)
    assert tried == [(method, listener) for method in ("send", "sendall", "sendto", "sendmsg")]


def test_the_guard_is_not_an_exception_handlers_catch():
    # `except OSError` (a failed lookup) and `except Exception` (a transport's catch-all) both miss it.
    assert not issubclass(NetworkAttempted, Exception)
    with pytest.raises(NetworkAttempted):
        try:
            raise NetworkAttempted("x")
        except Exception:  # noqa: BLE001 - the point of the test
            pytest.fail("an `except Exception` caught the guard's error")


def test_an_online_hub_lookup_fails_with_the_guards_error_before_any_dns(monkeypatch):
    """What a broken offline mode does: the hub client's first step trips the guard.

    Through huggingface_hub, its HTTP client and our retry and error classification, the failure
    is the guard's, naming the lookup; not a NetworkError about a failed DNS lookup.
    """
    tried = guard_sockets(monkeypatch)
    with pytest.raises(NetworkAttempted, match=GUARD_MESSAGE) as caught:
        resolve(HfSource("NeoQuasar/Kronos-mini", COMMIT), Endpoints(urls=("https://huggingface.co",), timeout=2.0),
                offline=False)
    assert "huggingface.co" in str(caught.value)
    # httpcore hands the host name to create_connection, which would look it up first
    assert tried and tried[0][0] in ("create_connection", "getaddrinfo"), tried
    assert tried[0][1][0] == "huggingface.co", tried


def test_sockets_work_again_after_the_test(listener):
    # monkeypatch undid the guard of the tests above: a loopback connection goes through.
    with closing(socket.create_connection(listener, timeout=5)):
        pass
