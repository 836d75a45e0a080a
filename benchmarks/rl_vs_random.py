"""Search agents against random search (the paper's demo), as a statistical comparison.

    python benchmarks/rl_vs_random.py [--env EAS-CIFAR10-CPU-v2] [--data-dir ../shared/data]
        [--agents reinforce,random] [--seeds 10] [--nets 60] [--recheck 10]
        [--out-dir benchmarks/data/rl_vs_random] [--out benchmarks/rl_vs_random.png]

A thin wrapper of :func:`agents.compare.compare` (the same as ``eas-gym compare``): runs or
resumes ``agents x seeds`` searches in ``--out-dir`` (one shared evaluation store), then reports
per agent the last-third mean, the best validation accuracy, the test accuracy of the
best-by-validation network and the recheck mean (fresh fine-tunes of the final policy's
episodes), each as mean +- SE over seeds, and every agent minus random search with a 95% CI and
Welch's p-value. Prints one JSON line (``compare.json``'s summary) and copies ``compare.png``
to ``--out``. Rerunning the same command resumes or extends the study.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import gymnasium as gym
import torch

import eas_gym  # noqa: F401  (registers the EAS-* ids)
from agents.compare import compare
from agents.registry import split_agent_specs
from eas_gym.settings import add_set_option, parse_set


def env_kwargs_for(env_id: str, data_dir: str | None, overrides: list[str]) -> dict[str, object]:
    """``data_dir`` for envs that read real data, plus ``--set key=value`` overrides."""
    spec = gym.spec(env_id).kwargs
    kwargs: dict[str, object] = {}
    real = spec.get("evaluator") != "surrogate" and spec.get("dataset", "cifar10") != "synthetic"
    if real and data_dir:
        kwargs["data_dir"] = data_dir
    return {**kwargs, **parse_set(overrides, env_id=env_id)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="EAS-CIFAR10-CPU-v2")
    parser.add_argument("--agents", default="reinforce,random", help="agent specs, comma-separated")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--nets", type=int, default=60, help="networks per run (paper: 150)")
    parser.add_argument("--batch", type=int, default=10, help="networks per update (paper: 10)")
    parser.add_argument("--recheck", type=int, default=0, help="fresh episodes per run")
    parser.add_argument("--data-dir", default=os.environ.get("EAS_DATA_DIR") or "../shared/data")
    parser.add_argument("--out-dir", type=Path, default=Path("benchmarks/data/rl_vs_random"))
    add_set_option(parser)
    parser.add_argument("--threads", type=int, default=0, help="torch threads; 0: torch's default")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("rl_vs_random.png"))
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    compare(
        args.env,
        agents=split_agent_specs(args.agents),
        seeds=args.seeds,
        first_seed=args.first_seed,
        nets=args.nets,
        batch=args.batch,
        out=str(args.out_dir),
        env_kwargs=env_kwargs_for(args.env, args.data_dir, args.set),
        progress=False,
        recheck=args.recheck,
    )
    result = json.loads((args.out_dir / "compare.json").read_text())
    summary = {k: v for k, v in result.items() if k != "runs"}
    print(
        json.dumps(
            {
                "benchmark": "rl_vs_random",
                **summary,
                "threads": torch.get_num_threads(),
                "wall_seconds_this_call": round(time.perf_counter() - start, 1),
            }
        )
    )
    shutil.copyfile(args.out_dir / "compare.png", args.out)


if __name__ == "__main__":
    main()
