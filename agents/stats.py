"""The statistics of an agent comparison: mean +- standard error, Welch's t-test and its CI.

A comparison of search agents is a claim about policies, measured over independent seeds: each
seed gives one number per metric (its last-third mean, its best...), and agents are compared on
those numbers. Welch's t-test (unequal variances; Welch 1947) gives the p-value, and the 95%
confidence interval of the difference uses the same Welch-Satterthwaite degrees of freedom.
With 5 seeds a side that p-value rests on normality, so :func:`permutation_p` gives the exact
permutation test beside it, and :func:`holm` adjusts a family of p-values for multiplicity.
:func:`size_fit` and :func:`size_residuals` take network size out of an accuracy (a network
with more parameters scores higher for that alone). :func:`seeds_for_power` sizes a study: the
seeds per agent at which Welch's test finds a given gap.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
from scipy import stats

__all__ = [
    "mean_se",
    "welch",
    "permutation_p",
    "holm",
    "size_fit",
    "size_residuals",
    "size_adjusted_welch",
    "pooled_sd",
    "permutation_min_seeds",
    "seeds_for_power",
    "best_so_far",
]


def mean_se(values: Sequence[float]) -> dict[str, float]:
    """Mean and standard error of the mean (sample sd / sqrt(n)); SE is nan for n = 1.

    >>> mean_se([1.0, 2.0, 3.0])
    {'mean': 2.0, 'se': 0.5773502691896258, 'n': 3}
    """
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        raise ValueError("`values` is empty")
    se = float(x.std(ddof=1) / math.sqrt(x.size)) if x.size > 1 else math.nan
    return {"mean": float(x.mean()), "se": se, "n": int(x.size)}


def welch(a: Sequence[float], b: Sequence[float], confidence: float = 0.95) -> dict[str, float]:
    """``mean(a) - mean(b)`` with its standard error, CI and two-sided Welch p-value.

    Args:
        a: One value per seed of the first agent.
        b: One value per seed of the second (the reference, e.g. random search).
        confidence: Level of the confidence interval.

    Returns:
        ``diff``, ``se``, ``df`` (Welch-Satterthwaite), ``ci_low``, ``ci_high`` and ``p``; all but
        ``diff`` are nan when either side has fewer than 2 values or both have zero variance.

    >>> r = welch([1.0, 2.0, 3.0], [0.0, 0.5, 1.0])
    >>> round(r["diff"], 3), round(r["p"], 3)
    (1.5, 0.104)
    """
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if not 0 < confidence < 1:
        raise ValueError(f"Expected `confidence` in (0, 1), actually: {confidence}")
    diff = float(x.mean() - y.mean())
    nan = {"se": math.nan, "df": math.nan, "ci_low": math.nan, "ci_high": math.nan, "p": math.nan}
    if x.size < 2 or y.size < 2:
        return {"diff": diff, **nan}
    vx, vy = x.var(ddof=1) / x.size, y.var(ddof=1) / y.size
    se = math.sqrt(vx + vy)
    if se == 0:
        return {"diff": diff, **nan}
    df = (vx + vy) ** 2 / (vx**2 / (x.size - 1) + vy**2 / (y.size - 1))
    half = float(stats.t.ppf(0.5 + confidence / 2, df)) * se
    p = float(stats.ttest_ind(x, y, equal_var=False).pvalue)
    return {
        "diff": diff,
        "se": se,
        "df": float(df),
        "ci_low": diff - half,
        "ci_high": diff + half,
        "p": p,
    }


def permutation_p(
    a: Sequence[float], b: Sequence[float], *, max_exact: int = 100_000, resamples: int = 99_999
) -> float:
    """Two-sided permutation p-value of ``mean(a) - mean(b)``: exact when the splits are few.

    The share of the ways to split the pooled values into groups of ``len(a)`` and ``len(b)``
    whose difference of means is at least as far from zero as the observed one. It assumes
    only that the labels are exchangeable (no normality), so with few seeds its smallest
    value is bounded: 2 / C(10, 5) = 0.0079 for 5 v 5. Every split is enumerated when there are
    at most `max_exact`; else `resamples` random ones (a fixed seed) give ``(k + 1) / (R + 1)``.

    Returns:
        The p-value, or nan when either side has fewer than 2 values or a non-finite one.

    >>> round(permutation_p([5.0, 6.0, 7.0, 8.0, 9.0], [0.0, 1.0, 2.0, 3.0, 4.0]), 4)
    0.0079
    """
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.size < 2 or y.size < 2:
        return math.nan
    pooled, n = np.concatenate([x, y]), x.size
    if not np.isfinite(pooled).all():  # no split is "as far" as a nan: it would read as p 0
        return math.nan
    observed = abs(x.mean() - y.mean())
    if math.comb(pooled.size, n) <= max_exact:
        picks = np.array(list(itertools.combinations(range(pooled.size), n)))
        in_a = np.zeros((len(picks), pooled.size), dtype=bool)
        in_a[np.arange(len(picks))[:, None], picks] = True
    else:
        rng = np.random.default_rng(0)
        order = rng.permuted(np.tile(np.arange(pooled.size), (resamples, 1)), axis=1)
        in_a = order < n
    diffs = np.abs((in_a @ pooled) / n - (~in_a @ pooled) / y.size)
    # a split's difference equal to the observed one up to rounding counts as "as far"
    extreme = int((diffs >= observed - 1e-12 * max(1.0, observed)).sum())
    if math.comb(pooled.size, n) <= max_exact:
        return extreme / len(diffs)
    return (extreme + 1) / (resamples + 1)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (Holm 1979), in the order given.

    The family is every finite p-value given (a nan stays nan and is not counted). The k-th
    smallest of m is multiplied by ``m - k + 1``, then made non-decreasing and capped at 1.
    Rejecting where the adjusted p < alpha keeps the chance of any false claim in the family
    below alpha, whatever the dependence between the tests.

    >>> holm([0.01, 0.04, 0.03, float("nan")])
    [0.03, 0.06, 0.06, nan]
    """
    p = np.asarray(pvalues, dtype=float)
    adjusted = np.full(p.shape, math.nan)
    finite = np.flatnonzero(np.isfinite(p))
    running = 0.0
    for rank, i in enumerate(finite[np.argsort(p[finite], kind="stable")]):
        running = max(running, min(1.0, (finite.size - rank) * float(p[i])))
        adjusted[i] = float(f"{running:.15g}")  # tidy float noise, keep tiny p-values
    return adjusted.tolist()


