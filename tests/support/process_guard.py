"""The socket guard (tests/support/sockets.py) inside a server subprocess, recording to a file.

A server started as a real process (`kronos-registry mcp`) cannot be monkeypatched from the
test, so the test puts a ``sitecustomize.py`` on its PYTHONPATH that calls :func:`install`
(see :func:`write_sitecustomize`). From then on the process may not look up a name nor
connect to or send to another host; each attempt is appended to the record file (one JSON
object per line) before the guard's ``NetworkAttempted`` is raised.

Two things stay allowed, because a server cannot run without them and neither leaves the
machine: Unix-domain sockets (asyncio wakes its event loop through a socketpair) and
loopback peers (the HTTP transport answers its client on 127.0.0.1).

The first line of the record says the guard is installed and that a lookup of
huggingface.co was refused by it, so an empty list of attempts means "nothing tried", not
"no guard".
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

from tests.support.sockets import NetworkAttempted, guard_sockets

LOOPBACK = {"127.0.0.1", "::1", "localhost"}
SOCKET_METHODS = ("connect", "connect_ex", "send", "sendall", "sendto", "sendmsg")
MODULE_FUNCTIONS = ("getaddrinfo", "gethostbyname", "gethostbyname_ex", "create_connection")


class _Setter:
    """What guard_sockets needs of pytest's monkeypatch, for a process that ends with its patches."""

    def setattr(self, target, name, value) -> None:
        setattr(target, name, value)


def install(record: str | Path) -> None:
    record = Path(record)
    originals = {name: getattr(socket.socket, name) for name in SOCKET_METHODS}
    original_functions = {name: getattr(socket, name) for name in MODULE_FUNCTIONS}
    guard_sockets(_Setter())

    def write(entry: dict) -> None:
        with record.open("a") as out:
            out.write(json.dumps(entry) + "\n")

    def recorded(guarded, name: str):
        def call(*args, **kwargs):
            try:
                return guarded(*args, **kwargs)
            except NetworkAttempted as refused:
                write({"attempt": name, "detail": str(refused)})
                raise
        return call

    for name in SOCKET_METHODS:
        guarded = recorded(getattr(socket.socket, name), name)

        def method(self, *args, _name=name, _guarded=guarded, **kwargs):
            target = _target(self, _name, args)
            if self.family == socket.AF_UNIX or _is_loopback(target):
                return originals[_name](self, *args, **kwargs)
            return _guarded(self, *args, **kwargs)
        setattr(socket.socket, name, method)

    for name in MODULE_FUNCTIONS:
        guarded = recorded(getattr(socket, name), name)

        def function(host, *args, _name=name, _guarded=guarded, **kwargs):
            address = host[0] if _name == "create_connection" else host
            if _is_loopback((address,)):
                return original_functions[_name](host, *args, **kwargs)
            return _guarded(host, *args, **kwargs)
        setattr(socket, name, function)

    try:
        socket.getaddrinfo("huggingface.co", 443)
        refused = False
    except NetworkAttempted:
        refused = True
    record.write_text(json.dumps({"installed": True, "self_test_refused": refused}) + "\n")


def _target(sock, name: str, args: tuple):
    if name.startswith("connect"):
        return args[0] if args else None
    if name == "sendto" and len(args) >= 2:
        return args[-1]
    try:
        return sock.getpeername()
    except OSError:
        return None


def _is_loopback(target) -> bool:
    return isinstance(target, tuple) and bool(target) and target[0] in LOOPBACK


def read_record(record: str | Path) -> tuple[dict, list[dict]]:
    """-> (the header line, the attempts recorded)."""
    lines = [json.loads(line) for line in Path(record).read_text().splitlines() if line.strip()]
    return lines[0], lines[1:]


def write_sitecustomize(folder: Path, record: Path) -> Path:
    """A folder to put first on PYTHONPATH: its sitecustomize installs the guard at start-up."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(
        "from tests.support.process_guard import install\n"
        f"install({str(record)!r})\n")
    return folder
