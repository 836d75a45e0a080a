"""The ``eas-gym`` command line (thin: parsing, then calls into the library and the agents).

eas-gym search  --env ID --agent NAME --nets N --seed S --out DIR [--executor ray]
eas-gym compare --env ID --agents reinforce,random --seeds K --nets N --out DIR
eas-gym train   RUN_OR_NET [--epochs E]
eas-gym show    RUN
eas-gym check-agent module:Class [--env ID]
eas-gym list
eas-gym demo

It lives in :mod:`agents`, the layer that uses both packages: its commands run searches,
comparisons and final training, which are the agents' work, on the library's envs, so
:mod:`eas_gym` imports nothing of :mod:`agents` (``tests/test_imports.py`` checks it). The
``eas-gym`` console script points here (``agents.cli:main``; ``python -m agents.cli`` works
too). Heavy imports sit inside functions: ``--help`` and ``list`` never load torch.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["main"]


def _env_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """``--set key=value`` pairs, parsed to the env arguments' types, plus the shortcuts."""
    from eas_gym.settings import parse_set

    kwargs = parse_set(args.set, env_id=getattr(args, "env", None))
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
    from agents.registry import parse_agent_spec
    from agents.runner import SearchArgs, read_summary, run_search
    from eas_gym.settings import DICT_FIELD

    _check_env_id(args.env)
    options = {f.name: getattr(args, f.name) for f in _search_fields() if f.type != DICT_FIELD}
    search = SearchArgs(
        **options,
        env_id=args.env,
        env_kwargs=_env_kwargs(args),
        progress=not args.no_progress,
    )
    spec = parse_agent_spec(args.agent, args.agent_set or [])  # --agent-set over the [...]
    search.agent, search.agent_options = spec.name, spec.options
    rounded = -(-args.nets // args.batch) * args.batch
    if rounded != args.nets:
        print(
            f"eas-gym: --nets {args.nets} rounded up to {rounded} (whole batches of {args.batch})",
            file=sys.stderr,
        )
    children = run_search(search)
    best = max(children, key=lambda c: c["accuracy"])
    print(f"{len(children)} networks; best {best['accuracy']:.4f}: {best['net']}")
    start = read_summary(args.out).get("start_accuracy")
    if start is not None:
        print(f"start network {start:.4f}; gain {best['accuracy'] - start:+.4f}")
    best_dir = Path(args.out) / "best"
    saved = json.loads((best_dir / "arch.json").read_text()) if best_dir.is_dir() else {}
    if saved.get("weights_sha256"):
        print(f"run folder: {args.out} (best network: eas_gym.load_model('{best_dir}'))")
    else:  # a weightless evaluator's search, or weights the store no longer has
        print(
            f"run folder: {args.out} (best network's architecture, no weights: "
            f"eas_gym.load_model('{best_dir}', untrained=True); train it with "
            f"eas-gym train {args.out})"
        )
    return 0


# ---- the search options, declared once: SearchArgs' fields and their docstrings -------------

# SearchArgs fields the command line fills another way: --env (its own default), --set/--device/
# --data-dir (env_kwargs, shared with compare), --no-progress (progress).
_NOT_OPTIONS = ("env_id", "env_kwargs", "progress")
_FLAGS = {"asynchronous": "--async", "agent_options": "--agent-set"}
_CHOICES = {"executor": ("local", "ray")}
_DEFAULT_ENV = "EAS-CIFAR10-CPU-v2"
"""The command line's env: the CPU preset chosen in benchmarks/RESULTS.md (``SearchArgs`` keeps
v0, the first preset, for the Python API)."""


def _search_fields() -> list[dataclasses.Field]:
    from agents.search_args import SearchArgs

    return [f for f in dataclasses.fields(SearchArgs) if f.name not in _NOT_OPTIONS]


def _add_search_options(
    parser: argparse.ArgumentParser, names: Sequence[str] | None = None
) -> None:
    """SearchArgs' fields as options (`names` only, if given), with their defaults and docs."""
    from agents.search_args import SearchArgs
    from eas_gym.settings import add_dataclass_options

    fields = [f.name for f in _search_fields() if names is None or f.name in names]
    add_dataclass_options(parser, SearchArgs, fields, flags=_FLAGS, choices=_CHOICES)


def _compare(args: argparse.Namespace) -> int:
    from agents.compare import compare, report
    from agents.registry import parse_agent_spec, split_agent_specs

    if args.report:  # a study in progress: its finished runs, nothing trained
        print(report(args.out, recheck=args.recheck))
        print(f"written: {Path(args.out) / 'report.md'}, report.json, report.png")
        return 0
    _check_env_id(args.env)
    agents = split_agent_specs(args.agents)
    if args.agent_set:  # options for every agent of that name: "reinforce:lr=0.01"
        agents = _apply_agent_set(agents, args.agent_set)
    for agent in agents:
        parse_agent_spec(agent)  # every spec is checked before the first search runs
    table = compare(
        args.env,
        agents=agents,
        seeds=args.seeds,
        nets=args.nets,
        batch=args.batch,
        out=args.out,
        env_kwargs=_env_kwargs(args),
        progress=not args.no_progress,
        recheck=args.recheck or 0,
        test=not args.no_test,
        first_seed=args.first_seed,
    )
    print(table)
    print(f"written: {Path(args.out) / 'compare.md'}, compare.json, compare.png")
    return 0


def _apply_agent_set(agents: list[str], items: list[str]) -> list[str]:
    """Fold ``NAME:key=value`` items into the specs of agent NAME."""
    from agents.registry import parse_agent_spec

    extra: dict[str, list[str]] = {}
    for item in items:
        head, equals, value = item.partition("=")
        name, sep, key = head.rpartition(":")  # the last colon: NAME may be module:Class
        if not sep or not name or not equals:
            raise ValueError(f"--agent-set for compare expects NAME:key=value, got {item!r}")
        extra.setdefault(name, []).append(f"{key}={value}")
    unknown = sorted(set(extra) - {a.split("[", 1)[0] for a in agents})
    if unknown:
        raise ValueError(f"--agent-set names agents not in --agents: {', '.join(unknown)}")
    # parsed, then written back as labels: values keep their commas (kernels=1,3,5)
    return [parse_agent_spec(a, extra.get(a.split("[", 1)[0], [])).label() for a in agents]


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
        device=args.device,
        data_dir=args.data_dir,
        out=args.out,
        seed=args.seed,
        augment=args.augment,
        download=args.download,
        progress=not args.no_progress,
    )
    print(json.dumps(result))
    if result["test_accuracy"] is None and not result["diverged"]:
        print("no test images in this dataset: test accuracy not reported", file=sys.stderr)
    print(f"trained network saved to {result['saved_to']}", file=sys.stderr)
    return 0


