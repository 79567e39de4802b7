"""load_predictor and Registry: every failure users meet today gets a specific error, the store
stays unchanged after each, and a synced entry loads fully offline."""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from kronos_registry import PredictorCache, Registry, load_predictor
from kronos_registry.kronos import Kronos, KronosTokenizer
from kronos_registry.kronos.predictor import KronosPredictor
from registry.errors import (
    EntryKindError,
    FileNotInSourceError,
    NetworkError,
    NotSyncedError,
    RegistryError,
    UnavailableEntryError,
    UnknownEntryError,
    VerificationError,
)
from tests.support.kronos_checkpoints import (
    TINY_MODEL,
    TINY_TOKENIZER,
    model_checkpoint,
    param_count,
    tokenizer_checkpoint,
    write_checkpoint,
)
from tests.support.olah import dead_endpoint
from tests.support.readonly import read_only_view
from tests.support.registry_files import flow
from tests.support.sockets import NetworkAttempted
from tests.support.trees import tree_digest

TOKENIZER_PARAMS = param_count("tokenizer", TINY_TOKENIZER)
MODEL_PARAMS = param_count("model", TINY_MODEL)


def registry_file(folder: Path, *, model_source="./ckpt/model", tokenizer_source="./ckpt/tokenizer",
                  extra_model_lines: str = "") -> Path:
    """A user registry with one tiny tokenizer and one tiny model (local folders by default)."""
    text = f"""schema: 1
tokenizers:
  tiny-tokenizer:
    source: {tokenizer_source}
    params: {TOKENIZER_PARAMS}
    config: {flow(TINY_TOKENIZER)}
models:
  tiny:
    source: {model_source}
    tokenizer: tiny-tokenizer
    context_length: 64
    params: {MODEL_PARAMS}
    config: {flow(TINY_MODEL)}
{extra_model_lines}"""
    path = folder / "models.yaml"
    path.write_text(text)
    return path


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """A project folder with tiny checkpoints, a registry file and an empty store."""
    monkeypatch.chdir(tmp_path)
    for var in ("KRONOS_REGISTRY_FILE", "KRONOS_REGISTRY_OFFLINE", "HF_HUB_OFFLINE", "HF_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("KRONOS_REGISTRY_HOME", str(tmp_path / "store"))
    tokenizer_checkpoint(tmp_path / "ckpt" / "tokenizer")
    model_checkpoint(tmp_path / "ckpt" / "model")
    return tmp_path


def candles(n=48, seed=0):
    rng = np.random.default_rng(seed)
    close = 10 + np.cumsum(rng.normal(0, 0.1, n))
    open_ = close + rng.normal(0, 0.05, n)
    frame = pd.DataFrame({"open": open_, "high": np.maximum(open_, close) + 0.05,
                          "low": np.minimum(open_, close) - 0.05, "close": close,
                          "volume": rng.uniform(100, 200, n), "amount": rng.uniform(1000, 2000, n)})
    stamps = pd.Series(pd.date_range("2024-01-02 09:30", periods=n + 8, freq="5min"))
    return frame, stamps[:n].reset_index(drop=True), stamps[n:].reset_index(drop=True)


def forecast(predictor):
    frame, x_stamp, y_stamp = candles()
    return predictor.predict(frame, x_stamp, y_stamp, pred_len=8, top_k=1, sample_count=1,
                             verbose=False, seed=7)


def assert_failure_leaves_store_unchanged(registry_path, store, error_class, *words, name="tiny"):
    """The load fails with error_class naming every word, and the failure writes nothing.

    A good tokenizer is synced first, on purpose: that success may change the store, the
    model's failure after it must not.
    """
    if registry_path is not None:
        try:
            Registry(registry_path, store).sync("tiny-tokenizer")
        except RegistryError:
            pass  # a broken tokenizer is what some tests are about
    before = tree_digest(store)
    with pytest.raises(error_class) as info:
        load_predictor(name, registry=registry_path, store=store)
    assert tree_digest(store) == before, "a failed load changed the store"
    message = str(info.value)
    for word in words:
        assert word in message, f"{word!r} not in: {message}"
    return info.value


# --- each failure users meet with the official loader (the README's opening) --------------------

def test_hub_unreachable_fails_fast_naming_the_endpoint(workspace, monkeypatch):
    endpoint = dead_endpoint()
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    path = registry_file(workspace, model_source="hf://NeoQuasar/Kronos-small@" + "a" * 40)
    started = time.monotonic()
    error = assert_failure_leaves_store_unchanged(path, workspace / "store", NetworkError, endpoint,
                                                  "HF_ENDPOINT", "mirror", "sync")
    assert time.monotonic() - started < 10
    assert "NeoQuasar/Kronos-small" in str(error) or error.source and "Kronos-small" in error.source


def test_folder_without_config_json(workspace):
    (workspace / "ckpt" / "model" / "config.json").unlink()
    error = assert_failure_leaves_store_unchanged(
        registry_file(workspace), workspace / "store", (VerificationError, FileNotInSourceError),
        "config.json is missing from", str(workspace / "ckpt" / "model"), "save_pretrained")
    assert error.hint


def test_tokenizer_and_model_swapped(workspace):
    path = registry_file(workspace, model_source="./ckpt/tokenizer", tokenizer_source="./ckpt/model")
    error = assert_failure_leaves_store_unchanged(path, workspace / "store", VerificationError,
                                                  "model checkpoint", "declared as a tokenizer", "swapped")
    assert any(p.field == "role" and p.file == "config.json" for p in error.problems)


def test_tokenizer_2k_files_behind_the_base_tokenizer_entry(workspace):
    tokenizer_checkpoint(workspace / "ckpt" / "tokenizer", group_size=5)
    error = assert_failure_leaves_store_unchanged(registry_file(workspace), workspace / "store",
                                                  VerificationError, "group_size", "models.yaml")
    assert any(p.field == "group_size" and p.is_error for p in error.problems)


def test_legacy_pickle_only_is_refused_with_the_opt_in(workspace):
    folder = workspace / "ckpt" / "model"
    from safetensors.torch import load_file

    torch.save(load_file(str(folder / "model.safetensors")), folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()
    assert_failure_leaves_store_unchanged(registry_file(workspace), workspace / "store",
                                          (VerificationError, FileNotInSourceError),
                                          "model.safetensors", "pytorch_model.bin", "allow_pickle: true")


def test_legacy_pickle_loads_when_the_entry_opts_in(workspace):
    folder = workspace / "ckpt" / "model"
    from safetensors.torch import load_file

    torch.save(load_file(str(folder / "model.safetensors")), folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()
    path = registry_file(workspace, extra_model_lines="    allow_pickle: true\n"
                                                      "    files: [config.json, pytorch_model.bin]\n")
    predictor = load_predictor("tiny", registry=path, store=workspace / "store")
    assert forecast(predictor).shape == (8, 6)


def test_truncated_safetensors(workspace):
    weights = workspace / "ckpt" / "model" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    error = assert_failure_leaves_store_unchanged(registry_file(workspace), workspace / "store",
                                                  VerificationError, "model.safetensors", "truncated")
    assert all(p.hint for p in error.problems)


def test_mis_shaped_safetensors(workspace):
    other = write_checkpoint(workspace / "other", "model", {**TINY_MODEL, "d_model": 48})
    (workspace / "ckpt" / "model" / "model.safetensors").write_bytes((other / "model.safetensors").read_bytes())
    error = assert_failure_leaves_store_unchanged(registry_file(workspace), workspace / "store",
                                                  VerificationError, "model.safetensors", "looks like d_model=48")
    assert any(p.field == "d_model" and p.file == "config.json" for p in error.problems)


def test_unavailable_entry_shows_its_reason(workspace):
    error = assert_failure_leaves_store_unchanged(None, workspace / "store", UnavailableEntryError,
                                                  "kronos-large", name="kronos-large")
    assert error.reason and error.reason in str(error)
    assert "kronos-small" in str(error)


def test_unknown_entry_suggests_the_closest_names(workspace):
    error = assert_failure_leaves_store_unchanged(None, workspace / "store", UnknownEntryError,
                                                  "kronos-smal", "kronos-small", name="kronos-smal")
    assert error.suggestions[0] == "kronos-small"


def test_tokenizer_is_not_a_predictor(workspace):
    assert_failure_leaves_store_unchanged(registry_file(workspace), workspace / "store", EntryKindError,
                                          "tiny-tokenizer", "tiny", name="tiny-tokenizer")


# --- offline, after a sync ---------------------------------------------------------------------

def test_synced_entry_loads_offline_with_forecasts_equal_to_direct_load(workspace, monkeypatch, no_sockets):
    path = registry_file(workspace)
    registry = Registry(path, workspace / "store")
    result = registry.sync("tiny")
    assert result.fetched and result.tokenizer is not None
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    offline = load_predictor("tiny", registry=path, store=workspace / "store")
    direct = KronosPredictor(Kronos.from_pretrained(workspace / "ckpt" / "model"),
                             KronosTokenizer.from_pretrained(workspace / "ckpt" / "tokenizer"),
                             device="cpu", max_context=64)
    pd.testing.assert_frame_equal(forecast(offline), forecast(direct), check_exact=True)
    assert offline.max_context == 64
    assert no_sockets == []


def test_offline_and_not_synced_says_how_to_sync(workspace, no_sockets):
    from registry.errors import NotSyncedError

    path = registry_file(workspace, model_source="hf://NeoQuasar/Kronos-small@" + "b" * 40)
    with pytest.raises(NotSyncedError) as info:
        load_predictor("tiny", registry=path, store=workspace / "store", offline=True)
    assert "kronos-registry sync tiny" in str(info.value) and "import" in str(info.value)
    assert no_sockets == []
    # The control: not offline, the same call reaches for the hub first, and the guard stops it.
    with pytest.raises(NetworkAttempted):
        load_predictor("tiny", registry=path, store=workspace / "store", offline=False)
    assert no_sockets and no_sockets[0][1][0] == "huggingface.co", no_sockets


def test_registry_sync_verify_and_status(workspace):
    registry = Registry(registry_file(workspace), workspace / "store")
    assert registry.status("tiny") is None
    registry.sync("tiny")
    assert registry.status("tiny") is not None and registry.status("tiny-tokenizer") is not None
    assert registry.verify("tiny", deep=True).ok
    assert {e.name for e in registry.entries()} >= {"tiny", "tiny-tokenizer", "kronos-small"}


# --- the predictor cache ------------------------------------------------------------------------

def test_cache_loads_each_entry_once_under_concurrency(workspace):
    path = registry_file(workspace, extra_model_lines="""  tiny-b:
    source: ./ckpt/model-b
    tokenizer: tiny-tokenizer
    context_length: 32
""")
    model_checkpoint(workspace / "ckpt" / "model-b", seed=5)
    registry = Registry(path, workspace / "store")
    cache = PredictorCache(registry, max_size=2)
    barrier = threading.Barrier(8)
    got, errors = [], []

    def ask(index):
        try:
            barrier.wait()
            got.append((index % 2, cache.get("tiny" if index % 2 == 0 else "tiny-b", device="cpu")))
        except Exception as exc:  # surfaced below
            errors.append(exc)

    # Daemons, joined against one deadline: a thread stuck on a lock fails the test, not the session.
    threads = [threading.Thread(target=ask, args=(i,), daemon=True) for i in range(8)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 60
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    stuck = [thread.name for thread in threads if thread.is_alive()]
    assert not stuck, f"{len(stuck)} of 8 threads never got a predictor: {stuck}"
    assert not errors, errors
    assert sorted(parity for parity, _ in got) == [0] * 4 + [1] * 4  # every thread got one, for its entry
    assert sorted(cache.loads.values()) == [1, 1]
    for parity in (0, 1):
        assert len({id(p) for k, p in got if k == parity}) == 1
    assert {p.max_context for _, p in got} == {64, 32}


def test_cache_is_bounded(workspace):
    path = registry_file(workspace, extra_model_lines="""  tiny-b:
    source: ./ckpt/model
    tokenizer: tiny-tokenizer
    context_length: 32
""")
    cache = PredictorCache(Registry(path, workspace / "store"), max_size=1)
    first = cache.get("tiny", device="cpu")
    cache.get("tiny-b", device="cpu")
    assert len(cache) == 1
    assert cache.get("tiny", device="cpu") is not first
    assert cache.loads[("tiny", "cpu", None)] == 2


# --- messages name the entry to sync (issue 10 item 4) -------------------------------------------

def test_offline_load_of_an_unsynced_model_is_one_clean_error_naming_the_model(tmp_path):
    """Run as a user would, in a fresh interpreter: the traceback is one error, not a chain."""
    import os
    import subprocess
    import sys

    from tests.support.cli import REPO_ROOT

    env = {k: v for k, v in os.environ.items() if not k.startswith(("KRONOS_REGISTRY_", "HF_"))}
    env.update(KRONOS_REGISTRY_HOME=str(tmp_path / "store"), HF_HOME=str(tmp_path / "hf-home"),
               PYTHONPATH=str(REPO_ROOT))
    code = ("from kronos_registry import load_predictor\n"
            "load_predictor('kronos-small', offline=True)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 1
    err = done.stderr
    assert err.count("Traceback") == 1, err
    assert "direct cause" not in err and "During handling" not in err, err
    last = err.strip().splitlines()[-2:]
    assert last[0].startswith("registry.errors.NotSyncedError: 'kronos-small' is not in the store"), err
    assert "kronos-tokenizer-base" in last[0]  # what is missing, said once
    assert "`kronos-registry sync kronos-small`" in last[1], err
    assert "sync kronos-tokenizer-base" not in err, err


def test_a_missing_tokenizer_names_the_model_in_sync_and_locate(workspace, no_sockets):
    from registry.errors import NotSyncedError

    path = registry_file(workspace, tokenizer_source="hf://NeoQuasar/Kronos-Tokenizer-base@" + "c" * 40)
    registry = Registry(path, workspace / "store", offline=True)
    for call in (lambda: registry.sync("tiny"), lambda: registry.load_predictor("tiny")):
        with pytest.raises(NotSyncedError) as info:
            call()
        assert info.value.name == "tiny" and info.value.__cause__ is None
        assert "kronos-registry sync tiny`" in str(info.value) and "'tiny-tokenizer'" in str(info.value)
    assert no_sockets == []


def test_cache_keys_the_default_device_and_its_name_alike(workspace):
    """`get(n)` and `get(n, device=<the default>)` are one predictor, loaded once (issue 10 item 7)."""
    from kronos_registry.kronos.predictor import default_device

    cache = PredictorCache(Registry(registry_file(workspace), workspace / "store"))
    first = cache.get("tiny")
    second = cache.get("tiny", device=default_device())
    assert second is first
    assert sum(cache.loads.values()) == 1 and len(cache) == 1


# ---------------------------------------------------------------------------------------------
# Loading never writes; a local entry's stored copy outlives its folder's timestamps and place
# ---------------------------------------------------------------------------------------------


def touch_files(folder: Path, seconds: float = 1000.0) -> None:
    """New timestamps, same bytes (what a `cp -r`, a `git checkout` or an rsync leaves)."""
    for path in folder.iterdir():
        info = path.stat()
        os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns + int(seconds * 1e9)))


def synced_workspace(workspace: Path) -> tuple[Path, Path]:
    path = registry_file(workspace)
    Registry(path).load_predictor("tiny")  # syncs the tokenizer and the model from their folders
    return path, workspace / "store"


def test_a_touched_local_folder_serves_its_stored_copy_and_writes_nothing(workspace, caplog):
    path, store = synced_workspace(workspace)
    touch_files(workspace / "ckpt" / "model")
    touch_files(workspace / "ckpt" / "tokenizer")
    before = tree_digest(store)
    with caplog.at_level(logging.WARNING, logger="registry"):
        predictor = Registry(path).load_predictor("tiny")
    assert sum(p.numel() for p in predictor.model.parameters()) == MODEL_PARAMS
    assert tree_digest(store) == before  # no ref rewritten, nothing staged, no lock file left
    assert "new timestamps but the same content" in caplog.text
    # `doctor` and `list` ask status: a timestamp is not a change
    assert Registry(path).status("tiny") is not None


@pytest.mark.parametrize("how", ["moved", "deleted"])
def test_a_moved_or_deleted_local_folder_serves_its_stored_verified_copy(workspace, caplog, how):
    path, store = synced_workspace(workspace)
    if how == "moved":
        (workspace / "ckpt" / "model").rename(workspace / "elsewhere")
    else:
        shutil.rmtree(workspace / "ckpt" / "model")
    before = tree_digest(store)
    with caplog.at_level(logging.WARNING, logger="registry"):
        predictor = Registry(path, offline=True).load_predictor("tiny")
    assert sum(p.numel() for p in predictor.model.parameters()) == MODEL_PARAMS
    assert tree_digest(store) == before
    assert "is gone (moved or deleted); serving its stored, verified copy" in caplog.text
    report = Registry(path).verify("tiny")
    assert report.ok and any("is gone" in str(p) for p in report.warnings), report.problems


def test_a_read_only_store_serves_local_entries_whose_folders_were_touched_or_moved(workspace, tmp_path):
    path, store = synced_workspace(workspace)
    touch_files(workspace / "ckpt" / "tokenizer")
    touch_files(workspace / "ckpt" / "model")
    with read_only_view(store, tmp_path / "ro-store") as view:
        registry = Registry(path, view, offline=True)
        assert sum(p.numel() for p in registry.load_predictor("tiny").model.parameters()) == MODEL_PARAMS
        (workspace / "ckpt" / "model").rename(workspace / "moved-away")
        assert sum(p.numel() for p in registry.load_predictor("tiny").model.parameters()) == MODEL_PARAMS
        model_checkpoint(workspace / "ckpt" / "model", seed=5)  # new content: it needs a sync
        with pytest.raises(NotSyncedError, match="the store is read-only"):
            registry.load_predictor("tiny")


def test_a_read_only_store_serves_a_local_entry_that_another_registry_file_synced(workspace, tmp_path):
    """No ref of this registry's own (another project, or a bundle's registry, synced it):
    the folder's content names the stored object, found without writing a ref."""
    _, store = synced_workspace(workspace)
    os.symlink(workspace / "ckpt", workspace / "same-ckpt")  # the same folder, by another path
    (workspace / "other").mkdir()
    other = registry_file(workspace / "other", model_source="../same-ckpt/model",
                          tokenizer_source="../same-ckpt/tokenizer")
    with read_only_view(store, tmp_path / "ro-store") as view:
        predictor = Registry(other, view, offline=True).load_predictor("tiny")
        assert sum(p.numel() for p in predictor.model.parameters()) == MODEL_PARAMS


# ---------------------------------------------------------------------------------------------
# Same-size damage in the store: exit 6 with the repair, never served, never "a bug"
# ---------------------------------------------------------------------------------------------

BIG_MODEL = {**TINY_MODEL, "d_model": 64, "ff_dim": 128}  # weights over 1 MiB: hashed by head + stat


def big_workspace(workspace: Path) -> Path:
    """``workspace`` with a model whose weights are big enough for the head-and-stat rule."""
    shutil.rmtree(workspace / "ckpt" / "model")
    write_checkpoint(workspace / "ckpt" / "model", "model", BIG_MODEL, seed=1)
    assert (workspace / "ckpt" / "model" / "model.safetensors").stat().st_size > 1 << 20
    text = registry_file(workspace).read_text()
    text = text.replace(f"params: {MODEL_PARAMS}", f"params: {param_count('model', BIG_MODEL)}")
    text = text.replace(f"config: {flow(TINY_MODEL)}", f"config: {flow(BIG_MODEL)}")
    (workspace / "models.yaml").write_text(text)
    Registry(workspace / "models.yaml").load_predictor("tiny")
    return workspace / "models.yaml"


def stored_file(registry: Registry, name: str, file: str) -> Path:
    return registry.store.object_dir(registry.status(name)) / file


def flip(path: Path, offset: int, *, keep_mtime: bool = False) -> None:
    """Change one byte in place (same size, same inode); optionally put the mtime back."""
    info = path.stat()
    with open(path, "r+b") as handle:
        handle.seek(offset)
        byte = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte[0] ^ 0x01]))
    if keep_mtime:
        os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))
    else:
        os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns + 10**9))


