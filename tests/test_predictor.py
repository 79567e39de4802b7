"""KronosPredictor beyond the official one: samples, seeds, devices, batching, validation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import kronos_registry.kronos.generate as gen
import kronos_registry.kronos.predictor as pred_mod
from kronos_registry import Kronos, KronosPredictor, KronosTokenizer

TOK_CFG = dict(d_in=6, d_model=32, n_heads=2, ff_dim=64, n_enc_layers=2, n_dec_layers=2, ffn_dropout_p=0.0,
               attn_dropout_p=0.0, resid_dropout_p=0.0, s1_bits=4, s2_bits=4, beta=0.05, gamma0=1.0, gamma=1.1,
               zeta=0.05, group_size=4)
MODEL_CFG = dict(s1_bits=4, s2_bits=4, n_layers=2, d_model=32, n_heads=2, ff_dim=64, ffn_dropout_p=0.0,
                 attn_dropout_p=0.0, resid_dropout_p=0.0, token_dropout_p=0.0, learn_te=True)


@pytest.fixture(scope="module")
def predictor():
    torch.manual_seed(0)
    return KronosPredictor(Kronos(**MODEL_CFG).eval(), KronosTokenizer(**TOK_CFG).eval(), device="cpu",
                           max_context=48)


def _walk(n, seed=0, volume=True):
    rng = np.random.default_rng(seed)
    close = 20 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    df = pd.DataFrame({"open": close, "high": close * 1.01, "low": close * 0.99, "close": close})
    if volume:
        df["volume"] = rng.integers(10, 1000, n).astype(float)
    return df, pd.Series(pd.date_range("2024-05-06 09:30", periods=n, freq="15min"))


def test_return_samples_gives_every_path_and_their_mean(predictor):
    df, ts = _walk(50)
    mean, samples = predictor.predict(df.iloc[:40], ts[:40], ts[40:], 10, sample_count=4, verbose=False,
                                      seed=1, return_samples=True)
    assert samples.shape == (4, 10, 6)
    assert list(mean.columns) == ["open", "high", "low", "close", "volume", "amount"]
    assert (mean.index == ts[40:].to_numpy()).all()
    np.testing.assert_allclose(mean.to_numpy(), samples.mean(axis=0), rtol=1e-4)
    assert len({tuple(np.round(s[:, 3], 6)) for s in samples}) > 1


def test_seed_reproduces_and_leaves_global_state_alone(predictor):
    df, ts = _walk(50)
    args = (df.iloc[:40], ts[:40], ts[40:], 10)
    state, threads = torch.get_rng_state(), torch.get_num_threads()
    a = predictor.predict(*args, sample_count=2, verbose=False, seed=7)
    assert torch.equal(state, torch.get_rng_state())
    assert torch.get_num_threads() == threads  # the step-thread tuner restores the setting
    b = predictor.predict(*args, sample_count=2, verbose=False, generator=torch.Generator().manual_seed(7))
    c = predictor.predict(*args, sample_count=2, verbose=False, seed=8)
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a.to_numpy(), c.to_numpy())
    with pytest.raises(ValueError, match="either seed or generator"):
        predictor.predict(*args, verbose=False, seed=1, generator=torch.Generator())


def test_device_auto_detection(monkeypatch):
    assert pred_mod.default_device() in {"cuda", "mps", "cpu"}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert pred_mod.default_device() == "cpu"
    p = KronosPredictor(Kronos(**MODEL_CFG), KronosTokenizer(**TOK_CFG))
    assert p.device == "cpu" and next(p.model.parameters()).device.type == "cpu"
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert pred_mod.default_device() == "mps"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pred_mod.default_device() == "cuda"


def test_batch_encodes_and_prefills_each_series_once(predictor, monkeypatch):
    """sample_count multiplies only the sampled steps, not the tokenizer or the prefill."""
    rows = {"encode": [], "prefill": []}
    encode, window = predictor.tokenizer.encode, gen._window_forward

    def counting_encode(x, half=False):
        rows["encode"].append(x.shape[0])
        return encode(x, half=half)

    def counting_window(model, W, s1, *a, **k):
        rows["prefill"].append(s1.shape[0])
        return window(model, W, s1, *a, **k)

    monkeypatch.setattr(predictor.tokenizer, "encode", counting_encode)
    monkeypatch.setattr(gen, "_window_forward", counting_window)
    monkeypatch.setattr(predictor, "max_context", 64)  # 40 + 10 fits: no sliding recompute
    df, ts = _walk(60)
    frames, samples = predictor.predict_batch([df.iloc[:40], df.iloc[5:45]], [ts[:40], ts[5:45]],
                                              [ts[40:50], ts[45:55]], 10, sample_count=5, verbose=False,
                                              seed=3, return_samples=True)
    assert rows == {"encode": [2], "prefill": [2]}  # 2 series, 5 samples each: 2 rows, not 10
    assert len(frames) == 2 and [s.shape for s in samples] == [(5, 10, 6)] * 2


def test_batch_equals_single_predictions_when_greedy(predictor):
    df, ts = _walk(80, seed=4)
    dfs, xts, yts = [df.iloc[:40], df.iloc[20:60]], [ts[:40], ts[20:60]], [ts[40:55], ts[60:75]]
    batch = predictor.predict_batch(dfs, xts, yts, 15, top_k=1, verbose=False)
    for i in range(2):
        single = predictor.predict(dfs[i], xts[i], yts[i], 15, top_k=1, verbose=False)
        np.testing.assert_allclose(batch[i].to_numpy(), single.to_numpy(), rtol=1e-5)


def test_missing_volume_and_amount_are_filled_and_index_types(predictor):
    df, ts = _walk(50, volume=False)
    out = predictor.predict(df.iloc[:40], pd.DatetimeIndex(ts[:40]), pd.DatetimeIndex(ts[40:]), 10,
                            top_k=1, verbose=True)
    assert out.shape == (10, 6) and np.isfinite(out.to_numpy()).all()
    assert isinstance(out.index, pd.DatetimeIndex)


def test_validation_errors(predictor):
    df, ts = _walk(50)
    with pytest.raises(ValueError, match="DataFrame"):
        predictor.predict(df.to_numpy(), ts[:40], ts[40:], 10, verbose=False)
    with pytest.raises(ValueError, match="Price columns"):
        predictor.predict(df.drop(columns="low"), ts[:50], ts[40:], 10, verbose=False)
    bad = df.iloc[:40].copy()
    bad.iloc[3, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        predictor.predict(bad, ts[:40], ts[40:], 10, verbose=False)
    with pytest.raises(ValueError, match="pred_len"):
        predictor.predict(df.iloc[:40], ts[:40], ts[40:], 7, verbose=False)
    with pytest.raises(ValueError, match="Inconsistent lengths"):
        predictor.predict(df.iloc[:40], ts[:30], ts[40:], 10, verbose=False)
    with pytest.raises(ValueError, match="historical lengths"):
        predictor.predict_batch([df.iloc[:40], df.iloc[:30]], [ts[:40], ts[:30]], [ts[40:]] * 2, 10, verbose=False)
    with pytest.raises(ValueError, match="list or tuple"):
        predictor.predict_batch(df, ts, ts, 10, verbose=False)


def test_forecast_is_in_input_units(predictor):
    df, ts = _walk(50)
    df = df * 1000
    out = predictor.predict(df.iloc[:40], ts[:40], ts[40:], 10, top_k=1, verbose=False)
    x = df.iloc[:40]
    # outputs are clipped normalised values mapped back: within mean +- 5 std of the input
    for col in ["open", "close", "volume"]:
        m, s = x[col].mean(), x[col].std(ddof=0)
        assert ((out[col] > m - 5.1 * s) & (out[col] < m + 5.1 * s)).all()


def test_model_still_trains_after_forecasting():
    """Forecasting fuses weights and caches rotary tables under inference_mode; neither may
    leave inference tensors behind that break a later backward pass."""
    torch.manual_seed(0)
    model, tok = Kronos(**MODEL_CFG), KronosTokenizer(**TOK_CFG)
    p = KronosPredictor(model, tok, device="cpu", max_context=64)
    df, ts = _walk(50)
    p.predict(df.iloc[:40], ts[:40], ts[40:], 10, verbose=False, seed=0)
    model.train()
    s1 = torch.randint(0, 16, (2, 12))
    s2 = torch.randint(0, 16, (2, 12))
    l1, l2 = model(s1, s2, use_teacher_forcing=True, s1_targets=s1)
    loss, _, _ = model.head.compute_loss(l1, l2, s1, s2)
    loss.backward()
    assert model.transformer[0].self_attn.q_proj.weight.grad is not None
    assert torch.isfinite(loss)


# --------------------------------------------------------------------------- loading without torch._dynamo

_LOAD_AND_PREDICT = """
import sys, time
import torch
started = time.perf_counter()
from kronos_registry import load_predictor
from kronos_registry.candles import future_timestamps, read_candles, tail_lookback
candles = tail_lookback(read_candles(sys.argv[1]), 200)
predictor = load_predictor("kronos-demo", device="cpu")
predictor.predict(candles.frame, candles.timestamps, future_timestamps(candles.timestamps, 8), 8,
                  verbose=False, seed=0)
