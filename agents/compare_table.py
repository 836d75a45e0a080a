"""The tables of a comparison: per agent mean +- SE, the tests of each family, study sizing.

:func:`format_tables` turns the result that :func:`agents.compare.compare` and
:func:`agents.compare.report` write as JSON into the Markdown they write beside it. Each table of
tests is one correction family (:data:`agents.compare_analysis.FAMILIES`): its Holm p is
adjusted over that table's tests, and the table says how many.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = [
    "FIXED",
    "METRICS",
    "POWER_GAPS_POINTS",
    "REFERENCE",
    "SIZE_ADJUSTED",
    "format_tables",
    "is_fixed",
]

METRICS = {
    "last_third_mean": "last-third mean (val)",
    "best": "best (val)",
    "test_of_best": "test acc of best-by-val",
    "recheck_mean": "recheck mean (fresh fine-tunes)",
}
"""The per-run metrics of a comparison and their table headings."""

SIZE_ADJUSTED = {
    "last_third_mean": "last_third_size_adjusted",
    "recheck_mean": "recheck_size_adjusted",
}
"""The metrics that have a size-adjusted twin (accuracy residuals after a fit on size)."""

_HEADINGS = {
    **METRICS,
    "last_third_size_adjusted": "last-third mean, size-adjusted",
    "recheck_size_adjusted": "recheck mean, size-adjusted",
}

REFERENCE = "random"

FIXED = "fixed"
"""The agent name of fixed heuristic policies (:mod:`agents.fixed`): ``fixed[policy=...]`` arms."""


def is_fixed(label: str) -> bool:
    """Whether `label` is a fixed policy's arm: ``fixed[policy=deepen-first]``."""
    return label.split("[", 1)[0] == FIXED


_VERSUS = {"vs_best_other": "best other", "vs_best_fixed": "best fixed"}
"""The families that test against another arm, and their column heading."""

POWER_GAPS_POINTS = (1.0, 2.0)
"""Gaps (accuracy points) for which the tables give the seeds per agent a study needs."""


def _pct(value: float) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{100 * value:.2f}"


def _seed_counts(result: dict[str, Any]) -> str:
    """``"3 seeds per agent"``, or each agent's count when they differ (a partial report)."""
    counts = {label: len(runs) for label, runs in result["runs"].items()}
    if len(set(counts.values())) == 1:
        n = next(iter(counts.values()))
        return f"{n} seed{'s' if n != 1 else ''} per agent"
    return "seeds per agent: " + ", ".join(f"{label} {n}" for label, n in counts.items())


def _start_text(result: dict[str, Any]) -> str:
    """``"start network 36.12%"``, or each seed's when seeds grew from different ones."""
    by_seed = result.get("start_accuracies") or {}
    distinct = {a for accs in by_seed.values() for a in accs}
    if len(distinct) <= 1:
        return f"start network {_pct(result['start_accuracy'])}%"
    parts = ["/".join(_pct(a) for a in accs) + f"% (seed {seed})" for seed, accs in by_seed.items()]
    return "start networks " + ", ".join(parts)


def _p(value: float | None) -> str:
    """Two significant digits; near 0.05 as many as show which side of it `value` is on.

    >>> _p(0.0123), _p(0.04996), _p(0.05), _p(0.0504)
    ('0.012', '0.04996', '0.05', '0.0504')
    """
    if value is None or not math.isfinite(value):
        return "n/a"
    if not 0.045 <= value < 0.055:
        return f"{value:.2g}"
    for digits in range(3, 17):
        text = f"{value:.{digits}g}"
        if (float(text) < 0.05) == (value < 0.05):
            return text
    return repr(value)


def _thousands(value: float | None) -> str:
    return "n/a" if value is None else f"{value / 1000:.1f}k"


