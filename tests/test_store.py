"""The store on its own: ids, manifests, atomic publish, integrity checks, refs, locks, gc."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import threading
import time
from pathlib import Path

import pytest

from registry.errors import InputDataError, LockTimeoutError
from registry.store import (
    MANIFEST_NAME,
    FileRecord,
    Manifest,
    Ref,
    Store,
    default_store_root,
    hf_artifact_id,
    local_artifact_id,
    validate_id,
)
from tests.support.cli import SAMPLE_CSV, Cli
from tests.support.kronos_checkpoints import model_checkpoint, tokenizer_checkpoint
from tests.support.mirror import publish_checkpoint
from tests.support.olah import require_olah, running_olah
from tests.support.registry_files import model_keys, registry_yaml, tokenizer_keys
from tests.support.trees import tree_digest

COMMIT = "0e0117387f39004a9016484a186a908917e22426"


def stage_files(store: Store, artifact_id: str, files: dict[str, bytes]) -> tuple[Path, Manifest]:
    """A staging folder holding ``files`` and the manifest that describes them."""
    staging = store.staging(artifact_id)
    records = []
    for name, data in files.items():
        (staging / name).parent.mkdir(parents=True, exist_ok=True)
        (staging / name).write_bytes(data)
        records.append(FileRecord(name, len(data), hashlib.sha256(data).hexdigest()))
    manifest = Manifest(artifact_id=artifact_id, kind="model", entry="m", source="/src/m",
                        resolved_revision=None, files=tuple(records), checks=("required-files",))
    return staging, manifest


def publish(store: Store, artifact_id: str, files: dict[str, bytes] | None = None) -> Path:
    files = files or {"config.json": b'{"d": 1}', "model.safetensors": b"x" * 64}
    staging, manifest = stage_files(store, artifact_id, files)
    assert store.publish(artifact_id, staging, manifest)
    return store.object_dir(artifact_id)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "store")


# --- ids and roots ----------------------------------------------------------------------------

def test_hf_ids_are_deterministic_and_safe():
    assert hf_artifact_id("NeoQuasar/Kronos-Tokenizer-base", COMMIT) == \
        f"hf--NeoQuasar--Kronos-Tokenizer-base--{COMMIT}"
    assert hf_artifact_id("org/data", COMMIT, "dataset").startswith("hf-dataset--org--data--")


def test_local_ids_address_content():
    a = local_artifact_id("my-model", {"config.json": "aa", "model.safetensors": "bb"})
    assert a == local_artifact_id("my-model", {"model.safetensors": "bb", "config.json": "aa"})
    assert a != local_artifact_id("my-model", {"config.json": "aa", "model.safetensors": "bc"})
    assert a.startswith("local--my-model--") and len(a.rsplit("--", 1)[1]) == 16
    # An entry name with unsafe characters still gives one safe folder name.
    odd = local_artifact_id("../we/ird name", {"x": "1"})
    assert "/" not in odd and ".." not in odd
    validate_id(odd)


@pytest.mark.parametrize("bad", ["", "../x", "a/b", ".hidden", "a..b", "x y", "/abs"])
def test_unsafe_ids_are_refused(store: Store, bad: str):
    with pytest.raises(InputDataError):
        store.object_dir(bad)


def test_default_store_root_order(tmp_path: Path):
    env = {"HOME": str(tmp_path / "home"), "XDG_CACHE_HOME": str(tmp_path / "xdg"),
           "KRONOS_REGISTRY_HOME": str(tmp_path / "krh")}
    assert default_store_root(tmp_path / "explicit", env) == tmp_path / "explicit"
    assert default_store_root(None, env) == tmp_path / "krh"
    del env["KRONOS_REGISTRY_HOME"]
    assert default_store_root(None, env) == tmp_path / "xdg" / "kronos-registry"
    del env["XDG_CACHE_HOME"]
    assert default_store_root(None, env) == tmp_path / "home" / ".cache" / "kronos-registry"


# --- manifest and publish ---------------------------------------------------------------------

def test_manifest_round_trips_and_carries_the_tool_version():
    manifest = Manifest(artifact_id="local--m--0123456789abcdef", kind="tokenizer", entry="m",
                        source="/src", resolved_revision=COMMIT,
                        files=(FileRecord("config.json", 3, "ab" * 32),), warnings=("w",))
    again = Manifest.from_json(manifest.to_json())
    assert again == manifest
    assert again.tool.startswith("kronos-registry ") and again.created_at.endswith("+00:00")
    with pytest.raises(ValueError):
        Manifest.from_json('{"artifact_id": "x"}')


def test_manifest_redacts_a_token_from_the_environment(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_supersecret_value")
    manifest = Manifest(artifact_id="a", kind="model", entry="m", source="hf_supersecret_value",
                        resolved_revision=None, files=())
    assert "hf_supersecret_value" not in manifest.to_json()


def test_publish_is_one_rename_and_existing_objects_win(store: Store):
    folder = publish(store, "local--m--0000000000000001")
    assert store.has("local--m--0000000000000001")
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    assert {f["name"] for f in manifest["files"]} == {"config.json", "model.safetensors"}
    assert not store.staging_dir("local--m--0000000000000001").exists()
    assert store.list_artifacts() == ["local--m--0000000000000001"]

    # A second publish of the same id keeps the published copy and drops the new staging.
    staging, other = stage_files(store, "local--m--0000000000000001", {"config.json": b"other"})
    assert store.publish("local--m--0000000000000001", staging, other) is False
    assert not staging.exists()
    assert (folder / "config.json").read_bytes() == b'{"d": 1}'


def test_staging_is_never_an_object(store: Store):
    stage_files(store, "local--m--0000000000000002", {"config.json": b"{}"})
    assert not store.has("local--m--0000000000000002")
    assert store.list_artifacts() == []
    assert store.check("local--m--0000000000000002")  # "not in the store"


def test_published_files_are_never_world_writable(store: Store):
    staging, manifest = stage_files(store, "local--m--0000000000000003", {"config.json": b"{}"})
    os.chmod(staging / "config.json", 0o666)
    store.publish("local--m--0000000000000003", staging, manifest)
    for path in [store.root, *store.root.rglob("*")]:
        assert not path.stat().st_mode & stat.S_IWOTH, path


# --- integrity checks -------------------------------------------------------------------------

def test_cheap_check_catches_truncation_missing_and_extra_files(store: Store):
    folder = publish(store, "local--m--0000000000000004")
    assert store.check("local--m--0000000000000004") == []
    with open(folder / "model.safetensors", "r+b") as handle:
        handle.truncate(10)
    (folder / "stray.txt").write_text("?")
    (folder / "config.json").unlink()
    problems = store.check("local--m--0000000000000004")
    text = "\n".join(map(str, problems))
    assert "model.safetensors is 10 bytes, the manifest says 64" in text
    assert "config.json is listed in the manifest but missing" in text
    assert "stray.txt is in the artifact folder but not in its manifest" in text
    assert all(p.is_error and p.hint for p in problems)


def test_deep_check_catches_same_size_corruption_the_cheap_one_misses(store: Store):
    folder = publish(store, "local--m--0000000000000005")
    with open(folder / "model.safetensors", "r+b") as handle:
        handle.seek(20)
        handle.write(b"y")
    assert store.check("local--m--0000000000000005") == []
    deep = store.check("local--m--0000000000000005", deep=True)
    assert len(deep) == 1 and deep[0].file == "model.safetensors" and deep[0].field == "sha256"


def test_unreadable_manifest_is_a_problem(store: Store):
    folder = publish(store, "local--m--0000000000000006")
    (folder / MANIFEST_NAME).write_text("{not json")
    problems = store.check("local--m--0000000000000006")
    assert len(problems) == 1 and problems[0].file == MANIFEST_NAME


# --- refs -------------------------------------------------------------------------------------

def test_refs_are_replaced_atomically(store: Store):
    assert store.get_ref("kronos-small") is None
    store.set_ref(Ref(entry="kronos-small", artifact_id="local--a--0000000000000001", source="/a"))
    store.set_ref(Ref(entry="kronos-small", artifact_id="local--a--0000000000000002", source="/a",
                      resolved_revision=COMMIT))
    ref = store.get_ref("kronos-small")
    assert ref.artifact_id == "local--a--0000000000000002" and ref.resolved_revision == COMMIT
    assert [p.name for p in store.refs_dir.iterdir()] == ["kronos-small.json"]  # no temp files left
    assert set(store.refs()) == {"kronos-small"}
    assert store.remove_ref("kronos-small") and store.get_ref("kronos-small") is None


def test_a_damaged_ref_reads_as_absent(store: Store):
    store.refs_dir.mkdir(parents=True)
    store.ref_path("x").write_text('{"entry": "x", "artifact_id": "../../etc", "source": "s"}')
    assert store.get_ref("x") is None and store.refs() == {}


def test_refs_of_two_registry_files_never_collide_and_gc_keeps_both(store: Store, tmp_path):
    # Two projects share the store, each with a models.yaml defining "my-finetune".
    project_a, project_b = str(tmp_path / "a" / "models.yaml"), str(tmp_path / "b" / "models.yaml")
    object_a, object_b = "hf--Org--Tuned--" + COMMIT, "local--my-finetune--0000000000000001"
    for artifact_id in (object_a, object_b):
        publish(store, artifact_id)
    store.set_ref(Ref(entry="my-finetune", artifact_id=object_a, source=f"hf://Org/Tuned@{COMMIT}",
                      registry=project_a))
    store.set_ref(Ref(entry="my-finetune", artifact_id=object_b, source="/b/ckpt", registry=project_b))

    assert store.get_ref("my-finetune", project_a).artifact_id == object_a
    assert store.get_ref("my-finetune", project_b).artifact_id == object_b
    # The ref records its registry file, and sits in that file's own folder under refs/.
    recorded = json.loads(store.ref_path("my-finetune", project_a).read_text())
    assert recorded["registry"] == project_a
    assert store.ref_path("my-finetune", project_a).parent != store.ref_path("my-finetune", project_b).parent
    assert store.ref_path("my-finetune", "packaged").parent.name == "packaged"
    assert store.gc().objects == ()
    assert store.list_artifacts() == sorted([object_a, object_b])
    assert len(store.refs()) == 2


def test_a_legacy_flat_ref_protects_its_object_and_is_read_as_a_fallback(store: Store, tmp_path):
    legacy = "local--old--0000000000000001"
    publish(store, legacy)
    publish(store, "local--junk--0000000000000001")
    store.refs_dir.mkdir(parents=True, exist_ok=True)
    # A ref as older versions wrote it: flat, no registry recorded.
    (store.refs_dir / "old.json").write_text(json.dumps({"entry": "old", "artifact_id": legacy, "source": "/old"}))
    registry = str(tmp_path / "models.yaml")
    assert store.get_ref("old", registry).artifact_id == legacy  # read until this registry syncs it
    assert store.get_ref("old", registry, legacy=False) is None
    assert store.gc().objects == ("local--junk--0000000000000001",)
    assert store.list_artifacts() == [legacy]


@pytest.fixture(scope="module")
def shared_hub(tmp_path_factory):
    """olah serving a tokenizer and a fine-tuned model; yields (url, tokenizer commit, model commit)."""
    require_olah()
    root = tmp_path_factory.mktemp("shared-store-hub")
    _, tok = publish_checkpoint(root / "mirrors", "ShareOrg/Tokenizer", tokenizer_checkpoint(root / "t"))
    _, mod = publish_checkpoint(root / "mirrors", "ShareOrg/Tuned", model_checkpoint(root / "m", seed=3))
    with running_olah(root / "mirrors", root / "olah") as server:
        yield server.url, tok, mod


def test_two_projects_sharing_a_store_keep_their_own_entry_of_the_same_name(shared_hub, tmp_path):
    # Project A's my-finetune is a pinned hub repo, project B's a local folder; one store.
    url, tok, mod = shared_hub
    store = tmp_path / "shared-store"
    tokenizers = {"tok": tokenizer_keys(f"hf://ShareOrg/Tokenizer@{tok}")}
    a_file, b_file = tmp_path / "project-a" / "models.yaml", tmp_path / "project-b" / "models.yaml"
    a_file.parent.mkdir()
    a_file.write_text(registry_yaml(tokenizers, {"my-finetune": model_keys(f"hf://ShareOrg/Tuned@{mod}", "tok")}))
    model_checkpoint(b_file.parent / "ckpt", seed=5)
    b_file.write_text(registry_yaml(tokenizers, {"my-finetune": model_keys("./ckpt", "tok")}))
    env = {"HF_ENDPOINT": url, "NO_PROXY": "127.0.0.1,localhost", "HF_HUB_DISABLE_TELEMETRY": "1"}
    a = Cli(tmp_path / "a-run", store=store, offline=False, env=env)
    b = Cli(tmp_path / "b-run", store=store, offline=False, env=env)
    a_object = hf_artifact_id("ShareOrg/Tuned", mod)

    for cli, registry, args in ((a, a_file, ("sync", "my-finetune")), (b, b_file, ("sync", "my-finetune")),
                                (b, b_file, ("gc",))):
        result = cli("--registry", registry, *args)
        assert result.code == 0, (args, result.output)

    assert Store(store).has(a_object), "B's gc deleted A's model"
    a_ref = Store(store).get_ref("my-finetune", os.path.realpath(a_file), legacy=False)
    assert a_ref is not None and a_ref.artifact_id == a_object, "B's sync overwrote A's ref"
    assert json.loads(Store(store).ref_path("my-finetune", os.path.realpath(a_file)).read_text())["registry"] \
        == os.path.realpath(a_file)
    # Both still predict offline, from the store alone (a fresh, empty Hugging Face cache).
    for name, registry in (("a", a_file), ("b", b_file)):
        offline = Cli(tmp_path / f"{name}-offline", store=store)
        result = offline("--registry", registry, "predict", "my-finetune", "-i", SAMPLE_CSV, "-n", "3")
        assert result.code == 0, (name, result.output)


# --- locks ------------------------------------------------------------------------------------

def hold_in_thread(store: Store, artifact_id: str, seconds: float) -> threading.Thread:
    held = threading.Event()

    def hold():
        with store.lock(artifact_id):
            held.set()
            time.sleep(seconds)

    thread = threading.Thread(target=hold)
    thread.start()
    assert held.wait(5)
    return thread


def test_lock_timeout_names_the_artifact_and_lock_file(store: Store):
    thread = hold_in_thread(store, "local--m--0000000000000007", 2.0)
    waits = []
    started = time.monotonic()
    with pytest.raises(LockTimeoutError) as caught:
        with store.lock("local--m--0000000000000007", timeout=0.3, on_wait=waits.append):
            pass
    assert time.monotonic() - started < 1.5
    assert "local--m--0000000000000007" in str(caught.value)
    assert str(store.lock_path("local--m--0000000000000007")) in str(caught.value)
    assert len(waits) == 1 and waits[0].artifact_id == "local--m--0000000000000007"
    thread.join()
    with store.lock("local--m--0000000000000007", timeout=0):
        pass  # free again once the holder is done


def test_a_free_lock_leaves_no_file(store: Store):
    with store.lock("local--m--0000000000000008", timeout=0) as path:
        assert path.exists()
    assert not path.exists()


# --- remove and gc ----------------------------------------------------------------------------

def test_remove_renames_away_then_deletes(store: Store):
    publish(store, "local--m--0000000000000009")
    assert store.remove("local--m--0000000000000009")
    assert not store.object_dir("local--m--0000000000000009").exists()
    assert list(store.trash_dir.iterdir()) == []
    assert store.remove("local--m--0000000000000009") is False


def test_gc_removes_only_what_nothing_needs(store: Store):
    kept_by_ref = "local--a--0000000000000001"
    kept_by_arg = "local--b--0000000000000001"
    garbage = "local--c--0000000000000001"
    for artifact_id in (kept_by_ref, kept_by_arg, garbage):
        publish(store, artifact_id)
    store.set_ref(Ref(entry="a", artifact_id=kept_by_ref, source="/a"))
    store.set_ref(Ref(entry="gone", artifact_id="local--d--0000000000000001", source="/d"))
    stage_files(store, "local--e--0000000000000001", {"config.json": b"{}"})  # a crashed sync
    stage_files(store, "local--f--0000000000000001", {"config.json": b"{}"})  # a running sync
    store.trash_dir.mkdir()
    (store.trash_dir / "old.1234").mkdir()
    store.locks_dir.mkdir(exist_ok=True)
    (store.locks_dir / "local--g--0000000000000001.lock").touch()  # left by an old filelock

    before = tree_digest(store.root)
    assert store.gc(keep=[kept_by_arg], dry_run=True).objects == (garbage,)
    assert tree_digest(store.root) == before

    holder = hold_in_thread(store, "local--f--0000000000000001", 1.0)
    result = store.gc(keep=[kept_by_arg])
    holder.join()
    assert result.objects == (garbage,)
    assert result.staging == ("local--e--0000000000000001",)
    assert result.refs == ("gone",)
    assert result.trash == ("old.1234",)
    assert "local--g--0000000000000001.lock" in result.locks
    assert store.list_artifacts() == sorted([kept_by_ref, kept_by_arg])
    assert store.staging_dir("local--f--0000000000000001").exists()  # its lock was held
    assert list(store.trash_dir.iterdir()) == []
    assert set(store.refs()) == {"a"}


# --- what a load reads: one open snapshot, checked cheaply -------------------------------------

def big_weights(size: int = (1 << 20) + 4096) -> bytes:
    """A safetensors-shaped file over 1 MiB: an 8-byte length, a JSON header, then data."""
    header = json.dumps({"w": {"dtype": "U8", "shape": [size], "data_offsets": [0, size]}}).encode()
    return len(header).to_bytes(8, "little") + header + bytes(range(256)) * (size // 256)


def test_publish_records_each_files_stat_and_the_head_of_large_files(store: Store):
    folder = publish(store, "local--m--00000000000000a1", {"config.json": b'{"d": 1}',
                                                           "model.safetensors": big_weights()})
    manifest = store.read_manifest("local--m--00000000000000a1")
    for record in manifest.files:
        info = (folder / record.name).stat()
        assert (record.mtime_ns, record.inode) == (info.st_mtime_ns, info.st_ino)
    assert manifest.file("config.json").head_sha256 is None  # small: hashed whole on every load
    data = (folder / "model.safetensors").read_bytes()
    header = 8 + int.from_bytes(data[:8], "little")
    assert manifest.file("model.safetensors").head_sha256 == hashlib.sha256(data[:header]).hexdigest()
    # a manifest written before these fields existed still reads
    old = json.loads((folder / MANIFEST_NAME).read_text())
    for record in old["files"]:
        del record["mtime_ns"], record["inode"], record["head_sha256"]
    assert Manifest.from_json(json.dumps(old)).file("config.json").mtime_ns is None


def test_a_snapshot_keeps_reading_the_copy_it_opened_while_another_process_replaces_or_removes_it(store: Store):
    from registry.errors import ObjectVanishedError
    from registry.store.snapshot import open_snapshot

    artifact = "local--m--00000000000000a2"
    publish(store, artifact, {"config.json": b'{"v": "old"}', "model.safetensors": b"o" * 64})
    with open_snapshot(store, artifact) as snapshot:
        staging, manifest = stage_files(store, artifact, {"config.json": b'{"v": "new"}',
                                                          "model.safetensors": b"n" * 64})
        assert store.publish(artifact, staging, manifest, replace=True)  # a repair: swapped in
        assert (store.object_dir(artifact) / "config.json").read_bytes() == b'{"v": "new"}'
        assert snapshot.read_bytes("config.json") == b'{"v": "old"}'
        assert store.remove(artifact)  # and now `rm`: the open files still read whole
        with open(snapshot.path("model.safetensors"), "rb") as handle:
            assert handle.read() == b"o" * 64
    assert not (store.root / "trash").exists() or not any((store.root / "trash").iterdir())
    with pytest.raises(ObjectVanishedError) as caught:
        with open_snapshot(store, artifact):
            pass
    assert caught.value.exit_code == 7 and artifact in str(caught.value)


@pytest.mark.parametrize("damage", ["small-file", "header", "data-with-new-mtime", "extra-bytes"])
def test_a_snapshot_refuses_same_size_damage_it_can_see_cheaply(store: Store, damage: str):
    from registry.errors import VerificationError
    from registry.store.snapshot import open_snapshot

    artifact = "local--m--00000000000000a3"
    folder = publish(store, artifact, {"config.json": b'{"d": 1}', "model.safetensors": big_weights()})
    target = folder / ("config.json" if damage == "small-file" else "model.safetensors")
    data = bytearray(target.read_bytes())
    info = target.stat()
    if damage == "extra-bytes":
        data += b"!"
    else:
        data[{"small-file": 2, "header": 20, "data-with-new-mtime": len(data) - 10}[damage]] ^= 1
    with open(target, "r+b") as handle:  # in place: same inode
        handle.write(bytes(data))
    os.utime(target, ns=(info.st_atime_ns, info.st_mtime_ns + 10**9))
    with pytest.raises(VerificationError) as caught:
        with open_snapshot(store, artifact, hint="repair it"):
            pass
    assert caught.value.exit_code == 6 and target.name in str(caught.value) and "repair it" in str(caught.value)


def test_a_read_only_store_refuses_every_write_with_its_own_error_and_still_reads(store: Store, tmp_path: Path):
    from registry.errors import ReadOnlyStoreError
    from registry.store.snapshot import open_snapshot
    from tests.support.readonly import read_only_view

    artifact = "local--m--00000000000000a4"
    publish(store, artifact)
    store.set_ref(Ref(entry="m", artifact_id=artifact, source="/src/m"))
    with read_only_view(store.root, tmp_path / "ro") as view:
        read_only = Store(view)
        assert read_only.is_read_only()
        before = tree_digest(view)
        for write in (lambda: read_only.remove(artifact), lambda: read_only.gc(),
                      lambda: read_only.set_ref(Ref(entry="n", artifact_id=artifact, source="/src/n")),
                      lambda: read_only.remove_ref("m"), lambda: read_only.staging(artifact),
                      lambda: read_only.lock(artifact).__enter__()):
            with pytest.raises(ReadOnlyStoreError) as caught:
                write()
            assert caught.value.exit_code == 11 and "read-only" in str(caught.value)
        # reading needs no write: the check, the ref, a snapshot, an unchanged ref, a dry-run gc
        assert read_only.check(artifact) == [] and read_only.get_ref("m").artifact_id == artifact
        read_only.set_ref(Ref(entry="m", artifact_id=artifact, source="/src/m"))
        with open_snapshot(read_only, artifact) as snapshot:
            assert snapshot.read_bytes("config.json") == b'{"d": 1}'
        assert tree_digest(view) == before
