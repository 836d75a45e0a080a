"""REINFORCE meta-controller vs random search (the paper's demo), agents x seeds.

    python benchmarks/rl_vs_random.py [--agents reinforce,random] [--seeds 3] [--nets 30]
        [--env EAS-CIFAR10-CPU-v0] [--data-dir ../shared/data] [--out-dir /tmp/eas_rl_vs_random]
    python benchmarks/rl_vs_random.py --nets 150 --seeds 3   # the paper's demo budget

Runs ``agents x seeds`` searches with :func:`agents.runner.run_search` (updates of `batch`
networks; each run's episodes are seeded from ``(seed, update)``, so the agents see the same
environment seeds). All runs share one evaluation store, so the start network trains once and
a network sampled twice trains once. Rerunning resumes or extends the runs (run folders under
``--out-dir``). Add ``maskable-ppo`` to ``--agents`` for the sb3-contrib baseline.

Prints one JSON line: per agent, mean ± std over seeds of the mean validation accuracy of all
sampled networks, of the last third, and of the best; the RL-minus-random gaps; the best
network found and its run folder. Writes a PNG: best-so-far curves (mean over seeds, band =
min..max) and the mean accuracy of each update of `batch` networks.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

import eas_gym  # noqa: F401  (registers the EAS-* ids)
from agents.compare import summarise
from agents.runner import SearchArgs, run_search


def env_kwargs_for(env_id: str, data_dir: str, overrides: list[str]) -> dict[str, object]:
    """``data_dir`` for envs that read real data, plus ``--set key=value`` overrides."""
    spec = gym.spec(env_id).kwargs
    kwargs: dict[str, object] = {}
    if spec.get("evaluator") != "surrogate" and spec.get("dataset", "cifar10") != "synthetic":
        kwargs["data_dir"] = data_dir
    for item in overrides:
        key, _, value = item.partition("=")
        try:
            kwargs[key] = json.loads(value)
        except json.JSONDecodeError:
            kwargs[key] = value
    return kwargs


def mean_std(values: list[float]) -> dict[str, float]:
    return {"mean": round(float(np.mean(values)), 4), "std": round(float(np.std(values)), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="EAS-CIFAR10-CPU-v0")
    parser.add_argument("--agents", default="reinforce,random")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--first-seed", type=int, default=0, help="run seeds first..first+seeds-1 (split work)"
    )
    parser.add_argument("--nets", type=int, default=30, help="networks per run (paper: 150)")
    parser.add_argument("--batch", type=int, default=10, help="networks per update (paper: 10)")
    parser.add_argument("--data-dir", default=os.environ.get("EAS_DATA_DIR", "../shared/data"))
    parser.add_argument("--out-dir", type=Path, default=Path("/tmp/eas_rl_vs_random"))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--threads", type=int, default=0, help="torch threads; 0: torch's default")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("rl_vs_random.png"))
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    agents = [a.strip() for a in args.agents.split(",") if a.strip()]
    env_kwargs = env_kwargs_for(args.env, args.data_dir, args.set)
    runs: dict[str, list[list[dict]]] = {}
    seconds: dict[str, float] = {}
    for agent in agents:
        start = time.perf_counter()
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            runs.setdefault(agent, []).append(
                run_search(
                    SearchArgs(
                        env_id=args.env,
                        agent=agent,
                        nets=args.nets,
                        batch=args.batch,
                        seed=seed,
                        out=str(args.out_dir / agent / f"seed-{seed}"),
                        store=str(args.out_dir / "store.sqlite"),
                        env_kwargs=dict(env_kwargs),
                        progress=False,
                    )
                )
            )
        seconds[agent] = time.perf_counter() - start

    nets = math.ceil(args.nets / args.batch) * args.batch
    table, best = {}, None
    for agent, children_per_seed in runs.items():
        stats = [summarise([c["accuracy"] for c in ch[:nets]]) for ch in children_per_seed]
        table[agent] = {key: mean_std([s[key] for s in stats]) for key in stats[0]}
        table[agent]["cache_hits"] = sum(c["cache_hit"] for ch in children_per_seed for c in ch)
        table[agent]["train_seconds"] = round(
            sum(c["train_seconds"] for ch in children_per_seed for c in ch[:nets]), 1
        )
        table[agent]["wall_seconds_this_call"] = round(seconds[agent], 1)  # resumed runs: less
        for seed, ch in enumerate(children_per_seed, start=args.first_seed):
            top = max(ch[:nets], key=lambda c: c["accuracy"])
            if best is None or top["accuracy"] > best["accuracy"]:
                run = str(args.out_dir / agent / f"seed-{seed}")
                best = {"agent": agent, "seed": seed, "run": run, **top}
    result = {
        "benchmark": "rl_vs_random",
        "env": args.env,
        "nets": nets,
        "batch": args.batch,
        "seeds": args.seeds,
        "threads": torch.get_num_threads(),
        "env_kwargs": env_kwargs,
        "agents": table,
        "best": {k: best[k] for k in ("agent", "seed", "run", "net", "accuracy", "params")},
    }
    if "reinforce" in table and "random" in table:
        result["reinforce_minus_random"] = {
            key: round(table["reinforce"][key]["mean"] - table["random"][key]["mean"], 4)
            for key in ("mean", "last_third_mean", "best")
        }
    print(json.dumps(result))
    plot(runs, nets, args.batch, args.out, f"{args.env}, {args.seeds} seeds")


def plot(runs: dict[str, list[list[dict]]], nets: int, batch: int, out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4))
    for agent, children_per_seed in runs.items():
        acc = np.array([[c["accuracy"] for c in ch[:nets]] for ch in children_per_seed])
        x = np.arange(1, acc.shape[1] + 1)
        best = np.maximum.accumulate(acc, axis=1)
        line = left.plot(x, best.mean(0), label=agent)[0]
        left.fill_between(x, best.min(0), best.max(0), alpha=0.2, color=line.get_color())
        per_update = acc.reshape(len(acc), -1, batch).mean(2)  # (seeds, updates)
        xu = np.arange(1, per_update.shape[1] + 1) * batch
        right.plot(xu, per_update.mean(0), marker="o", ms=3, label=agent, color=line.get_color())
        right.fill_between(
            xu, per_update.min(0), per_update.max(0), alpha=0.2, color=line.get_color()
        )
    left.set(xlabel="networks sampled", ylabel="best validation accuracy so far", title=title)
    right.set(xlabel="networks sampled", ylabel=f"mean accuracy of each {batch}", title="sampled")
    left.legend(fontsize=8)
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    plt.close(fig)


if __name__ == "__main__":
    main()
