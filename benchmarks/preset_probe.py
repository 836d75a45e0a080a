"""Does architecture matter in a preset? Fixed policies vs random search, and the retrain noise.

    python benchmarks/preset_probe.py --env EAS-CIFAR10-CPU-v2 --data-dir ../shared/data \
        [--set epochs=15 --set val_size=5000 ...] [--nets 8] [--retrain 6 --retrain-seeds 2] \
        [--name my-candidate] [--out-dir benchmarks/data/preset_probe] [--threads 1]

A search environment is a search problem only if some policy scores clearly better than random
search. For a candidate preset (an env id plus ``--set`` overrides: fine-tune epochs, train and
validation sizes, image size, start net, lr...) this scores ``--nets`` final networks of each
of a few fixed policies and of random search (one episode each, the env's own schedule and
reward mode), then replays ``--retrain`` of the random-search episodes with new seeds and the
store bypassed (``cache=False``), so the same architecture is fine-tuned again with new
transform noise and a new training seed: the retrain noise.

Policies (each draws what it does not fix uniformly among the legal values, as random search;
the code is :func:`agents.fixed.fixed_action`, also the ``fixed[policy=NAME]`` agent):
``widen-all`` widens every layer it may, ``never-widen`` never does, ``kernel-1`` /
``kernel-3`` / ``kernel-5`` insert only that kernel, ``deepen-first`` inserts only into the
first block, ``deepen-fc`` only after FC layers, ``widen-all-kernel-3`` both. Episode ``i``
of every policy uses env seed ``i``, so the policies see the same training seeds.

Prints one JSON line: per policy mean +- SE (points of accuracy), the retrain noise (pooled
within-architecture sd), the between-architecture sd of random search's networks (total sd,
and with the retrain noise removed; also over every policy's networks), the median cost per
child, and the gate of issue 13:

* the best fixed policy beats random by >= 1.5 points and by >= 3 standard errors (Welch);
* the between-architecture sd (noise removed) is >= 1.5x the retrain noise;
* a child costs <= 45 s (run it with ``--threads 1`` to measure one core).

Progress (one line per evaluated child) goes to stderr. Every evaluated child is appended to
``OUT_DIR/NAME.jsonl`` as it finishes, and a rerun skips the records already there, so an
interrupted probe resumes (the store under ``OUT_DIR/stores`` also keeps the start network).
Works for any registered id and dataset, DenseNet included (kernel policies are skipped where
the space has one kernel), and on your own data: ``--set dataset=PATH`` takes an ``.npz`` file or
an ``ImageFolder`` directory (:mod:`eas_gym.own_data`), with ``--set train_size=...``,
``val_size``, ``image_size`` to fit it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import eas_gym  # noqa: F401  (registers the EAS-* ids)
from agents.fixed import fixed_action
from eas_gym.settings import add_set_option, parse_set

GATE = {"gap_points": 1.5, "gap_se": 3.0, "spread_over_noise": 1.5, "child_seconds": 45.0}
POLICIES = (
    "random",
    "widen-all",
    "never-widen",
    "kernel-1",
    "kernel-5",
    "deepen-first",
    "widen-all-kernel-3",
)
ALL_POLICIES = (*POLICIES, "kernel-3", "deepen-fc")
Policy = Callable[[dict[str, np.ndarray], list[np.ndarray], np.random.Generator], np.ndarray]


def make_policy(name: str, kernels: tuple[int, ...]) -> Policy:
    """The action function of a fixed policy over the env's split masks (:mod:`agents.fixed`)."""

    def act(obs: dict[str, np.ndarray], masks: list[np.ndarray], rng) -> np.ndarray:
        return fixed_action(name, obs, masks, kernels, rng)

    return act


def run_episode(env: gym.Env, policy: Policy, seed: int, rng, actions=None) -> dict[str, Any]:
    """One episode from env seed `seed`; replays `actions` when given. Returns its record."""
    obs, info = env.reset(seed=seed)
    start_accuracy = info["accuracy"]
    taken, terminated, t = [], False, 0
    while not terminated:
        if actions is None:
            masks = [np.asarray(m, dtype=bool) for m in info["action_mask"]]
            action = policy(obs, masks, rng)
        else:
            action = np.asarray(actions[t], dtype=np.int64)
        obs, _, terminated, _, info = env.step(action)
        taken.append(action.tolist())
        t += 1
    provenance = env.unwrapped.last_episode_provenance
    return {
        "net": info["net"],
        "accuracy": info["accuracy"],
        "params": info["params"],
        "train_seconds": round(provenance["train_seconds"], 3),
        "cache_hit": bool(provenance["cache_hits"]),
        "start_accuracy": start_accuracy,
        "actions": taken,
    }


