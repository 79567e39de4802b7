"""Fixtures shared by several test modules."""

from __future__ import annotations

import pytest

from tests.support import cli as cli_support
from tests.support.cli import exec_only
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


def pytest_configure(config):
    config.addinivalue_line("markers", "real_exec: every Cli call of this test execs the installed "
                            "console script (no fork server; see tests/support/cli.py)")


@pytest.fixture(autouse=True)
def _real_exec_marker(request):
    """Tests marked real_exec run their Cli calls as fresh interpreters."""
    if request.node.get_closest_marker("real_exec") is None:
        yield
        return
    with exec_only():
        yield


def pytest_terminal_summary(terminalreporter):
    if cli_support.calls:
        declined = "; ".join(f"{n}x {why}" for why, n in cli_support.exec_reasons.most_common(3))
        terminalreporter.write_line(f"kronos-registry calls: {cli_support.calls['fork']} forked from the "
                                    f"zygote, {cli_support.calls['exec']} exec'd"
                                    + (f" (zygote declined: {declined})" if declined else ""))