def format_tables(result: dict[str, Any]) -> str:
    """The comparison as Markdown: per agent, its tests (one table per family), sizing, costs."""
    metrics = [m for m in METRICS if m != "recheck_mean"]
    if result["recheck"]:
        metrics.append("recheck_mean")
    if result.get("test_is_validation"):  # a surrogate or the bench: test = validation
        metrics.remove("test_of_best")
    lines = [
        f"{result['env_id']}: {result['nets']} networks per run, {_seed_counts(result)}"
        + (f", recheck {result['recheck']} fresh episodes per run" if result["recheck"] else "")
        + f"; {_start_text(result)}. "
        "Accuracy in %, mean ± SE over seeds."
        + (
            " No test column: this evaluator (a surrogate or the bench) has no test split, its "
            "test accuracy is its validation accuracy."
            if result.get("test_is_validation")
            else ""
        ),
        "",
        "| agent | " + " | ".join(METRICS[m] for m in metrics) + " |",
        "|---" * (len(metrics) + 1) + "|",
    ]
    for label, row in result["agents"].items():
        cells = [
            f"{_pct(row[m]['mean'])} ± {_pct(row[m]['se'])}" if m in row else "n/a" for m in metrics
        ]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    families = result.get("families", {})
    lines += _tests_table(result, metrics, "vs_random", families.get("vs_random"))
    lines += _size_tables(result, metrics, families.get("size_adjusted"))
    lines += _tests_table(result, metrics, "vs_best_other", families.get("vs_best_other"))
    lines += _tests_table(result, metrics, "vs_best_fixed", families.get("vs_best_fixed"))
    lines += _sizing_table(result)
    lines += _costs(result)
    text = "\n".join(lines)
    if result.get("test_is_validation"):  # a weightless evaluator fine-tunes nothing
        text = text.replace(METRICS["recheck_mean"], "recheck mean (fresh episodes)")
    return text


def _tests_table(
    result: dict[str, Any], metrics: list[str], kind: str, family: dict[str, Any] | None
) -> list[str]:
    """One family's tests: difference, Welch CI and p, Holm-adjusted p, permutation p."""
    rows, seen = [], set()
    for label, row in result["agents"].items():
        for m in metrics:
            test = row.get(m, {}).get("vs_random" if kind == "size_adjusted" else kind)
            if test is None:
                continue
            other = test.get("other", REFERENCE)
            if (m, frozenset((label, other))) in seen:
                continue  # the same pair of agents, tested from its other side
            seen.add((m, frozenset((label, other))))
            ci = f"[{_pct(test['ci_low'])}, {_pct(test['ci_high'])}]"
            cells = [label + _seeds_used(result, m, label, other), _HEADINGS[m]]
            cells += [other] if kind in _VERSUS else []
            cells += [_pct(test["diff"]), ci, _p(test["p"]), _p(test.get("p_holm"))]
            rows.append("| " + " | ".join([*cells, _p(test.get("p_permutation"))]) + " |")
    if not rows:
        return []
    count = family["tests"] if family else len(rows)
    title = {
        "vs_random": f"Difference to {REFERENCE}",
        "size_adjusted": f"Size-adjusted difference to {REFERENCE}",
        "vs_best_other": "Difference to the best other agent on that metric (where that is "
        f"not {REFERENCE}; a pair of agents once)",
        "vs_best_fixed": "Difference of each learned agent (neither random nor fixed) to the "
        f"best {FIXED}[...] arm on that metric, a fixed heuristic policy",
    }[kind]
    head = "| agent | metric | " + (f"{_VERSUS[kind]} | " if kind in _VERSUS else "")
    explained = (
        f"{title} (points). {_t_test_text(kind)}; Holm: that p "
        f"adjusted over the {count} tests of {_family_text(kind)}; permutation: the "
        f"permutation test's p, which assumes no normality{_floor(result)}"
        + (", the size fit held fixed, so it only screens:" if kind == "size_adjusted" else ":")
        if count
        else f"{title} (points): no test (n/a): it needs at least 2 seeds of each agent"
        + (
            f", and a size fit on {REFERENCE}'s networks that can be redone without each of its "
            "runs:"
            if kind == "size_adjusted"
            else ":"
        )
    )
    return [
        "",
        explained,
        "",
        head + f"difference | 95% CI | {'t' if kind == 'size_adjusted' else 'Welch'} p | Holm p "
        "| permutation p |",
        "|---" * (8 if kind in _VERSUS else 7) + "|",
        *rows,
    ]


