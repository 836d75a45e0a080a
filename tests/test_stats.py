"""Mean +- SE, Welch's t-test and study sizing against hand computations and published tables."""

import itertools
import math

import numpy as np
import pytest
from scipy import stats

from agents.stats import (
    best_so_far,
    holm,
    mean_se,
    permutation_p,
    pooled_sd,
    seeds_for_power,
    size_fit,
    size_residuals,
    welch,
)


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


def test_holm_by_hand_and_the_studys_nine_tests():
    # sorted 0.01 (x3), 0.03 (x2), 0.04 (x1, raised to 0.06 to keep the order); nan is no test
    assert holm([0.01, 0.04, 0.03, math.nan])[:3] == pytest.approx([0.03, 0.06, 0.06])
    assert math.isnan(holm([0.01, math.nan])[1]) and holm([0.01, math.nan])[0] == 0.01
    assert holm([0.5, 0.6]) == [1.0, 1.0] and holm([]) == []
    # the -v2 study's nine Welch tests against random: REINFORCE lr 2e-3's best (0.024) is the
    # seventh smallest, so Holm multiplies it by 3 (Bonferroni would by 9)
    study = [8.5e-5, 0.0078, 0.00032, 0.093, 0.024, 0.77, 0.0015, 0.003, 0.0016]
    adjusted = holm(study)
    assert adjusted[4] == pytest.approx(0.072)
    assert adjusted[0] == pytest.approx(9 * 8.5e-5)
    assert all(a >= p for a, p in zip(adjusted, study, strict=True))
    assert holm([2.4e-21, 0.5]) == [4.8e-21, 0.5]  # a tiny p stays > 0 (it printed as 0)


def test_permutation_p_is_the_exact_enumeration():
    # 5 v 5 fully separated: 2 of the C(10, 5) = 252 splits are as extreme (both signs)
    assert permutation_p([5, 6, 7, 8, 9], [0, 1, 2, 3, 4]) == pytest.approx(2 / 252)
    rng = np.random.default_rng(1)
    for _ in range(5):
        a, b = rng.normal(0.3, 1, 5), rng.normal(0, 1, 5)
        pooled, observed = np.concatenate([a, b]), abs(a.mean() - b.mean())
        as_far = [
            abs(pooled[list(c)].mean() - np.delete(pooled, list(c)).mean()) >= observed - 1e-12
            for c in itertools.combinations(range(10), 5)
        ]
        assert permutation_p(a, b) == pytest.approx(np.mean(as_far))
        exact = stats.permutation_test(
            (a, b), lambda x, y, axis: x.mean(axis) - y.mean(axis), n_resamples=np.inf
        )
        assert permutation_p(a, b) == pytest.approx(exact.pvalue)  # balanced: the same test
    assert math.isnan(permutation_p([1.0], [2.0, 3.0]))
    assert permutation_p([1.0, 1.0], [1.0, 1.0]) == 1.0


def test_permutation_p_samples_splits_when_there_are_many():
    rng = np.random.default_rng(2)
    a, b = rng.normal(0.8, 1, 12), rng.normal(0, 1, 12)  # C(24, 12) = 2.7 million splits
    sampled = permutation_p(a, b)
    assert sampled == permutation_p(a, b)  # a fixed seed
    assert sampled == pytest.approx(stats.ttest_ind(a, b).pvalue, abs=0.02)
    assert permutation_p([9.0] * 12, [0.0] * 12) == pytest.approx(1 / 100_000)  # (0 + 1) / (R + 1)


