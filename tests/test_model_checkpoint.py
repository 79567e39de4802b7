"""save_pretrained / from_pretrained: hub-compatible files and clear errors."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from kronos_registry.kronos import CheckpointError, Kronos, KronosTokenizer
from registry.errors import NotSyncedError

TOK_CFG = dict(d_in=6, d_model=32, n_heads=2, ff_dim=64, n_enc_layers=2, n_dec_layers=2, ffn_dropout_p=0.0,
               attn_dropout_p=0.0, resid_dropout_p=0.0, s1_bits=4, s2_bits=4, beta=0.05, gamma0=1.0, gamma=1.1,
               zeta=0.05, group_size=4)
MODEL_CFG = dict(s1_bits=4, s2_bits=4, n_layers=2, d_model=32, n_heads=2, ff_dim=64, ffn_dropout_p=0.0,
                 attn_dropout_p=0.0, resid_dropout_p=0.0, token_dropout_p=0.0, learn_te=True)


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    tok, model = KronosTokenizer(**TOK_CFG), Kronos(**MODEL_CFG)
    tok.save_pretrained(tmp_path / "tok")
    model.save_pretrained(tmp_path / "model")
    return tok, model, tmp_path / "tok", tmp_path / "model"


def _same(a: torch.nn.Module, b: torch.nn.Module):
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def test_round_trip_writes_hub_files(saved):
    tok, model, tdir, mdir = saved
    assert json.loads((tdir / "config.json").read_text()) == TOK_CFG
    assert json.loads((mdir / "config.json").read_text()) == MODEL_CFG
    with safe_open(str(mdir / "model.safetensors"), "pt") as f:
        assert set(f.keys()) == set(model.state_dict())
    t2, m2 = KronosTokenizer.from_pretrained(tdir), Kronos.from_pretrained(str(mdir))
    assert not t2.training and not m2.training
    _same(tok, t2)
    _same(model, m2)


def test_round_trip_after_fusing_for_generation(saved, tmp_path):
    """Generation fuses q/k/v into views of one buffer; saving and loading must not care."""
    from kronos_registry.kronos.model import fused_weights
    _, model, _, mdir = saved
    m = Kronos.from_pretrained(mdir)
    fused = fused_weights(m)["layers"][0]["qkv_w"]
    assert fused.shape == (3 * 32, 32)
    assert torch.equal(fused[:32], m.transformer[0].self_attn.q_proj.weight)
    m.save_pretrained(tmp_path / "again")
    _same(model, Kronos.from_pretrained(tmp_path / "again"))
    # loading new weights in place keeps the fused buffer current
    m.load_state_dict(Kronos(**MODEL_CFG).state_dict())
    assert torch.equal(fused_weights(m)["layers"][0]["qkv_w"][32:64], m.transformer[0].self_attn.k_proj.weight)


def test_official_classes_read_our_files_and_we_read_theirs(saved, tmp_path):
    official = pytest.importorskip("model", reason="official Kronos package not installed")
    tok, model, tdir, mdir = saved
    theirs = official.Kronos.from_pretrained(str(mdir))
    _same(model, theirs)
    _same(tok, official.KronosTokenizer.from_pretrained(str(tdir)))
    theirs.save_pretrained(tmp_path / "theirs")
    _same(theirs, Kronos.from_pretrained(tmp_path / "theirs"))


def test_missing_config_is_a_clear_error_not_a_typeerror(saved):
    _, _, tdir, _ = saved
    (tdir / "config.json").unlink()
    with pytest.raises(CheckpointError) as e:
        KronosTokenizer.from_pretrained(tdir)
    assert e.value.folder == str(tdir) and e.value.missing == ["config.json"]
    assert str(tdir) in str(e.value) and "config.json" in str(e.value)
    assert e.value.hint and "positional arguments" not in str(e.value)
    assert isinstance(e.value, ValueError)


def test_missing_and_unknown_fields_are_named(saved):
    _, _, _, mdir = saved
    cfg = dict(MODEL_CFG)
    del cfg["n_layers"], cfg["learn_te"]
    cfg["n_layer"] = 2
    (mdir / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError) as e:
        Kronos.from_pretrained(mdir)
    assert e.value.missing == ["n_layers", "learn_te"] and e.value.unknown == ["n_layer"]
    for word in ("n_layers", "learn_te", "n_layer", str(mdir)):
        assert word in str(e.value)


def test_bad_values_and_bad_json(saved):
    _, _, _, mdir = saved
    (mdir / "config.json").write_text(json.dumps(dict(MODEL_CFG, d_model="32")))
    with pytest.raises(CheckpointError, match="d_model"):
        Kronos.from_pretrained(mdir)
    (mdir / "config.json").write_text(json.dumps(dict(MODEL_CFG, d_model=30)))
    with pytest.raises(CheckpointError, match="divisible"):
        Kronos.from_pretrained(mdir)
    (mdir / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        Kronos.from_pretrained(mdir)


@pytest.mark.parametrize("change, words", [
    ({"n_layers": 300}, "beyond any Kronos"),
    ({"ffn_dropout_p": 1.5}, "probability"),
    ({"n_layers": 2.0}, "must be an integer"),
])
def test_the_checks_validator_refuses_for_from_pretrained_too(saved, change, words):
    """One validator (config.py): what sync refuses, from_pretrained refuses, before building anything."""
    _, _, _, mdir = saved
    (mdir / "config.json").write_text(json.dumps(dict(MODEL_CFG, **change)))
    with pytest.raises(CheckpointError, match=words) as e:
        Kronos.from_pretrained(mdir)
    assert e.value.hint


def test_tokenizer_and_model_swapped_are_named(saved):
    _, _, tdir, mdir = saved
    with pytest.raises(CheckpointError) as e:
        Kronos.from_pretrained(tdir)
    assert "KronosTokenizer" in str(e.value) and "KronosTokenizer.from_pretrained" in e.value.hint
    with pytest.raises(CheckpointError) as e:
        KronosTokenizer.from_pretrained(mdir)
    assert "holds a Kronos checkpoint" in str(e.value)


def test_missing_or_mismatched_weights(saved, tmp_path):
    _, _, tdir, mdir = saved
    # a config of another size next to these weights
    (mdir / "config.json").write_text(json.dumps(dict(MODEL_CFG, ff_dim=48)))
    with pytest.raises(CheckpointError, match="shape mismatch"):
        Kronos.from_pretrained(mdir)
    (tdir / "model.safetensors").unlink()
    with pytest.raises(CheckpointError) as e:
        KronosTokenizer.from_pretrained(tdir)
    assert e.value.missing == ["model.safetensors"]
    with pytest.raises(CheckpointError, match="does not exist"):
        Kronos.from_pretrained(tmp_path / "nowhere" / "model")


@pytest.fixture
def own_store(tmp_path, monkeypatch):
    """The registry's store, Hugging Face cache and working folder under tmp_path, no hub settings."""
    for key in list(os.environ):
        if key.startswith(("KRONOS_REGISTRY_", "HF_", "HUGGING_FACE_")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("KRONOS_REGISTRY_HOME", str(tmp_path / "store"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.chdir(tmp_path)
    return tmp_path / "store"


def test_hub_id_offline_is_a_clear_error(tmp_path, own_store):
    with pytest.raises(CheckpointError) as e:
        Kronos.from_pretrained("NeoQuasar/Kronos-small", cache_dir=tmp_path, local_files_only=True)
    assert "NeoQuasar/Kronos-small" in str(e.value) and e.value.hint


@pytest.mark.parametrize("variable", ["KRONOS_REGISTRY_OFFLINE", "HF_HUB_OFFLINE"])
def test_offline_hub_id_is_not_synced_and_makes_no_network_call(own_store, monkeypatch, no_sockets, variable):
    """A repo of the packaged registry: the registry's not-synced error, naming the entry to sync."""
    monkeypatch.setenv(variable, "1")
    with pytest.raises(CheckpointError) as e:
        Kronos.from_pretrained("NeoQuasar/Kronos-small")
    assert isinstance(e.value.__cause__, NotSyncedError)
    assert "NeoQuasar/Kronos-small" in str(e.value) and "offline" in str(e.value)
    assert str(own_store) in str(e.value)
    assert "kronos-registry sync kronos-small" in e.value.hint
    assert "positional arguments" not in str(e.value)
    assert no_sockets == []


def test_offline_unknown_hub_id_is_not_synced_with_a_hint_for_from_pretrained(own_store, monkeypatch, no_sockets):
    monkeypatch.setenv("KRONOS_REGISTRY_OFFLINE", "1")
    with pytest.raises(CheckpointError) as e:
        KronosTokenizer.from_pretrained("SomeOrg/My-Tokenizer", revision="v2")
    assert isinstance(e.value.__cause__, NotSyncedError)
    assert e.value.folder == "SomeOrg/My-Tokenizer@v2" and "offline" in str(e.value)
    assert "from_pretrained again" in e.value.hint and "models.yaml" in e.value.hint
    assert no_sockets == []


def test_a_local_folder_still_loads_offline(saved, own_store, monkeypatch, no_sockets):
    tok, model, tdir, mdir = saved
    monkeypatch.setenv("KRONOS_REGISTRY_OFFLINE", "1")
    _same(model, Kronos.from_pretrained(mdir))
    _same(tok, KronosTokenizer.from_pretrained(str(tdir), local_files_only=True))
    assert no_sockets == [] and not own_store.exists()


def test_hub_id_goes_to_the_registered_resolver_with_its_arguments(saved, monkeypatch):
    from kronos_registry.kronos import locate

    _, model, _, mdir = saved
    requests = []

    def resolver(request):
        requests.append(request)
        return mdir

    monkeypatch.setattr(locate, "_hub_resolver", resolver)
    got = Kronos.from_pretrained("NeoQuasar/Kronos-small", revision="abc123", token="secret", force_download=True)
    _same(model, got)
    [request] = requests
    assert (request.repo_id, request.role, request.revision, request.token, request.force_download) == (
        "NeoQuasar/Kronos-small", "model", "abc123", "secret", True)
    assert "secret" not in repr(request)


def test_without_a_resolver_a_hub_id_is_a_clear_error(monkeypatch):
    from kronos_registry.kronos import locate

    monkeypatch.setattr(locate, "_hub_resolver", None)
    with pytest.raises(CheckpointError, match="no hub resolver") as e:
        Kronos.from_pretrained("NeoQuasar/Kronos-small")
    assert e.value.hint


def test_constructor_signatures_are_the_config_schema():
    from kronos_registry.kronos.config import config_fields

    for cls in (KronosTokenizer, Kronos):
        names = [n for n in inspect.signature(cls.__init__).parameters if n != "self"]
        assert tuple(names) == config_fields(cls.role)


def test_model_module_does_not_import_the_registry():
    code = ("import sys, kronos_registry.kronos.model, kronos_registry.kronos.predictor; "
            "bad = [m for m in sys.modules if m == 'registry' or m.startswith('registry.') or m == 'huggingface_hub']; "
            "print(bad); sys.exit(1 if bad else 0)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert res.returncode == 0, res.stdout + res.stderr
