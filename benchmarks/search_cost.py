"""Wall time per sampled network of a short search, split into its parts.

    python benchmarks/search_cost.py [--env EAS-CIFAR10-CPU-v0] [--agent reinforce] [--nets 20]
        [--start-from /tmp/eas_rl_vs_random/store.sqlite] [--data-dir ../shared/data]

Runs a search as :mod:`agents.runner` does (a synchronous vector env of `batch` environments,
one agent update per batch) on a fresh evaluation store, so every child is trained. Without
touching library code it times:

* transform: the family's ``apply`` (Net2Wider / Net2Deeper; wrapped in this script);
* preservation check: ``ChildScorer.verify`` (building the child and comparing probe logits);
* training + evaluation: the env's ``last_episode_provenance["train_seconds"]``;
* agent: ``act``, ``observe`` and ``update``;
* other env work: the rest of ``reset`` and ``step`` (decoding, the store, observations).

``start_net_seconds`` is the first reset, not part of a network's cost: every env loads its
data and the start network trains once per configuration (``--start-from STORE`` copies an
already trained one from another store instead, leaving the data loading).
Prints one JSON line (seconds per network by part, networks per hour) and writes a PNG.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import eas_gym  # noqa: F401  (registers the EAS-* ids)
from agents.runner import load_agent_class
from eas_gym.family import DenseFamily, PlainFamily
from eas_gym.scorer import ChildScorer
from eas_gym.store import EvalStore
from eas_gym.vector import make_vector_env

PARTS = ("transform", "preservation_check", "train_eval", "agent", "other_env")
seconds: dict[str, float] = defaultdict(float)


def timed(fn: Callable[..., Any], part: str) -> Callable[..., Any]:
    """`fn`, adding its wall time to ``seconds[part]``."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            seconds[part] += time.perf_counter() - start

    return wrapper


def instrument() -> None:
    """Wrap the families' transforms and the scorer's preservation check."""
    for family in (PlainFamily, DenseFamily):
        family.apply = timed(family.apply, "transform")
        family.apply_arch = timed(family.apply_arch, "transform")  # the weightless evaluators
    ChildScorer.verify = timed(ChildScorer.verify, "preservation_check")


def copy_start_nets(source: str, target: str) -> int:
    """Copy the trained start networks (store rows with role "start") into another store."""
    src, dst = EvalStore(source), EvalStore(target)
    copied = 0
    for row in src.all():
        weights = src.load_weights(row) if row.config.get("role") == "start" else None
        if weights is not None:
            path = dst.save_weights(row.net, row.config_key, weights)
            dst.put(dataclasses.replace(row, weights=path))
            copied += 1
    src.close()
    dst.close()
    return copied


def search(args: argparse.Namespace, store: str) -> dict[str, Any]:
    """The runner's loop, with the agent's calls timed; returns counts and wall times."""
    kwargs: dict[str, Any] = {"store": store, "keep_weights": True}
    spec = gym.spec(args.env).kwargs
    if spec.get("evaluator", "train") == "train" and spec.get("dataset") != "synthetic":
        kwargs["data_dir"] = args.data_dir
    envs = make_vector_env(args.env, args.batch, asynchronous=False, **kwargs)
    agent = load_agent_class(args.agent)(
        envs.single_observation_space, envs.single_action_space, seed=args.seed
    )
    act, observe = timed(agent.act, "agent"), timed(agent.observe, "agent")
    update = timed(agent.update, "agent")
    start = time.perf_counter()
    envs.reset(seed=args.seed)  # the first reset trains (or loads) the start network
    start_net = time.perf_counter() - start
    seconds.clear()
    nets = cache_hits = 0
    accuracies = []
    start = time.perf_counter()
    for update_index in range(-(-args.nets // args.batch)):
        obs, infos = envs.reset(seed=args.seed * 1_000_003 + update_index * args.batch)
        terminated = np.zeros(args.batch, dtype=bool)
        while not terminated.all():
            masks = np.stack([np.concatenate(m) for m in infos["action_mask"]]).astype(bool)
            obs, rewards, terminated, _, infos = envs.step(act(obs, masks))
            observe(rewards, terminated)
        update()
        provenance = envs.get_attr("last_episode_provenance")
        seconds["train_eval"] += sum(p["train_seconds"] for p in provenance)
        nets += args.batch
        cache_hits += sum(p["cache_hits"] for p in provenance)
        accuracies += [float(a) for a in infos["accuracy"]]
    wall = time.perf_counter() - start
    envs.close()
    seconds["other_env"] = wall - sum(seconds[p] for p in PARTS if p != "other_env")
    return {
        "nets": nets,
        "cache_hits": cache_hits,
        "wall": wall,
        "start_net": start_net,
        "best": max(accuracies),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="EAS-CIFAR10-CPU-v0")
    parser.add_argument("--agent", default="reinforce")
    parser.add_argument("--nets", type=int, default=20)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--seed", type=int, default=100, help="100: unlike rl_vs_random's runs")
    parser.add_argument("--start-from", default=None, help="a store holding the start network")
    parser.add_argument("--data-dir", default=os.environ.get("EAS_DATA_DIR") or "../shared/data")
    parser.add_argument("--threads", type=int, default=0, help="torch threads; 0: torch's default")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("search_cost.png"))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    instrument()
    with tempfile.TemporaryDirectory(prefix="eas_search_cost_") as tmp:
        store = f"{tmp}/store.sqlite"
        copied = copy_start_nets(args.start_from, store) if args.start_from else 0
        run = search(args, store)
    per_net = {p: round(seconds[p] / run["nets"], 4) for p in PARTS}
    result = {
        "benchmark": "search_cost",
        "env": args.env,
        "agent": args.agent,
        "nets": run["nets"],
        "batch": args.batch,
        "threads": torch.get_num_threads(),
        "cache_hits": run["cache_hits"],
        "start_net_seconds": round(run["start_net"], 2),
        "start_net_copied": bool(copied),
        "seconds_per_net": round(run["wall"] / run["nets"], 3),
        "seconds_per_net_by_part": per_net,
        "share_by_part": {p: round(seconds[p] / run["wall"], 4) for p in PARTS},
        "nets_per_hour": round(3600 * run["nets"] / run["wall"], 1),
        "best_accuracy": round(run["best"], 4),
    }
    print(json.dumps(result))
    plot(per_net, result, args.out)


def plot(per_net: dict[str, float], result: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 2.6))
    left = 0.0
    for part, value in per_net.items():
        ax.barh([0], [value], left=left, label=f"{part} {value:.3g} s")
        left += value
    ax.set_yticks([])
    ax.set_xlabel("seconds per sampled network")
    ax.set_title(
        f"{result['agent']} on {result['env']}: {result['nets_per_hour']:.0f} networks/hour",
        fontsize=10,
    )
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.45), ncol=3)
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    plt.close(fig)


if __name__ == "__main__":
    main()
