"""Our Kronos against the official implementation (kronos-model-arch==0.1.0, package `model`).

Random weights, seeded, copied into both; small configurations keep the file fast. The
published shapes are checked on the meta device (no memory), and Kronos-small's real
shapes run a greedy and a sampled forecast whose window slides for many steps.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

official = pytest.importorskip("model", reason="official Kronos package (kronos-model-arch) not installed")
if not hasattr(official, "Kronos"):
    pytest.skip("the importable `model` package is not the official Kronos one", allow_module_level=True)

import kronos_registry.kronos.generate as gen  # noqa: E402
from kronos_registry import Kronos, KronosPredictor, KronosTokenizer  # noqa: E402
from kronos_registry.kronos import PUBLISHED_CONFIGS, count_parameters  # noqa: E402

CANDLES = Path(__file__).resolve().parents[2] / "shared/data/xshg_5min_regression_input.csv"

# the official predictor uses Series.dt.weekday, which pandas deprecates
pytestmark = pytest.mark.filterwarnings("ignore:.*weekday is deprecated")

TOK_CFG = dict(d_in=6, d_model=32, n_heads=2, ff_dim=64, n_enc_layers=3, n_dec_layers=3, ffn_dropout_p=0.0,
               attn_dropout_p=0.0, resid_dropout_p=0.0, s1_bits=4, s2_bits=4, beta=0.05, gamma0=1.0, gamma=1.1,
               zeta=0.05, group_size=4)
MODEL_CFG = dict(s1_bits=4, s2_bits=4, n_layers=2, d_model=32, n_heads=2, ff_dim=64, ffn_dropout_p=0.0,
                 attn_dropout_p=0.0, resid_dropout_p=0.0, token_dropout_p=0.0, learn_te=True)

PUBLISHED_PARAMS = {"kronos-tokenizer-base": 3_958_042, "kronos-tokenizer-2k": 3_958_042,
                    "kronos-mini": 4_108_032, "kronos-small": 24_741_376, "kronos-base": 102_310_592}


def _pair(tok_cfg=TOK_CFG, model_cfg=MODEL_CFG, seed=0):
    """(official tokenizer, official model, our tokenizer, our model), same weights."""
    torch.manual_seed(seed)
    ut, um = official.KronosTokenizer(**tok_cfg).eval(), official.Kronos(**model_cfg).eval()
    # the tokenizer's default init leaves many codes near zero; spread it so the test means something
    with torch.no_grad():
        for p in ut.parameters():
            if p.dim() == 2:
                p.normal_(0, p.shape[1] ** -0.5)
    ot, om = KronosTokenizer(**tok_cfg).eval(), Kronos(**model_cfg).eval()
    ot.load_state_dict(ut.state_dict(), strict=True)
    om.load_state_dict(um.state_dict(), strict=True)
    return ut, um, ot, om


@pytest.fixture(scope="module")
def pair():
    return _pair()


def _walk(n, seed=0):
    rng = np.random.default_rng(seed)
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    df = pd.DataFrame({"open": close * (1 + rng.normal(0, 0.002, n)), "close": close})
    df["high"] = df[["open", "close"]].max(axis=1) * 1.003
    df["low"] = df[["open", "close"]].min(axis=1) * 0.997
    df["volume"] = rng.integers(100, 5000, n).astype(float)
    ts = pd.Series(pd.date_range("2024-03-01 09:30", periods=n, freq="5min"))
    return df[["open", "high", "low", "close", "volume"]], ts


def _stamps(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    cols = [torch.randint(0, k, (2, n), generator=g) for k in (60, 24, 7, 32, 13)]
    return torch.stack(cols, dim=-1).float()


# --------------------------------------------------------------------------- structure


@pytest.mark.parametrize("name", list(PUBLISHED_CONFIGS))
def test_published_configs_state_dicts_match_and_load_both_ways(name):
    cfg = PUBLISHED_CONFIGS[name]
    ours_cls, theirs_cls = ((KronosTokenizer, official.KronosTokenizer) if "tokenizer" in name
                            else (Kronos, official.Kronos))
    with torch.device("meta"):
        ours, theirs = ours_cls(**cfg), theirs_cls(**cfg)
    a, b = ours.state_dict(), theirs.state_dict()
    assert list(a) == list(b)
    assert {k: (tuple(v.shape), v.dtype) for k, v in a.items()} == {k: (tuple(v.shape), v.dtype) for k, v in b.items()}
    assert not ours.load_state_dict(b, strict=True).missing_keys
    assert not theirs.load_state_dict(a, strict=True).missing_keys
    assert count_parameters(ours) == PUBLISHED_PARAMS[name] == sum(p.numel() for p in theirs.parameters())


def test_public_signatures_match_official():
    pairs = [(KronosTokenizer, official.KronosTokenizer, ["__init__", "encode", "decode", "forward"]),
             (Kronos, official.Kronos, ["__init__", "decode_s1", "decode_s2", "forward"]),
             (KronosPredictor, official.KronosPredictor, ["__init__", "predict", "predict_batch"])]
    for ours, theirs, methods in pairs:
        for m in methods:
            po = list(inspect.signature(getattr(ours, m)).parameters.values())
            pt = list(inspect.signature(getattr(theirs, m)).parameters.values())
            # theirs is a prefix of ours (ours may add keyword-only extras); names and defaults equal,
            # except the device default, which we auto-detect instead of assuming cuda:0
            assert [p.name for p in po[:len(pt)]] == [p.name for p in pt], (ours, m)
            for p, q in zip(po, pt):
                if p.name != "device":
                    assert p.default == q.default, (ours, m, p.name)
            assert all(p.kind is p.KEYWORD_ONLY for p in po[len(pt):]), (ours, m)


# --------------------------------------------------------------------------- tokenizer and model


def test_tokenizer_indices_and_decoding_match(pair):
    ut, _, ot, _ = pair
    x = torch.randn(2, 70, 6, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        for half in (False, True):
            a, b = ut.encode(x, half=half), ot.encode(x, half=half)
            if half:
                assert all(torch.equal(i, j) for i, j in zip(a, b))
                assert 2 < len(torch.unique(a[0])) and 2 < len(torch.unique(a[1]))  # not degenerate
            else:
                assert torch.equal(a, b)
            torch.testing.assert_close(ot.decode(b, half=half), ut.decode(a, half=half), rtol=1e-5, atol=1e-5)
        (p1, z1), l1, _, i1 = ut(x)
        (p2, z2), l2, _, i2 = ot(x)
        torch.testing.assert_close(z2, z1, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(p2, p1, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(l2, l1, rtol=1e-5, atol=1e-6)
        assert torch.equal(i1, i2)


def test_model_logits_match(pair):
    ut, um, ot, om = pair
    with torch.no_grad():
        s1, s2 = ut.encode(torch.randn(2, 50, 6, generator=torch.Generator().manual_seed(2)), half=True)
        st = _stamps(50)
        l_ref, c_ref = um.decode_s1(s1, s2, st)
        l_our, c_our = om.decode_s1(s1, s2, st)
        torch.testing.assert_close(l_our, l_ref, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(c_our, c_ref, rtol=1e-5, atol=1e-5)
        for q_len in (1, 50):  # 1-token query (inference) and full-length query (rotary on both)
            q = torch.randint(0, 16, (2, q_len), generator=torch.Generator().manual_seed(q_len))
            torch.testing.assert_close(om.decode_s2(c_our, q), um.decode_s2(c_ref, q), rtol=1e-5, atol=1e-5)
        torch.manual_seed(3)
        f_ref = um(s1, s2, st)
        torch.manual_seed(3)
        f_our = om(s1, s2, st)
        for a, b in zip(f_our, f_ref):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------- forecasts


def _predictors(pair, max_context):
    ut, um, ot, om = pair
    return (official.KronosPredictor(um, ut, device="cpu", max_context=max_context),
            KronosPredictor(om, ot, device="cpu", max_context=max_context))


# (lookback, pred_len, max_context): fits; fits exactly; slides midway; slides from the start
FORECAST_CASES = [(40, 20, 64), (44, 20, 64), (40, 40, 64), (70, 20, 64)]


@pytest.mark.parametrize("lookback,pred_len,ctx", FORECAST_CASES)
def test_greedy_forecast_equals_official(pair, lookback, pred_len, ctx):
    df, ts = _walk(lookback + pred_len)
    ref, ours = _predictors(pair, ctx)
    args = (df.iloc[:lookback], ts.iloc[:lookback], ts.iloc[lookback:], pred_len)
    a = ref.predict(*args, top_k=1, verbose=False)
    b = ours.predict(*args, top_k=1, verbose=False)
    assert list(b.columns) == list(a.columns) and (b.index == a.index).all()
    np.testing.assert_allclose(b.to_numpy(), a.to_numpy(), rtol=1e-5)
    assert b.to_numpy().std(axis=0).max() > 0  # a real forecast, not a constant


@pytest.mark.parametrize("lookback,pred_len,ctx", FORECAST_CASES)
def test_seeded_sampled_forecast_equals_official(pair, lookback, pred_len, ctx):
    df, ts = _walk(lookback + pred_len, seed=1)
    ref, ours = _predictors(pair, ctx)
    args = (df.iloc[:lookback], ts.iloc[:lookback], ts.iloc[lookback:], pred_len)
    torch.manual_seed(11)
    a = ref.predict(*args, T=1.0, top_p=0.9, sample_count=3, verbose=False)
    b, samples = ours.predict(*args, T=1.0, top_p=0.9, sample_count=3, verbose=False, seed=11, return_samples=True)
    np.testing.assert_allclose(b.to_numpy(), a.to_numpy(), rtol=1e-5)
    assert samples.shape == (3, pred_len, 6)
    assert not np.allclose(samples[0], samples[1])  # the paths really differ
    # a different seed gives a different forecast (the seed is really used)
    c = ours.predict(*args, T=1.0, top_p=0.9, sample_count=3, verbose=False, seed=12)
    assert not np.allclose(c.to_numpy(), a.to_numpy())


def test_seeded_batch_with_top_k_equals_official(pair):
    df, ts = _walk(90, seed=2)
    ref, ours = _predictors(pair, 64)
    dfs = [df.iloc[:50], df.iloc[10:60]]
    xts, yts = [ts.iloc[:50], ts.iloc[10:60]], [ts.iloc[50:80], ts.iloc[60:90]]
    torch.manual_seed(5)
    a = ref.predict_batch(dfs, xts, yts, 30, T=0.8, top_k=4, sample_count=2, verbose=False)
    b = ours.predict_batch(dfs, xts, yts, 30, T=0.8, top_k=4, sample_count=2, verbose=False,
                           generator=torch.Generator().manual_seed(5))
    for x, y in zip(a, b):
        np.testing.assert_allclose(y.to_numpy(), x.to_numpy(), rtol=1e-5)


def test_chunked_prefill_equals_official(pair, monkeypatch):
    """A context longer than the prefill chunk goes through the cache chunk by chunk."""
    monkeypatch.setattr(gen, "PREFILL_CHUNK", 16)
    df, ts = _walk(100, seed=3)
    ref, ours = _predictors(pair, 128)
    args = (df.iloc[:90], ts.iloc[:90], ts.iloc[90:], 10)
    torch.manual_seed(2)
    a = ref.predict(*args, top_p=0.9, sample_count=2, verbose=False)
    b = ours.predict(*args, top_p=0.9, sample_count=2, verbose=False, seed=2)
    np.testing.assert_allclose(b.to_numpy(), a.to_numpy(), rtol=1e-5)


@pytest.fixture(scope="module")
def small_pair():
    """Kronos-small's real shapes (d_model 512, 8 heads, 8 layers, 1024-code vocabularies), random weights.

    The tokenizer keeps Tokenizer-base's widths with fewer layers: it runs once per forecast, and
    its parity is checked above.
    """
    tok_cfg = dict(PUBLISHED_CONFIGS["kronos-tokenizer-base"], n_enc_layers=2, n_dec_layers=2)
    return _pair(tok_cfg, PUBLISHED_CONFIGS["kronos-small"])


@pytest.fixture
def one_thread():
    """One intra-op thread: at these shapes every step is a full window pass, and on a machine whose
    two cores are shared with other processes a two-thread pool runs them several times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# (lookback, pred_len, max_context, samples). Every step from the 10th (first case) or from the