def header_end(path: Path) -> int:
    with open(path, "rb") as handle:
        return 8 + int.from_bytes(handle.read(8), "little")


@pytest.mark.parametrize("where", ["config-json-syntax", "config-json-value", "tokenizer-config",
                                   "safetensors-header", "tensor-data"])
def test_same_size_damage_in_the_store_is_a_verification_error_naming_the_repair(workspace, where):
    path = big_workspace(workspace)
    registry = Registry(path, offline=True)
    owner = "tiny-tokenizer" if where == "tokenizer-config" else "tiny"
    if where.startswith("config-json") or where == "tokenizer-config":
        config = stored_file(registry, owner, "config.json")
        text = config.read_text()
        if where == "config-json-syntax":
            damaged = text.replace("{", "[", 1)
        else:
            damaged = text.replace('"n_layers": 2', '"n_layers": 3').replace('"group_size": 4', '"group_size": 5')
        assert damaged != text and len(damaged) == len(text)
        config.write_text(damaged)
    else:
        weights = stored_file(registry, "tiny", "model.safetensors")
        flip(weights, 40 if where == "safetensors-header" else header_end(weights) + 1000)
    with pytest.raises(VerificationError) as caught:
        Registry(path, offline=True).load_predictor("tiny")
    assert caught.value.exit_code == 6
    assert f"kronos-registry sync {owner} --force" in str(caught.value), str(caught.value)
    Registry(path, offline=True).sync(owner, force=True)  # the named repair works
    assert sum(p.numel() for p in Registry(path, offline=True).load_predictor("tiny").model.parameters()) \
        == param_count("model", BIG_MODEL)