def mean_se(values: list[float]) -> dict[str, float]:
    """Mean and standard error in points of accuracy."""
    points = [100 * v for v in values]
    se = statistics.stdev(points) / math.sqrt(len(points)) if len(points) > 1 else float("nan")
    return {"mean": round(statistics.fmean(points), 3), "se": round(se, 3), "n": len(points)}


def pooled_sd(groups: list[list[float]]) -> float:
    """Pooled within-group standard deviation (points) of groups with >= 2 values."""
    groups = [[100 * v for v in g] for g in groups if len(g) >= 2]
    ss = sum(sum((x - statistics.fmean(g)) ** 2 for x in g) for g in groups)
    dof = sum(len(g) - 1 for g in groups)
    return math.sqrt(ss / dof) if dof else float("nan")


def summarise(records: list[dict[str, Any]], policies: list[str]) -> dict[str, Any]:
    """Per-policy means, noise, spread, cost and the gate (see the module docstring)."""
    by_policy = {
        p: [r["accuracy"] for r in records if r["kind"] == "policy" and r["policy"] == p]
        for p in policies
    }
    table = {p: mean_se(v) for p, v in by_policy.items() if v}
    random_acc = by_policy["random"]
    groups: dict[str, list[float]] = {}
    for r in records:
        if r["kind"] == "retrain":
            groups.setdefault(r["net"], [r["original_accuracy"]]).append(r["accuracy"])
    noise = pooled_sd(list(groups.values()))
    total = statistics.stdev([100 * a for a in random_acc]) if len(random_acc) > 1 else math.nan
    spread = math.sqrt(max(total**2 - noise**2, 0.0)) if math.isfinite(noise) else math.nan
    probed = [100 * r["accuracy"] for r in records if r["kind"] == "policy"]
    wide = statistics.stdev(probed) if len(probed) > 1 else math.nan
    everything = math.sqrt(max(wide**2 - noise**2, 0.0)) if math.isfinite(noise) else math.nan
    trained = [r["train_seconds"] for r in records if not r["cache_hit"] and r["train_seconds"]]
    fixed = {p: t for p, t in table.items() if p != "random"}
    best = max(fixed, key=lambda p: fixed[p]["mean"]) if fixed else None
    result: dict[str, Any] = {
        "policies": table,
        "retrain_noise_points": round(noise, 3),
        "retrained_nets": len(groups),
        "between_arch_sd_points": {
            "total": round(total, 3),
            "noise_removed": round(spread, 3),
            "all_policies_noise_removed": round(everything, 3),
        },
        "child_seconds_median": round(statistics.median(trained), 2) if trained else None,
        "children_trained": len(trained),
    }
    if best is not None and "random" in table:
        a, b = by_policy[best], random_acc
        diff = table[best]["mean"] - table["random"]["mean"]
        se = math.hypot(table[best]["se"], table["random"]["se"])
        from scipy.stats import ttest_ind

        p_value = float(ttest_ind(a, b, equal_var=False).pvalue)
        result["best_fixed"] = {
            "policy": best,
            "minus_random_points": round(diff, 3),
            "se_points": round(se, 3),
            "z": round(diff / se, 2) if se else None,
            "welch_p": round(p_value, 5),
        }
        cost = result["child_seconds_median"] or math.inf
        gate = {
            "gap": diff >= GATE["gap_points"] and diff >= GATE["gap_se"] * se,
            "spread": spread >= GATE["spread_over_noise"] * noise,
            "cost": cost <= GATE["child_seconds"],
        }
        result["gate"] = {**gate, "passed": all(gate.values())}
    return result