def _floor(result: dict[str, Any]) -> str:
    """`` (its smallest p with 5 v 5 seeds: 0.0079)`` when every agent has the same seeds."""
    counts = {len(runs) for runs in result["runs"].values()}
    if len(counts) != 1 or (n := counts.pop()) < 2:
        return ""
    return f" (its smallest p with {n} v {n} seeds: {2 / math.comb(2 * n, n):.2g})"


def _size_tables(
    result: dict[str, Any], metrics: list[str], family: dict[str, Any] | None
) -> list[str]:
    """Per agent its networks' median size and its size-adjusted accuracy; then their tests."""
    adjusted = [SIZE_ADJUSTED[m] for m in metrics if m in SIZE_ADJUSTED]
    agents = result["agents"]
    if not any(m in row for row in agents.values() for m in adjusted):
        return []
    fitted = sum(
        len(r["accuracies"]) + len(r.get("recheck_accuracies", []))
        for r in result["runs"].get(REFERENCE, [])
    )
    rechecked = result["recheck"] > 0
    reference_params = np.array(
        [p for r in result["runs"].get(REFERENCE, []) for p in _fitted_params(r)], dtype=float
    )
    columns = ["late networks: median params", "median FLOPs"]
    columns += ["recheck networks: median params"] if rechecked else []
    columns += [f"{REFERENCE}'s networks below the late median"]
    lines = [
        "",
        "Network size and size-adjusted accuracy. Late networks are each run's last third. "
        "Size-adjusted: each network's accuracy minus what a least-squares fit of accuracy on "
        f"log params and log FLOPs over {REFERENCE}'s {fitted} networks predicts for its size "
        "(points, mean ± SE over seeds). An agent that only learns to pick bigger networks "
        f"scores about what {REFERENCE} does here. Where an agent's networks lie beyond most "
        f"of {REFERENCE}'s, the fit extrapolates: its straight line in log size is then an "
        "assumption, not a measurement.",
        "",
        "| agent | " + " | ".join(columns + [_HEADINGS[m] for m in adjusted]) + " |",
        "|---" * (1 + len(columns) + len(adjusted)) + "|",
    ]
    for label, row in agents.items():
        size = row.get("network_size", {})
        cells = [_thousands(size.get("late_params_median"))]
        flops = size.get("late_flops_median")
        cells.append("n/a" if flops is None else f"{flops / 1e6:.2f}M")
        cells += [_thousands(size.get("recheck_params_median"))] if rechecked else []
        late = size.get("late_params_median")
        below = (
            (reference_params < late).mean() if late is not None and reference_params.size else None
        )
        cells.append("n/a" if below is None else f"{100 * below:.0f}%")
        cells += [
            f"{_pct(row[m]['mean'])} ± {_pct(row[m]['se'])}" if m in row else "n/a"
            for m in adjusted
        ]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines + _tests_table(result, adjusted, "size_adjusted", family)


def _fitted_params(run: dict[str, Any]) -> list[float]:
    """The params of a run's networks that the size fit is made on (search and recheck)."""
    return [*run.get("params", []), *run.get("recheck_params", [])]


def _seeds_used(result: dict[str, Any], metric: str, label: str, other: str) -> str:
    """``" (4 v 5 seeds)"`` where a test used fewer seeds than the runs (a metric missing)."""
    used = [result["agents"].get(a, {}).get(metric, {}).get("n") for a in (label, other)]
    runs = [len(result["runs"].get(a, [])) for a in (label, other)]
    if None in used or used == runs:
        return ""
    return f" ({used[0]} v {used[1]} seeds)"


def _alpha_text(result: dict[str, Any]) -> str:
    alpha = next(iter(result["power"].values())).get("alpha", 0.05)
    if alpha >= 0.05:
        return "alpha 0.05"
    tests = round(0.05 / alpha)
    return (
        f"alpha 0.05/{tests}: a gap is called past Holm over the {tests} tests against "
        f"{REFERENCE}, whose strictest step this is"
    )


