"""The packaged demo from a real, non-editable install (issue 10 item 1).

The project is installed with pip into a temporary folder (no network, no build isolation,
no dependencies: the shared venv has them), and its console script runs with only that folder
on the path, so the package's data comes from the install, never from this checkout. The
demo entries must work from every registry file a user may have: the packaged one through
the repository root's `./models.yaml` symlink, a copy of it in a project folder, and
`--registry <repo>/models.yaml` from anywhere.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.cli import DEMO, REPO_ROOT, SAMPLE_CSV

PREDICT = ("predict", DEMO, "--input", "kronos_registry/data/sample_candles.csv", "--pred-len", "4",
           "--seed", "1")
_SCRUBBED_PREFIXES = ("KRONOS_REGISTRY_", "HF_", "HUGGINGFACE_", "PYTHON")


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """`pip install --no-deps --target SITE` of a copy of this checkout; returns SITE."""
    root = tmp_path_factory.mktemp("install")
    source = root / "source"  # a copy: pip's build/ and egg-info never land in the checkout
    shutil.copytree(REPO_ROOT, source, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", ".venv*", "build", "dist", "*.egg-info", "__pycache__", "tests", "benchmarks", ".pytest_cache"))
    site = root / "site"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
         "--disable-pip-version-check", "-q", "--target", str(site), str(source)],
        capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        pytest.fail(f"pip install failed:\n{done.stdout}\n{done.stderr}")
    assert (site / "kronos_registry" / "data" / "demo" / "model" / "model.safetensors").is_file()
    return site


def run(site: Path, cwd: Path, store: Path, *args: str) -> subprocess.CompletedProcess:
    """The installed console script, with only the install on the path (never this checkout)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUBBED_PREFIXES)}
    env.update(PYTHONPATH=str(site), KRONOS_REGISTRY_HOME=str(store), HF_HOME=str(store.parent / "hf"),
               KRONOS_REGISTRY_OFFLINE="1", HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    return subprocess.run([str(site / "bin" / "kronos-registry"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=180)


def ok(done: subprocess.CompletedProcess) -> str:
    output = f"exit {done.returncode}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    assert done.returncode == 0, output
    assert "Traceback" not in output
    return done.stdout


def test_the_install_is_not_this_checkout(installed, tmp_path):
    done = run(installed, REPO_ROOT, tmp_path / "store", "show", DEMO, "--json")
    assert f'"source": "{installed}' in ok(done)  # the demo's files come from the install


def test_demo_predicts_from_the_repository_root(installed, tmp_path):
    assert (REPO_ROOT / "models.yaml").is_symlink()  # the overlay this case is about
    out = ok(run(installed, REPO_ROOT, tmp_path / "store", *PREDICT))
    assert "TIMESTAMP" in out and len(out.strip().splitlines()) == 5
    ok(run(installed, REPO_ROOT, tmp_path / "store", "validate"))


def test_demo_predicts_from_a_copy_of_the_packaged_registry(installed, tmp_path):
    project = tmp_path / "project"
    (project / "kronos_registry" / "data").mkdir(parents=True)
    shutil.copyfile(REPO_ROOT / "kronos_registry" / "models.yaml", project / "models.yaml")
    shutil.copyfile(SAMPLE_CSV, project / "kronos_registry" / "data" / SAMPLE_CSV.name)
    assert "OK:" in ok(run(installed, project, tmp_path / "store", "validate"))
    assert "TIMESTAMP" in ok(run(installed, project, tmp_path / "store", *PREDICT))


def test_demo_predicts_with_the_repository_registry_from_another_folder(installed, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "kronos_registry" / "data").mkdir(parents=True)
    shutil.copyfile(SAMPLE_CSV, elsewhere / "kronos_registry" / "data" / SAMPLE_CSV.name)
    registry = ("--registry", str(REPO_ROOT / "models.yaml"))
    assert "OK:" in ok(run(installed, elsewhere, tmp_path / "store", *registry, "validate"))
    assert "TIMESTAMP" in ok(run(installed, elsewhere, tmp_path / "store", *registry, *PREDICT))


def test_validate_fails_when_an_available_local_source_is_missing(installed, tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    text = (REPO_ROOT / "kronos_registry" / "models.yaml").read_text()
    assert "package://data/demo/model" in text
    # The form a hand-copied file might hold: a folder relative to the copy, which is not there.
    (project / "models.yaml").write_text(text.replace("package://data/demo/model", "./data/demo/model"))
    done = run(installed, project, tmp_path / "store", "validate")
    assert done.returncode == 3, done.stderr
    line = text.splitlines().index("    source: package://data/demo/model") + 1
    assert f"{project / 'models.yaml'}:{line}:" in done.stderr
    assert f"{project / 'data' / 'demo' / 'model'} of 'kronos-demo' does not exist" in done.stderr
    assert "Traceback" not in done.stderr