def test_size_residuals_take_out_what_size_buys():
    rng = np.random.default_rng(0)
    params = rng.integers(5_000, 50_000, 200)
    flops = params * rng.uniform(20, 80, 200)
    curve = 0.1 + 0.02 * np.log(params) + 0.01 * np.log(flops)
    coef = size_fit(curve, params, flops)
    assert coef == pytest.approx([0.1, 0.02, 0.01])
    # a bigger network on the same curve gains nothing; one a point above it keeps its point
    big = np.array([200_000]), np.array([2e7])
    on_curve = 0.1 + 0.02 * np.log(big[0]) + 0.01 * np.log(big[1])
    assert size_residuals(coef, on_curve, *big) == pytest.approx([0.0], abs=1e-9)
    assert size_residuals(coef, on_curve + 0.01, *big) == pytest.approx([0.01])
    with pytest.raises(ValueError, match="> 0"):
        size_fit([0.4, 0.5, 0.6], [1, 2, 0], [1, 2, 3])
    with pytest.raises(ValueError, match=">= 3"):
        size_fit([0.4, 0.5], [1, 2], [1, 2])


def test_a_study_is_never_sized_below_what_the_permutation_test_can_call():
    from agents.compare_analysis import power
    from agents.stats import permutation_min_seeds

    assert permutation_min_seeds() == 4 and 2 / math.comb(8, 4) < 0.05 <= 2 / math.comb(6, 3)
    # a large gap for the noise: Welch alone would need 2 or 3 seeds, the permutation test 4
    runs = {
        agent: [
            {"last_third_mean": m + d, "best": m + d, "recheck_mean": m + d} for d in (0, 0.001)
        ]
        for agent, m in (("random", 0.40), ("reinforce", 0.45))
    }
    assert seeds_for_power(0.1, 2.0) < 4
    sizing = power(runs)
    assert all(n == 4 for row in sizing.values() for n in row["seeds_for_gap"].values())


def _runs(means: dict[str, float], seeds: int = 5, seed: int = 0) -> dict[str, list[dict]]:
    rng = np.random.default_rng(seed)
    return {
        agent: [
            {
                "seed": s,
                **{m: mean + 0.004 * rng.standard_normal() for m in ("last_third_mean", "best")},
            }
            for s in range(seeds)
        ]
        for agent, mean in means.items()
    }


def test_the_best_other_family_holds_every_pair_that_could_have_been_picked():
    # the best other agent is picked by the data: Holm over the pairs shown alone would let
    # false differences through more often than 5%
    from agents.compare_analysis import agent_rows

    per_run = _runs({"random": 0.40, "A": 0.41, "B": 0.412, "C": 0.42})
    rows, families = agent_rows(per_run)
    pairs = [("A", "B"), ("A", "C"), ("B", "C")]
    p = {
        (m, a, b): welch([r[m] for r in per_run[a]], [r[m] for r in per_run[b]])["p"]
        for m in ("last_third_mean", "best")
        for a, b in pairs
    }
    assert families["vs_best_other"]["tests"] == len(p) == 6
    expected = dict(zip(p, holm(list(p.values())), strict=True))
    for metric in ("last_third_mean", "best"):
        for label in ("A", "B"):
            test = rows[label][metric]["vs_best_other"]
            key = (metric, *sorted((label, test["other"])))
            assert test["p_holm"] == pytest.approx(expected[key])


def test_the_best_fixed_family_holds_every_learned_agent_with_every_fixed_arm():
    from agents.compare_analysis import agent_rows

    arms = {"random": 0.40, "A": 0.42, "fixed[policy=x]": 0.41, "fixed[policy=y]": 0.405}
    rows, families = agent_rows(_runs(arms))
    assert families["vs_best_fixed"]["tests"] == 2 * 2  # A with each fixed arm, two metrics
    assert rows["A"]["last_third_mean"]["vs_best_fixed"]["other"] == "fixed[policy=x]"
    assert families["vs_best_other"]["tests"] == 3 * 2  # every pair of the three non-random


