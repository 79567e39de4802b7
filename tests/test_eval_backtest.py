"""Rolling origins (issue 21, items 1, 2 and 5): where windows fall, that no forecast can see
its own future (with the packaged demo model), what the scores of known forecasts are, and the
leakage guard over an entry's lineage."""

from __future__ import annotations

import types

import numpy as np
import pandas as pd
import pytest

from kronos_registry.candles import read_candles, validate_frame
from kronos_registry.candles.columns import COLUMNS
from kronos_registry.kronos.batch import series_seed
from kronos_registry.kronos.predictor import KronosPredictor
from kronos_registry.services.evaluation import guard
from kronos_registry.services.evaluation.backtest import baseline_forecasts, model_forecasts, plan_windows
from kronos_registry.services.evaluation.baselines import Baseline
from kronos_registry.services.evaluation.scoring import score
from kronos_registry.services.forecast import ForecastParams, prepare_forecast
from kronos_registry.services.lineage import DataFingerprint, Lineage, SeriesSpan
from kronos_registry.services.registry import load_module
from registry.errors import InputDataError
from tests.support.cli import DEMO_MODEL_DIR, DEMO_TOKENIZER_DIR, SAMPLE_CSV


@pytest.fixture(scope="module")
def predictor():
    """The packaged demo model (tiny, trained on two indices), in this process."""
    import torch

    torch.set_num_threads(1)
    return KronosPredictor(load_module("model", DEMO_MODEL_DIR), load_module("tokenizer", DEMO_TOKENIZER_DIR),
                           device="cpu", max_context=512)


def linear_series(rows: int = 60, start: str = "2024-01-02 09:30") -> pd.DataFrame:
    """Every column climbs by 1 per bar: naive misses by h at step h, drift never misses."""
    values = np.arange(100.0, 100.0 + rows)
    frame = pd.DataFrame({c: values for c in ("open", "high", "low", "close")})
    frame["volume"], frame["amount"] = values, values
    frame.insert(0, "timestamps", pd.date_range(start, periods=rows, freq="5min"))
    return frame


# --------------------------------------------------------------------------- where windows fall


def test_origins_over_the_tail_and_every_s_bars():
    series = {"series": validate_frame(linear_series(100))}
    plan = plan_windows(series, horizon=5, context=512, lookback=20, origins=3)
    assert [w.origin for w in plan.windows] == [85, 90, 95]          # H apart, the last one ends the data
    every = plan_windows(series, horizon=5, context=512, lookback=20, every=10)
    assert [w.origin for w in every.windows] == list(range(25, 96, 10))
    # the default lookback keeps every origin: 100 - 5 - 2 * 5 = 85 bars
    default = plan_windows(series, horizon=5, context=512, origins=3)
    assert default.lookback == 85 and len(default.windows) == 3
    # the history is the bars before the origin, the truth the next H, and the seed's name the last seen bar
    w = plan.windows[0]
    assert plan.history(w)[:, 3].tolist() == list(np.arange(165.0, 185.0))
    assert plan.truth(w)[:, 3].tolist() == list(np.arange(185.0, 190.0))
    assert w.name == "series@" + (pd.Timestamp("2024-01-02 09:30") + pd.Timedelta(minutes=5 * 84)).isoformat()


def test_a_series_without_room_for_a_window_is_named():
    series = {"AAA": validate_frame(linear_series(100)), "BBB": validate_frame(linear_series(30))}
    with pytest.raises(InputDataError) as caught:
        plan_windows(series, horizon=5, context=512, lookback=40, source="long.csv")
    text = str(caught.value)
    assert "series 'BBB' has 30 bars" in text and "lookback 40 + horizon 5 = 45" in text
    assert "--lookback" in caught.value.hint and caught.value.field == "lookback"
    with pytest.raises(InputDataError, match="both place origins"):
        plan_windows(series, horizon=5, context=512, origins=3, every=2)


