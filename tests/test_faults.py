"""Faults on the wire: a loopback proxy between the client and a real mirror (olah) cuts, stalls
and corrupts the transfer of model.safetensors.

What must hold: a cut transfer is recovered (in the same sync, or by the next one, which fetches
only what is missing); a stall gives a clear NetworkError within a bound set by
KRONOS_REGISTRY_TIMEOUT; a corrupted byte is caught against the hub's recorded sha256 and nothing
is published; after every fault, the next clean sync completes.

Note on resuming: olah serves mirrored LFS files whole and ignores ``Range``, and
huggingface_hub keeps no partial file between processes, so a file cut midway is fetched again
in full; what a later sync does not fetch again is every file completed before the cut.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time

import pytest

from kronos_registry import Registry
from registry.errors import NetworkError, VerificationError
from registry.store import Store
from tests.support.cli import Cli
from tests.support.faultproxy import FaultProxy
from tests.support.kronos_checkpoints import model_checkpoint, tokenizer_checkpoint
from tests.support.mirror import FILES, isolate, publish_checkpoint, published_problems
from tests.support.olah import require_olah, running_olah
from tests.support.registry_files import model_keys, registry_yaml, tokenizer_keys
from tests.support.trees import tree_digest

WEIGHTS = re.compile(r"^/TestOrg/Kronos-f/resolve/[0-9a-f]{40}/model\.safetensors$")
RESOLVE = "/resolve/"
TIMEOUT_S = 0.5


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """olah serving a tokenizer and a model; yields (server, registry text, model weights size)."""
    require_olah()
    root = tmp_path_factory.mktemp("faults-hub")
    _, tok = publish_checkpoint(root / "mirrors", "TestOrg/Tokenizer-f", tokenizer_checkpoint(root / "t"))
    model = model_checkpoint(root / "m", seed=4)
    _, mod = publish_checkpoint(root / "mirrors", "TestOrg/Kronos-f", model)
    text = registry_yaml(
        {"tok": tokenizer_keys(f"hf://TestOrg/Tokenizer-f@{tok}")},
        {"model": model_keys(f"hf://TestOrg/Kronos-f@{mod}", "tok")},
    )
    sizes = {name: (model / name).stat().st_size for name in FILES}
    with running_olah(root / "mirrors", root / "olah") as server:
        yield server, text, sizes


@pytest.fixture
def proxy(hub):
    with FaultProxy(hub[0].url) as proxy:
        yield proxy


@pytest.fixture
def registry(hub, proxy, tmp_path, monkeypatch) -> Registry:
    """A fresh store and HF cache reaching olah through the proxy, with the tokenizer synced."""
    isolate(monkeypatch, tmp_path, proxy.url, KRONOS_REGISTRY_TIMEOUT=str(TIMEOUT_S))
    (tmp_path / "models.yaml").write_text(hub[1])
    registry = Registry(tmp_path / "models.yaml")
    registry.sync("tok")
    proxy.reset_counters()
    return registry


def weight_gets(proxy: FaultProxy) -> list:
    """The GETs of the model's weights (HEAD probes carry no body and are left out)."""
    return [e for e in proxy.exchanges if e.method == "GET" and WEIGHTS.search(e.path)]