def _load(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    records = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut by a crash: drop it, it is redone
            print(f"preset_probe: ignoring damaged line {number} of {path}", file=sys.stderr)
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="EAS-CIFAR10-CPU-v0")
    add_set_option(parser)
    parser.add_argument("--data-dir", default=os.environ.get("EAS_DATA_DIR") or None)
    parser.add_argument("--policies", default=",".join(POLICIES), help=f"of {ALL_POLICIES}")
    parser.add_argument("--nets", type=int, default=8, help="networks per policy (>= 6)")
    parser.add_argument(
        "--random-nets",
        type=int,
        default=None,
        help="networks of random search (default: --nets); more pin down the spread",
    )
    parser.add_argument("--retrain", type=int, default=6, help="random-search nets retrained")
    parser.add_argument("--retrain-seeds", type=int, default=2, help="new seeds per retrained net")
    parser.add_argument("--name", default=None, help="candidate name (default: from the settings)")
    parser.add_argument("--out-dir", type=Path, default=Path("benchmarks/data/preset_probe"))
    parser.add_argument("--store-dir", type=Path, default=None, help="default: OUT_DIR/stores")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: one core)")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    overrides = parse_set(args.set, env_id=args.env)
    policies = [p.strip() for p in args.policies.split(",") if p.strip()]
    unknown = sorted(set(policies) - set(ALL_POLICIES))
    if unknown or "random" not in policies:
        parser.error(f"--policies must include random and only names of {ALL_POLICIES}: {unknown}")
    name = args.name or "_".join([args.env, *sorted(args.set)]).replace("/", "-")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    log_path = args.out_dir / f"{name}.jsonl"
    store_dir = args.store_dir or args.out_dir / "stores"
    kwargs = dict(overrides)
    if args.data_dir and "data_dir" not in kwargs:
        kwargs["data_dir"] = args.data_dir
    kwargs["store"] = str(store_dir / f"{name}.sqlite")
    env = gym.make(args.env, **kwargs)
    recheck = gym.make(args.env, **{**kwargs, "cache": False})
    kernels = tuple(getattr(env.unwrapped.search_space, "kernels", (3,)))
    if len(kernels) == 1:
        policies = [p for p in policies if not p.startswith("kernel") and "kernel" not in p]

    records = _load(log_path)
    done = {(r["kind"], r.get("policy"), r.get("index"), r.get("seed")) for r in records}
    start = time.perf_counter()
    with open(log_path, "a") as log:

        def keep(record: dict[str, Any]) -> None:
            records.append(record)
            log.write(json.dumps(record) + "\n")
            log.flush()
            print(
                f"{record['kind']:8} {record.get('policy', ''):18} {record['accuracy']:.4f} "
                f"{record['train_seconds']:6.1f}s  {record['net']}",
                file=sys.stderr,
                flush=True,
            )

        random_nets = args.nets if args.random_nets is None else args.random_nets
        for i in range(max(args.nets, random_nets)):
            for p_index, policy in enumerate(policies):
                wanted = random_nets if policy == "random" else args.nets
                if i >= wanted or ("policy", policy, i, None) in done:
                    continue
                rng = np.random.default_rng([p_index, i])
                record = run_episode(env, make_policy(policy, kernels), seed=i, rng=rng)
                keep({"kind": "policy", "policy": policy, "index": i, **record})
        originals = [r for r in records if r["kind"] == "policy" and r["policy"] == "random"]
        distinct = list({r["net"]: r for r in sorted(originals, key=lambda r: r["index"])}.values())
        for r in distinct[: args.retrain]:
            for j in range(args.retrain_seeds):
                seed = 100_000 + 1_000 * r["index"] + j
                if ("retrain", None, r["index"], seed) in done:
                    continue
                again = run_episode(recheck, None, seed=seed, rng=None, actions=r["actions"])
                assert again["net"] == r["net"], (again["net"], r["net"])
                keep(
                    {
                        "kind": "retrain",
                        "index": r["index"],
                        "seed": seed,
                        "original_accuracy": r["accuracy"],
                        **again,
                    }
                )
    env.close()
    recheck.close()
    result = {
        "benchmark": "preset_probe",
        "name": name,
        "env": args.env,
        "overrides": overrides,
        "threads": args.threads,
        "nets_per_policy": args.nets,
        "random_nets": args.nets if args.random_nets is None else args.random_nets,
        "start_accuracy": records[0]["start_accuracy"] if records else None,
        "seconds_this_call": round(time.perf_counter() - start, 1),
        **summarise(records, policies),
    }
    print(json.dumps(result), flush=True)
    (args.out_dir / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
