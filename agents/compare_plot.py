"""The comparison's picture: best-so-far validation accuracy, mean +- SE bands over seeds."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from agents.stats import best_so_far

__all__ = ["plot_comparison"]


def plot_comparison(
    runs: dict[str, list[dict[str, Any]]], start_accuracy: float, path: Path, title: str
) -> None:
    """Best-so-far validation accuracy vs networks and vs training seconds, mean +- SE bands."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    timed = any(c["train_seconds"] > 0 for rs in runs.values() for r in rs for c in r["children"])
    fig, axes = plt.subplots(1, 2 if timed else 1, figsize=(11 if timed else 6, 4), squeeze=False)
    left = axes[0, 0]
    for index, (label, rs) in enumerate(runs.items()):
        color = f"C{index}"
        n = min(len(r["children"]) for r in rs)
        curves = np.array([best_so_far([c["accuracy"] for c in r["children"][:n]]) for r in rs])
        _band(left, np.arange(1, n + 1), curves, color, f"{label} (n={len(rs)})")
        if timed:
            seconds = [np.cumsum([c["train_seconds"] for c in r["children"][:n]]) for r in rs]
            grid = np.linspace(0, min(s[-1] for s in seconds), 200)
            on_grid = np.array(
                [
                    c[np.clip(np.searchsorted(s, grid, side="right") - 1, 0, None)]
                    for c, s in zip(curves, seconds, strict=True)
                ]
            )
            _band(axes[0, 1], grid / 60, on_grid, color, label)
    for ax, xlabel in zip(
        axes[0], ("networks evaluated", "cumulative child training (minutes)"), strict=False
    ):
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


def _band(ax, x: np.ndarray, curves: np.ndarray, color: str, label: str) -> None:
    mean = curves.mean(0)
    se = curves.std(0, ddof=1) / math.sqrt(len(curves)) if len(curves) > 1 else 0 * mean
    ax.plot(x, mean, color=color, label=label)
    ax.fill_between(x, mean - se, mean + se, color=color, alpha=0.2, lw=0)