def test_a_flipped_tensor_byte_with_its_mtime_restored_is_left_to_verify_deep(workspace):
    """The documented limit of the cheap check: same size, mtime and inode, data only."""
    path = big_workspace(workspace)
    registry = Registry(path, offline=True)
    weights = stored_file(registry, "tiny", "model.safetensors")
    flip(weights, header_end(weights) + 1000, keep_mtime=True)
    Registry(path, offline=True).load_predictor("tiny")  # not caught on load, by design
    report = Registry(path, offline=True).verify("tiny", deep=True)
    assert not report.ok and any("sha256" in str(p) for p in report.errors), report.problems


# --- one series as the CLI forecasts it (issue 23 item 10) -------------------------------------------


def test_the_readme_one_series_call_equals_cli_predict_and_the_low_level_call_warns_when_it_slides(tmp_path):
    import kronos_registry
    from kronos_registry.candles import future_timestamps, read_candles
    from kronos_registry.kronos.predictor import SlidingContextWarning
    from tests.support.cli import DEMO, SAMPLE_CSV, synced_demo

    demo = synced_demo(tmp_path / "demo")
    out = tmp_path / "cli.csv"
    result = demo("predict", DEMO, "-i", SAMPLE_CSV, "-n", "12", "--samples", "2", "--seed", "7", "-o", out)
    assert result.code == 0, result.output
    by_cli = pd.read_csv(out, parse_dates=["timestamps"])

    registry = Registry(store=demo.store, offline=True)
    got = kronos_registry.forecast(DEMO, SAMPLE_CSV, pred_len=12, samples=2, seed=7, registry=registry)
    assert got.seed == 7 and len(got.job.used) == 512 - 12           # the CLI's lookback: context - pred_len
    assert list(got.forecast.index) == list(by_cli["timestamps"])
    np.testing.assert_allclose(got.forecast[list(by_cli.columns[1:])].to_numpy(), by_cli.iloc[:, 1:].to_numpy(),
                               rtol=1e-6)

    history = read_candles(SAMPLE_CSV)                               # all 512 rows: 512 + 12 pass the context
    predictor = registry.load_predictor(DEMO)
    with pytest.warns(SlidingContextWarning, match="use kronos_registry.forecast"):
        predictor.predict(history.frame, history.timestamps, future_timestamps(history.timestamps, 12), pred_len=12,
                          verbose=False, seed=7)
