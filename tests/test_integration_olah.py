"""End to end against a real mirror: olah on 127.0.0.1 serving git repos of tiny Kronos checkpoints.

Every entry of a test registry is synced over ``hf://`` with the Kronos checks on; a branch is
recorded as its commit; a dead first endpoint falls back to the next mirror; unknown repos and
revisions fail with errors that name them (and exit code 5 from the CLI); a tokenizer shared by
two models is stored once; Tokenizer-2k files paired with NeoQuasar/Kronos-small are refused.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Mapping

import attrs
import pytest

from kronos_registry import Registry, load_predictor
from registry.errors import RepoNotFoundError, RevisionNotFoundError, SourceError, VerificationError
from registry.store import MANIFEST_NAME, Store
from tests.support.hubrepos import HubRepo
from tests.support.kronos_checkpoints import (
    TINY_MODEL,
    TINY_TOKENIZER,
    TINY_TOKENIZER_2K,
    model_checkpoint,
    param_count,
    tokenizer_checkpoint,
)
from tests.support.mirror import FILES, isolate, isolated_env, publish_checkpoint, published_problems, run_cli
from tests.support.olah import OlahServer, dead_endpoint, require_olah, running_olah
from tests.support.registry_files import model_keys, registry_yaml, tokenizer_keys
from tests.support.trees import tree_digest

UNKNOWN_COMMIT = "0123456789abcdef0123456789abcdef01234567"


# =============================================================================== helpers


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# =============================================================================== the test hub


@attrs.frozen
class KronosHub:
    """olah serving tiny Kronos repos; commits by name."""

    server: OlahServer
    repos: Mapping[str, HubRepo]
    commits: Mapping[str, str]

    def file(self, repo: str, name: str) -> bytes:
        """The bytes the hub serves for ``name`` (LFS objects resolved)."""
        path = self.repos[repo].path / name
        data = path.read_bytes()
        if data.startswith(b"version https://git-lfs"):
            oid = data.split(b"oid sha256:")[1].split(b"\n")[0].decode()
            data = (self.repos[repo].path / ".git/lfs/objects" / oid[:2] / oid[2:4] / oid).read_bytes()
        return data


@pytest.fixture(scope="module")
def kronos_hub(tmp_path_factory) -> KronosHub:
    require_olah()
    root = tmp_path_factory.mktemp("kronos-hub")
    mirrors, ckpt = root / "mirrors", root / "ckpt"
    checkpoints = {
        "TestOrg/Tokenizer-base": tokenizer_checkpoint(ckpt / "tb", group_size=4, seed=0),
        "TestOrg/Tokenizer-2k": tokenizer_checkpoint(ckpt / "t2k", group_size=5, seed=5),
        "TestOrg/Kronos-a": model_checkpoint(ckpt / "a", seed=1),
        "TestOrg/Kronos-b": model_checkpoint(ckpt / "b", seed=2),
        "NeoQuasar/Kronos-small": model_checkpoint(ckpt / "small", seed=3),
    }
    repos, commits = {}, {}
    for repo_id, folder in checkpoints.items():
        repos[repo_id], commits[repo_id] = publish_checkpoint(mirrors, repo_id, folder)
    with running_olah(mirrors, root / "olah") as server:
        yield KronosHub(server=server, repos=repos, commits=commits)


def write_test_registry(hub: KronosHub, folder: Path, mirrors: tuple[str, ...] = ()) -> Path:
    """The test registry: two tokenizers, good models and deliberately broken ones."""
    c = hub.commits
    tokenizers = {
        "tok-base": tokenizer_keys(f"hf://TestOrg/Tokenizer-base@{c['TestOrg/Tokenizer-base']}", TINY_TOKENIZER),
        "tok-2k": tokenizer_keys(f"hf://TestOrg/Tokenizer-2k@{c['TestOrg/Tokenizer-2k']}", TINY_TOKENIZER_2K),
    }
    models = {
        "kronos-a": model_keys(f"hf://TestOrg/Kronos-a@{c['TestOrg/Kronos-a']}", "tok-base"),
        "kronos-b": model_keys("hf://TestOrg/Kronos-b@main", "tok-base"),
        "small-with-2k": model_keys(f"hf://NeoQuasar/Kronos-small@{c['NeoQuasar/Kronos-small']}", "tok-2k"),
        "no-such-repo": model_keys("hf://TestOrg/Does-not-exist@main", "tok-base"),
        "no-such-commit": model_keys(f"hf://TestOrg/Kronos-a@{UNKNOWN_COMMIT}", "tok-base"),
        "no-such-branch": model_keys("hf://TestOrg/Kronos-a@no-such-branch", "tok-base"),
    }
    path = folder / "models.yaml"
    path.write_text(registry_yaml(tokenizers, models, mirrors))
    return path


@pytest.fixture
def workspace(tmp_path, monkeypatch, kronos_hub) -> Path:
    isolate(monkeypatch, tmp_path, kronos_hub.server.url)
    return tmp_path


# =============================================================================== tests


def test_every_good_entry_syncs_over_hf_with_kronos_checks_and_loads(kronos_hub, workspace):
    registry = Registry(write_test_registry(kronos_hub, workspace))
    results = {name: registry.sync(name) for name in ("tok-base", "tok-2k", "kronos-a", "kronos-b")}

    repo_of = {"tok-base": "TestOrg/Tokenizer-base", "tok-2k": "TestOrg/Tokenizer-2k",
               "kronos-a": "TestOrg/Kronos-a", "kronos-b": "TestOrg/Kronos-b"}
    for name, result in results.items():
        manifest = result.manifest
        repo = repo_of[name]
        assert manifest.endpoint == kronos_hub.server.url
        assert manifest.resolved_revision == kronos_hub.repos[repo].rev_parse("main")
        # Every byte stored is the hub's, and the hub's LFS sha256 was compared at sync.
        assert {f.name: f.sha256 for f in manifest.files} == {
            n: sha256_bytes(kronos_hub.file(repo, n)) for n in FILES}
        assert {"kronos-config", "kronos-weights", "kronos-params", "size-and-sha256"} <= set(manifest.checks)
    assert "kronos-pairing" in results["kronos-a"].manifest.checks

    predictor = load_predictor("kronos-a", registry=workspace / "models.yaml")
    assert predictor.max_context == 64
    assert sum(t.numel() for t in predictor.model.parameters()) == param_count("model", TINY_MODEL)
    assert Store(workspace / "store").list_artifacts() == sorted(r.artifact_id for r in results.values())
    assert published_problems(Store(workspace / "store")) == []


def test_shared_tokenizer_is_fetched_and_stored_once(kronos_hub, workspace):
    registry = Registry(write_test_registry(kronos_hub, workspace))
    first, second = registry.sync("kronos-a"), registry.sync("kronos-b")

    assert first.tokenizer.fetched and not second.tokenizer.fetched
    assert first.tokenizer.artifact_id == second.tokenizer.artifact_id
    tokenizer_objects = [a for a in registry.store.list_artifacts() if "Tokenizer" in a]
    assert tokenizer_objects == [first.tokenizer.artifact_id]
    assert len(registry.store.list_artifacts()) == 3


def test_pinned_revision_names_the_object(kronos_hub, workspace):
    commit = kronos_hub.commits["TestOrg/Kronos-a"]
    result = Registry(write_test_registry(kronos_hub, workspace)).sync("kronos-a")
    assert result.artifact_id == f"hf--TestOrg--Kronos-a--{commit}"
    assert result.manifest.resolved_revision == commit
    assert result.manifest.source == f"hf://TestOrg/Kronos-a@{commit}"


def test_branch_revision_is_recorded_as_its_commit_and_follows_the_branch(kronos_hub, workspace):
    repo = kronos_hub.repos["TestOrg/Kronos-b"]
    registry = Registry(write_test_registry(kronos_hub, workspace))
    before = repo.rev_parse("main")

    first = registry.sync("kronos-b")
    manifest = json.loads((first.path / MANIFEST_NAME).read_text())
    ref = json.loads((registry.store.ref_path("kronos-b", registry.get("kronos-b").registry)).read_text())
    assert manifest["resolved_revision"] == before and manifest["source"] == "hf://TestOrg/Kronos-b@main"
    assert ref["resolved_revision"] == before and ref["artifact_id"] == first.artifact_id
    assert first.artifact_id.endswith(before)

    # Retrained on the hub: main moves; the next sync records the new commit beside the old one.
    retrained = model_checkpoint(workspace / "retrained", seed=9)
    after = repo.commit({n: (retrained / n).read_bytes() for n in FILES}, "retrained")
    second = registry.sync("kronos-b")
    assert second.fetched and second.manifest.resolved_revision == after != before
    assert registry.store.get_ref("kronos-b", registry.get("kronos-b").registry).resolved_revision == after
    assert registry.store.has(first.artifact_id) and registry.store.has(second.artifact_id)


def test_dead_first_endpoint_falls_back_to_the_mirror(kronos_hub, workspace, monkeypatch):
    dead = dead_endpoint()
    monkeypatch.setenv("HF_ENDPOINT", dead)
    registry_path = write_test_registry(kronos_hub, workspace, mirrors=(kronos_hub.server.url,))
    started = time.monotonic()
    result = Registry(registry_path).sync("kronos-a")
    elapsed = time.monotonic() - started

    assert result.fetched and result.manifest.endpoint == kronos_hub.server.url
    assert result.tokenizer.manifest.endpoint == kronos_hub.server.url
    assert elapsed < 15, f"fallback took {elapsed:.1f} s: a refused connection must fail fast"


@pytest.mark.parametrize("name, error_class, words", [
    ("no-such-repo", RepoNotFoundError, ("TestOrg/Does-not-exist", "main")),
    ("no-such-commit", RevisionNotFoundError, ("TestOrg/Kronos-a", UNKNOWN_COMMIT)),
    ("no-such-branch", RevisionNotFoundError, ("TestOrg/Kronos-a", "no-such-branch")),
])
def test_unknown_repo_or_revision_is_named_and_nothing_is_stored(kronos_hub, workspace, name, error_class, words):
    registry = Registry(write_test_registry(kronos_hub, workspace))
    registry.sync("tok-base")
    before = tree_digest(workspace / "store")

    with pytest.raises(error_class) as caught:
        registry.sync(name)
    assert isinstance(caught.value, SourceError) and caught.value.exit_code == 5
    for word in words:
        assert word in str(caught.value)
    assert tree_digest(workspace / "store") == before


def test_cli_exit_code_5_names_the_unknown_repo_and_revision(kronos_hub, workspace):
    registry_path = write_test_registry(kronos_hub, workspace)
    env = isolated_env(workspace, kronos_hub.server.url)
    done = run_cli(["--registry", str(registry_path), "sync", "no-such-repo", "no-such-branch"], env, workspace)

    assert done.returncode == 5, done.stderr
    assert "TestOrg/Does-not-exist" in done.stderr
    assert "no-such-branch" in done.stderr and "TestOrg/Kronos-a" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_tokenizer_2k_files_with_kronos_small_are_refused(kronos_hub, workspace):
    registry = Registry(write_test_registry(kronos_hub, workspace))
    registry.sync("tok-2k")
    before = tree_digest(workspace / "store")

    with pytest.raises(VerificationError) as caught:
        registry.sync("small-with-2k")
    message = str(caught.value)
    assert "NeoQuasar/Kronos-small" in message and "group_size" in message and "tok-2k" in message
    assert tree_digest(workspace / "store") == before  # nothing published, nothing left behind
    with pytest.raises(VerificationError):
        load_predictor("small-with-2k", registry=workspace / "models.yaml")
