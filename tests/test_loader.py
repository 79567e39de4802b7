"""Loader: entry -> verified object, atomically, once, under a lock; locate, verify, offline."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import attrs
import pytest
import torch
from safetensors.torch import save_file

from registry import sources
from registry.checks import generic_checks
from registry.errors import LockTimeoutError, NotSyncedError, SourceError, VerificationError
from registry.loader import Loader
from registry.sources import RemoteFile
from registry.spec import Entry, HfSource, LocalSource, Location, RegistrySpec
from registry.store import MANIFEST_NAME, Store
from tests.support.trees import tree_digest

ROOT = Path(__file__).resolve().parents[1]
COMMIT = "26966d0035065a0cae0ebad7af8ece35bc1fb51c"


def make_checkpoint(folder: Path, seed: int = 0, **config) -> Path:
    """A tiny checkpoint: two small tensors and a config.json, like a hub repo holds."""
    folder.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(seed)
    save_file({"embed.weight": torch.randn(8, 4, generator=generator),
               "head.bias": torch.randn(3, generator=generator)}, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({"d_model": 4, "seed": seed, **config}))
    (folder / "README.md").write_text("not fetched: not among the entry's files\n")
    return folder


def local_entry(name: str, folder: Path, kind: str = "model", **fields) -> Entry:
    return Entry(name=name, kind=kind, source=LocalSource(folder), origin=Location("test.yaml", 1, 1), **fields)


def make_spec(*entries: Entry) -> RegistrySpec:
    return RegistrySpec(schema=1, paths=("test.yaml",),
                        tokenizers={e.name: e for e in entries if e.kind == "tokenizer"},
                        models={e.name: e for e in entries if e.kind == "model"})


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "store")


# --- sync from a local folder -----------------------------------------------------------------

def test_sync_local_folder_publishes_a_full_manifest_then_reuses_it(tmp_path: Path, store: Store):
    folder = make_checkpoint(tmp_path / "ckpt")
    loader = Loader(make_spec(local_entry("mine", folder)), store, offline=False)

    first = loader.sync("mine")
    assert first.fetched and first.report.ok
    assert first.path == store.object_dir(first.artifact_id) and first.artifact_id.startswith("local--mine--")
    manifest = json.loads((first.path / MANIFEST_NAME).read_text())
    assert manifest["tool"].startswith("kronos-registry ") and manifest["kind"] == "model"
    assert manifest["source"] == str(folder) and manifest["resolved_revision"] is None
    assert {f["name"]: (f["size"], f["sha256"]) for f in manifest["files"]} == {
        name: ((folder / name).stat().st_size, hashlib.sha256((folder / name).read_bytes()).hexdigest())
        for name in ("config.json", "model.safetensors")
    }
    assert set(manifest["checks"]) >= {"required-files", "sha256-pins", "safetensors-header", "size-and-sha256"}
    assert sorted(p.name for p in first.path.iterdir()) == ["MANIFEST.json", "config.json", "model.safetensors"]
    # The object holds private copies: saving over the user's folder cannot change it.
    assert (first.path / "model.safetensors").stat().st_nlink == 1

    second = loader.sync("mine")
    assert not second.fetched and second.artifact_id == first.artifact_id and second.report is None
    assert store.list_artifacts() == [first.artifact_id]
    assert loader.status("mine") == first.artifact_id

    forced = loader.sync("mine", force=True)  # fetched and verified again, same content, same id
    assert forced.fetched and forced.artifact_id == first.artifact_id
    assert store.list_artifacts() == [first.artifact_id] and list(store.trash_dir.iterdir()) == []


def test_a_changed_folder_gets_a_new_object_the_ref_moves_and_gc_drops_the_old(tmp_path: Path, store: Store):
    folder = make_checkpoint(tmp_path / "ckpt", seed=1)
    loader = Loader(make_spec(local_entry("mine", folder)), store, offline=False)
    old = loader.sync("mine").artifact_id

    make_checkpoint(folder, seed=2)  # retrained in place
    assert loader.status("mine") is None  # the ref no longer describes the folder
    assert "changed since it was synced" in "\n".join(map(str, loader.verify("mine").warnings))
    new = loader.locate("mine")  # a local folder needs no network: locate syncs it
    assert new.fetched and new.artifact_id != old
    assert store.get_ref("mine").artifact_id == new.artifact_id
    assert sorted(store.list_artifacts()) == sorted([old, new.artifact_id])

    assert store.gc().objects == (old,)
    assert store.list_artifacts() == [new.artifact_id]
    assert loader.locate("mine", sync_missing=False).artifact_id == new.artifact_id


def test_a_shared_tokenizer_is_stored_once(tmp_path: Path, store: Store):
    tokenizer = local_entry("tok", make_checkpoint(tmp_path / "tok", seed=9), kind="tokenizer")
    a = local_entry("model-a", make_checkpoint(tmp_path / "a", seed=1), tokenizer="tok")
    b = local_entry("model-b", make_checkpoint(tmp_path / "b", seed=2), tokenizer="tok")
    seen = []

    def spy(entry):  # the model's checks get the verified tokenizer folder
        checks = generic_checks(entry)
        if entry.kind == "model":
            @attrs.frozen
            class SeeTokenizer:
                name: str = "see-tokenizer"

                def run(self, ctx):
                    seen.append((ctx.entry.name, ctx.related["tokenizer"], ctx.related_entries["tokenizer"].name))
                    return []
            checks.append(SeeTokenizer())
        return checks

    loader = Loader(make_spec(tokenizer, a, b), store, checks=spy, offline=False)
    first, second = loader.sync("model-a"), loader.sync("model-b")
    assert first.tokenizer.fetched and not second.tokenizer.fetched
    assert first.tokenizer.artifact_id == second.tokenizer.artifact_id
    tokenizer_objects = [a for a in store.list_artifacts() if a.startswith("local--tok--")]
    assert tokenizer_objects == [first.tokenizer.artifact_id]
    assert len(store.list_artifacts()) == 3
    assert seen == [("model-a", first.tokenizer.path, "tok"), ("model-b", first.tokenizer.path, "tok")]


# --- failures leave the store as it was --------------------------------------------------------

def test_a_failure_between_fetch_and_publish_leaves_no_object_no_ref_and_no_lock(tmp_path, store, monkeypatch):
    folder = make_checkpoint(tmp_path / "ckpt")
    loader = Loader(make_spec(local_entry("mine", folder)), store, offline=False)
    artifact_id = loader.artifact_id("mine")

    def crash(*args, **kwargs):
        raise RuntimeError("killed between fetch and publish")

    monkeypatch.setattr(Store, "publish", crash)
    with pytest.raises(RuntimeError):
        loader.sync("mine")
    assert store.list_artifacts() == [] and not store.has(artifact_id)
    assert store.get_ref("mine") is None and loader.status("mine") is None
    with store.lock(artifact_id, timeout=0):
        pass  # not held
    assert store.staging_dir(artifact_id).is_dir()  # kept, to resume

    monkeypatch.undo()
    again = loader.sync("mine")
    assert again.fetched and again.artifact_id == artifact_id
    assert not store.staging_dir(artifact_id).exists()


def test_verification_failure_lists_every_problem_and_changes_nothing(tmp_path: Path, store: Store):
    good = local_entry("good", make_checkpoint(tmp_path / "good"))
    folder = make_checkpoint(tmp_path / "bad")
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[:-7])  # truncated
    bad = local_entry("bad", folder, files=("config.json", "model.safetensors", "extra.json"),
                      sha256={"config.json": "0" * 64})
    loader = Loader(make_spec(good, bad), store, offline=False)
    loader.sync("good")  # a store with content, whose bytes must not change
    before = tree_digest(store.root)

    with pytest.raises(VerificationError) as caught:
        loader.sync("bad")
    problems = caught.value.problems
    assert {p.file for p in problems if p.is_error} == {"extra.json", "config.json", "model.safetensors"}
    text = str(caught.value)
    assert "extra.json is missing" in text and "sha256 mismatch" in text and "truncated" in text
    assert tree_digest(store.root) == before
    assert loader.status("bad") is None


def test_a_hub_hash_that_disagrees_is_a_verification_problem(tmp_path, store, monkeypatch):
    folder = make_checkpoint(tmp_path / "ckpt")
    resolve = sources.resolve

    def lying_resolve(source, endpoints, *, offline):
        resolved = resolve(source, endpoints, offline=offline)
        files = tuple(attrs.evolve(f, sha256="f" * 64) if f.name == "model.safetensors" else f
                      for f in resolved.files)
        return attrs.evolve(resolved, files=files)

    monkeypatch.setattr(sources, "resolve", lying_resolve)
    loader = Loader(make_spec(local_entry("mine", folder)), store, offline=False)
    with pytest.raises(VerificationError) as caught:
        loader.sync("mine")
    assert [p.field for p in caught.value.problems] == ["sha256"]
    assert store.list_artifacts() == []


# --- integrity of what is stored ---------------------------------------------------------------

def test_cheap_check_on_locate_and_deep_verify(tmp_path: Path, store: Store):
    loader = Loader(make_spec(local_entry("mine", make_checkpoint(tmp_path / "ckpt"))), store, offline=False)
    synced = loader.sync("mine")
    weights = synced.path / "model.safetensors"
    original = weights.read_bytes()

    # Same-size corruption: invisible to the cheap check, caught by the deep one.
    weights.write_bytes(original[:-1] + bytes([original[-1] ^ 0xFF]))
    assert loader.verify("mine").ok
    deep = loader.verify("mine", deep=True)
    assert not deep.ok and [p.field for p in deep.errors] == ["sha256"]
    assert "store-deep-hash" in deep.checks_run

    # Truncation: the cheap check on load refuses it, and sync repairs it.
    weights.write_bytes(original[:100])
    with pytest.raises(VerificationError) as caught:
        loader.locate("mine", sync_missing=False)
    assert "model.safetensors is 100 bytes" in str(caught.value)
    assert not loader.verify("mine").ok
    repaired = loader.locate("mine")
    assert repaired.fetched and repaired.artifact_id == synced.artifact_id
    assert (repaired.path / "model.safetensors").read_bytes() == original
    assert loader.verify("mine", deep=True).ok


def test_a_crashed_syncs_leftover_staging_is_resumed_never_published_as_is(tmp_path: Path, store: Store):
    folder = make_checkpoint(tmp_path / "ckpt")
    loader = Loader(make_spec(local_entry("mine", folder)), store, offline=False)
    artifact_id = loader.artifact_id("mine")
    staging = store.staging(artifact_id)  # as a kill -9 mid-copy leaves it
    (staging / "model.safetensors").write_bytes((folder / "model.safetensors").read_bytes()[:50])
    (staging / ".model.safetensors.123.partial").write_bytes(b"half")
    (staging / MANIFEST_NAME).write_text("{}")
    assert not store.has(artifact_id) and store.list_artifacts() == []
    with pytest.raises(NotSyncedError):
        loader.locate("mine", sync_missing=False)

    result = loader.sync("mine")
    assert result.fetched and store.check(artifact_id, deep=True) == []
    assert sorted(p.name for p in result.path.iterdir()) == ["MANIFEST.json", "config.json", "model.safetensors"]
    assert not staging.exists()


# --- concurrency ------------------------------------------------------------------------------

CHILD = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    from registry.checks import generic_checks
    from registry.loader import Loader
    from registry.spec import Entry, LocalSource, Location, RegistrySpec
    from registry.store import Store

    store_root, folder, go, hold = sys.argv[1], sys.argv[2], Path(sys.argv[3]), float(sys.argv[4])

    class Slow:  # keeps the first syncer inside the lock long enough for the other to queue
        name = "slow"
        def run(self, ctx):
            time.sleep(hold)
            return []

    entry = Entry(name="shared", kind="model", source=LocalSource(Path(folder)), origin=Location("t"))
    spec = RegistrySpec(schema=1, paths=("t",), tokenizers={}, models={"shared": entry})
    waited = []
    loader = Loader(spec, Store(store_root), checks=lambda e: [*generic_checks(e), Slow()], offline=False,
                    on_wait=waited.append)
    while not go.exists():
        time.sleep(0.01)
    result = loader.sync("shared")
    print(json.dumps({"fetched": result.fetched, "id": result.artifact_id, "waited": len(waited)}))
""")