# first (second case) runs past the context: the window slides, positions restart at 0 and the
# cache is rebuilt, so a stale cross-attention cache, time features one step off or a window off
# by one token change the tokens. The context is kept short (real shapes, fewer positions):
# lookback 500 / context 512 costs minutes per case on this CPU.
SMALL_SLIDE_CASES = [
    pytest.param(40, 24, 48, 0, id="greedy-fills-then-slides-15-steps"),
    pytest.param(56, 20, 48, 2, id="sampled-2-paths-slides-every-step"),
]


@pytest.mark.parametrize("lookback,pred_len,ctx,samples", SMALL_SLIDE_CASES)
def test_kronos_small_shapes_slide_for_many_steps_equal_official(small_pair, one_thread, lookback, pred_len, ctx,
                                                                 samples):
    df, ts = _walk(lookback + pred_len, seed=4)
    ref, ours = _predictors(small_pair, ctx)
    assert lookback + pred_len - ctx >= 15  # many steps past the context, not just the last one
    args = (df.iloc[:lookback], ts.iloc[:lookback], ts.iloc[lookback:], pred_len)
    if samples == 0:
        a = ref.predict(*args, top_k=1, verbose=False)
        b = ours.predict(*args, top_k=1, verbose=False)
    else:
        torch.manual_seed(11)
        a = ref.predict(*args, T=1.0, top_p=0.9, sample_count=samples, verbose=False)
        b, paths = ours.predict(*args, T=1.0, top_p=0.9, sample_count=samples, verbose=False, seed=11,
                                return_samples=True)
        assert paths.shape == (samples, pred_len, 6) and not np.allclose(paths[0], paths[1])
    np.testing.assert_allclose(b.to_numpy(), a.to_numpy(), rtol=1e-5)
    assert b.to_numpy().std(axis=0).max() > 0  # a real forecast, not a constant