def test_a_nan_never_reads_as_a_permutation_p_of_zero_nor_crashes_the_sizing():
    from agents.compare_analysis import agent_rows, power

    assert math.isnan(permutation_p([1.0, math.nan, 2.0, 3.0], [0.0, 1.0, 2.0, 4.0]))
    runs = _runs({"random": 0.40, "A": 0.41})
    runs["random"][0]["last_third_mean"] = math.nan  # a run whose metric could not be had
    rows, _ = agent_rows(runs)
    assert rows["random"]["last_third_mean"]["n"] == 4  # left out, as a missing value is
    assert np.isfinite(rows["A"]["last_third_mean"]["vs_random"]["p_permutation"])
    assert "last_third_mean" in power(runs)


def test_sizing_asks_for_the_power_past_holm_over_the_family():
    from agents.compare_analysis import power

    runs = _runs({"random": 0.40, "A": 0.41}, seeds=6)
    alone, family = power(runs), power(runs, family_tests=4)
    assert family["best"]["alpha"] == 0.05 / 4 and alone["best"]["alpha"] == 0.05
    sd = 100 * family["best"]["seed_sd"]
    for gap, n in family["best"]["seeds_for_gap"].items():
        assert n == max(seeds_for_power(sd, float(gap), alpha=0.05 / 4), 4)
        assert n >= alone["best"]["seeds_for_gap"][gap]


def test_tables_name_the_seeds_a_test_used_and_how_far_the_size_fit_extrapolates():
    from agents.compare_analysis import agent_rows, per_run_metrics, power
    from agents.compare_table import format_tables

    def run(name, seed, params):
        children = [
            {
                "update": 0,
                "net": f"{name}{seed}-{i}",
                "accuracy": 0.4 + 0.01 * np.log(p) + 0.001 * seed,
                "params": p,
                "flops": 10 * p,
                "train_seconds": 1.0,
                "cache_hit": False,
            }
            for i, p in enumerate(params)
        ]
        return {"seed": seed, "children": children}

    runs = {
        "random": [run("r", s, [1000 + 100 * s, 2000, 3000, 4000]) for s in range(5)],
        "A": [run("a", s, [5000, 6000, 7000, 8000 + s]) for s in range(5)],
    }
    # a test accuracy for every run's best network but A's seed 4
    tests = {f"{n}{s}-3|None": 0.5 + 0.01 * s for n in "ra" for s in range(5) if (n, s) != ("a", 4)}
    per_run = per_run_metrics(runs, tests)
    rows, families = agent_rows(per_run)
    result = {
        "env_id": "X",
        "nets": 4,
        "batch": 4,
        "seeds": list(range(5)),
        "recheck": 0,
        "start_accuracy": 0.3,
        "test": "test",
        "families": families,
        "agents": rows,
        "power": power(per_run, families["vs_random"]["tests"]),
        "runs": per_run,
    }
    text = format_tables(result)
    assert "| 100% |" in text  # A's late median is above all of random's networks
    assert "alpha 0.05/" in text
    assert "| A (4 v 5 seeds) | test acc of best-by-val |" in text


def test_a_size_adjusted_gap_counts_the_fits_own_error_where_it_extrapolates():
    # no true effect: accuracy is the same function of size for both; the agent's networks are
    # 3-10x the largest of random search's, where the fit's error moves all its seeds alike
    from agents.stats import size_adjusted_welch, size_fit, size_residuals

    rng = np.random.default_rng(0)

    def run(low, high):
        params = np.exp(rng.uniform(np.log(low), np.log(high), 30))
        flops = params * np.exp(rng.uniform(3, 5, 30))
        acc = 0.10 + 0.03 * np.log(params) + 0.01 * np.log(flops / params)
        networks = (acc + 0.01 * rng.standard_normal(30), params, flops)
        return networks, tuple(x[-10:] for x in networks)  # fitted on all, scored late

    fixed_fit = jackknife = 0
    trials = 200
    for _ in range(trials):
        agent, reference = [run(1e5, 3e5) for _ in range(5)], [run(5e3, 3e4) for _ in range(5)]
        fitted = (np.concatenate(part) for part in zip(*(r[0] for r in reference), strict=True))
        coef = size_fit(*fitted)
        values = [[size_residuals(coef, *r[1]).mean() for r in side] for side in (agent, reference)]
        fixed_fit += welch(*values)["p"] < 0.05
        test = size_adjusted_welch(agent, reference)
        assert test["diff"] == pytest.approx(np.mean(values[0]) - np.mean(values[1]))
        jackknife += test["p"] < 0.05
    assert fixed_fit / trials > 0.2  # the fit held fixed: far too many false differences
    assert jackknife / trials < 0.09  # its error counted: about the 5% asked for