def test_known_forecasts_get_the_hand_computed_scores():
    plan = plan_windows({"series": validate_frame(linear_series(60))}, horizon=3, context=512, lookback=10,
                        origins=4)
    base = [baseline_forecasts(Baseline(kind), plan, samples=1, seed=0) for kind in ("naive", "drift")]
    rows = pd.DataFrame(score(plan, base, metrics=("mae", "rmse", "mase", "direction"), columns=("close",),
                              quantiles=(), notes=[]))
    naive = rows[rows.model == "naive"].set_index(["metric", "step"])["value"]
    drift = rows[rows.model == "drift"].set_index(["metric", "step"])["value"]
    for h in (1, 2, 3):
        assert naive["mae", h] == pytest.approx(h)      # the close climbs 1 a bar; naive stays put
        assert naive["mase", h] == pytest.approx(h)     # the naive scale of a +1-a-bar history is 1
        assert drift["mae", h] == pytest.approx(0.0, abs=1e-9)
    assert naive["mae", "all"] == pytest.approx(2.0)
    assert naive["rmse", "all"] == pytest.approx(np.sqrt((1 + 4 + 9) / 3))
    assert naive["direction", "all"] == pytest.approx(0.5) and drift["direction", "all"] == pytest.approx(1.0)


# --------------------------------------------------------------------------- leakage-safe by construction


def forecasts_of(predictor, frame: pd.DataFrame, plan_args: dict, samples: int):
    candles = validate_frame(frame)
    plan = plan_windows({"series": candles}, **plan_args)
    params = ForecastParams(pred_len=plan.horizon, samples=samples, seed=11, lookback=plan.lookback)
    model = model_forecasts(predictor, plan, params, name="demo", seed=11, max_batch=3)
    walk = baseline_forecasts(Baseline("random-walk"), plan, samples=samples, seed=11)
    drift = baseline_forecasts(Baseline("drift"), plan, samples=samples, seed=11)
    return plan, [model, walk, drift]


def test_altering_any_candle_at_or_after_an_origin_changes_no_forecast_made_from_it(predictor):
    frame = pd.read_csv(SAMPLE_CSV, parse_dates=["timestamps"]).iloc[:200]
    plan_args = dict(horizon=4, context=512, lookback=48, origins=6)
    plan, before = forecasts_of(predictor, frame, plan_args, samples=3)
    origins = [w.origin for w in plan.windows]
    rng = np.random.default_rng(5)
    for cut in (origins[1], origins[3] + 2, origins[-1]):     # at an origin, between two, at the last one
        altered = frame.copy()
        tail = altered.index >= cut
        for column in ("open", "high", "low", "close"):
            altered.loc[tail, column] *= rng.uniform(0.5, 2.0, tail.sum())
        altered.loc[tail, "high"] = altered.loc[tail, ["open", "high", "low", "close"]].max(axis=1)
        altered.loc[tail, "low"] = altered.loc[tail, ["open", "high", "low", "close"]].min(axis=1)
        altered.loc[tail, "volume"] = rng.integers(1, 10**6, tail.sum())
        altered.loc[tail, "timestamps"] += pd.Timedelta(minutes=1)           # even the bars' times
        _, after = forecasts_of(predictor, altered, plan_args, samples=3)
        for old, new in zip(before, after):
            for i, w in enumerate(plan.windows):
                same = np.array_equal(old.point[i], new.point[i]) and (
                    old.samples is None or np.array_equal(old.samples[i], new.samples[i]))
                if w.origin <= cut:
                    assert same, f"{old.name}: the forecast from origin {w.origin} changed when bars >= {cut} did"
                elif old.name == "demo":
                    assert not same, "the alteration never reached a later window: the test proves nothing"


