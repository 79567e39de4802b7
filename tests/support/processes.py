"""Ending the server processes a test started."""

from __future__ import annotations

import subprocess


def stop_process(process: subprocess.Popen, timeout: float = 15) -> None:
    """Terminate ``process`` and wait; kill it if it lingers past ``timeout`` seconds."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)
