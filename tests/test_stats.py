"""Mean +- SE and Welch's t-test against hand computations."""

import math

import pytest
from scipy import stats

from agents.stats import best_so_far, mean_se, welch


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