def test_cut_midway_is_recovered_within_the_same_sync(registry, proxy, hub):
    size = hub[2]["model.safetensors"]
    proxy.cut_after(size // 2, match=WEIGHTS)

    result = registry.sync("model")

    gets = weight_gets(proxy)
    assert [e.faults for e in gets] == [["cut"], []]
    assert gets[0].body_bytes == size // 2 and gets[1].complete
    refetched = gets[1].body_bytes
    print(f"\ncut after {gets[0].body_bytes} of {size} bytes; fetched again: {refetched} (body incl. chunk framing)")
    # olah ignores Range for mirrored files: the retry gets the whole file, never more.
    assert size <= refetched <= size * 1.01
    assert result.fetched and published_problems(registry.store) == []


def test_cut_that_fails_the_sync_is_finished_by_the_next_fetching_only_what_is_missing(registry, proxy, hub):
    sizes = hub[2]
    proxy.cut_after(sizes["model.safetensors"] // 3, match=WEIGHTS, once=False)
    objects_before = registry.store.list_artifacts()

    started = time.monotonic()
    with pytest.raises(NetworkError) as caught:
        registry.sync("model")
    elapsed = time.monotonic() - started
    assert "model.safetensors" in str(caught.value)
    assert registry.store.list_artifacts() == objects_before  # nothing published
    # huggingface_hub resumes a cut five times, a second apart, before giving up.
    assert elapsed < 20, f"a cut transfer took {elapsed:.1f} s to fail"

    proxy.clear()
    proxy.reset_counters()
    result = registry.sync("model")

    fetched_again = {e.path.rsplit("/", 1)[1]: e.body_bytes
                     for e in proxy.exchanges if e.method == "GET" and RESOLVE in e.path}
    entry_size = sum(sizes.values()) + sum(f.size for f in result.tokenizer.manifest.files)
    print(f"\nafter the failed sync, the next fetched again {sum(fetched_again.values())} body bytes "
          f"({fetched_again}) of the entry's {entry_size} (model.safetensors is {sizes['model.safetensors']})")
    # config.json finished before the cut waited in staging; the tokenizer was published.
    assert list(fetched_again) == ["model.safetensors"]
    assert sum(fetched_again.values()) < entry_size
    assert result.fetched and published_problems(registry.store) == []


def test_stall_fails_within_the_configured_timeout_and_publishes_nothing(registry, proxy):
    proxy.stall(60, after_bytes=50_000, match=WEIGHTS, once=False)
    objects_before = registry.store.list_artifacts()

    started = time.monotonic()
    with pytest.raises(NetworkError) as caught:
        registry.sync("model")
    elapsed = time.monotonic() - started

    message = str(caught.value)
    assert "model.safetensors" in message and f"no answer within {TIMEOUT_S:g} s" in message
    assert proxy.url in message and caught.value.exit_code == 5
    # Six reads of TIMEOUT_S (huggingface_hub's tries) with a 1 s pause between them, and slack.
    assert elapsed < 6 * (TIMEOUT_S + 1) + 8, f"a stalled transfer took {elapsed:.1f} s to fail"
    print(f"\nstall with KRONOS_REGISTRY_TIMEOUT={TIMEOUT_S}: NetworkError after {elapsed:.1f} s, "
          f"{len(weight_gets(proxy))} tries")
    assert registry.store.list_artifacts() == objects_before

    proxy.clear()
    assert registry.sync("model").fetched


def test_corrupt_byte_is_caught_by_the_hub_hash_and_the_store_is_unchanged(registry, proxy, hub, tmp_path):
    # Mid-file, inside the tensor data: olah sends 4 KiB chunks, and 300000 falls in one's
    # payload, not in the chunk framing or the safetensors header.
    assert hub[2]["model.safetensors"] > 400_000
    proxy.corrupt(300_000, match=WEIGHTS)
    before = tree_digest(tmp_path / "store")

    with pytest.raises(VerificationError) as caught:
        registry.sync("model")

    message = str(caught.value)
    assert "model.safetensors" in message and "sha256" in message and "hub's record" in message
    assert [e.faults for e in weight_gets(proxy)] == [["corrupt"]]
    assert tree_digest(tmp_path / "store") == before  # no object, no staging, no lock left

    # The corrupt copy must not poison the HF cache: the next sync downloads it again.
    proxy.reset_counters()
    result = registry.sync("model")
    assert result.fetched and len(weight_gets(proxy)) == 1
    assert published_problems(registry.store) == []


# =============================================================================================
# Damage at rest: the store and the Hugging Face cache hold separate copies
# =============================================================================================


def cached_file(tmp_path, commit: str, name: str):
    """The Hugging Face cache's copy of ``name`` of TestOrg/Kronos-f at ``commit`` (a snapshot link)."""
    return tmp_path / "hf-home" / "hub" / "models--TestOrg--Kronos-f" / "snapshots" / commit / name


def damage_in_place(path, old: bytes, new: bytes) -> None:
    """A same-size edit through the file's own inode (what an editor saving in place does)."""
    assert len(old) == len(new)
    data = path.read_bytes()
    assert old in data
    with open(path, "r+b") as handle:
        handle.seek(data.index(old))
        handle.write(new)


def test_a_same_size_edit_of_a_stored_file_leaves_the_hf_cache_intact(registry, hub, tmp_path):
    result = registry.sync("model")
    stored = result.path / "config.json"
    cached = cached_file(tmp_path, result.manifest.resolved_revision, "config.json")
    good = cached.read_bytes()

    damage_in_place(stored, b'"d_model"', b'"d_modeX"')

    assert cached.read_bytes() == good, "damage to the store's copy reached the Hugging Face cache"
    repaired = registry.sync("model", force=True)
    assert (repaired.path / "config.json").read_bytes() == good
    assert published_problems(registry.store) == []


def test_a_damaged_cache_copy_is_replaced_by_sync_force_from_the_source(registry, hub, tmp_path):
    result = registry.sync("model")
    cached = cached_file(tmp_path, result.manifest.resolved_revision, "config.json")
    good = cached.read_bytes()
    # The cache's copy is damaged (and, through a hard link, would be the store's too).
    damage_in_place(cached, b'"d_model"', b'"d_modeX"')

    repaired = registry.sync("model", force=True)

    assert (repaired.path / "config.json").read_bytes() == good
    assert cached.read_bytes() == good, "the damaged cache copy was kept"
    assert published_problems(registry.store) == []


# =============================================================================================
# A full disk: the failed sync removes what it wrote
# =============================================================================================


@pytest.fixture
def small_disk(tmp_path):
    """A real 4 MiB file system (tmpfs), for a store that runs out of space."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root and mount(8)")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True)


def test_a_full_disk_fails_clearly_and_leaves_nothing_behind(hub, small_disk, tmp_path):
    server, text, sizes = hub
    registry = tmp_path / "models.yaml"
    registry.write_text(text)
    store = small_disk / "store"
    cli = Cli(tmp_path / "run", store=store, offline=False,
              env={"HF_ENDPOINT": server.url, "NO_PROXY": "127.0.0.1,localhost"})
    assert cli("--registry", registry, "sync", "tok").code == 0
    # Leave room for config.json and half the weights.
    filler = small_disk / "filler"
    filler.write_bytes(b"\0" * (shutil.disk_usage(small_disk).free - sizes["model.safetensors"] // 2))
    free_before = shutil.disk_usage(small_disk).free

    result = cli("--registry", registry, "sync", "model")

    assert result.code == 1, result.output
    assert "No space left" in result.stderr and "Traceback" not in result.output
    assert "free space" in result.stderr and "kronos-registry gc" in result.stderr, result.stderr
    left = [p for p in (store / "staging").rglob("*") if not p.is_dir()] if (store / "staging").exists() else []
    assert left == [], f"the failed sync left {left}"
    assert shutil.disk_usage(small_disk).free >= free_before - 64 * 1024
    filler.unlink()
    retried = cli("--registry", registry, "sync", "model")
    assert retried.code == 0, retried.output
    assert published_problems(Store(store)) == []
