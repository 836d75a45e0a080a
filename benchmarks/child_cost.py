"""What a child costs on one core of this machine, for networks a search or probe recorded.

    python benchmarks/child_cost.py --env EAS-CIFAR10-CPU-v2 --data-dir ../shared/data \
        --records benchmarks/data/cpu_v2_study/random/seed-3/children.jsonl [--nets 12]

A child's cost is its fine-tune (the preset's ``epochs`` over its training images) plus one
evaluation on the validation images; the transforms themselves take milliseconds. For each of
the first ``--nets`` networks trained in ``--records`` (any JSON-lines file with a ``net``
field: a run's ``children.jsonl``, a probe's records) this times one epoch of fine-tuning (one
thread unless ``--threads``) and one evaluation, and estimates the child as ``epochs x epoch +
evaluation`` after a tenth of an epoch of warm-up (checked against full 17-epoch fine-tunes in
RESULTS.md). The preset's start network is timed the same way as a reference, before, halfway
and after the networks (the median of the three counts).

Seconds differ between hosts and hours (this project's machine ran the same code 2.1x slower
for an hour of 2026-12-03, RESULTS.md), so the JSON line also gives the median child in start
networks (``median_over_start``), a reference measured in the same run; it moved less than the
seconds did (1.9-2.7), but it does not remove the host's speed. The records' own
``train_seconds``, if any, are reported beside the estimates for the same networks. Run it on
an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import gymnasium as gym
import torch

import eas_gym  # noqa: F401  (registers the EAS-* ids)
from eas_gym.data import load_dataset
from eas_gym.settings import add_set_option, parse_set
from eas_gym.train import TrainConfig, evaluate, fine_tune


def child_seconds(arch, family, data, config: TrainConfig) -> dict[str, float]:
    """Seconds of one fine-tune epoch and one evaluation of a fresh `arch`, and the estimate."""
    net = family.build(arch, generator=torch.Generator().manual_seed(0))
    one_epoch = TrainConfig(**{**config.to_dict(), "epochs": 1.0, "eval_split": None})
    warm_up = TrainConfig(**{**one_epoch.to_dict(), "epochs": 0.1})  # kernels for its shapes
    fine_tune(net, data, warm_up, generator=torch.Generator().manual_seed(1), device="cpu")
    start = time.perf_counter()
    fine_tune(net, data, one_epoch, generator=torch.Generator().manual_seed(0), device="cpu")
    epoch = time.perf_counter() - start
    start = time.perf_counter()
    evaluate(net, data.val, mean=data.mean, std=data.std)
    evaluation = time.perf_counter() - start
    return {
        "epoch": round(epoch, 3),
        "evaluation": round(evaluation, 3),
        "child": round(config.epochs * epoch + evaluation, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="EAS-CIFAR10-CPU-v2")
    add_set_option(parser)
    parser.add_argument("--data-dir", default=os.environ.get("EAS_DATA_DIR") or None)
    parser.add_argument("--records", type=Path, required=True, help="JSON lines with a `net`")
    parser.add_argument("--nets", type=int, default=12, help="first N trained networks (>= 1)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: one core)")
    args = parser.parse_args()
    if args.nets < 1 or args.threads < 1:
        parser.error(f"--nets and --threads must be >= 1, got {args.nets} and {args.threads}")
    torch.set_num_threads(args.threads)

    kwargs = {**gym.spec(args.env).kwargs, **parse_set(args.set, env_id=args.env)}
    if args.data_dir:
        kwargs["data_dir"] = args.data_dir
    env = gym.make(args.env, **{**kwargs, "store": ":memory:"}).unwrapped
    family, config = env.family, env.eval_config.train
    data = load_dataset(device="cpu", **env.scorer.data_kwargs)
    rows = [json.loads(line) for line in args.records.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if "net" in r and not r.get("cache_hit")][: args.nets]
    if not rows:
        parser.error(f"--records {args.records}: no trained networks (lines with a `net`)")

    # the reference before, halfway and after, so that a host slowing down midway shows
    references = [child_seconds(env.start_arch, family, data, config)["child"]]
    per_net = []
    for number, row in enumerate(rows, 1):
        arch = family.parse(row["net"], env.start_arch.num_classes)
        measured = child_seconds(arch, family, data, config)
        per_net.append({"net": row["net"], **measured, "recorded": row.get("train_seconds")})
        print(f"{measured['child']:7.1f}s  {row['net']}", file=sys.stderr, flush=True)
        if number in (len(rows) // 2, len(rows)):
            references.append(child_seconds(env.start_arch, family, data, config)["child"])
    while len(references) < 3:  # one network: halfway is the end
        references.append(child_seconds(env.start_arch, family, data, config)["child"])
    reference = statistics.median(references)
    children = [p["child"] for p in per_net]
    median = statistics.median(children)
    print(
        json.dumps(
            {
                "benchmark": "child_cost",
                "env": args.env,
                "overrides": parse_set(args.set, env_id=args.env),
                "records": str(args.records),
                "threads": args.threads,
                "epochs": config.epochs,
                "nets": len(per_net),
                "child_seconds": {
                    "median": round(median, 1),
                    "mean": round(statistics.mean(children), 1),
                    "min": round(min(children), 1),
                    "max": round(max(children), 1),
                },
                "start_net_child_seconds": round(reference, 2),
                "start_net_measurements": references,
                "median_over_start": round(median / reference, 2),
                "per_net": per_net,
            }
        )
    )


if __name__ == "__main__":
    main()
