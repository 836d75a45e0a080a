"""EAS-Bench's noise model: the sd of training one network again, fitted on repeated trainings.

Read by ``benchmarks/bench_fit.py``. A net trained ``n >= 2`` times gives ``n - 1`` degrees of
freedom of retrain noise: the spread of its trainings' residuals (accuracy minus the surrogate's
out-of-fold mean, which removes the start network's offset where its trainings grew from
different start networks). The variance is modelled log-linearly in a few features,
``log sd^2 = a + sum_k b_k (f_k - c_k)`` (none: one sd for every net), by maximum likelihood;
the feature set is chosen by leave-one-net-out likelihood, and every feature is clipped to the
range the repeated nets span (:class:`eas_gym.bench.BenchModel` does the same).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import optimize, stats

from eas_gym.bench import feature_names

CHOICES = ((), ("log_flops",), ("log_params",), ("log_flops", "log_params"))
"""Feature sets of the log-variance model compared by leave-one-net-out likelihood."""


@dataclass(frozen=True)
class Groups:
    """Nets trained more than once: per net the residuals' within-net sum of squares."""

    ss: np.ndarray
    dof: np.ndarray
    x: np.ndarray
    same_start: np.ndarray
    deviations: list[np.ndarray]


def repeat_groups(resid: np.ndarray, nets: np.ndarray, x: np.ndarray, starts: np.ndarray) -> Groups:
    """The :class:`Groups` of every net with two or more trainings (`x`: feature rows)."""
    index: dict[str, list[int]] = {}
    for i, net in enumerate(nets):
        index.setdefault(str(net), []).append(i)
    rows = [np.asarray(v) for v in index.values() if len(v) >= 2]
    deviations = [resid[v] - resid[v].mean() for v in rows]
    return Groups(
        ss=np.array([float(np.sum(d**2)) for d in deviations]),
        dof=np.array([len(v) - 1 for v in rows], dtype=float),
        x=np.stack([x[v[0]] for v in rows]) if rows else np.zeros((0, x.shape[1])),
        same_start=np.array([len(set(starts[v])) == 1 for v in rows], dtype=bool),
        deviations=deviations,
    )


def _subset(g: Groups, keep: np.ndarray) -> Groups:
    return Groups(
        g.ss[keep],
        g.dof[keep],
        g.x[keep],
        g.same_start[keep],
        [d for d, k in zip(g.deviations, keep, strict=True) if k],
    )


def fit_noise(g: Groups, features: tuple[str, ...]) -> dict[str, Any]:
    """The maximum-likelihood log-linear variance model on `features` (a model file's ``noise``)."""
    names = feature_names()
    f = g.x[:, [names.index(n) for n in features]]
    lows, highs = f.min(axis=0), f.max(axis=0)
    centers = (g.dof @ f) / g.dof.sum() if len(features) else np.zeros(0)
    z = f - centers

    def nll(theta: np.ndarray) -> float:  # convex: dof * eta + ss * exp(-eta)
        eta = theta[0] + z @ theta[1:]
        return float(0.5 * np.sum(g.dof * eta + g.ss * np.exp(-eta)))

    start = np.zeros(1 + len(features))
    start[0] = np.log(g.ss.sum() / g.dof.sum())
    theta = optimize.minimize(nll, start, method="BFGS").x
    return {
        "log_var": float(theta[0]),
        "features": list(features),
        "slopes": theta[1:].tolist(),
        "centers": centers.tolist(),
        "lows": lows.tolist(),
        "highs": highs.tolist(),
    }


def noise_sd(spec: dict[str, Any], x: np.ndarray) -> np.ndarray:
    """The sd a noise spec gives feature rows `x` (as :class:`eas_gym.bench.BenchModel.sd`)."""
    names = feature_names()
    f = x[:, [names.index(n) for n in spec["features"]]]
    f = np.clip(f, spec["lows"], spec["highs"])
    return np.exp(0.5 * (spec["log_var"] + (f - np.asarray(spec["centers"])) @ spec["slopes"]))