def test_two_processes_syncing_one_artifact_fetch_it_once(tmp_path: Path, store: Store):
    folder = make_checkpoint(tmp_path / "ckpt")
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    children = [subprocess.Popen([sys.executable, "-c", CHILD, str(store.root), str(folder), str(go), "1.0"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
                for _ in range(2)]
    time.sleep(0.5)
    go.touch()  # both start together
    results = []
    for child in children:
        out, err = child.communicate(timeout=60)
        assert child.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert sorted(r["fetched"] for r in results) == [False, True], results
    assert results[0]["id"] == results[1]["id"]
    assert store.list_artifacts() == [results[0]["id"]]
    assert list(store.staging_root.iterdir()) == []


def test_waiting_for_a_busy_lock_is_announced_once(tmp_path: Path, store: Store):
    loader_waits = []
    loader = Loader(make_spec(local_entry("mine", make_checkpoint(tmp_path / "ckpt"))), store,
                    offline=False, on_wait=loader_waits.append, lock_timeout=10)
    artifact_id = loader.artifact_id("mine")
    held = threading.Event()

    def hold():
        with store.lock(artifact_id):
            held.set()
            time.sleep(0.5)

    thread = threading.Thread(target=hold)
    thread.start()
    assert held.wait(5)
    assert loader.sync("mine").fetched
    thread.join()
    assert [(w.entry, w.artifact_id) for w in loader_waits] == [("mine", artifact_id)]


HOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from registry.store import Store
    with Store(sys.argv[1]).lock(sys.argv[2]):
        Path(sys.argv[3]).touch()
        time.sleep(30)
""")


def test_lock_timeout_names_the_artifact_and_lock(tmp_path: Path, store: Store):
    loader = Loader(make_spec(local_entry("mine", make_checkpoint(tmp_path / "ckpt"))), store,
                    offline=False, lock_timeout=0.5)
    artifact_id = loader.artifact_id("mine")
    ready = tmp_path / "ready"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(store.root), artifact_id, str(ready)],
                              env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT)
    try:
        deadline = time.monotonic() + 30
        while not ready.exists():
            assert time.monotonic() < deadline and holder.poll() is None, "lock holder did not start"
            time.sleep(0.02)
        started = time.monotonic()
        with pytest.raises(LockTimeoutError) as caught:
            loader.sync("mine")
        assert time.monotonic() - started < 1.5
    finally:
        holder.kill()
        holder.wait()
    assert caught.value.artifact == artifact_id
    assert caught.value.lock_path == str(store.lock_path(artifact_id))
    assert artifact_id in str(caught.value) and str(store.lock_path(artifact_id)) in str(caught.value)
    assert store.list_artifacts() == []


# --- offline and hub sources (hub calls faked; the olah tests cover the real transport) -------

def test_offline_locate_of_an_unsynced_hub_entry_says_how_to_sync_and_connects_nowhere(tmp_path, store, no_sockets,
                                                                                        monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hf-cache"))
    entry = Entry(name="kronos-mini", kind="model", source=HfSource("NeoQuasar/Kronos-mini", COMMIT),
                  origin=Location("test.yaml", 1, 1))
    branch = Entry(name="kronos-base", kind="model", source=HfSource("NeoQuasar/Kronos-base", "main"),
                   origin=Location("test.yaml", 2, 1))
    loader = Loader(make_spec(entry, branch), store, env={"KRONOS_REGISTRY_OFFLINE": "1"})
    assert loader.offline
    for name in ("kronos-mini", "kronos-base"):
        with pytest.raises(NotSyncedError) as caught:
            loader.locate(name)
        text = str(caught.value)
        assert f"kronos-registry sync {name}" in text and "kronos-registry import" in text
        assert str(store.root) in text
        assert "Hugging Face cache at" in text  # looked in the HF cache only
        assert caught.value.__cause__ is None and caught.value.__suppress_context__  # one clean error
        assert loader.status(name) is None
    assert no_sockets == []
    assert store.list_artifacts() == []


def test_offline_locate_of_an_unsynced_local_entry_without_sync(tmp_path, store, no_sockets):
    loader = Loader(make_spec(local_entry("mine", make_checkpoint(tmp_path / "ckpt"))), store, offline=True)
    with pytest.raises(NotSyncedError) as caught:
        loader.locate("mine", sync_missing=False)
    assert "kronos-registry sync mine" in str(caught.value)
    assert loader.locate("mine").fetched  # a local folder syncs offline
    assert no_sockets == []


def fake_hub(monkeypatch, folder: Path, commit: str, calls: list):
    """Serve ``folder`` as an hf:// repo whose branch points at ``commit`` (no network)."""

    def resolve(source, endpoints, *, offline):
        calls.append(("resolve", str(source)))
        if isinstance(source, LocalSource):
            raise AssertionError("only hub sources here")
        files = tuple(RemoteFile(p.name, p.stat().st_size, hashlib.sha256(p.read_bytes()).hexdigest())
                      for p in sorted(folder.iterdir()))
        return sources.ResolvedSource(source=source, revision=commit, endpoint="https://user:pw@hub.example",
                                      files=files)

    def fetch(resolved, names, dest, endpoints, *, offline, progress=False):
        calls.append(("fetch", tuple(names)))
        for name in names:
            shutil.copyfile(folder / name, dest / name)
        return {name: dest / name for name in names}

    monkeypatch.setattr(sources, "resolve", resolve)
    monkeypatch.setattr(sources, "fetch", fetch)


def test_a_branch_is_recorded_as_its_commit_and_found_offline_after(tmp_path, store, monkeypatch):
    folder = make_checkpoint(tmp_path / "repo")
    calls = []
    fake_hub(monkeypatch, folder, COMMIT, calls)
    entry = Entry(name="kronos-base", kind="model", source=HfSource("NeoQuasar/Kronos-base", "main"),
                  origin=Location("test.yaml", 1, 1))
    monkeypatch.setenv("HF_TOKEN", "hf_secret_token_value")
    result = Loader(make_spec(entry), store, offline=False).sync("kronos-base")
    assert result.artifact_id == f"hf--NeoQuasar--Kronos-base--{COMMIT}"
    assert result.manifest.resolved_revision == COMMIT and result.manifest.source == "hf://NeoQuasar/Kronos-base@main"
    assert result.manifest.endpoint == "https://hub.example"  # credentials stripped
    assert store.get_ref("kronos-base").resolved_revision == COMMIT
    assert ("fetch", ("config.json", "model.safetensors")) in calls  # README.md not fetched
    for path in store.root.rglob("*"):
        if path.is_file():
            assert b"hf_secret_token_value" not in path.read_bytes() and b"pw@" not in path.read_bytes()

    calls.clear()
    offline = Loader(make_spec(entry), store, offline=True)
    assert offline.locate("kronos-base").artifact_id == result.artifact_id
    assert offline.status("kronos-base") == result.artifact_id
    assert calls == []  # found through the ref, no resolve


def test_a_pinned_stored_entry_syncs_without_any_hub_call(tmp_path, store, monkeypatch, no_sockets):
    folder = make_checkpoint(tmp_path / "repo")
    calls = []
    fake_hub(monkeypatch, folder, COMMIT, calls)
    entry = Entry(name="kronos-mini", kind="model", source=HfSource("NeoQuasar/Kronos-mini", COMMIT),
                  origin=Location("test.yaml", 1, 1))
    loader = Loader(make_spec(entry), store, offline=False)
    assert loader.sync("kronos-mini").fetched
    calls.clear()
    again = loader.sync("kronos-mini")
    assert not again.fetched and calls == []
    assert loader.verify("kronos-mini", deep=True).ok


def test_a_model_whose_tokenizer_fails_is_not_synced(tmp_path: Path, store: Store):
    tok_folder = make_checkpoint(tmp_path / "tok")
    (tok_folder / "config.json").unlink()
    tokenizer = local_entry("tok", tok_folder, kind="tokenizer")
    model = local_entry("m", make_checkpoint(tmp_path / "m"), tokenizer="tok")
    with pytest.raises(VerificationError) as caught:
        Loader(make_spec(tokenizer, model), store, offline=False).sync("m")
    assert "'tok'" in str(caught.value)
    assert store.list_artifacts() == []


def test_a_missing_local_folder_is_a_source_error(tmp_path: Path, store: Store):
    loader = Loader(make_spec(local_entry("mine", tmp_path / "nowhere")), store, offline=False)
    with pytest.raises(SourceError):
        loader.sync("mine")


def test_a_forced_sync_that_fails_keeps_the_good_copy(tmp_path: Path, store: Store, monkeypatch):
    folder = make_checkpoint(tmp_path / "ckpt")
    loader = Loader(make_spec(local_entry("mine", folder)), store, checks=generic_checks)
    first = loader.sync("mine")

    def broken_fetch(*args, **kwargs):
        raise SourceError("the source went away mid-fetch")

    monkeypatch.setattr(sources, "fetch", broken_fetch)
    with pytest.raises(SourceError):
        loader.sync("mine", force=True)  # same content id: the stored copy is the one at stake
    assert store.check(first.artifact_id, deep=True) == []
    assert store.get_ref("mine").artifact_id == first.artifact_id