def _size_design(params: Sequence[float], flops: Sequence[float]) -> np.ndarray:
    p, f = np.asarray(params, dtype=float), np.asarray(flops, dtype=float)
    if p.shape != f.shape or not (p > 0).all() or not (f > 0).all():
        raise ValueError("Expected `params` and `flops` of one length, all > 0")
    return np.column_stack([np.ones(p.size), np.log(p), np.log(f)])


def size_fit(
    accuracies: Sequence[float], params: Sequence[float], flops: Sequence[float]
) -> np.ndarray:
    """Least-squares fit of accuracy on ``1, log(params), log(FLOPs)``: its 3 coefficients.

    Fitted on a reference agent's networks (random search's), it says how much accuracy size
    alone buys in this search space; :func:`size_residuals` subtracts that.

    Raises:
        ValueError: Fewer than 3 networks, lengths that differ, or a size that is not > 0.
    """
    design, y = _size_design(params, flops), np.asarray(accuracies, dtype=float)
    if y.size < 3 or y.shape != design[:, 0].shape:
        raise ValueError(f"Expected >= 3 networks of equal-length records, got {y.size}")
    return np.linalg.lstsq(design, y, rcond=None)[0]


def size_residuals(
    coef: np.ndarray, accuracies: Sequence[float], params: Sequence[float], flops: Sequence[float]
) -> np.ndarray:
    """Accuracy minus what :func:`size_fit`'s `coef` predicts from each network's size.

    >>> coef = size_fit([0.3, 0.4, 0.5, 0.6], [10, 100, 1000, 10000], [20, 200, 2000, 20000])
    >>> size_residuals(coef, [0.45], [100], [200]).round(6).tolist()
    [0.05]
    """
    return np.asarray(accuracies, dtype=float) - _size_design(params, flops) @ coef


