"""The analysis of a comparison: per-run numbers, then per agent their mean +- SE and tests.

Per run (one agent, one seed): the metrics of :data:`agents.compare_table.METRICS`, the
sizes of its networks, and what it cost (cache hits, training seconds). Per agent and metric:
mean +- SE over seeds and three kinds of test, each Welch's t (difference, 95% CI, p) with the
exact permutation p beside it (:mod:`agents.stats`):

* ``vs_random``: the agent minus random search (the test planned before a study);
* ``size_adjusted``: the same on accuracy *residuals*: each network's accuracy minus what a
  least-squares fit of accuracy on log params and log FLOPs over random search's networks
  predicts for its size. A search that only learns to pick bigger networks gains nothing here.
  Its SE, CI and p come from :func:`agents.stats.size_adjusted_welch` (the fit's own error
  included, by a jackknife over runs; ``method: "jackknife"``), and its permutation p holds the
  fit fixed, so it only screens;
* ``vs_best_other``: the agent minus the best other agent on that metric. Not shown where the
  best other is random search (that is ``vs_random``);
* ``vs_best_fixed``: where the comparison has ``fixed[...]`` arms (:mod:`agents.fixed`), each
  learned agent (neither random search nor a fixed arm) minus the best fixed arm on that
  metric: a learned policy should beat the best hand-written heuristic, not only random search.

Each kind is one correction family: Holm over all its tests in the comparison (``p_holm``;
:data:`FAMILIES` names them). The best other (or fixed) agent is picked by the data, so those
two families hold every pair that could have been picked, one test per pair and metric (every
pair of agents other than random search; every learned agent with every fixed arm), not only
the pairs shown: Holm over the tests shown alone let a false difference through about 8% of
the time with 6 agents in a simulated null, against 5% for the whole family.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import numpy as np

from agents.compare_table import METRICS, POWER_GAPS_POINTS, REFERENCE, SIZE_ADJUSTED, is_fixed
from agents.stats import (
    SizedNetworks,
    SizedRun,
    holm,
    mean_se,
    permutation_min_seeds,
    permutation_p,
    pooled_sd,
    seeds_for_power,
    size_adjusted_welch,
    size_fit,
    size_residuals,
    welch,
)

__all__ = ["FAMILIES", "agent_rows", "last_third", "per_run_metrics", "power"]

FAMILIES = {
    "vs_random": "each agent minus random search",
    "size_adjusted": "each agent minus random search, size-adjusted",
    "vs_best_other": "each agent minus the best other agent",
    "vs_best_fixed": "each learned agent minus the best fixed policy",
}
"""The correction families: each is Holm over all its tests in one comparison (``vs_best_fixed``
only where the comparison has ``fixed[...]`` arms)."""


def last_third(values: list[Any]) -> list[Any]:
    """The last third of a run's networks (at least one): what the search samples late."""
    return values[len(values) - max(len(values) // 3, 1) :]


def per_run_metrics(
    runs: dict[str, list[dict[str, Any]]], tests: dict[str, float]
) -> dict[str, list[dict[str, Any]]]:
    """Each run's metrics; the size adjustment is fitted on all of random search's networks."""
    reference = [c for r in runs.get(REFERENCE, []) for c in r["children"] + r.get("recheck", [])]
    coef = None
    try:
        if reference:
            coef = size_fit(*_sizes(reference))
    except ValueError:  # too few networks, or records without sizes: no adjustment
        coef = None
    return {label: [_run_metrics(r, tests, coef) for r in rs] for label, rs in runs.items()}


def _sizes(children: list[dict[str, Any]]) -> tuple[list[float], list[int], list[int]]:
    return (
        [c["accuracy"] for c in children],
        [c["params"] for c in children],
        [c["flops"] for c in children],
    )


def _residual_mean(coef: np.ndarray | None, children: list[dict[str, Any]]) -> float | None:
    if coef is None or not children:
        return None
    try:
        return float(size_residuals(coef, *_sizes(children)).mean())
    except ValueError:
        return None


def _run_metrics(
    run: dict[str, Any], tests: dict[str, float], coef: np.ndarray | None
) -> dict[str, Any]:
    children, rechecked = run["children"], run.get("recheck") or []
    acc = [c["accuracy"] for c in children]
    best = max(children, key=lambda c: c["accuracy"])
    clocked = all("cpu_seconds" in c for c in children)
    metrics = {
        "seed": run["seed"],
        "start_accuracy": run.get("start"),
        "last_third_mean": round(float(np.mean(last_third(acc))), 12),
        "best": best["accuracy"],
        "best_net": best["net"],
        "test_of_best": tests.get(f"{best['net']}|{best.get('lineage')}"),
        "recheck_mean": None,
        "last_third_size_adjusted": _residual_mean(coef, last_third(children)),
        "recheck_size_adjusted": _residual_mean(coef, rechecked),
        "train_seconds": float(sum(c["train_seconds"] for c in children)),
        "cpu_seconds": float(sum(c["cpu_seconds"] for c in children)) if clocked else None,
        "batch_wall_seconds": _batch_wall_seconds(children) + _batch_wall_seconds(rechecked),
        "cache_hits": int(sum(c["cache_hit"] for c in children)),
        "agent_cpu_seconds": run.get("agent_cpu_seconds"),
        "accuracies": acc,
        "params": [c["params"] for c in children],
        "flops": [c["flops"] for c in children],
        "cumulative_train_seconds": np.cumsum([c["train_seconds"] for c in children]).tolist(),
    }
    if rechecked:
        metrics["recheck_mean"] = float(np.mean([c["accuracy"] for c in rechecked]))
        metrics["recheck_accuracies"] = [c["accuracy"] for c in rechecked]
        metrics["recheck_params"] = [c["params"] for c in rechecked]
        metrics["recheck_flops"] = [c["flops"] for c in rechecked]
    return metrics


def _batch_wall_seconds(children: list[dict[str, Any]]) -> float:
    """Wall seconds of child training, counting each batch (update) as its slowest child."""
    slowest: dict[int, float] = defaultdict(float)
    for c in children:
        slowest[c["update"]] = max(slowest[c["update"]], c["train_seconds"])
    return float(sum(slowest.values()))


def _test(a: list[float], b: list[float]) -> dict[str, float]:
    return {**welch(a, b), "p_permutation": permutation_p(a, b)}


def _values(runs: list[dict[str, Any]], metric: str) -> list[float]:
    """The runs' values of `metric`; a run without one (None, or not finite) is left out."""
    values = [r.get(metric) for r in runs]
    return [v for v in values if isinstance(v, int | float) and math.isfinite(v)]


def agent_rows(
    per_run: dict[str, list[dict[str, Any]]],
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """Per agent: each metric's mean +- SE and tests; and each family's name and test count."""
    rows: dict[str, dict[str, Any]] = {}
    reference = per_run.get(REFERENCE, [])
    for label, runs in per_run.items():
        row: dict[str, Any] = {"network_size": _network_size(runs)}
        for metric in [*METRICS, *SIZE_ADJUSTED.values()]:
            values, base = _values(runs, metric), _values(reference, metric)
            if not values:
                continue
            row[metric] = mean_se(values)
            if label != REFERENCE and base:
                row[metric]["vs_random"] = _test(values, base)
                if metric in SIZE_ADJUSTED.values():  # the size fit's own error in the SE
                    scored = [run for run in _sized_runs(runs, metric) if run[1] is not None]
                    adjusted = size_adjusted_welch(scored, _sized_runs(reference, metric))
                    row[metric]["vs_random"].update(adjusted, method="jackknife")
        rows[label] = row
    candidates: dict[str, dict[tuple[Any, ...], float]] = defaultdict(dict)
    for metric in METRICS:
        for family, a, b in _candidate_pairs([lab for lab, r in rows.items() if metric in r]):
            test = welch(_values(per_run[a], metric), _values(per_run[b], metric))
            candidates[family][(metric, frozenset((a, b)))] = test["p"]
        for label, row in rows.items():
            means = {o: r[metric]["mean"] for o, r in rows.items() if o != label and metric in r}
            if label == REFERENCE or metric not in row or not means:
                continue
            other = max(means, key=lambda o: means[o])
            if other != REFERENCE:
                versus = _test(_values(per_run[label], metric), _values(per_run[other], metric))
                row[metric]["vs_best_other"] = {"other": other, **versus}
            fixed = {o: m for o, m in means.items() if is_fixed(o)}
            if fixed and not is_fixed(label):
                best = max(fixed, key=lambda o: fixed[o])
                versus = _test(_values(per_run[label], metric), _values(per_run[best], metric))
                row[metric]["vs_best_fixed"] = {"other": best, **versus}
    return rows, _adjust(rows, candidates)


def _sized_runs(runs: list[dict[str, Any]], metric: str) -> list[SizedRun]:
    """Each run's networks (a size fit's data) and those `metric` scores (None: it has none)."""
    sized: list[SizedRun] = []
    for r in runs:
        recheck = (r.get("recheck_accuracies", []), r.get("recheck_params", []))
        recheck_flops = r.get("recheck_flops", [])
        fitted = (
            [*r["accuracies"], *recheck[0]],
            [*r["params"], *recheck[1]],
            [*r["flops"], *recheck_flops],
        )
        scored: SizedNetworks | None = None
        if r.get(metric) is None:
            pass  # in the fit (a reference run's networks all are), not scored
        elif metric == SIZE_ADJUSTED["recheck_mean"]:
            scored = (recheck[0], recheck[1], recheck_flops)
        else:
            scored = (last_third(r["accuracies"]), last_third(r["params"]), last_third(r["flops"]))
        sized.append((fitted, scored))
    return sized


def _candidate_pairs(labels: list[str]) -> list[tuple[str, str, str]]:
    """(family, agent, agent): each pair a best-other or best-fixed test could compare."""
    pairs = []
    for i, a in enumerate(labels):
        for b in labels[i + 1 :]:
            if REFERENCE not in (a, b):
                pairs.append(("vs_best_other", a, b))
            if is_fixed(a) != is_fixed(b) and REFERENCE not in (a, b):
                pairs.append(("vs_best_fixed", a, b))
    return pairs


def _adjust(
    rows: dict[str, dict[str, Any]],
    candidates: dict[str, dict[tuple[Any, ...], float]] | None = None,
) -> dict[str, dict[str, Any]]:
    """Holm within each family, in place (``p_holm``); a pair tested from both sides counts once.

    `candidates`: per family, the p of each (metric, pair) it holds though no row shows it.
    """
    members: dict[str, dict[tuple[Any, ...], list[dict[str, Any]]]] = defaultdict(dict)
    for label, row in rows.items():
        for metric, cell in row.items():
            for kind in ("vs_random", "vs_best_other", "vs_best_fixed"):
                if not isinstance(cell, dict) or kind not in cell:
                    continue
                test = cell[kind]
                family = "size_adjusted" if metric in SIZE_ADJUSTED.values() else kind
                pair = frozenset((label, test.get("other", REFERENCE)))
                members[family].setdefault((metric, pair), []).append(test)
    families = {}
    for family, description in FAMILIES.items():
        if family == "vs_best_fixed" and family not in members:
            continue  # no fixed arms: the family does not exist
        shown = members[family]
        unshown = [p for key, p in (candidates or {}).get(family, {}).items() if key not in shown]
        groups = list(shown.values())
        pvalues = [g[0]["p"] for g in groups] + unshown
        adjusted = holm(pvalues)
        for group, p in zip(groups, adjusted, strict=False):
            for test in group:
                test["p_holm"] = p
        tests = sum(1 for p in pvalues if np.isfinite(p))
        families[family] = {"method": "Holm", "tests": tests, "description": description}
    return families


def _network_size(runs: list[dict[str, Any]]) -> dict[str, float | None]:
    """Medians over an agent's late networks (each run's last third) and its recheck networks."""
    late_params = [p for r in runs for p in last_third(r.get("params", []))]
    late_flops = [f for r in runs for f in last_third(r.get("flops", []))]
    recheck = [p for r in runs for p in r.get("recheck_params", [])]
    return {
        "late_params_median": float(np.median(late_params)) if late_params else None,
        "late_flops_median": float(np.median(late_flops)) if late_flops else None,
        "recheck_params_median": float(np.median(recheck)) if recheck else None,
    }


def power(
    per_run: dict[str, list[dict[str, Any]]], family_tests: int = 1
) -> dict[str, dict[str, Any]]:
    """Per metric: the seed-to-seed sd pooled within agents, and the seeds each gap needs.

    The seeds at which Welch's test has 80% power at alpha ``0.05 / family_tests`` (a difference
    is called only past Holm over the family against random search; Bonferroni's alpha, the
    strictest step of Holm's, keeps the 80% for a lone true gap), but never fewer than the
    permutation test needs to go below 0.05 (4 v 4): a difference is called only when both do.
    """
    floor = permutation_min_seeds()
    alpha = 0.05 / max(int(family_tests), 1)

    def needed(sd: float, gap: float) -> int | None:
        n = seeds_for_power(100 * sd, gap, alpha=alpha)
        return None if n is None else max(n, floor)

    sizing = {}
    for metric in METRICS:
        groups = [_values(rs, metric) for rs in per_run.values()]
        sd, df = pooled_sd(groups)
        if df == 0 or not sd > 0:  # nan: a metric with a non-finite value
            continue
        sizing[metric] = {
            "seed_sd": sd,
            "df": df,
            "alpha": alpha,
            "seeds_for_gap": {f"{gap:g}": needed(sd, gap) for gap in POWER_GAPS_POINTS},
        }
    return sizing