print("dynamo" if "torch._dynamo" in sys.modules else "no-dynamo", time.perf_counter() - started)
from kronos_registry.cli import main
try:
    main(["-q", "predict", "kronos-demo", "-i", sys.argv[1], "-n", "8", "--seed", "0", "-o", "out.csv"])
except SystemExit as exit:
    assert not exit.code, exit.code
print("dynamo" if "torch._dynamo" in sys.modules else "no-dynamo")
"""


def test_load_and_predict_do_not_import_torch_dynamo(tmp_path):
    """Building on the meta device imported torch._dynamo (~1 s) on the first load."""
    import subprocess
    import sys

    from tests.support.cli import SAMPLE_CSV, synced_demo

    runner = synced_demo(tmp_path)
    done = subprocess.run([sys.executable, "-c", _LOAD_AND_PREDICT, str(SAMPLE_CSV)], env=runner.env(),
                          cwd=runner.cwd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    first, _seconds, after_cli = done.stdout.split()
    assert (first, after_cli) == ("no-dynamo", "no-dynamo"), done.stdout  # API load+predict, then CLI predict


def test_uninitialised_build_adopts_the_loaded_tensors_and_still_trains(tmp_path):
    torch.manual_seed(0)
    model = Kronos(**MODEL_CFG)
    model.save_pretrained(tmp_path)
    from safetensors.torch import load_file

    state = load_file(str(tmp_path / "model.safetensors"))
    # half-precision weights are cast back to the module's float32 on load
    state = {k: v.half() if k.endswith((".weight", ".bias")) else v for k, v in state.items()}
    loaded = Kronos.uninitialised(**MODEL_CFG).load_weights(state)
    for key, value in model.state_dict().items():
        got = loaded.state_dict()[key]
        assert got.dtype == value.dtype, key
        want = value.half().to(value.dtype) if key.endswith((".weight", ".bias")) else value
        assert torch.equal(got, want), key
    rotary = loaded.transformer[0].self_attn.rotary
    assert torch.equal(rotary.inv_freq, model.transformer[0].self_attn.rotary.inv_freq)
    loaded.train()
    s1 = torch.randint(0, 16, (2, 12))
    l1, l2 = loaded(s1, s1, use_teacher_forcing=True, s1_targets=s1)
    loaded.head.compute_loss(l1, l2, s1, s1)[0].backward()
    assert loaded.embedding.emb_s1.weight.grad is not None


def test_a_forecast_longer_than_the_context_is_refused_before_sampling(predictor):
    # Only the last max_context (48) steps are decoded: 60 bars used to fail with a shape error at the end.
    df, ts = _walk(70)
    with pytest.raises(ValueError, match="pred_len 60 exceeds the model's context of 48"):
        predictor.predict(df.iloc[:10], ts[:10], ts[10:], 60, verbose=False)
