"""The batched many-series core: mixed lengths in one pass, batch invariance, parity with predict."""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pytest
import torch

import kronos_registry.kronos.generate as gen
from kronos_registry import Kronos, KronosPredictor, KronosTokenizer
from kronos_registry.batch import SeriesRequest, forecast_frame, forecast_series, series_seed  # the documented path

from .test_predictor import MODEL_CFG, TOK_CFG

CONTEXT = 64


@pytest.fixture(scope="module")
def predictor():
    torch.manual_seed(0)
    return KronosPredictor(Kronos(**MODEL_CFG).eval(), KronosTokenizer(**TOK_CFG).eval(), device="cpu",
                           max_context=CONTEXT)


def _walk(n, seed):
    rng = np.random.default_rng(seed)
    close = 20 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
    df = pd.DataFrame({"open": close * (1 + rng.normal(0, 0.003, n)), "high": close * 1.01,
                       "low": close * 0.99, "close": close, "volume": rng.integers(10, 1000, n).astype(float)})
    return df, pd.Series(pd.date_range("2024-05-06 09:30", periods=n, freq="15min"))


def _request(i, length, pred_len=6, sample_count=3, **kw):
    df, ts = _walk(length + pred_len, seed=100 + i)
    kw.setdefault("seed", 1000 + i)
    return SeriesRequest(f"S{i}", df.iloc[:length], ts[:length], ts[length:], pred_len,
                         sample_count=sample_count, **kw)


def _assert_same(a, b):
    """Same sampled tokens (a different token moves a value by far more than 1e-5) and values
    equal up to float rounding: the mean forecast and every sample path."""
    assert a.key == b.key
    np.testing.assert_allclose(a.forecast.to_numpy(), b.forecast.to_numpy(), rtol=1e-5, atol=1e-6)
    assert (a.forecast.index == b.forecast.index).all()
    if a.samples is None:
        assert b.samples is None
    else:
        np.testing.assert_allclose(a.samples, b.samples, rtol=1e-5, atol=1e-6)


def _count_passes(monkeypatch):
    """-> {"generate": [(series, padded length) per generation], "prefill": [(rows, window) per prefill]}"""
    calls = {"generate": [], "prefill": []}
    window, generate = gen._window_forward, gen.generate_tokens

    def counting_window(model, W, s1, *a, **k):
        calls["prefill"].append(tuple(s1.shape))
        return window(model, W, s1, *a, **k)

    def counting_generate(model, s1, *a, **k):
        calls["generate"].append(tuple(s1.shape))
        return generate(model, s1, *a, **k)

    monkeypatch.setattr(gen, "_window_forward", counting_window)
    monkeypatch.setattr(gen, "generate_tokens", counting_generate)
    return calls


def test_mixed_lengths_in_one_batch_equal_each_series_alone(predictor, monkeypatch):
    reqs = [_request(i, n) for i, n in enumerate([40, 9, 25, 57, 2, 33])]
    alone = [forecast_series(predictor, [r])[0] for r in reqs]
    calls = _count_passes(monkeypatch)
    batch = forecast_series(predictor, reqs, max_batch=16)
    assert calls["generate"] == [(6, 57)]  # one left-padded generation for all six lengths
    # prefilled by groups of similar length, each padded to its own longest (2, 9 | 25, 33, 40 | 57)
    assert calls["prefill"] == [(2, 9), (3, 40), (1, 57)]
    for a, b in zip(alone, batch):
        assert b.samples.shape == (3, 6, 6)
        _assert_same(a, b)
    # sampling really differs between paths, so equal samples mean the same tokens
    assert len({tuple(np.round(s[:, 3], 4)) for s in batch[0].samples}) > 1


def test_a_series_is_identical_across_batch_sizes_and_order(predictor):
    rng = random.Random(5)
    reqs = [_request(i, rng.randint(3, 58), pred_len=rng.choice([4, 6]), sample_count=2) for i in range(16)]
    base = forecast_series(predictor, reqs, max_batch=1)
    for max_batch in (3, 16):
        for a, b in zip(base, forecast_series(predictor, reqs, max_batch=max_batch)):
            _assert_same(a, b)
    order = list(range(16))
    rng.shuffle(order)
    shuffled = forecast_series(predictor, [reqs[i] for i in order], max_batch=16)
    for j, i in enumerate(order):
        _assert_same(base[i], shuffled[j])


@pytest.mark.parametrize("sample_count", [1, 4])
def test_single_series_with_seed_equals_predict(predictor, sample_count):
    r = _request(0, 50, pred_len=8, sample_count=sample_count, seed=42, top_k=5)
    mean, samples = predictor.predict(r.frame, r.timestamps, r.future, r.pred_len, T=r.T, top_k=r.top_k,
                                      top_p=r.top_p, sample_count=sample_count, verbose=False, seed=42,
                                      return_samples=True, valid_candles=True)
    got = forecast_series(predictor, [r])[0]
    np.testing.assert_allclose(got.forecast.to_numpy(), mean.to_numpy(), rtol=1e-5, atol=1e-6)
    if sample_count > 1:
        np.testing.assert_allclose(got.samples, samples, rtol=1e-5, atol=1e-6)
    else:
        assert got.samples is None


