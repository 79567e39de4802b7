"""The evaluation's definitions (issue 21, item 3): every metric, baseline and the skill test
against a case worked out by hand (the arithmetic is in each test's comments)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kronos_registry.services.evaluation import metrics as m
from kronos_registry.services.evaluation.baselines import (
    Baseline,
    drift,
    naive,
    parse_baselines,
    random_walk,
    seasonal_naive,
)
from kronos_registry.services.evaluation.skill import (
    BETTER,
    SAME,
    TOO_FEW,
    WORSE,
    block_length,
    bootstrap_interval,
    verdict,
)
from registry.errors import InputDataError

# --------------------------------------------------------------------------- point metrics


def test_mae_and_rmse_by_hand():
    # errors -1, 0, -2: MAE = 3/3 = 1; RMSE = sqrt((1 + 0 + 4) / 3)
    assert m.mean_absolute_error([1, 2, 3], [2, 2, 5]) == pytest.approx(1.0)
    assert m.root_mean_squared_error([1, 2, 3], [2, 2, 5]) == pytest.approx(math.sqrt(5 / 3))


def test_mase_is_scaled_by_the_histories_naive_one_step_error():
    # history 10, 11, 13, 12: steps 1, 2, 1 -> s = 4/3; errors 2, 3 -> (2.5) / (4/3) = 1.875
    scale = m.naive_scale([10, 11, 13, 12])
    assert scale == pytest.approx(4 / 3)
    assert m.mean_absolute_scaled_error([14, 15], [12, 12], scale) == pytest.approx(1.875)
    # one scale per window, broadcast over its steps: window 2 has s = 2, errors 1, 1 -> 0.5
    scales = m.naive_scale([[10, 11, 13, 12], [0, 2, 4, 6]])
    assert scales.tolist() == pytest.approx([4 / 3, 2.0])
    value = m.mean_absolute_scaled_error([[14, 15], [7, 7]], [[12, 12], [6, 8]], scales[:, None])
    assert value == pytest.approx((1.5 + 2.25 + 0.5 + 0.5) / 4)
    with pytest.raises(ValueError, match="positive"):
        m.mean_absolute_scaled_error([1.0], [1.0], 0.0)


def test_direction_hit_rate_scores_no_call_as_half_and_skips_unmoved_closes():
    # last close 10; changes true +1, -1, 0, +2; forecast +2, +1, 0, 0
    # hit, miss, (skipped: nothing moved), no call = 0.5 -> (1 + 0 + 0.5) / 3
    assert m.direction_hit_rate(10, [11, 9, 10, 12], [12, 11, 10, 10]) == pytest.approx(0.5)
    assert m.direction_hit_rate(10, [11, 12], [10, 10]) == pytest.approx(0.5)   # naive: a coin
    assert math.isnan(m.direction_hit_rate(10, [10, 10], [11, 9]))


def test_ic_and_rank_ic_by_hand():
    # deviations p: -2 -1 0 1 2, r: -2 0 -1 2 1 -> 8 / sqrt(10 * 10) = 0.8 (they are ranks already)
    assert m.information_coefficient([1, 2, 3, 4, 5], [1, 3, 2, 5, 4]) == pytest.approx(0.8)
    assert m.rank_information_coefficient([1, 2, 3, 4, 5], [1, 3, 2, 5, 4]) == pytest.approx(0.8)
    # an outlier: ranks agree perfectly, values do not
    assert m.rank_information_coefficient([1, 2, 3, 4, 100], [1, 2, 3, 4, 5]) == pytest.approx(1.0)
    assert m.information_coefficient([1, 2, 3, 4, 100], [1, 2, 3, 4, 5]) < 0.8
    # ties share their mean rank: ranks 1.5 1.5 3 4 5 against 1 2 3 4 5
    p = np.array([1.5, 1.5, 3, 4, 5])
    expected = np.corrcoef(p, [1, 2, 3, 4, 5])[0, 1]
    assert m.rank_information_coefficient([7, 7, 8, 9, 10], [1, 2, 3, 4, 5]) == pytest.approx(expected)
    assert math.isnan(m.information_coefficient([0, 0, 0, 0, 0], [1, 2, 3, 4, 5]))   # no change ranks nothing
    with pytest.raises(ValueError, match="at least 5 series"):
        m.information_coefficient([1, 2, 3, 4], [1, 2, 3, 4])


# --------------------------------------------------------------------------- sampled forecasts


def test_crps_of_samples_equals_the_integral_of_the_squared_cdf_gap():
    # samples -1, 1 around y = 0: the CDF is 0.5 on [-1, 1): integral of 0.25 over 2 -> 0.5
    assert m.crps_ensemble([0.0], [[-1.0, 1.0]]) == pytest.approx(0.5)
    # samples 0, 2, 4 and y = 1: (1/3)^2 on [0,1), (2/3)^2 on [1,2), (1/3)^2 on [2,4) -> 1/9 + 4/9 + 2/9
    assert m.crps_ensemble([1.0], [[0.0, 2.0, 4.0]]) == pytest.approx(7 / 9)
    # one sample: the absolute error
    assert m.crps_ensemble([3.0, 1.0], [[5.0], [1.5]]) == pytest.approx(1.25)
    values = m.crps_ensemble([0.0, 1.0], [[-1.0, 1.0], [0.0, 2.0]], average=False)
    assert values.tolist() == pytest.approx([0.5, 0.5])


def test_pinball_coverage_and_calibration_by_hand():
    # q = 0.9: y - yhat = 2 -> 1.8; -2 -> 0.2; mean 1.0
    assert m.pinball_loss([10, 10], [8, 12], 0.9) == pytest.approx(1.0)
    assert m.pinball_loss([10, 10], [8, 12], 0.5) == pytest.approx(1.0)
    # inside, below the lower end, inside, below: 2 of 4
    assert m.interval_coverage([1, 2, 3, 4], [0, 2.5, 2, 5], [2, 3, 4, 6]) == pytest.approx(0.5)
    assert m.quantile_calibration([1, 2, 3], [2, 2, 2]) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="strictly between"):
        m.pinball_loss([1], [1], 1.0)


@pytest.mark.parametrize("call, message", [
    (lambda: m.mean_absolute_error([1, 2], [1, 2, 3]), "shape"),
    (lambda: m.mean_absolute_error([1, float("nan")], [1, 2]), "NaN"),
    (lambda: m.root_mean_squared_error([], []), "empty"),
    (lambda: m.naive_scale([5.0]), "at least 2 bars"),
    (lambda: m.interval_coverage([1.0], [2.0], [1.0]), "lower exceeds upper"),
])
def test_inputs_are_checked_on_the_way_in(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# --------------------------------------------------------------------------- baselines


def test_naive_drift_and_seasonal_by_hand():
    history = np.array([[1.0], [2.0], [4.0]])
    assert naive(history, 2)[:, 0].tolist() == [4.0, 4.0]
    # slope (4 - 1) / 2 = 1.5 -> 5.5, 7.0
    assert drift(history, 2)[:, 0].tolist() == pytest.approx([5.5, 7.0])
    # period 3 over 1..6: steps 1..3 repeat 4, 5, 6; step 4 goes two seasons back, to 4 again
    season = np.arange(1.0, 7.0)[:, None]
    assert seasonal_naive(season, 4, 3)[:, 0].tolist() == [4.0, 5.0, 6.0, 4.0]
    with pytest.raises(ValueError, match="at least 5 bars"):
        seasonal_naive(season[:4], 2, 5)


def test_random_walk_replays_the_histories_changes():
    # a price that doubles every bar and a count that grows by 1 (and starts at 0: differences)
    history = np.array([[1.0, 0.0], [2.0, 1.0], [4.0, 2.0], [8.0, 3.0]])
    paths = random_walk(history, 2, 5, np.random.default_rng(0))
    assert paths.shape == (5, 2, 2)
    assert paths[:, :, 0].tolist() == [[16.0, 32.0]] * 5
    assert paths[:, :, 1].tolist() == [[4.0, 5.0]] * 5
    again = random_walk(np.array([[1.0], [1.1], [0.9], [1.2]]), 3, 4, np.random.default_rng(7))
    assert np.array_equal(again, random_walk(np.array([[1.0], [1.1], [0.9], [1.2]]), 3, 4,
                                             np.random.default_rng(7)))     # seeded


def test_baseline_names_are_checked():
    assert [b.name for b in parse_baselines(None, samples=1)] == ["naive", "drift"]
    assert [b.name for b in parse_baselines(None, samples=8)] == ["naive", "drift", "random-walk"]
    assert parse_baselines("naive, seasonal:48,rw", samples=4) == (Baseline("naive"), Baseline("seasonal", 48),
                                                                   Baseline("random-walk"))
    for text, fragment in (("drfit", "did you mean drift"), ("seasonal", "seasonal:N"),
                           ("random-walk", "--samples"), ("naive:3", "takes no")):
        with pytest.raises(InputDataError) as caught:
            parse_baselines(text, samples=1)
        assert caught.value.field == "baselines"
        assert fragment in str(caught.value)


# --------------------------------------------------------------------------- luck versus skill


def test_the_bootstrap_interval_and_the_verdict():
    rng = np.random.default_rng(3)
    assert bootstrap_interval(np.full(12, -0.5), block=3, seed=1) == pytest.approx((-0.5, -0.5))
    noise = rng.normal(0, 1, 40)
    low, high = bootstrap_interval(noise - noise.mean(), block=3, seed=1)
    assert low < 0 < high
    low, high = bootstrap_interval(noise * 0.1 - 1.0, block=3, seed=1)
    assert high < 0
    assert bootstrap_interval(noise, block=3, seed=5) == bootstrap_interval(noise, block=3, seed=5)
    assert verdict(-0.3, -0.1, 20) == BETTER
    assert verdict(0.1, 0.3, 20) == WORSE
    assert verdict(-0.1, 0.3, 20) == SAME
    assert verdict(-0.3, -0.1, 4) == TOO_FEW
    # blocks: the cube root of the origins, or the origins one truth window spans
    assert block_length(27, 8, 8) == 3
    assert block_length(27, 24, 4) == 6
    assert block_length(2, 24, 1) == 2
