"""The ``eas-gym`` command line (thin: parsing, then calls into the library and the agents).

eas-gym search  --env ID --agent NAME --nets N --seed S --out DIR [--executor ray]
eas-gym compare --env ID --agents reinforce,random --seeds K --nets N --out DIR
eas-gym train   RUN_OR_NET [--epochs E]
eas-gym show    RUN
eas-gym demo
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["main"]


def _env_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """``--set key=value`` pairs (values parsed as JSON when they can be) plus the shortcuts."""
    kwargs: dict[str, Any] = {}
    for item in args.set or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set expects key=value, got {item!r}")
        try:
            kwargs[key] = json.loads(value)
        except json.JSONDecodeError:
            kwargs[key] = value
    if args.device is not None:
        kwargs["device"] = args.device
    if args.data_dir is not None:
        kwargs["data_dir"] = args.data_dir
    return kwargs


def _check_env_id(env_id: str) -> None:
    import gymnasium as gym

    import eas_gym  # noqa: F401

    if env_id not in gym.registry:
        known = sorted(k for k in gym.registry if k.startswith("EAS-"))
        raise ValueError(f"unknown env {env_id!r}; registered: {', '.join(known)}")


def _search(args: argparse.Namespace) -> int:
    from agents.runner import SearchArgs, run_search

    _check_env_id(args.env)
    children = run_search(
        SearchArgs(
            env_id=args.env,
            agent=args.agent,
            nets=args.nets,
            batch=args.batch,
            seed=args.seed,
            out=args.out,
            store=args.store,
            asynchronous=args.asynchronous,
            env_kwargs=_env_kwargs(args),
            progress=not args.no_progress,
            executor=args.executor,
            ray_address=args.ray_address,
            store_service=args.store_service,
        )
    )
    best = max(children, key=lambda c: c["accuracy"])
    print(f"{len(children)} networks; best {best['accuracy']:.4f}: {best['net']}")
    print(f"run folder: {args.out} (best network: eas_gym.load_model('{args.out}/best'))")
    return 0


def _compare(args: argparse.Namespace) -> int:
    from agents.compare import compare

    _check_env_id(args.env)
    table = compare(
        args.env,
        agents=args.agents.split(","),
        seeds=args.seeds,
        nets=args.nets,
        batch=args.batch,
        out=args.out,
        env_kwargs=_env_kwargs(args),
        progress=not args.no_progress,
    )
    print(table)
    return 0


def _train(args: argparse.Namespace) -> int:
    from agents.final import final_train

    result = final_train(
        args.target,
        epochs=args.epochs,
        lr=args.lr,
        scratch=args.scratch,
        dataset=args.dataset,
        image_size=args.image_size,
        train_size=args.train_size,
        device=args.device or "auto",
        data_dir=args.data_dir,
        out=args.out,
        seed=args.seed,
        augment=args.augment,
    )
    print(json.dumps(result))
    return 0


def _show(args: argparse.Namespace) -> int:
    from agents.show import describe_run

    print(describe_run(args.run, top=args.top))
    return 0


def _demo(args: argparse.Namespace) -> int:
    import torch

    from eas_gym.arch import SMALL_SPACE, Arch, Pool
    from eas_gym.morph import max_logit_diff, net2deeper, widen_layers
    from eas_gym.net import build_net

    g = torch.Generator().manual_seed(args.seed)
    arch = Arch.from_string(args.net)
    net = build_net(arch, generator=g).eval()
    probe = torch.rand(32, 3, 32, 32, generator=g)
    state = net.state_dict()
    widths = {
        i: SMALL_SPACE.next_width(layer)
        for i, layer in enumerate(arch.layers)
        if not isinstance(layer, Pool) and SMALL_SPACE.next_width(layer) is not None
    }
    steps = [("wider", lambda a, s: widen_layers(a, s, widths, space=SMALL_SPACE, generator=g))]
    steps.append(("deeper", lambda a, s: net2deeper(a, s, 0, 3, batch=probe, space=SMALL_SPACE)))
    print(f"start  {arch}  params={arch.num_params():,}")
    for name, step in steps:
        arch, state = step(arch, state)
        error = max_logit_diff(net, build_net(arch, state), probe)
        print(f"{name:6} {arch}  params={arch.num_params():,}  max|dlogits|={error:.2e}")
    return 0


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default=None, help="auto, cpu, cuda, cuda:1 ...")
    parser.add_argument("--data-dir", default=None, help="dataset folder (else $EAS_DATA_DIR)")
    parser.add_argument(
        "--set", action="append", metavar="KEY=VALUE", help="extra env argument (repeatable)"
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``eas-gym``."""
    parser = argparse.ArgumentParser(prog="eas-gym", description="Efficient Architecture Search")
    sub = parser.add_subparsers(dest="command", required=True)

    search = sub.add_parser("search", help="run (or resume) a search into a run folder")
    search.add_argument("--env", default="EAS-CIFAR10-CPU-v0")
    search.add_argument(
        "--agent",
        default="reinforce",
        help="reinforce, random, ppo, a2c, maskable-ppo or module:Class",
    )
    search.add_argument("--nets", type=int, default=20, help="networks to sample")
    search.add_argument("--batch", type=int, default=10, help="networks per agent update")
    search.add_argument("--seed", type=int, default=0)
    search.add_argument("--out", default="runs/search")
    search.add_argument("--store", default=None, help="evaluation store (default: in --out)")
    search.add_argument(
        "--async", dest="asynchronous", action="store_true", help="one process per environment"
    )
    search.add_argument(
        "--executor",
        choices=("local", "ray"),
        default="local",
        help="ray: one Ray actor per environment (protocol agents; pip install 'eas-gym[ray]')",
    )
    search.add_argument(
        "--ray-address", default=None, help="Ray cluster to join (default: running, else local)"
    )
    search.add_argument(
        "--store-service",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="ray: serve the store from one actor (default: on clusters of several machines)",
    )
    _common(search)
    search.set_defaults(func=_search)

    comp = sub.add_parser("compare", help="run or reuse searches and tabulate them")
    comp.add_argument("--env", default="EAS-CIFAR10-CPU-v0")
    comp.add_argument("--agents", default="reinforce,random")
    comp.add_argument("--seeds", type=int, default=3)
    comp.add_argument("--nets", type=int, default=20)
    comp.add_argument("--batch", type=int, default=10)
    comp.add_argument("--out", default="runs/compare")
    _common(comp)
    comp.set_defaults(func=_compare)

    train = sub.add_parser("train", help="final training of a found network")
    train.add_argument("target", help="a run folder, a saved model folder, or a net string")
    train.add_argument("--epochs", type=float, default=300.0)
    train.add_argument("--lr", type=float, default=0.1)
    train.add_argument("--scratch", action="store_true", help="re-initialise the weights")
    train.add_argument(
        "--augment",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="crop and flip while training (default: as the run; on for a net string)",
    )
    train.add_argument("--dataset", default=None, help="default: the run's dataset or cifar10")
    train.add_argument("--image-size", type=int, default=None)
    train.add_argument("--train-size", type=int, default=None)
    train.add_argument("--out", default=None, help="where to save the trained network")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--device", default=None)
    train.add_argument("--data-dir", default=None)
    train.set_defaults(func=_train)

    show = sub.add_parser("show", help="summarise a run folder")
    show.add_argument("run")
    show.add_argument("--top", type=int, default=5)
    show.set_defaults(func=_show)

    demo = sub.add_parser("demo", help="apply a wider and a deeper step and show preservation")
    demo.add_argument("--net", default="C4-3 MP C4-3 MP C4-3 MP C4-3 GAP FC8")
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(func=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``eas-gym`` console script: errors a user can make are one line."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as e:
        print(f"eas-gym: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        out = getattr(args, "out", None)
        hint = f"; rerun the same command to resume from {Path(out)}" if out else ""
        print(f"eas-gym: interrupted{hint}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
