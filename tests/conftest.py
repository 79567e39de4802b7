"""Fixtures shared by several test modules."""

from __future__ import annotations

import pytest

from tests.support.hubrepos import build_test_hub
from tests.support.olah import require_olah, running_olah
from tests.support.sockets import guard_sockets


@pytest.fixture(scope="session")
def olah_hub(tmp_path_factory):
    """olah on 127.0.0.1 serving the git repos of ``build_test_hub``: yields (server, hub)."""
    require_olah()
    root = tmp_path_factory.mktemp("olah")
    hub = build_test_hub(root / "mirrors")
    with running_olah(hub.mirrors, root / "work") as server:
        yield server, hub


@pytest.fixture
def no_sockets(monkeypatch) -> list:
    """Any outgoing connection fails the test (see tests/support/sockets.py); returns the addresses tried."""
    return guard_sockets(monkeypatch)