def _t_test_text(kind: str) -> str:
    if kind == "size_adjusted":  # the fit's error moves all of an agent's seeds together
        return (
            "A t-test (two-sided) with its 95% CI and p whose SE includes the size fit's own "
            f"error: a jackknife over runs, the fit redone without each of {REFERENCE}'s runs"
        )
    return "Welch's t-test (two-sided) with its 95% CI and p"


def _family_text(kind: str) -> str:
    if kind in _VERSUS:  # the opponent is picked by the data: every pair it could have been
        return "its family (one per pair that could have been picked and metric, shown or not)"
    return "this table (one family)"


def _sizing_table(result: dict[str, Any]) -> list[str]:
    if not result.get("power"):
        return []
    gaps = " | ".join(f"seeds for a {gap:g}-point gap" for gap in POWER_GAPS_POINTS)
    lines = [
        "",
        "Sizing the study: one seed's sd (pooled within agents, points) and the seeds per "
        "agent at which Welch's test finds a true gap with 80% power (two-sided, "
        f"{_alpha_text(result)}; a rough guide while the sd rests on few seeds), and never "
        "fewer than 4, below which the permutation test's p cannot fall under 0.05:",
        "",
        f"| metric | seed sd (df) | {gaps} |",
        "|---" * (2 + len(POWER_GAPS_POINTS)) + "|",
    ]
    for m, row in result["power"].items():
        needed = " | ".join(
            str(n) if n is not None else "> 1000" for n in row["seeds_for_gap"].values()
        )
        lines.append(f"| {METRICS[m]} | {_pct(row['seed_sd'])} ({row['df']}) | {needed} |")
    return lines


def _costs(result: dict[str, Any]) -> list[str]:
    """What the runs cost, per agent over its seeds: cache hits, child training, agent time."""
    runs = result["runs"]
    if not all("batch_wall_seconds" in r for rs in runs.values() for r in rs):
        return []  # a result written before these were recorded

    def total(rs: list[dict[str, Any]], key: str, scale: float, unit: str) -> str:
        values = [r.get(key) for r in rs]
        if any(v is None for v in values):
            return "n/a"  # runs recorded before this was
        summed = sum(float(v) for v in values if v is not None)
        return _duration(summed) if unit == "h" else f"{summed / scale:.2f} {unit}"

    if result.get("test_is_validation"):  # a surrogate or the bench: nothing is trained
        lines = [
            "",
            "Costs per agent, all seeds, search and recheck: this evaluator trains no network; "
            "the CPU time of the agent's own code (act, observe, update; n/a: not recorded):",
            "",
            "| agent | agent's own code, CPU |",
            "|---|---|",
        ]
        lines += [
            f"| {label} | {total(rs, 'agent_cpu_seconds', 1, 's')} |" for label, rs in runs.items()
        ]
        return lines
    lines = [
        "",
        "Costs per agent, all seeds, search and recheck: cache hits (search networks read from "
        "the store, not trained); child training in wall time, each batch counted as its "
        "slowest child; the fine-tunes' process CPU time (search); and the CPU time of the "
        "agent's own code (act, observe, update; n/a: not recorded for some runs):",
        "",
        "| agent | cache hits | child training, wall | fine-tunes, CPU | agent's own code, CPU |",
        "|---|---|---|---|---|",
    ]
    for label, rs in runs.items():
        cells = [
            str(sum(r["cache_hits"] for r in rs)),
            total(rs, "batch_wall_seconds", 3600, "h"),
            total(rs, "cpu_seconds", 3600, "h"),
            total(rs, "agent_cpu_seconds", 1, "s"),
        ]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    seconds = sum(r["batch_wall_seconds"] for rs in runs.values() for r in rs)
    lines += ["", f"Child training in all: {_duration(seconds)} of wall time."]
    return lines


def _duration(seconds: float) -> str:
    """Hours to one decimal; under six minutes, minutes or seconds (a short run is not 0.0 h).

    >>> _duration(53640), _duration(150), _duration(36.2)
    ('14.9 h', '2.5 min', '36.2 s')
    """
    if seconds >= 360:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.1f} s"