def test_padded_series_equals_predict_with_its_seed(predictor):
    """A short series padded in a batch with a long one still gives predict's forecast."""
    short, long_ = _request(0, 12, seed=7), _request(1, 50, seed=8)
    got = forecast_series(predictor, [long_, short])
    for r, f in ((short, got[1]), (long_, got[0])):
        _, samples = predictor.predict(r.frame, r.timestamps, r.future, r.pred_len, sample_count=3,
                                       verbose=False, seed=r.seed, return_samples=True, valid_candles=True)
        np.testing.assert_allclose(f.samples, samples, rtol=1e-5, atol=1e-6)


def test_per_series_sampling_settings_in_one_batch(predictor, monkeypatch):
    settings = [dict(T=1.0, top_k=0, top_p=0.9), dict(T=0.5, top_k=3, top_p=1.0), dict(T=1.3, top_k=0, top_p=0.5),
                dict(T=1.0, top_k=1, top_p=1.0), dict(T=1.0, top_k=0, top_p=1.0)]
    reqs = [_request(i, 20 + 7 * i, pred_len=5 + i, **s) for i, s in enumerate(settings)]
    calls = _count_passes(monkeypatch)
    batch = forecast_series(predictor, reqs)
    assert len(calls["generate"]) == 1
    for r, b in zip(reqs, batch):
        mean, samples = predictor.predict(r.frame, r.timestamps, r.future, r.pred_len, T=r.T, top_k=r.top_k,
                                          top_p=r.top_p, sample_count=3, verbose=False, seed=r.seed,
                                          return_samples=True, valid_candles=True)
        assert b.forecast.shape == (r.pred_len, 6)
        np.testing.assert_allclose(b.samples, samples, rtol=1e-5, atol=1e-6)
    greedy = batch[3].samples
    np.testing.assert_allclose(greedy, np.broadcast_to(greedy[:1], greedy.shape))  # top_k=1: one path


def test_a_series_past_the_context_slides_alone_as_predict(predictor):
    fits, slides = _request(0, 30, pred_len=6), _request(1, 62, pred_len=6)  # 62 + 6 > 64
    got = forecast_series(predictor, [slides, fits])
    _, samples = predictor.predict(slides.frame, slides.timestamps, slides.future, 6, sample_count=3,
                                   verbose=False, seed=slides.seed, return_samples=True, valid_candles=True)
    np.testing.assert_allclose(got[0].samples, samples, rtol=1e-5, atol=1e-6)
    _assert_same(got[1], forecast_series(predictor, [fits])[0])


def test_progress_counts_every_series_and_errors_name_the_series(predictor):
    reqs = [_request(i, 10 + i, sample_count=1 + i % 2) for i in range(5)]
    done = []
    forecast_series(predictor, reqs, max_batch=2, progress=done.append)
    assert sum(done) == 5 and max(done) <= 2
    done.clear()  # at most max_rows sampled paths per batch (the cache grows per path)
    forecast_series(predictor, [_request(i, 10 + i, sample_count=4) for i in range(5)], max_rows=8,
                    progress=done.append)
    assert done == [2, 2, 1]
    bad = reqs[2].frame.copy()
    bad.iloc[3, 1] = np.nan
    with pytest.raises(ValueError, match="series 'S2'.*NaN"):
        forecast_series(predictor, [reqs[0], SeriesRequest("S2", bad, reqs[2].timestamps, reqs[2].future, 6)])


def test_series_seed_is_stable_and_depends_on_both():
    assert series_seed(1, "AAPL") == series_seed(1, "AAPL")
    assert len({series_seed(1, "AAPL"), series_seed(2, "AAPL"), series_seed(1, "MSFT")}) == 3
    assert series_seed(1, "AAPL") == 1081403016063820929  # fixed: a rerun in a year agrees
    assert 0 <= series_seed(123, "x") < 2 ** 63


def test_forecast_frame_long_format_from_frame_or_dict(predictor):
    frames = {}
    for i, n in enumerate([30, 45, 20]):
        df, ts = _walk(n, seed=i)
        frames[f"K{i}"] = df.assign(timestamps=ts)
    long_in = pd.concat([f.assign(symbol=k) for k, f in frames.items()], ignore_index=True)
    out = forecast_frame(predictor, long_in, by="symbol", pred_len=5, sample_count=3, seed=9,
                         quantiles=[0.1, 0.9])
    assert list(out.columns[:8]) == ["symbol", "timestamps", "open", "high", "low", "close", "volume", "amount"]
    assert {"close_q0.1", "close_q0.9", "volume_q0.1"} <= set(out.columns)
    assert list(out["symbol"].unique()) == ["K0", "K1", "K2"] and len(out) == 15
    k1 = out[out.symbol == "K1"]
    assert k1["timestamps"].iloc[0] == frames["K1"]["timestamps"].iloc[-1] + pd.Timedelta("15min")
    assert (k1["close_q0.1"] <= k1["close_q0.9"]).all()
    again = forecast_frame(predictor, frames, pred_len=5, sample_count=3, seed=9, quantiles=[0.1, 0.9])
    pd.testing.assert_frame_equal(out, again, rtol=1e-5)
    # a series' forecast is the one it gets alone with its derived seed
    alone = forecast_frame(predictor, {"K1": frames["K1"]}, pred_len=5, sample_count=3, seed=9,
                           quantiles=[0.1, 0.9])
    pd.testing.assert_frame_equal(k1.reset_index(drop=True), alone, rtol=1e-5)
    one = forecast_frame(predictor, frames, pred_len=5)
    assert list(one.columns) == ["symbol", "timestamps", "open", "high", "low", "close", "volume", "amount"]
    with pytest.raises(ValueError, match="no key column 'ticker'"):
        forecast_frame(predictor, long_in, by="ticker", pred_len=5)
