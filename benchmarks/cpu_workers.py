"""Children per hour on a small CPU: one process with all the threads, or one process per core?

    python benchmarks/cpu_workers.py --env EAS-CIFAR10-CPU-v2 --data-dir ../shared/data \
        [--batches 3] [--out benchmarks/cpu_workers.png]

Runs the same random-search batches (``--envs`` environments, one episode each, sparse reward:
one child trained per episode) in three layouts, each on a fresh store that already holds the
trained start network:

* ``sync_1x1``: one environment, one thread: a child's cost on one core;
* ``sync_1x{cores}``: one process, a synchronous vector env, torch using every core;
* ``async_{cores}x1``: one worker process per core (``--envs`` = cores), one thread each (the
  default of :func:`eas_gym.vector.worker_threads`);
* ``async_{cores}x{cores}``: the same workers each using every core (what happened before
  threads were set: oversubscribed).

The layouts alternate for ``--repeats`` rounds; the best round of each counts. Prints one JSON
line with children per hour and the ratios to ``sync``, and writes a bar chart. Run it on an
otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

import eas_gym  # noqa: F401  (registers the EAS-* ids)
from agents.base import split_masks
from agents.runner import _run_batch, episode_seed
from eas_gym.settings import add_set_option, parse_set
from eas_gym.vector import make_vector_env


class EpisodeSeededRandom:
    """Random legal actions drawn per episode from ``rng(seed, episode number)``.

    Every layout then trains the same children, whatever its batch size.
    """

    def __init__(self, action_space, num_steps: int, seed: int) -> None:
        self.action_space, self.num_steps, self.seed = action_space, num_steps, seed
        self.episodes = 0
        self.rngs: list[np.random.Generator] = []

    def act(self, obs, masks):
        """Uniform legal values, from each episode's own generator."""
        parts = split_masks(masks, self.action_space)
        batch = parts[0].shape[0]
        if int(np.asarray(obs["steps_left"])[0]) == self.num_steps:  # new episodes
            first = self.episodes
            self.rngs = [np.random.default_rng([self.seed, first + b]) for b in range(batch)]
            self.episodes += batch
        return np.array(
            [[rng.choice(np.flatnonzero(p[b])) for p in parts] for b, rng in enumerate(self.rngs)]
        )

    def observe(self, rewards, terminated):
        """Random search ignores rewards."""


def time_layout(env_id, kwargs, store, envs_count, asynchronous, threads, batches, seed):
    """Seconds per child of `batches` random-search batches in one layout."""
    if not asynchronous:
        torch.set_num_threads(threads)
    envs = make_vector_env(
        env_id, envs_count, asynchronous=asynchronous, threads=threads, store=store, **kwargs
    )
    num_steps = int(envs.single_observation_space["steps_left"].n) - 1
    agent = EpisodeSeededRandom(envs.single_action_space, num_steps, seed)
    try:
        envs.reset(seed=0)  # start the workers and load the data before timing
        start = time.perf_counter()
        children = []
        for b in range(batches):
            children += _run_batch(envs, agent, episode_seed(seed, b, envs_count), update=b)
        seconds = time.perf_counter() - start
    finally:
        envs.close()
    nets = sorted(c["net"] for c in children)
    assert not any(c["cache_hit"] for c in children)
    return seconds / len(children), nets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="EAS-CIFAR10-CPU-v2")
    add_set_option(parser)
    parser.add_argument("--data-dir", default=os.environ.get("EAS_DATA_DIR") or None)
    parser.add_argument("--cores", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--batches", type=int, default=3, help="batches of --cores children")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("cpu_workers.png"))
    args = parser.parse_args()

    kwargs = parse_set(args.set, env_id=args.env)
    if args.data_dir and gym.spec(args.env).kwargs.get("dataset", "cifar10") != "synthetic":
        kwargs.setdefault("data_dir", args.data_dir)
    root = Path(tempfile.mkdtemp(prefix="eas_cpu_workers_"))
    seed_store = str(root / "seed.sqlite")
    torch.set_num_threads(args.cores)
    warm = gym.make(args.env, store=seed_store, **kwargs)
    warm.reset(seed=0)  # trains the start network once; every layout copies this store
    warm.close()
    n = args.cores
    layouts = {
        "sync_1x1": (False, 1),  # one core: the cost of a child on its own
        f"sync_1x{n}": (False, n),
        f"async_{n}x1": (True, 1),
        f"async_{n}x{n}": (True, n),
    }
    best: dict[str, float] = {}
    same: dict[int, list[str]] = {}
    for repeat in range(args.repeats):
        for name, (asynchronous, threads) in layouts.items():
            store = root / f"{name}-{repeat}" / "store.sqlite"
            store.parent.mkdir()
            shutil.copy(seed_store, store)
            if (root / "weights").exists():
                shutil.copytree(root / "weights", store.parent / "weights")
            count = 1 if name == "sync_1x1" else n  # the same children either way
            seconds = time_layout(
                args.env,
                kwargs,
                str(store),
                count,
                asynchronous,
                threads,
                args.batches * n // count,
                seed=100 * repeat,
            )
            seconds, nets = seconds
            assert nets == same.setdefault(repeat, nets), "layouts trained different children"
            best[name] = min(best.get(name, np.inf), seconds)
    per_hour = {name: round(3600 / s, 1) for name, s in best.items()}
    sync = per_hour[f"sync_1x{n}"]
    result = {
        "benchmark": "cpu_workers",
        "env": args.env,
        "overrides": kwargs,
        "cores": n,
        "children_per_layout_round": n * args.batches,
        "repeats": args.repeats,
        "children_per_hour": per_hour,
        "seconds_per_child": {name: round(v, 2) for name, v in best.items()},
        "ratio_to_sync": {name: round(v / sync, 3) for name, v in per_hour.items()},
        # sync_1x1 leaves a core idle: it is the one-core cost, not a layout for the machine
        "faster": max((k for k in per_hour if k != "sync_1x1"), key=per_hour.get),
    }
    print(json.dumps(result))
    shutil.rmtree(root, ignore_errors=True)
    plot(per_hour, args.out, f"{args.env}, {n} cores")


def plot(per_hour: dict[str, float], out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3))
    names = list(per_hour)
    ax.bar(names, [per_hour[k] for k in names], color=["C7", "C0", "C2", "C3"][: len(names)])
    ax.set(ylabel="children per hour", title=title)
    for i, name in enumerate(names):
        ax.text(i, per_hour[name], f"{per_hour[name]:.0f}", ha="center", va="bottom", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