def _list(args: argparse.Namespace) -> int:
    import gymnasium as gym

    import eas_gym  # noqa: F401

    for env_id in sorted(k for k in gym.registry if k.startswith("EAS-")):
        print(f"{env_id:32} {_describe(gym.spec(env_id).kwargs)}")
    return 0


_TRAIN_IMAGES = {"cifar10": 50000, "cifar100": 50000, "svhn": 73257}
"""Images in each dataset's official training split (validation comes out of it)."""


def _describe(kwargs: dict[str, Any]) -> str:
    """One line: space, data, protocol of a registered id's arguments."""
    space = f"space {kwargs.get('space', 'paper')}"
    if kwargs.get("evaluator") == "surrogate":
        reward = kwargs.get("reward_mode", "dense")
        return f"{space}; no data: accuracy a known function of the net; {reward} reward"
    if kwargs.get("evaluator") == "bench":
        reward = kwargs.get("reward_mode", "dense")
        return (
            f"{space}; no data: accuracy drawn from a model fitted on EAS-CIFAR10-CPU-v2's "
            f"real evaluations; {reward} reward"
        )

    def count(key: str, paper: int) -> str:
        n = kwargs.get(key) or paper
        return f"{n // 1000}k" if n >= 1000 else str(n)

    dataset, val = kwargs.get("dataset", "cifar10"), kwargs.get("val_size") or 5000
    pixels = f"{kwargs.get('image_size') or 32}px"
    augment = "" if kwargs.get("augment", True) else ", no augmentation"
    # train_size None trains on every training image outside the validation set
    data = f"{dataset} {count('train_size', _TRAIN_IMAGES.get(dataset, 50000) - val)}/"
    data += f"{count('val_size', 5000)} {pixels}{augment}"
    reward, epochs = kwargs.get("reward_mode", "dense"), kwargs.get("epochs", 20.0)
    return f"{space}; {data}; {reward} reward, {epochs:g}-epoch fine-tunes"


