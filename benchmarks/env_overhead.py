"""Share of EASEnv step time spent outside child training, on the CPU preset.

    python benchmarks/env_overhead.py [--episodes 5] [--data-dir ../shared/data]

Runs episodes with random legal actions on a fresh store (so every child is trained) and
compares the wall time of ``env.step`` with the training and evaluation time the env reports
(``env.unwrapped.step_provenance["train_seconds"]``). The rest is the env's own work:
decoding, transforms, the preservation check, the store. One JSON line; target: under 5%.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import gymnasium as gym

import eas_gym  # noqa: F401


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="EAS-CIFAR10-CPU-v0")
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument("--data-dir", default=os.environ.get("EAS_DATA_DIR") or "../shared/data")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    kwargs = {"data_dir": args.data_dir} if args.env != "EAS-Surrogate-v0" else {}
    with tempfile.TemporaryDirectory() as tmp:
        env = gym.make(args.env, store=f"{tmp}/store.sqlite", **kwargs)
        env.action_space.seed(args.seed)
        start = time.perf_counter()
        env.reset(seed=args.seed)  # trains the start network once; not part of a step
        start_seconds = time.perf_counter() - start
        step_seconds = train_seconds = 0.0
        steps = 0
        for episode in range(args.episodes):
            _, info = env.reset(seed=args.seed + episode)
            terminated = False
            while not terminated:
                action = env.action_space.sample(info["action_mask"])
                t = time.perf_counter()
                _, _, terminated, _, info = env.step(action)
                step_seconds += time.perf_counter() - t
                train_seconds += env.unwrapped.step_provenance["train_seconds"]
                steps += 1
        env.close()
    overhead = step_seconds - train_seconds
    print(
        json.dumps(
            {
                "benchmark": "env_overhead",
                "env": args.env,
                "episodes": args.episodes,
                "steps": steps,
                "start_net_seconds": round(start_seconds, 2),
                "step_seconds": round(step_seconds, 2),
                "train_seconds": round(train_seconds, 2),
                "overhead_share": round(overhead / step_seconds, 4),
                "overhead_ms_per_step": round(1000 * overhead / steps, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
