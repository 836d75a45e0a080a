"""The comparison's picture: best-so-far and per-update mean accuracy, mean +- SE over seeds.

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
    """Best-so-far and per-update mean validation accuracy, and best-so-far vs training time.

    Mean +- SE bands over seeds. The y axes are zoomed to the agents' bands; the start
    network's accuracy is a dashed line where it falls inside them, else a note.

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
    panels = 3 if timed else 2
    fig, axes = plt.subplots(1, panels, figsize=(5 * panels + 1, 4), squeeze=False)
    best_ax, mean_ax = axes[0, 0], axes[0, 1]
    bands: dict[Any, list[tuple[float, float]]] = {ax: [] for ax in axes[0]}
    for index, (label, rs) in enumerate(runs.items()):
        color = f"C{index}"
        n = min(len(r["children"]) for r in rs)
        curves = np.array([best_so_far([c["accuracy"] for c in r["children"][:n]]) for r in rs])
        bands[best_ax].append(
            _band(best_ax, np.arange(1, n + 1), curves, color, f"{label} (n={len(rs)})")
        )
        per_update = np.array([_update_means(r["children"][:n]) for r in rs])
        x = np.arange(1, per_update.shape[1] + 1)
        bands[mean_ax].append(_band(mean_ax, x, per_update, color, label))
        if timed:
            seconds = [np.cumsum([c[clock] for c in r["children"][:n]]) for r in rs]
            grid = np.linspace(0, min(s[-1] for s in seconds), 200)
            on_grid = np.array(
                [
                    c[np.clip(np.searchsorted(s, grid, side="right") - 1, 0, None)]
                    for c, s in zip(curves, seconds, strict=True)
                ]
            )
            bands[axes[0, 2]].append(_band(axes[0, 2], grid / 60, on_grid, color, label))
    labels = (
        ("networks evaluated", "best validation accuracy so far"),
        ("agent update (batch)", "mean validation accuracy of the batch"),
        (_CLOCKS[clock], "best validation accuracy so far"),
    )
    for ax, (xlabel, ylabel) in zip(axes[0], labels, strict=False):
        _zoom(ax, bands[ax], start_accuracy)
        ax.set(xlabel=xlabel, ylabel=ylabel)
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=ax is not axes[0, -1] or not timed)
    best_ax.set_title(title)
    handles, names = best_ax.get_legend_handles_labels()
    columns = 3
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


def _update_means(children: list[dict[str, Any]]) -> list[float]:
    """The mean accuracy of each update's networks, in update order."""
    by_update: dict[int, list[float]] = {}
    for c in children:
        by_update.setdefault(c["update"], []).append(c["accuracy"])
    return [float(np.mean(by_update[u])) for u in sorted(by_update)]


def _zoom(ax, bands: list[tuple[float, float]], start_accuracy: float) -> None:
    """Fit the y axis to the bands; the start network as a line inside them, else a note."""
    if not bands:
        return
    low, high = min(b[0] for b in bands), max(b[1] for b in bands)
    margin = 0.08 * (high - low) or 0.005
    low, high = low - margin, high + margin
    ax.set_ylim(low, high)
    if math.isnan(start_accuracy):
        return
    if low <= start_accuracy <= high:
        ax.axhline(start_accuracy, color="grey", ls="--", lw=1, label="start network")
    else:
        where = "below" if start_accuracy < low else "above"
        ax.annotate(
            f"start network {100 * start_accuracy:.2f}% ({where} the axis)",
            xy=(0.02, 0.02 if where == "below" else 0.94),
            xycoords="axes fraction",
            fontsize=8,
            color="grey",
        )


def _band(ax, x: np.ndarray, curves: np.ndarray, color: str, label: str) -> tuple[float, float]:
    """Plot mean +- SE over the rows of `curves`; the band's (lowest, highest) value."""
    mean = curves.mean(0)
    se = curves.std(0, ddof=1) / math.sqrt(len(curves)) if len(curves) > 1 else 0 * mean
    ax.plot(x, mean, color=color, label=label)
    ax.fill_between(x, mean - se, mean + se, color=color, alpha=0.2, lw=0)
    return float((mean - se).min()), float((mean + se).max())