def _sized_run(rng, seed, networks, recheck=0, sizes=(5e3, 3e4)):
    """One run's records: accuracy a function of size plus noise, params drawn log-uniform."""
    params = np.exp(rng.uniform(*np.log(sizes), networks + recheck))
    children = [
        {
            "update": 0,
            "net": f"n{seed}-{i}",
            "params": p,
            "flops": 30 * p,
            "accuracy": 0.1 + 0.03 * np.log(p) + 0.01 * rng.standard_normal(),
            "train_seconds": 1.0,
            "cache_hit": False,
        }
        for i, p in enumerate(params)
    ]
    return {"seed": seed, "children": children[:networks], "recheck": children[networks:]}


def test_size_adjusted_tests_in_a_comparison_are_the_jackknifes():
    from agents.compare_analysis import agent_rows, per_run_metrics

    rng = np.random.default_rng(1)

    runs = {
        "random": [_sized_run(rng, s, 9, recheck=3) for s in range(4)],
        "A": [_sized_run(rng, s, 9, recheck=3, sizes=(5e4, 1e5)) for s in range(4)],
    }
    rows, _ = agent_rows(per_run_metrics(runs, {}))
    for metric in ("last_third_size_adjusted", "recheck_size_adjusted"):
        test = rows["A"][metric]["vs_random"]
        assert test["method"] == "jackknife" and 0 < test["p"] < 1
        gap = rows["A"][metric]["mean"] - rows["random"][metric]["mean"]
        assert test["diff"] == pytest.approx(gap)


def test_a_size_fit_that_cannot_be_redone_keeps_the_gap_and_says_why_there_is_no_test():
    from agents.compare_analysis import agent_rows, per_run_metrics, power
    from agents.compare_table import format_tables

    rng = np.random.default_rng(2)
    runs = {a: [_sized_run(rng, s, 2) for s in range(2)] for a in ("random", "A")}  # 4 networks
    per_run = per_run_metrics(runs, {})
    rows, families = agent_rows(per_run)
    test = rows["A"]["last_third_size_adjusted"]["vs_random"]
    gap = (
        rows["A"]["last_third_size_adjusted"]["mean"]
        - rows["random"]["last_third_size_adjusted"]["mean"]
    )
    assert test["diff"] == pytest.approx(gap) and math.isnan(test["p"])  # 2 networks: no refit
    result = {
        "env_id": "X",
        "nets": 2,
        "batch": 2,
        "seeds": [0, 1],
        "recheck": 0,
        "start_accuracy": 0.3,
        "test": "test",
        "families": families,
        "agents": rows,
        "power": power(per_run),
        "runs": per_run,
    }
    assert "redone without each of its runs" in format_tables(result)


def test_a_random_run_without_a_recheck_still_takes_part_in_the_size_fit():
    from agents.compare_analysis import agent_rows, per_run_metrics

    rng = np.random.default_rng(3)
    runs = {a: [_sized_run(rng, s, 9, recheck=3) for s in range(4)] for a in ("random", "A")}
    runs["random"][0]["recheck"] = []  # its search networks are still random search's
    rows, _ = agent_rows(per_run_metrics(runs, {}))
    metric = "recheck_size_adjusted"
    gap = rows["A"][metric]["mean"] - rows["random"][metric]["mean"]
    assert rows["random"][metric]["n"] == 3
    assert rows["A"][metric]["vs_random"]["diff"] == pytest.approx(gap)
