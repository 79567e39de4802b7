"""Session-wide fixtures shared by several test modules."""

from __future__ import annotations

import pytest

from tests.support.hubrepos import build_test_hub
from tests.support.olah import olah_missing_reason, start_olah, stop_olah


@pytest.fixture(scope="session")
def olah_hub(tmp_path_factory):
    """olah on 127.0.0.1 serving the git repos of ``build_test_hub``: yields (server, hub)."""
    reason = olah_missing_reason()
    if reason:
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("olah")
    hub = build_test_hub(root / "mirrors")
    server = start_olah(hub.mirrors, root / "work")
    try:
        yield server, hub
    finally:
        stop_olah(server)
