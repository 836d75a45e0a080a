"""Mean +- SE, Welch's t-test and study sizing against hand computations and published tables."""

import math

import numpy as np
import pytest
from scipy import stats

from agents.stats import best_so_far, mean_se, pooled_sd, seeds_for_power, welch


def test_mean_se_by_hand():
    r = mean_se([0.50, 0.52, 0.57])
    # mean 0.53; deviations -0.03, -0.01, 0.04; sample var 0.0026 / 2 = 0.0013
    assert r["mean"] == pytest.approx(0.53)
    assert r["se"] == pytest.approx(math.sqrt(0.0013 / 3))
    assert r["n"] == 3
    assert math.isnan(mean_se([0.4])["se"])
    with pytest.raises(ValueError, match="empty"):
        mean_se([])


def test_welch_by_hand():
    a, b = [0.50, 0.52, 0.57], [0.45, 0.47]
    r = welch(a, b)
    va, vb = 0.0013 / 3, 0.0002 / 2  # sample variances over n
    se = math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / 2 + vb**2 / 1)
    t = 0.07 / se
    assert r["diff"] == pytest.approx(0.07)
    assert r["se"] == pytest.approx(se)
    assert r["df"] == pytest.approx(df)  # 2.738
    assert df == pytest.approx(2.738, abs=1e-3)
    half = stats.t.ppf(0.975, df) * se
    assert (r["ci_low"], r["ci_high"]) == pytest.approx((0.07 - half, 0.07 + half))
    assert r["p"] == pytest.approx(2 * stats.t.sf(t, df))
    # scipy's own Welch interval agrees
    ci = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert (r["ci_low"], r["ci_high"]) == pytest.approx((ci.low, ci.high))


def test_welch_degenerate_and_bad_confidence():
    assert math.isnan(welch([0.5], [0.4, 0.3])["p"])
    assert math.isnan(welch([0.5, 0.5], [0.4, 0.4])["ci_low"])  # zero variance on both sides
    with pytest.raises(ValueError, match="confidence"):
        welch([1, 2], [3, 4], confidence=1.5)


def test_best_so_far():
    assert best_so_far([0.2, 0.1, 0.4, 0.3]).tolist() == [0.2, 0.2, 0.4, 0.4]


@pytest.mark.parametrize(("effect", "seeds"), [(0.5, 64), (0.8, 26), (1.0, 17), (2.0, 6)])
def test_seeds_for_power_matches_the_published_two_sample_tables(effect, seeds):
    # Cohen (1988) / G*Power, two-sided t-test, alpha 0.05, power 0.8: n per group
    assert seeds_for_power(1.0, effect) == seeds
    assert seeds_for_power(0.5, effect / 2) == seeds  # only gap / sd matters
    assert seeds_for_power(1.0, -effect) == seeds


def test_seeds_for_power_falls_as_the_gap_grows():
    # scipy's noncentral t gives nan far in its lower tail; that must not count as no power
    needed = [seeds_for_power(0.2335, gap) for gap in (0.5, 1.0, 2.0, 4.0)]
    assert needed == sorted(needed, reverse=True) and needed[-1] == 2


def test_seeds_for_power_simulated():
    # the n it returns does reach 80% power, and n - 1 does not (a Monte Carlo check)
    rng = np.random.default_rng(0)
    n = seeds_for_power(1.0, 1.7)  # exact power 0.83 at n = 7, 0.76 at 6: 10 MC SEs apart
    for m, reached in ((n, True), (n - 1, False)):
        a, b = rng.normal(1.7, 1.0, (20_000, m)), rng.normal(0.0, 1.0, (20_000, m))
        share = float((stats.ttest_ind(a, b, axis=1).pvalue < 0.05).mean())
        assert (share >= 0.8) is reached, (m, share)


def test_seeds_for_power_bad_input_and_out_of_reach():
    assert seeds_for_power(1.0, 0.01, max_seeds=50) is None
    for bad in ({"sd": 0.0, "gap": 1.0}, {"sd": 1.0, "gap": 0.0}, {"sd": float("nan"), "gap": 1.0}):
        with pytest.raises(ValueError, match="sd|gap"):
            seeds_for_power(**bad)
    with pytest.raises(ValueError, match="power"):
        seeds_for_power(1.0, 1.0, power=1.0)


def test_pooled_sd_by_hand():
    # squares about the group means: (1 + 1) + (4 + 0 + 4); df 1 + 2
    sd, df = pooled_sd([[1.0, 3.0], [2.0, 4.0, 6.0], [9.0]])
    assert (sd, df) == (pytest.approx(math.sqrt(10 / 3)), 3)
    assert math.isnan(pooled_sd([[1.0], [2.0]])[0])
