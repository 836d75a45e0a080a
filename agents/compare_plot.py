"""The comparison's picture: best-so-far validation accuracy, mean +- SE bands over seeds.

Its time axis is the process CPU time of the children's fine-tunes (``cpu_seconds``) when every
record has it. Records written before 2026-12-04 have only ``train_seconds``, wall time, which
grows with whatever else ran on the machine: that axis is then labelled as wall time.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from agents.stats import best_so_far

__all__ = ["plot_comparison"]


_CLOCKS = {
    "cpu_seconds": "cumulative child training, process CPU (minutes)",
    "train_seconds": "cumulative child training, wall time (minutes; grows under load)",
}


def plot_comparison(
    runs: dict[str, list[dict[str, Any]]], start_accuracy: float, path: Path, title: str
) -> str | None:
    """Best-so-far validation accuracy vs networks and vs training time, mean +- SE bands.

    Returns:
        The record key of the time axis (``"cpu_seconds"`` or ``"train_seconds"``), or None
        when no child took time to train (a surrogate) and the plot has no time panel.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    children = [c for rs in runs.values() for r in rs for c in r["children"]]
    clock = "cpu_seconds" if all("cpu_seconds" in c for c in children) else "train_seconds"
    timed = any(c[clock] > 0 for c in children)
    fig, axes = plt.subplots(1, 2 if timed else 1, figsize=(11 if timed else 6, 4), squeeze=False)
    left = axes[0, 0]
    for index, (label, rs) in enumerate(runs.items()):
        color = f"C{index}"
        n = min(len(r["children"]) for r in rs)
        curves = np.array([best_so_far([c["accuracy"] for c in r["children"][:n]]) for r in rs])
        _band(left, np.arange(1, n + 1), curves, color, f"{label} (n={len(rs)})")
        if timed:
            seconds = [np.cumsum([c[clock] for c in r["children"][:n]]) for r in rs]
            grid = np.linspace(0, min(s[-1] for s in seconds), 200)
            on_grid = np.array(
                [
                    c[np.clip(np.searchsorted(s, grid, side="right") - 1, 0, None)]
                    for c, s in zip(curves, seconds, strict=True)
                ]
            )
            _band(axes[0, 1], grid / 60, on_grid, color, label)
    for ax, xlabel in zip(axes[0], ("networks evaluated", _CLOCKS[clock]), strict=False):
        ax.axhline(start_accuracy, color="grey", ls="--", lw=1, label="start network")
        ax.set(xlabel=xlabel, ylabel="best validation accuracy so far")
        ax.grid(alpha=0.3)
    left.xaxis.get_major_locator().set_params(integer=True)
    left.set_title(title)
    handles, names = left.get_legend_handles_labels()
    columns = 3 if timed else 2
    fig.legend(
        handles,
        names,
        loc="lower center",
        ncol=columns,
        fontsize=8,
        title="mean ± SE over seeds (shaded)",
        title_fontsize=8,
        frameon=False,
    )
    fig.tight_layout(rect=(0, 0.06 + 0.055 * (math.ceil(len(names) / columns) + 1), 1, 1))
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return clock if timed else None


def _band(ax, x: np.ndarray, curves: np.ndarray, color: str, label: str) -> None:
    mean = curves.mean(0)
    se = curves.std(0, ddof=1) / math.sqrt(len(curves)) if len(curves) > 1 else 0 * mean
    ax.plot(x, mean, color=color, label=label)
    ax.fill_between(x, mean - se, mean + se, color=color, alpha=0.2, lw=0)
