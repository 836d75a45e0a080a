"""The statistics of an agent comparison: mean +- standard error, Welch's t-test and its CI.

A comparison of search agents is a claim about policies, measured over independent seeds: each
seed gives one number per metric (its last-third mean, its best...), and agents are compared on
those numbers. Welch's t-test (unequal variances; Welch 1947) gives the p-value, and the 95%
confidence interval of the difference uses the same Welch-Satterthwaite degrees of freedom.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats

__all__ = ["mean_se", "welch", "best_so_far"]


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


def best_so_far(accuracies: Sequence[float]) -> np.ndarray:
    """The running maximum of a run's validation accuracies, in sampling order."""
    return np.maximum.accumulate(np.asarray(accuracies, dtype=float))
