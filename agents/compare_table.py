"""The tables of a comparison: per agent mean +- SE, each agent minus random, and study sizing.

:func:`format_tables` turns the result that :func:`agents.compare.compare` and
:func:`agents.compare.report` write as JSON into the Markdown they write beside it.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["METRICS", "POWER_GAPS_POINTS", "REFERENCE", "format_tables"]

METRICS = {
    "last_third_mean": "last-third mean (val)",
    "best": "best (val)",
    "test_of_best": "test acc of best-by-val",
    "recheck_mean": "recheck mean (fresh fine-tunes)",
}
"""The per-run metrics of a comparison and their table headings."""

REFERENCE = "random"


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


def format_tables(result: dict[str, Any]) -> str:
    """The comparison as two Markdown tables: per agent, and each agent minus random."""
    metrics = [m for m in METRICS if m != "recheck_mean"]
    if result["recheck"]:
        metrics.append("recheck_mean")
    lines = [
        f"{result['env_id']}: {result['nets']} networks per run, {_seed_counts(result)}"
        + (f", recheck {result['recheck']} fresh episodes per run" if result["recheck"] else "")
        + f"; {_start_text(result)}. "
        "Accuracy in %, mean ± SE over seeds.",
        "",
        "| agent | " + " | ".join(METRICS[m] for m in metrics) + " |",
        "|---" * (len(metrics) + 1) + "|",
    ]
    for label, row in result["agents"].items():
        cells = [
            f"{_pct(row[m]['mean'])} ± {_pct(row[m]['se'])}" if m in row else "n/a" for m in metrics
        ]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    differences = [
        (label, m, row[m]["vs_random"])
        for label, row in result["agents"].items()
        for m in metrics
        if m in row and "vs_random" in row[m]
    ]
    if differences:
        lines += [
            "",
            f"Difference to {REFERENCE} (points; {result['test']}):",
            "",
            "| agent | metric | difference | 95% CI | p |",
            "|---|---|---|---|---|",
        ]
        for label, m, d in differences:
            ci = f"[{_pct(d['ci_low'])}, {_pct(d['ci_high'])}]"
            p = "n/a" if not math.isfinite(d["p"]) else f"{d['p']:.3g}"
            lines.append(f"| {label} | {METRICS[m]} | {_pct(d['diff'])} | {ci} | {p} |")
    if result.get("power"):
        gaps = " | ".join(f"seeds for a {gap:g}-point gap" for gap in POWER_GAPS_POINTS)
        lines += [
            "",
            "Sizing the study: one seed's sd (pooled within agents, points) and the seeds per "
            "agent at which Welch's test finds a true gap with 80% power (two-sided, alpha 0.05; "
            "a rough guide while the sd rests on few seeds):",
            "",
            f"| metric | seed sd (df) | {gaps} |",
            "|---" * (2 + len(POWER_GAPS_POINTS)) + "|",
        ]
        for m, row in result["power"].items():
            needed = " | ".join(
                str(n) if n is not None else "> 1000" for n in row["seeds_for_gap"].values()
            )
            lines.append(f"| {METRICS[m]} | {_pct(row['seed_sd'])} ({row['df']}) | {needed} |")
    return "\n".join(lines)
