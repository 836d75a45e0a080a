"""Networks per second of the weightless evaluators against the weight-carrying path, one core.

    python benchmarks/evaluator_speed.py [--seconds 10] [--out benchmarks/evaluator_speed.png]

Runs random legal 9-step episodes for about `--seconds` each, one torch thread, a fresh
in-memory store, and reports finished episodes ("networks") per second. The first two ids score
every child of an episode (dense reward), the bench only its last (sparse, as ``-v2``):

* ``weights``: ``EAS-Synthetic-v0`` with ``epochs=0``: the path every trained id takes (Net2Net
  on the weights, the preservation check on the probe batch, the store's rows) with no training,
  which is what ``EAS-Surrogate-v0`` cost before its evaluator became weightless;
* ``surrogate``: ``EAS-Surrogate-v0``, the hand-written formula on the architecture alone;
* ``bench``: ``EAS-Bench-CIFAR10-CPU-v2``, the model fitted on real ``-v2`` evaluations (needs
  ``pip install -e ".[bench]"``; left out when it is missing);
* ``bench_model_batch`` and ``bench_model_single``: the bench's model alone, queried the way a
  tabular-benchmark user would, for networks it has not seen (a fresh model, no cache): the
  final networks of random episodes, their means in batches of 1,000 or one ``sample`` each.
  The env's rate above is these plus growing each network over 9 steps;
* ``bench_gymnasium_sample``: the bench again, its random actions drawn as the README's loop
  draws them, with Gymnasium's ``action_space.sample(mask=...)`` (the other cases draw every
  entry's legal value from one uniform array, a leaner agent).

Rates: ``per_second`` (wall clock), ``per_cpu_second`` (this process's CPU time, steadier on a
shared machine) and ``env_per_cpu_second`` (CPU time inside ``reset()`` and ``step()`` alone:
the environment's own rate, without this script's random agent). Prints one JSON line with the
rates and the wall rates' ratios to ``weights``, and plots them.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

import eas_gym  # noqa: F401  (registers the EAS-* ids)

CASES = {  # name: (env id, its arguments, the random agent's sampler)
    "weights": ("EAS-Synthetic-v0", {"epochs": 0.0, "train_size": 500, "val_size": 100}, "lean"),
    "surrogate": ("EAS-Surrogate-v0", {}, "lean"),
    "bench": ("EAS-Bench-CIFAR10-CPU-v2", {}, "lean"),
    "bench_gymnasium_sample": ("EAS-Bench-CIFAR10-CPU-v2", {}, "gymnasium"),
}


def networks_per_second(
    env_id: str, kwargs: dict, seconds: float, seed: int = 0, sampler: str = "lean"
) -> dict:
    """Finished episodes per second of random legal actions (after one untimed episode).

    `sampler`: ``"lean"`` draws one uniform number for all entries; ``"gymnasium"`` calls
    ``env.action_space.sample(mask=info["action_mask"])``, the README's loop.
    """
    if sampler not in ("lean", "gymnasium"):
        raise ValueError(f"`sampler` must be 'lean' or 'gymnasium', got {sampler!r}")
    env = gym.make(env_id, store=":memory:", **kwargs)
    env.action_space.seed(seed)
    rng = np.random.default_rng(seed)

    in_env = [0.0]  # CPU seconds inside reset() and step()

    def episode(s: int) -> None:
        clock = time.process_time()
        _, info = env.reset(seed=s)
        in_env[0] += time.process_time() - clock
        done = False
        while not done:  # a uniform legal value per entry, with one draw for all entries
            if sampler == "gymnasium":
                action = env.action_space.sample(mask=info["action_mask"])
            else:
                legal = [np.flatnonzero(m) for m in info["action_mask"]]
                picks = (rng.random(len(legal)) * [len(v) for v in legal]).astype(int)
                action = np.array([v[i] for v, i in zip(legal, picks, strict=True)])
            clock = time.process_time()
            _, _, done, _, info = env.step(action)
            in_env[0] += time.process_time() - clock

    episode(seed)  # the start network and the imports: not timed
    in_env[0] = 0.0
    count, start, cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - start < seconds:
        episode(seed + 1 + count)
        count += 1
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    env.close()
    return {
        "env": env_id,
        "networks": count,
        "seconds": round(elapsed, 3),
        "cpu_seconds": round(cpu, 3),
        "env_cpu_seconds": round(in_env[0], 3),
    }


def bench_model_queries(seconds: float, batch: int | None, seed: int = 0) -> dict:
    """Unseen networks per second answered by the bench's model alone (no env).

    `batch`: networks per :meth:`~eas_gym.bench.BenchModel.mean` call; None: one
    :meth:`~eas_gym.bench.BenchModel.sample` per network. The networks are the final ones of
    random bench episodes (drawn first, untimed); every timed pass uses a fresh model.
    """
    from eas_gym.arch import Arch
    from eas_gym.bench import BenchModel

    env = gym.make("EAS-Bench-CIFAR10-CPU-v2", store=":memory:")
    rng = np.random.default_rng(seed)
    nets: set[str] = set()
    for s in range(4000):
        _, info = env.reset(seed=seed + s)
        done = False
        while not done:
            legal = [np.flatnonzero(m) for m in info["action_mask"]]
            action = np.array([v[rng.integers(len(v))] for v in legal])
            _, _, done, _, info = env.step(action)
        nets.add(info["net"])
    env.close()
    archs = [Arch.from_string(n) for n in sorted(nets)]  # parsed here: not the model's cost
    count, elapsed, cpu = 0, 0.0, 0.0
    while elapsed < seconds:
        model = BenchModel.load()  # fresh: nothing cached (its file's parse is not timed)
        wall, clock = time.perf_counter(), time.process_time()
        if batch is None:
            draws = np.random.default_rng(seed)
            for arch in archs:
                model.sample(arch, draws)
        else:
            for i in range(0, len(archs), batch):
                model.mean(archs[i : i + batch])
        elapsed += time.perf_counter() - wall
        cpu += time.process_time() - clock
        count += len(archs)
    return {
        "env": "BenchModel",
        "networks": count,
        "distinct": len(archs),
        "seconds": round(elapsed, 3),
        "cpu_seconds": round(cpu, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="timed seconds per case")
    parser.add_argument("--out", default="benchmarks/evaluator_speed.png")
    args = parser.parse_args()
    torch.set_num_threads(1)

    rows = {}
    for name, (env_id, kwargs, sampler) in CASES.items():
        try:
            rows[name] = networks_per_second(env_id, kwargs, args.seconds, sampler=sampler)
        except (gym.error.Error, ImportError) as e:  # the bench without its extra
            rows[name] = {"env": env_id, "skipped": f"{type(e).__name__}: {e}"}
            continue
    for name, batch in (("bench_model_batch", 1000), ("bench_model_single", None)):
        try:
            rows[name] = bench_model_queries(args.seconds, batch)
        except (gym.error.Error, ImportError) as e:
            rows[name] = {"env": "BenchModel", "skipped": f"{type(e).__name__}: {e}"}
    for row in rows.values():
        if "skipped" in row:
            continue
        row["per_second"] = round(row["networks"] / row["seconds"], 1)
        row["per_cpu_second"] = round(row["networks"] / row["cpu_seconds"], 1)
        if "env_cpu_seconds" in row:
            row["env_per_cpu_second"] = round(row["networks"] / row["env_cpu_seconds"], 1)
    base = rows["weights"]["per_second"]
    ratios = {k: round(r["per_second"] / base, 1) for k, r in rows.items() if "per_second" in r}
    print(json.dumps({"benchmark": "evaluator_speed", "cases": rows, "ratio_to_weights": ratios}))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [k for k in rows if "per_second" in rows[k]]
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.barh(names, [rows[k]["per_second"] for k in names], color="tab:blue")
    ax.set_xscale("log")
    ax.set_xlabel("networks per second, one core (log)")
    ax.set_title("Weightless evaluators vs the weight-carrying path")
    fig.tight_layout()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=100)


if __name__ == "__main__":
    main()
