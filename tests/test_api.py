"""load_predictor and Registry: every failure users meet today gets a specific error, the store
stays unchanged after each, and a synced entry loads fully offline."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from kronos_registry import PredictorCache, Registry, load_predictor
from kronos_registry.model import Kronos, KronosTokenizer
from kronos_registry.predictor import KronosPredictor
from registry.errors import (
    EntryKindError, FileNotInSourceError, RegistryError, NetworkError, UnavailableEntryError, UnknownEntryError,
    VerificationError,
)
from tests.support.kronos_checkpoints import (
    TINY_MODEL, TINY_TOKENIZER, model_checkpoint, param_count, tokenizer_checkpoint, write_checkpoint,
)
from tests.support.olah import dead_endpoint
from tests.support.registry_files import flow
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


# --- each failure of DESIGN.md's table ---------------------------------------------------------

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

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
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
    from kronos_registry.predictor import default_device

    cache = PredictorCache(Registry(registry_file(workspace), workspace / "store"))
    first = cache.get("tiny")
    second = cache.get("tiny", device=default_device())
    assert second is first
    assert sum(cache.loads.values()) == 1 and len(cache) == 1
