"""The statistics of an agent comparison: mean +- standard error, Welch's t-test and its CI.

A comparison of search agents is a claim about policies, measured over independent seeds: each
seed gives one number per metric (its last-third mean, its best...), and agents are compared on
those numbers. Welch's t-test (unequal variances; Welch 1947) gives the p-value, and the 95%
confidence interval of the difference uses the same Welch-Satterthwaite degrees of freedom.
:func:`seeds_for_power` sizes a study: the seeds per agent at which that test finds a given gap.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats

__all__ = ["mean_se", "welch", "pooled_sd", "seeds_for_power", "best_so_far"]


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


def best_so_far(accuracies: Sequence[float]) -> np.ndarray:
    """The running maximum of a run's validation accuracies, in sampling order."""
    return np.maximum.accumulate(np.asarray(accuracies, dtype=float))