def _show(args: argparse.Namespace) -> int:
    from agents.show import describe_run

    print(describe_run(args.run, top=args.top))
    return 0


def _check_agent(args: argparse.Namespace) -> int:
    from agents.agent_checker import check_agent_contract, format_verdicts

    verdicts = check_agent_contract(
        args.agent,
        env_id=args.env,
        env_kwargs=_env_kwargs(args),
        batch=args.batch,
        updates=args.updates,
        seed=args.seed,
    )
    print(format_verdicts(args.agent, verdicts))
    return 1 if any(v.passed is False for v in verdicts) else 0


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
        i: width
        for i, layer in enumerate(arch.layers)
        if not isinstance(layer, Pool) and (width := SMALL_SPACE.next_width(layer)) is not None
    }
    steps = [("wider", lambda a, s: widen_layers(a, s, widths, space=SMALL_SPACE, generator=g))]
    steps.append(("deeper", lambda a, s: net2deeper(a, s, 0, 3, batch=probe, space=SMALL_SPACE)))
    print(f"start  {arch}  params={arch.num_params():,}")
    for name, step in steps:
        arch, state = step(arch, state)
        error = max_logit_diff(net, build_net(arch, state), probe)
        print(f"{name:6} {arch}  params={arch.num_params():,}  max|dlogits|={error:.2e}")
    return 0


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Defaults as written (``300``, not ``300.0``), and only where they say something.

    An option whose help already tells its default, or whose default is ``None``, ``False`` or
    empty (the help says what happens then), gets no ``(default: ...)`` appended.
    """

    def _get_help_string(self, action: argparse.Action) -> str | None:
        help, default = action.help or "", action.default
        if (
            "default" in help.lower()
            or default is argparse.SUPPRESS
            or default is None
            or default is False
            or default == []
            or not (action.option_strings or action.nargs in (argparse.OPTIONAL, "*"))
        ):
            return help
        if isinstance(default, float) and default.is_integer():
            shown = str(int(default))
        else:
            shown = str(default)
        return f"{help} (default: {shown.replace('%', '%%')})"


def _common(parser: argparse.ArgumentParser) -> None:
    from eas_gym.settings import add_set_option

    parser.add_argument(
        "--device", default=None, help="auto, cpu, cuda, cuda:1 ... (default: the env's)"
    )
    parser.add_argument(
        "--data-dir",
        default=None,
        help="the dataset folder (default: $EAS_DATA_DIR, else ~/.cache/eas_gym/data)",
    )
    add_set_option(parser)
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("eas-gym")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``eas-gym``."""
    parser = argparse.ArgumentParser(prog="eas-gym", description="Efficient Architecture Search")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, formatter_class=_HelpFormatter)

    env_help = "a registered env id (eas-gym list shows them)"

    listing = command("list", "the registered env ids, one line each")
    listing.set_defaults(func=_list)

    search = command("search", "run (or resume) a search into a run folder")
    search.add_argument("--env", default=_DEFAULT_ENV, help=env_help)
    _add_search_options(search)
    _common(search)
    search.set_defaults(func=_search)

    comp = command("compare", "run or reuse searches and tabulate them")
    comp.add_argument("--env", default=_DEFAULT_ENV, help=env_help)
    comp.add_argument(
        "--agents",
        default="reinforce,random",
        help="comma-separated agent specs, e.g. 'reinforce,reinforce[lr=0.01],random,evolution'",
    )
    comp.add_argument(
        "--agent-set",
        action="append",
        metavar="NAME:KEY=VALUE",
        help="option for every agent NAME, e.g. reinforce:lr=0.01 (repeatable)",
    )
    comp.add_argument("--seeds", type=int, default=10, help="seeds per agent")
    comp.add_argument("--first-seed", type=int, default=0, help="the first seed")
    _add_search_options(comp, ["nets", "batch"])
    comp.add_argument(
        "--recheck",
        type=int,
        default=None,
        metavar="K",
        help="K fresh episodes per run from its final policy, fine-tuned again (not cached); "
        "default 0, and with --report the comparison's own K (from its compare_plan.json)",
    )
    comp.add_argument(
        "--no-test", action="store_true", help="skip the test accuracy of each best network"
    )
    comp.add_argument("--out", default="runs/compare", help="the comparison folder")
    comp.add_argument(
        "--report",
        action="store_true",
        help="only tabulate the runs already finished in --out (with --recheck K: those with "
        "K rechecks; by default as many as the comparison asked for: its compare_plan.json), "
        "training nothing: a "
        "long study's standing",
    )
    _common(comp)
    comp.set_defaults(func=_compare)

    train = command("train", "final training of a found network")
    train.add_argument("target", help="a run folder, a saved model folder, or a net string")
    train.add_argument(
        "--epochs", type=float, default=300.0, help="epochs (the paper's final training)"
    )
    train.add_argument("--lr", type=float, default=0.1, help="peak learning rate (cosine)")
    train.add_argument("--scratch", action="store_true", help="re-initialise the weights")
    train.add_argument(
        "--augment",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="crop and flip while training (default: as the run; on for a net string)",
    )
    train.add_argument(
        "--dataset",
        default=None,
        help="cifar10, cifar100, svhn, synthetic or a path to your own dataset "
        "(default: the run's, else cifar10)",
    )
    train.add_argument(
        "--image-size",
        type=int,
        default=None,
        help="side of the square images (default: the run's, else 32)",
    )
    train.add_argument(
        "--train-size",
        type=int,
        default=None,
        help="class-balanced subset of the training images (default: all of them); the "
        "validation split (the run's, else 5,000 images, none for your own file) trains too: "
        "a final training trains on train + val",
    )
    train.add_argument(
        "--out",
        default=None,
        help="where to save the trained network, replacing what is there (default: RUN/final "
        "for a run folder or its RUN/best, FOLDER-final for another saved model, runs/final "
        "for a net string)",
    )
    train.add_argument(
        "--download", action="store_true", help="let torchvision download a missing dataset"
    )
    train.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    train.add_argument(
        "--seed", type=int, default=0, help="seeds the initial weights and the batches"
    )
    train.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    train.add_argument(
        "--data-dir",
        default=None,
        help="the dataset folder (default: the run's, then $EAS_DATA_DIR, then the folder "
        "the search read, else ~/.cache/eas_gym/data)",
    )
    train.set_defaults(func=_train)

    show = command("show", "summarise a run folder")
    show.add_argument("run", help="a run folder written by eas-gym search")
    show.add_argument("--top", type=int, default=5, help="networks to list")
    show.set_defaults(func=_show)

    checker = command(
        "check-agent", "run an agent a few updates and check that it keeps the contract"
    )
    checker.add_argument("agent", help="an agent spec: module:Class, optionally [key=value,...]")
    checker.add_argument("--env", default="EAS-Surrogate-v0", help="a cheap env id (no training)")
    checker.add_argument("--batch", type=int, default=4, help="networks per update")
    checker.add_argument(
        "--updates", type=int, default=3, help="updates of the uninterrupted run (>= 2)"
    )
    checker.add_argument("--seed", type=int, default=0, help="the runs' seed")
    _common(checker)
    checker.set_defaults(func=_check_agent)

    demo = command("demo", "apply a wider and a deeper step and show preservation")
    demo.add_argument(
        "--net", default="C4-3 MP C4-3 MP C4-3 MP C4-3 GAP FC8", help="the start network"
    )
    demo.add_argument(
        "--seed", type=int, default=0, help="seeds the weights, the probe batch and the noise"
    )
    demo.set_defaults(func=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``eas-gym`` console script: errors a user can make are one line."""
    args = build_parser().parse_args(argv)
    try:
        code = args.func(args)
        sys.stdout.flush()  # a reader that left (`| head`) raises here, not at exit
        return code
    except (ValueError, FileNotFoundError) as e:
        print(f"eas-gym: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `eas-gym list | head`: the reader left, nothing to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's advice
        return 0
    except KeyboardInterrupt:
        out = getattr(args, "out", None)
        hint = f"; rerun the same command to resume from {Path(out)}" if out else ""
        print(f"eas-gym: interrupted{hint}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