@pytest.mark.skipif(not CANDLES.is_file(), reason=f"real candles not found at {CANDLES}")
def test_real_candles_match_official(pair):
    raw = pd.read_csv(CANDLES, parse_dates=["timestamps"])
    assert len(raw) >= 200
    lookback, pred_len, ctx = 160, 24, 176  # slides for the last 8 steps
    x, ts = raw.iloc[:lookback], raw["timestamps"]
    cols = ["open", "high", "low", "close", "volume", "amount"]
    args = (x[cols], ts.iloc[:lookback], ts.iloc[lookback:lookback + pred_len], pred_len)
    ref, ours = _predictors(pair, ctx)
    np.testing.assert_allclose(ours.predict(*args, top_k=1, verbose=False).to_numpy(),
                               ref.predict(*args, top_k=1, verbose=False).to_numpy(), rtol=1e-5)
    torch.manual_seed(9)
    a = ref.predict(*args, T=1.0, top_p=0.9, sample_count=3, verbose=False)
    b = ours.predict(*args, T=1.0, top_p=0.9, sample_count=3, verbose=False, seed=9)
    np.testing.assert_allclose(b.to_numpy(), a.to_numpy(), rtol=1e-5)
    # forecasts stay in the price range of the input (denormalisation is right)
    lo, hi = x["low"].min(), x["high"].max()
    assert ((b["close"] > lo * 0.5) & (b["close"] < hi * 1.5)).all()
