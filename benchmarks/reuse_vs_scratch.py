"""Weight reuse vs training from scratch: what inherited weights save a searched child.

    python benchmarks/reuse_vs_scratch.py [--store /tmp/eas_rl_vs_random/store.sqlite]
        [--children 3] [--max-factor 8] [--env EAS-CIFAR10-CPU-v0] [--data-dir ../shared/data]

Takes `children` networks sampled by a search (rows of the evaluation store at `--store`, e.g.
the one ``benchmarks/rl_vs_random.py`` fills; with too few there, or with ``--sample``, it draws
them with random legal actions as random search would), rebuilds each child's pre-fine-tune
weights by replaying its recorded transforms on the trained start network (what the env does;
the symmetry-breaking noise is drawn anew), and trains it

* (a) from the inherited weights for the env's fine-tune budget (E epochs, the env's config);
* (b) from a fresh initialisation for the same E epochs (the start net's from-scratch lr);
* (c) from a fresh initialisation for 2E, 4E, ... epochs, until it matches (a) or reaches
  ``max_factor * E``.

Prints one JSON line: mean accuracy of (a), of (b) and their gap at equal compute, and the
compute ratio (scratch epochs / E) at which scratch first matched (a), per child and summarised
(unmatched children count as `max_factor`, so that mean is a lower bound). Writes a PNG of
accuracy vs training epochs per child.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import eas_gym  # noqa: F401  (registers the EAS-* ids)
from eas_gym.arch import Arch
from eas_gym.data import DataBundle, iterate_batches, load_dataset
from eas_gym.env import EASEnv
from eas_gym.morph import DEEPER_NOISE, WIDER_NOISE, max_logit_diff, net2deeper, widen_layers
from eas_gym.net import StateDict, build_net
from eas_gym.spaces import action_mask, decode_action
from eas_gym.store import EvalStore
from eas_gym.train import TrainConfig, evaluate, fine_tune

Transforms = list[dict[str, Any]]
Child = tuple[str, Transforms, float | None]  # net string, transforms, the search's accuracy


_SAME_CHILDREN = ("dataset", "train_size", "val_size", "image_size", "start_net", "train")


def searched_children(store: EvalStore, env: EASEnv) -> list[Child]:
    """Children a search scored directly from the start network, with their transforms.

    Rows of any configuration key whose data, start net and fine-tune match `env`'s (keys also
    hash settings that do not change a child's training, and they changed between versions).
    """
    start, config = env.start_arch.to_string(), env.scorer.config
    return [
        (row.net, row.transforms, row.accuracy)
        for row in store.all()
        if row.parent == start
        and row.transforms
        and all(row.config.get(k) == config.get(k) for k in _SAME_CHILDREN)
    ]


def apply_transform(
    env: EASEnv,
    arch: Arch,
    state: StateDict,
    transform: dict[str, Any],
    probe: torch.Tensor,
    generator: torch.Generator,
) -> tuple[Arch, StateDict]:
    """One recorded transform, applied as ``PlainFamily.apply`` applies it (plain CNN only)."""
    if transform["op"] == "wider":
        widths = {int(k): int(v) for k, v in transform["widths"].items()}  # JSON keys: strings
        noise = WIDER_NOISE if env.eval_config.noise else 0.0
        return widen_layers(
            arch, state, widths, space=env.search_space, noise=noise, generator=generator
        )
    noise = DEEPER_NOISE if env.eval_config.noise else 0.0
    return net2deeper(
        arch,
        state,
        transform["layer"],
        transform["kernel"],
        batch=probe,
        space=env.search_space,
        noise=noise,
        generator=generator,
    )


def sample_children(
    env: EASEnv, state: StateDict, probe: torch.Tensor, count: int, seed: int
) -> list[Child]:
    """Episodes of random legal actions (random search's policy), as transform records."""
    env.action_space.seed(seed)
    generator = torch.Generator().manual_seed(seed)
    children = []
    for _ in range(count):
        arch, child_state, transforms = env.start_arch, state, []
        for kind in env.schedule:
            action = env.action_space.sample(mask=action_mask(arch, env.search_space, kind))
            decoded = decode_action(action, arch, env.search_space, kind)
            if decoded.widths:
                t = {"op": "wider", "widths": decoded.widths}
            elif decoded.layer is not None:
                t = {"op": "deeper", "layer": decoded.layer, "kernel": decoded.kernel}
            else:
                continue
            transforms.append(t)
            arch, child_state = apply_transform(env, arch, child_state, t, probe, generator)
        children.append((arch.to_string(), transforms, None))
    return children


def train(
    arch: Arch, state: StateDict | None, data: DataBundle, config: TrainConfig, seed: int
) -> tuple[float, float]:
    """(validation accuracy, seconds) of training `arch` from `state` (None: fresh init)."""
    net = build_net(arch, state, generator=torch.Generator().manual_seed(seed))
    result = fine_tune(net, data, config, generator=torch.Generator().manual_seed(seed))
    accuracy = 1.0 / data.num_classes if result.eval_accuracy is None else result.eval_accuracy
    return accuracy, result.seconds


def measure_child(
    env: EASEnv,
    data: DataBundle,
    start: StateDict,
    probe: torch.Tensor,
    child: Child,
    args: argparse.Namespace,
    seed: int,
) -> dict[str, Any]:
    """(a), (b) and (c) for one child."""
    net_string, transforms, search_accuracy = child
    generator = torch.Generator().manual_seed(seed)
    arch, state = env.start_arch, start
    for t in transforms:
        arch, state = apply_transform(env, arch, state, t, probe, generator)
    if arch.to_string() != net_string:
        raise RuntimeError(f"replayed {arch} but the store recorded {net_string}")
    inherited = build_net(arch, state)
    preservation = max_logit_diff(build_net(env.start_arch, start), inherited, probe)
    before, _ = evaluate(inherited, data.val, mean=data.mean, std=data.std)
    config = env.eval_config.train
    reuse, reuse_seconds = train(arch, state, data, config, seed)
    scratch: dict[str, float] = {}
    seconds: dict[str, float] = {"reuse": round(reuse_seconds, 2)}
    factor, matched = 1, None
    while factor <= args.max_factor:
        epochs = config.epochs * factor
        lr = args.scratch_lr or env.eval_config.start_train.lr
        cfg = dataclasses.replace(config, epochs=epochs, lr=lr)
        scratch[f"{epochs:g}"], secs = train(arch, None, data, cfg, seed)
        seconds[f"scratch_{epochs:g}"] = round(secs, 2)
        if scratch[f"{epochs:g}"] >= reuse:
            matched = factor
            break
        factor *= 2
    return {
        "net": net_string,
        "params": arch.num_params(),
        "preservation_error": preservation,
        "inherited_no_training": before,
        "reuse": reuse,
        "search_reported": search_accuracy,
        "scratch": scratch,
        "scratch_same_budget": scratch[f"{config.epochs:g}"],
        "ratio_to_match": matched,
        "seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="EAS-CIFAR10-CPU-v0")
    parser.add_argument("--store", default="/tmp/eas_rl_vs_random/store.sqlite")
    parser.add_argument("--children", type=int, default=3)
    parser.add_argument("--sample", action="store_true", help="draw children with random actions")
    parser.add_argument("--max-factor", type=int, default=8, help="cap of scratch epochs / E")
    parser.add_argument("--scratch-lr", type=float, default=None, help="default: env start_lr")
    parser.add_argument("--data-dir", default=os.environ.get("EAS_DATA_DIR") or "../shared/data")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch threads; 0: torch's default")
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).with_name("reuse_vs_scratch.png")
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    spec = {**gym.spec(args.env).kwargs, "data_dir": args.data_dir}
    if spec.get("evaluator", "train") != "train":
        raise ValueError(f"`--env` must train its children, got {args.env!r} (a surrogate)")
    env: EASEnv = gym.make(args.env, store=args.store, data_dir=args.data_dir).unwrapped
    # The trained start network: from the store, or trained now (once per configuration).
    start, start_accuracy = env.scorer.start()
    store = EvalStore(args.store)
    data = load_dataset(
        spec.get("dataset", "cifar10"),
        data_dir=args.data_dir,
        **{k: spec.get(k) for k in ("train_size", "val_size", "image_size")},
    )
    probe_size = spec.get("probe_size", 64)  # the env's probe: the first training images
    probe, _ = next(iterate_batches(data.train, probe_size, mean=data.mean, std=data.std))
    children = [] if args.sample else searched_children(store, env)
    source = "search"
    if len(children) >= args.children:
        rng = np.random.default_rng(args.seed)
        children = [children[i] for i in sorted(rng.choice(len(children), args.children, False))]
    else:
        source = "random actions"
        children = sample_children(env, start, probe, args.children, args.seed)
    store.close()
    env.close()

    start_time = time.perf_counter()
    rows = [
        measure_child(env, data, start, probe, child, args, args.seed + i)
        for i, child in enumerate(children)
    ]
    reuse = np.array([r["reuse"] for r in rows])
    same = np.array([r["scratch_same_budget"] for r in rows])
    ratios = [r["ratio_to_match"] for r in rows]
    bounded = [args.max_factor if r is None else r for r in ratios]
    result = {
        "benchmark": "reuse_vs_scratch",
        "env": args.env,
        "children": len(rows),
        "source": source,
        "fine_tune_epochs": env.eval_config.train.epochs,
        "fine_tune_lr": env.eval_config.train.lr,
        "scratch_lr": args.scratch_lr or env.eval_config.start_train.lr,
        "start_net_epochs": env.eval_config.start_train.epochs,
        "start_net_accuracy": round(start_accuracy, 4),
        "threads": torch.get_num_threads(),
        "reuse_acc_mean": round(float(reuse.mean()), 4),
        "scratch_same_budget_acc_mean": round(float(same.mean()), 4),
        "gap_at_equal_compute": {
            "mean": round(float((reuse - same).mean()), 4),
            "min": round(float((reuse - same).min()), 4),
            "max": round(float((reuse - same).max()), 4),
        },
        "ratio_to_match": ratios,
        "matched": sum(r is not None for r in ratios),
        "max_factor": args.max_factor,
        "ratio_to_match_mean": round(float(np.mean(bounded)), 2),
        "ratio_to_match_mean_is_lower_bound": None in ratios,
        "seconds": round(time.perf_counter() - start_time, 1),
        "per_child": rows,
    }
    print(json.dumps(result))
    plot(rows, env.eval_config.train.epochs, args.out)


def plot(rows: list[dict[str, Any]], epochs: float, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    for i, r in enumerate(rows):
        x = [float(e) for e in r["scratch"]]
        line = ax.plot(x, list(r["scratch"].values()), marker="o", ms=4, label=f"child {i}")[0]
        ax.scatter([epochs], [r["reuse"]], marker="*", s=120, color=line.get_color(), zorder=3)
        ax.axhline(r["reuse"], color=line.get_color(), ls=":", lw=0.8)
    ax.scatter([], [], marker="*", s=80, color="gray", label="inherited weights")
    ax.plot([], [], marker="o", color="gray", label="fresh init")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("training epochs of the child (log2)")
    ax.set_ylabel("validation accuracy")
    ax.set_title("Inherited weights vs training from scratch")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    plt.close(fig)


if __name__ == "__main__":
    main()
