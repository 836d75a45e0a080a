"""Compare search agents over seeds: a table of sampled-network accuracy and a plot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from agents.runner import SearchArgs, run_search

__all__ = ["compare", "summarise"]


def summarise(accuracies: list[float]) -> dict[str, float]:
    """Mean of all, mean of the last third, and best accuracy of one run's sampled networks.

    >>> summarise([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])["last_third_mean"]
    0.55
    """
    acc = np.asarray(accuracies, dtype=float)
    third = acc[len(acc) - max(len(acc) // 3, 1) :]
    return {
        "mean": float(acc.mean()),
        "last_third_mean": round(float(third.mean()), 12),
        "best": float(acc.max()),
    }


def compare(
    env_id: str,
    *,
    agents: list[str],
    seeds: int,
    nets: int,
    batch: int = 10,
    out: str = "runs/compare",
    env_kwargs: dict[str, Any] | None = None,
    progress: bool = True,
) -> str:
    """Run (or resume, or reuse) ``agents x seeds`` searches; write and return a table.

    Every run shares one evaluation store under `out`, so the start network is trained once
    and a network sampled by several runs is trained once (as the paper's cache does).
    Writes ``compare.json``, ``compare.md`` and ``compare.png`` to `out`.
    """
    if seeds < 1:
        raise ValueError(f"`seeds` must be >= 1, got {seeds}")
    root = Path(out)
    runs: dict[str, list[list[float]]] = {}
    for agent in agents:
        for seed in range(seeds):
            children = run_search(
                SearchArgs(
                    env_id=env_id,
                    agent=agent,
                    nets=nets,
                    batch=batch,
                    seed=seed,
                    out=str(root / agent / f"seed-{seed}"),
                    store=str(root / "store.sqlite"),
                    env_kwargs=dict(env_kwargs or {}),
                    progress=progress,
                )
            )
            runs.setdefault(agent, []).append([c["accuracy"] for c in children])
    rows = {}
    for agent, accs in runs.items():
        stats = [summarise(a) for a in accs]
        rows[agent] = {
            key: {
                "mean": float(np.mean([s[key] for s in stats])),
                "std": float(np.std([s[key] for s in stats])),
            }
            for key in stats[0]
        }
    (root / "compare.json").write_text(
        json.dumps(
            {"env_id": env_id, "nets": nets, "seeds": seeds, "agents": rows, "runs": runs}, indent=2
        )
    )
    table = _table(rows, nets, seeds)
    (root / "compare.md").write_text(table + "\n")
    _plot(runs, root / "compare.png", env_id)
    return table


def _table(rows: dict[str, dict[str, dict[str, float]]], nets: int, seeds: int) -> str:
    lines = [
        f"networks per run: {nets}; seeds: {seeds}; mean ± std over seeds",
        "",
        "| agent | mean acc (all) | mean acc (last third) | best acc |",
        "|---|---|---|---|",
    ]
    for agent, r in rows.items():
        cells = [
            f"{r[k]['mean']:.4f} ± {r[k]['std']:.4f}" for k in ("mean", "last_third_mean", "best")
        ]
        lines.append(f"| {agent} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _plot(runs: dict[str, list[list[float]]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.5))
    for agent, accs in runs.items():
        n = min(len(a) for a in accs)
        acc = np.array([a[:n] for a in accs])
        x = np.arange(1, n + 1)
        best = np.maximum.accumulate(acc, axis=1)
        line = left.plot(x, best.mean(0), label=agent)[0]
        left.fill_between(x, best.min(0), best.max(0), alpha=0.2, color=line.get_color())
        window = min(10, n)
        moving = np.array([np.convolve(a, np.ones(window) / window, mode="valid") for a in acc])
        right.plot(x[window - 1 :], moving.mean(0), label=agent, color=line.get_color())
    left.set(xlabel="networks sampled", ylabel="best accuracy so far", title=title)
    right.set(xlabel="networks sampled", ylabel="moving-average accuracy", title="sampled nets")
    left.legend(fontsize=8)
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
