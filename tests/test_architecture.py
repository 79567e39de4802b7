"""The floors hold (docs/ARCHITECTURE.md): import contracts, no cycles, files a reader can hold.

The contracts live in pyproject.toml ([tool.importlinter]); this runs them, and shows once
that a deliberately added upward import breaks them, so a green run means something.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.cli import REPO_ROOT

PACKAGES = ("registry", "kronos_registry")
MAX_LINES = 500

grimp = pytest.importorskip("grimp", reason="import-linter (the test extra) is not installed")


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """import-linter over the packages under ``root``, with the contracts of its pyproject."""
    script = Path(sys.executable).with_name("lint-imports")
    if not script.is_file():
        pytest.skip("lint-imports (import-linter, a test extra) is not installed")
    return subprocess.run([str(script), "--no-cache"], cwd=root, capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root)})


def test_the_import_contracts_are_kept():
    done = lint_imports(REPO_ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def test_an_upward_import_breaks_the_contracts(tmp_path):
    """The engine importing a face: the same check must fail, naming the import."""
    for name in (*PACKAGES, "pyproject.toml"):
        source = REPO_ROOT / name
        if source.is_dir():
            shutil.copytree(source, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__", "static", "data"))
        else:
            shutil.copyfile(source, tmp_path / name)
    errors = tmp_path / "registry" / "errors.py"
    errors.write_text(errors.read_text() + "\n\ndef _upward():\n    import kronos_registry.cli.app  # noqa\n")
    done = lint_imports(tmp_path)
    assert done.returncode != 0, done.stdout
    assert "registry.errors -> kronos_registry.cli.app" in done.stdout


def module_graph():
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    return {module: graph.find_modules_directly_imported_by(module) for module in graph.modules}


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iteratively: the components with more than one module are cycles."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(graph[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None and child in graph:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(graph[child])))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            if child is not None:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles():
    assert strongly_connected(module_graph()) == []


def test_no_python_file_over_500_lines():
    long = {str(path.relative_to(REPO_ROOT)): n for package in PACKAGES
            for path in (REPO_ROOT / package).rglob("*.py")
            if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert long == {}, f"split these along a seam (docs/ARCHITECTURE.md): {long}"