def _rms(sd: np.ndarray, dof: np.ndarray) -> float:
    """The dof-weighted root mean square of `sd`, in points."""
    return float(100 * np.sqrt(dof @ sd**2 / dof.sum()))


def _nll(g: Groups, sd: np.ndarray) -> float:
    return float(np.sum(g.dof * np.log(sd) + g.ss / (2 * sd**2)))


def leave_one_out_nll(g: Groups, features: tuple[str, ...]) -> float:
    """Negative log-likelihood of each net's residuals under a model fitted without it."""
    total = 0.0
    for i in range(len(g.ss)):
        keep = np.ones(len(g.ss), dtype=bool)
        keep[i] = False
        spec = fit_noise(_subset(g, keep), features)
        total += _nll(_subset(g, ~keep), noise_sd(spec, g.x[i : i + 1]))
    return total


def choose_noise(g: Groups) -> tuple[dict[str, Any], dict[str, float]]:
    """The noise model of the best leave-one-out likelihood, and every choice's NLL."""
    scores = {"+".join(c) or "constant": leave_one_out_nll(g, c) for c in CHOICES}
    best = min(CHOICES, key=lambda c: scores["+".join(c) or "constant"])
    return fit_noise(g, best), scores


def validate(g: Groups, sd: np.ndarray, loo_sd: np.ndarray | None = None) -> dict[str, Any]:
    """Predicted sd against the empirical within-net sd of the repeated nets (points)."""

    def pooled(mask: np.ndarray) -> float:
        return float(100 * np.sqrt(g.ss[mask].sum() / g.dof[mask].sum())) if mask.any() else 0.0

    dof = g.dof.sum()
    everyone = np.ones(len(g.ss), dtype=bool)
    lo, hi = stats.chi2.ppf([0.025, 0.975], dof) / dof
    inside = [
        np.abs(d) <= 1.645 * s * np.sqrt((len(d) - 1) / len(d))
        for d, s in zip(g.deviations, sd, strict=True)
    ]
    names = feature_names()
    flops = g.x[:, names.index("log_flops")]
    edges = np.quantile(flops, [0, 1 / 3, 2 / 3, 1])
    terciles = []
    for k in range(3):
        m = (flops >= edges[k]) & ((flops < edges[k + 1]) if k < 2 else (flops <= edges[k + 1]))
        terciles.append(
            {
                "log10_flops": [round(float(edges[k]), 3), round(float(edges[k + 1]), 3)],
                "dof": int(g.dof[m].sum()),
                "empirical_sd_points": round(pooled(m), 3),
                "predicted_sd_points": round(_rms(sd[m], g.dof[m]), 3),
            }
        )
    out = {
        "nets": len(g.ss),
        "trainings": int(dof + len(g.ss)),
        "dof": int(dof),
        "empirical_sd_points": round(pooled(everyone), 3),
        "empirical_sd_points_same_start": round(pooled(g.same_start), 3),
        "empirical_sd_points_across_starts": round(pooled(~g.same_start), 3),
        "predicted_sd_points": round(_rms(sd, g.dof), 3),
        "z2": round(float(np.sum(g.ss / sd**2) / dof), 3),
        "z2_if_calibrated_95": [round(float(lo), 3), round(float(hi), 3)],
        "coverage_90": round(float(np.mean(np.concatenate(inside))), 3),
        "by_log10_flops_tercile": terciles,
    }
    if loo_sd is not None:
        out["z2_leave_one_net_out"] = round(float(np.sum(g.ss / loo_sd**2) / dof), 3)
    return out


def leave_one_out_sd(g: Groups, features: tuple[str, ...]) -> np.ndarray:
    """Each repeated net's sd from a noise model fitted without it."""
    out = np.empty(len(g.ss))
    for i in range(len(g.ss)):
        keep = np.ones(len(g.ss), dtype=bool)
        keep[i] = False
        out[i] = noise_sd(fit_noise(_subset(g, keep), features), g.x[i : i + 1])[0]
    return out