def test_a_window_equals_predict_on_its_history_alone(predictor):
    """Batch invariance: all windows in one batched call, each as `predict --seed` would give it."""
    frame = pd.read_csv(SAMPLE_CSV, parse_dates=["timestamps"]).iloc[:160]
    plan, (model, *_) = forecasts_of(predictor, frame, dict(horizon=4, context=512, lookback=40, origins=5),
                                     samples=1)
    for i in (0, 3):
        w = plan.windows[i]
        job = prepare_forecast(plan.history_candles(w), pred_len=4, context=512, lookback=40)
        alone = predictor.predict(job.used.frame, job.used.timestamps, pd.Series(job.future.timestamps), 4,
                                  verbose=False, seed=series_seed(11, w.name), valid_candles=True)
        np.testing.assert_allclose(model.point[i], alone[list(COLUMNS)].to_numpy(), rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- the leakage guard

SHA = "ab" * 32


def lineage(sha=SHA, by=None, train=(("series", "2024-01-02T09:30:00", "2024-01-03T10:00:00"),)):
    spans = tuple(SeriesSpan(key, 10, first, last) for key, first, last in train)
    return Lineage(base="kronos-demo", base_artifact="local--kronos-demo--x", tokenizer="kronos-demo-tokenizer",
                   tokenizer_trained=False,
                   data=DataFingerprint(sha, "train.csv", 100, 1, by, "2024-01-02T09:30:00", "2024-01-03T15:00:00"),
                   splits={"train": spans, "test": (SeriesSpan("series", 5, "2024-01-05T09:30:00",
                                                               "2024-01-05T15:00:00"),)},
                   hyperparameters={}, best_validation_loss=None, weights_sha256={"model": SHA},
                   created="2025-01-01T00:00:00+00:00", tool_version="test").to_dict()


def entry(mapping):
    return types.SimpleNamespace(name="demo-ft", lineage=mapping, origin=types.SimpleNamespace(path="models.yaml"))


@pytest.fixture(scope="module")
def sample_plan():
    return plan_windows({"series": read_candles(SAMPLE_CSV)}, horizon=8, context=512, lookback=64, origins=30)


def test_the_guard_refuses_windows_inside_the_trained_span_and_names_the_fix(sample_plan):
    inside = [w for w in sample_plan.windows if sample_plan.truth_span(w).first <= "2024-01-03T10:00:00"]
    assert 0 < len(inside) < len(sample_plan.windows)
    for sha in (SHA, "cd" * 32):             # the same file, or another holding the same series
        with pytest.raises(InputDataError) as caught:
            guard.check(entry(lineage(sha=SHA)), sample_plan, sha256=sha, by=None, source="candles.csv",
                        allow_overlap=False)
        text = str(caught.value)
        assert f"{len(inside)} of {len(sample_plan.windows)} windows" in text and "series 'series'" in text
        assert "--allow-overlap" in caught.value.hint and caught.value.field == "allow_overlap"
    allowed = guard.check(entry(lineage()), sample_plan, sha256=SHA, by=None, source="candles.csv",
                          allow_overlap=True)
    assert allowed.marked and len(allowed.overlapping) == len(inside) and "optimistic" in allowed.note


def test_the_guard_passes_other_series_and_later_candles(sample_plan):
    other = guard.check(entry(lineage(train=(("AAA", "2024-01-02T09:30:00", "2024-01-09T15:00:00"),))),
                        sample_plan, sha256="cd" * 32, by=None, source="c.csv", allow_overlap=False)
    assert other.checked and not other.marked
    before = guard.check(entry(lineage(train=(("series", "2023-01-02T09:30:00", "2023-06-01T15:00:00"),))),
                         sample_plan, sha256=SHA, by=None, source="c.csv", allow_overlap=False)
    assert before.checked and not before.marked
    # the same bytes split by another key column: times alone decide
    with pytest.raises(InputDataError):
        guard.check(entry(lineage(by="symbol", train=(("AAA", "2024-01-02T09:30:00", "2024-01-09T15:00:00"),))),
                    sample_plan, sha256=SHA, by=None, source="c.csv", allow_overlap=False)
    unknown = guard.check(entry(None), sample_plan, sha256=SHA, by=None, source="c.csv", allow_overlap=False)
    assert not unknown.checked and "cannot be checked" in unknown.note
    with pytest.raises(InputDataError) as caught:
        guard.check(entry({"base": "x"}), sample_plan, sha256=SHA, by=None, source="c.csv", allow_overlap=False)
    assert caught.value.field.startswith("lineage.") and "demo-ft" in str(caught.value)