SizedNetworks = tuple[Sequence[float], Sequence[float], Sequence[float]]
"""Networks as (accuracies, params, FLOPs)."""

SizedRun = tuple[SizedNetworks, SizedNetworks | None]
"""One run's networks: those a size fit is made on (all it sampled) and those it is scored on
(None: a reference run that only takes part in the fit, e.g. one without a recheck)."""


def size_adjusted_welch(
    agent: Sequence[SizedRun], reference: Sequence[SizedRun], confidence: float = 0.95
) -> dict[str, float]:
    """:func:`welch` on size-adjusted run values, with the size fit's own error in its SE.

    A run's value is the mean residual (:func:`size_residuals`) of its scored networks under
    :func:`size_fit` made on all the `reference` runs' fitted networks; ``diff`` is the agent's
    mean value minus the reference's. The fit's error moves every run's value together, so a
    t-test on the values alone leaves it out, and calls too many differences when the agent's
    networks lie beyond the reference's sizes (in a simulated null, 5 v 5 seeds, networks
    3-10x larger: 34% at alpha 0.05). Here the SE is the grouped jackknife over runs (the fit
    redone without each reference run), with Welch-Satterthwaite degrees of freedom from its
    two parts; that simulation gives 4-7%, and equal sizes about Welch's test.

    Returns:
        As :func:`welch`; all but ``diff`` nan with fewer than 2 scored runs a side or a fit
        that cannot be redone without some reference run (too few networks), and everything
        nan when the sizes of all the reference runs cannot be fitted.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"Expected `confidence` in (0, 1), actually: {confidence}")
    nan = {"se": math.nan, "df": math.nan, "ci_low": math.nan, "ci_high": math.nan, "p": math.nan}

    def difference(runs: list[SizedRun], reference_runs: list[SizedRun]) -> float:
        fitted = (run[0] for run in reference_runs)
        acc, params, flops = (np.concatenate(part).tolist() for part in zip(*fitted, strict=True))
        coef = size_fit(acc, params, flops)
        values = [
            [size_residuals(coef, *run[1]).mean() for run in side if run[1] is not None]
            for side in (runs, reference_runs)
        ]
        return float(np.mean(values[0]) - np.mean(values[1]))

    a, r = list(agent), list(reference)
    scored = [sum(run[1] is not None for run in side) for side in (a, r)]
    if min(scored) == 0:
        return {"diff": math.nan, **nan}
    try:
        diff = difference(a, r)
    except ValueError:  # a run without sizes, or too few networks to fit
        return {"diff": math.nan, **nan}
    if min(scored) < 2 or len(a) < 2 or len(r) < 2:
        return {"diff": diff, **nan}
    try:
        parts = []
        for left_out in (
            np.array([difference(a[:i] + a[i + 1 :], r) for i in range(len(a))]),
            np.array([difference(a, r[:i] + r[i + 1 :]) for i in range(len(r))]),
        ):
            n = left_out.size
            parts.append((n - 1) / n * float(((left_out - left_out.mean()) ** 2).sum()))
    except ValueError:  # the fit cannot be redone without some reference run
        return {"diff": diff, **nan}
    if not all(math.isfinite(v) for v in (diff, *parts)) or sum(parts) == 0:
        return {"diff": diff, **nan}
    se = math.sqrt(sum(parts))
    df = sum(parts) ** 2 / (parts[0] ** 2 / (len(a) - 1) + parts[1] ** 2 / (len(r) - 1))
    half = float(stats.t.ppf(0.5 + confidence / 2, df)) * se
    p = float(2 * stats.t.sf(abs(diff) / se, df))
    return {"diff": diff, "se": se, "df": df, "ci_low": diff - half, "ci_high": diff + half, "p": p}


def pooled_sd(groups: Sequence[Sequence[float]]) -> tuple[float, int]:
    """The sd within groups, pooled over those with >= 2 values, and its degrees of freedom.

    One group per agent, one value per seed: how much a seed's number moves for a fixed agent.
    Returns ``(nan, 0)`` when no group has two values.

    >>> pooled_sd([[1.0, 3.0], [5.0, 7.0], [9.0]])
    (1.4142135623730951, 2)
    """
    arrays = [np.asarray(g, dtype=float) for g in groups if len(g) > 1]
    df = sum(a.size - 1 for a in arrays)
    if df == 0:
        return math.nan, 0
    return math.sqrt(sum(((a - a.mean()) ** 2).sum() for a in arrays) / df), df


def seeds_for_power(
    sd: float, gap: float, *, power: float = 0.8, alpha: float = 0.05, max_seeds: int = 1000
) -> int | None:
    """Seeds per agent at which a two-sided t-test finds a true `gap` with probability `power`.

    Exact for two groups of n seeds with the same `sd` (the two-sample t-test, df = 2n - 2; the
    noncentral t distribution gives its power); Welch's test, which the comparison uses, needs
    about as many when the sds are equal. `sd` is one seed's sd of the metric (what
    :func:`mean_se` gives times sqrt(n)), in the units of `gap`.

    Returns:
        The smallest n >= 2, or None when even `max_seeds` seeds fall short.

    >>> seeds_for_power(0.58, 1.0), seeds_for_power(0.58, 1.4), seeds_for_power(1.0, 0.01) is None
    (7, 4, True)
    """
    if not (math.isfinite(sd) and sd > 0):
        raise ValueError(f"Expected `sd` > 0, actually: {sd}")
    if not (math.isfinite(gap) and gap != 0):
        raise ValueError(f"Expected a nonzero `gap`, actually: {gap}")
    if not 0 < power < 1 or not 0 < alpha < 1:
        raise ValueError(f"Expected `power` and `alpha` in (0, 1), actually: {power}, {alpha}")
    for n in range(2, max_seeds + 1):
        df, shift = 2 * n - 2, abs(gap) / (sd * math.sqrt(2 / n))
        critical = stats.t.ppf(1 - alpha / 2, df)
        wrong_side = stats.nct.cdf(-critical, df, shift)  # nan far in the tail: it is ~0 there
        if stats.nct.sf(critical, df, shift) + np.nan_to_num(wrong_side) >= power:
            return n
    return None


def permutation_min_seeds(alpha: float = 0.05) -> int:
    """The fewest seeds per agent (n v n) at which the permutation test's p can fall below `alpha`.

    Its smallest p is ``2 / C(2n, n)`` (:func:`permutation_p`): 0.1 at 3 v 3, 0.029 at 4 v 4.
    A difference is called only when that p is below `alpha` too, so a study needs at least
    this many seeds whatever the t-test's power.

    >>> permutation_min_seeds(), permutation_min_seeds(0.01)
    (4, 5)
    """
    if not 0 < alpha < 1:
        raise ValueError(f"Expected `alpha` in (0, 1), actually: {alpha}")
    n = 2
    while 2 / math.comb(2 * n, n) >= alpha:
        n += 1
    return n


def best_so_far(accuracies: Sequence[float]) -> np.ndarray:
    """The running maximum of a run's validation accuracies, in sampling order."""
    return np.maximum.accumulate(np.asarray(accuracies, dtype=float))
