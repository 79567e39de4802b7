#!/usr/bin/env bash
# Creates the in-repo virtual environments and installs everything the project needs.
# Idempotent: a second run only checks. Usage: scripts/bootstrap.sh [--test]
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
want_test=0
[[ "${1:-}" == "--test" ]] && want_test=1

if [[ ! -x .venv/bin/python ]]; then
    "$PYTHON" -m venv .venv
fi
pip() { .venv/bin/python -m pip --disable-pip-version-check -q "$@"; }

# torch first and pinned: an unpinned torch would pull a multi-GB CUDA build.
.venv/bin/python -c "import torch" 2>/dev/null || pip install "torch==2.13.0"

if [[ $want_test == 1 ]]; then
    # Every optional face too: their tests run in CI (Ray, the server, the MCP server).
    pip install -e ".[test,ray,serve,mcp]"
    # A real browser for the page test (Debian's chromium; playwright drives it, never downloads one).
    if [[ ! -x /usr/bin/chromium ]] && command -v apt-get >/dev/null && [[ $(id -u) == 0 ]]; then
        (apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 &&
            apt-get install -y -q chromium >/dev/null 2>&1; }) || echo "note: chromium not installed; the page test will skip" >&2
    fi
    # The official implementation is a test oracle only; its pins clash with ours.
    .venv/bin/python -c "import model.kronos" 2>/dev/null || pip install --no-deps "kronos-model-arch==0.1.0"
    # olah (a self-hosted Hugging Face mirror) gets its own venv: its pins clash with ours.
    if [[ ! -x .venv-olah/bin/olah-cli ]]; then
        "$PYTHON" -m venv .venv-olah
        .venv-olah/bin/python -m pip --disable-pip-version-check -q install "olah==0.5.4"
    fi
else
    pip install -e ".[plot]"
fi
