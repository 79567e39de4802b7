"""Who may reach a long-running face: the Host names and page origins it answers.

A server on loopback is still reachable from any web page the user opens: a page can send
requests to 127.0.0.1 (CSRF), and a DNS name of the attacker's that resolves to 127.0.0.1
lets it read the answers too (DNS rebinding). Checking the Host header against the names the
server is known by, and the Origin of state-changing requests, closes both. `serve` and
`mcp --transport streamable-http` build their lists here, the same way.
"""

from __future__ import annotations

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
# Binding every interface names no host a client would use: those need --allow-host.
WILDCARD_BINDS = ("0.0.0.0", "::", "")


def is_loopback(host: str) -> bool:
    return host.strip("[]").lower() in LOOPBACK_HOSTS


def allowed_hosts(bound: str, extra: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The loopback names, the host the server is bound to, and ``extra`` (--allow-host), lowercased."""
    names = [*LOOPBACK_HOSTS, *([] if bound in WILDCARD_BINDS else [bound]), *extra]
    return tuple(dict.fromkeys(name.strip("[]").lower() for name in names if name))


def host_name(header: str) -> str:
    """A Host header without its port: 'example.com:8000' -> 'example.com', '[::1]:80' -> '::1'."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


__all__ = ["LOOPBACK_HOSTS", "allowed_hosts", "host_name", "is_loopback"]
