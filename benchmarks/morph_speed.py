"""Time a wider and a deeper transform on a paper-scale start net against one training step.

    python benchmarks/morph_speed.py [--space plain|densenet] [--repeats 20] [--out PNG]

Prints one JSON line: median seconds of each transform, of the deeper one plus the preservation
check (build the child, logits of both nets on the batch), of one SGD training step (batch 64,
32x32, forward + backward + update), and their ratios. The transforms should cost less than
one step.

* ``plain``: the paper's start net ``C16-3 MP C32-3 MP C64-3 MP C128-3 GAP FC256``; the wider
  step widens every conv and the FC one step on the list, the deeper step inserts a 3x3
  identity conv after the third conv (BN from the batch's statistics).
* ``densenet``: DenseNet-BC-100 (``D24 12x16 T 12x16 T 12x16``); both transforms act on the first
  unit of block 0, the worst case: the change reaches every later unit, both transitions and
  the classifier.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from eas_gym.arch import PAPER_SPACE, PAPER_START, Pool
from eas_gym.densenet import (
    DENSE_PAPER_SPACE,
    DENSE_PAPER_START,
    build_dense_net,
    dense_deeper,
    dense_wider,
)
from eas_gym.morph import DEEPER_NOISE, WIDER_NOISE, max_logit_diff, net2deeper, widen_layers
from eas_gym.net import build_net

Transform = Callable[[], tuple]


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def plain_transforms(net, x, g) -> tuple[Transform, Transform, Callable]:
    arch, state = PAPER_START, net.state_dict()
    widths = {
        i: PAPER_SPACE.next_width(layer)
        for i, layer in enumerate(arch.layers)
        if not isinstance(layer, Pool)
    }

    def wider() -> tuple:
        return widen_layers(arch, state, widths, space=PAPER_SPACE, noise=WIDER_NOISE, generator=g)

    def deeper() -> tuple:
        return net2deeper(
            arch, state, 4, 3, batch=x, space=PAPER_SPACE, noise=DEEPER_NOISE, generator=g
        )

    return wider, deeper, build_net


def densenet_transforms(net, x, g) -> tuple[Transform, Transform, Callable]:
    arch, state = DENSE_PAPER_START, net.state_dict()
    growth = DENSE_PAPER_SPACE.next_growth(arch.blocks[0][0])

    def wider() -> tuple:
        return dense_wider(
            arch, state, 0, 0, growth, space=DENSE_PAPER_SPACE, noise=WIDER_NOISE, generator=g
        )

    def deeper() -> tuple:  # a duplicated unit is a copy, so it takes the wider noise
        return dense_deeper(
            arch, state, 0, 1, space=DENSE_PAPER_SPACE, noise=WIDER_NOISE, generator=g
        )

    return wider, deeper, build_dense_net


SPACES = {
    "plain": (PAPER_START, build_net, plain_transforms),
    "densenet": (DENSE_PAPER_START, build_dense_net, densenet_transforms),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", choices=sorted(SPACES), default="plain")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--out", type=Path, default=None, help="PNG (default: beside this file)")
    args = parser.parse_args()
    suffix = "" if args.space == "plain" else f"_{args.space}"
    out = args.out or Path(__file__).with_name(f"morph_speed{suffix}.png")

    g = torch.Generator().manual_seed(0)
    arch, build, transforms = SPACES[args.space]
    net = build(arch, generator=g)
    x = torch.rand(args.batch_size, 3, 32, 32, generator=g)
    y = torch.randint(10, (args.batch_size,), generator=g)
    wider, deeper, rebuild = transforms(net, x, g)

    def check() -> float:
        return max_logit_diff(net, rebuild(*deeper()), x)

    opt = torch.optim.SGD(net.parameters(), lr=0.02, momentum=0.9, nesterov=True)

    def train_step() -> None:
        net.train()
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()

    seconds = {
        "wider": median_seconds(wider, args.repeats),
        "deeper": median_seconds(deeper, args.repeats),
        "deeper_plus_check": median_seconds(check, args.repeats),
        "train_step": median_seconds(train_step, args.repeats),
    }
    step = seconds["train_step"]
    result = {
        "benchmark": "morph_speed",
        "space": args.space,
        "net": arch.to_string(),
        "params": arch.num_params(),
        "batch_size": args.batch_size,
        "threads": torch.get_num_threads(),
        "seconds": {k: round(v, 5) for k, v in seconds.items()},
        "wider_over_step": round(seconds["wider"] / step, 3),
        "deeper_over_step": round(seconds["deeper"] / step, 3),
        "deeper_plus_check_over_step": round(seconds["deeper_plus_check"] / step, 3),
    }
    print(json.dumps(result))
    plot(seconds, out, f"{args.space}: transforms vs one training step, CPU")


def plot(seconds: dict[str, float], out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3))
    ax.barh(list(seconds), [v * 1e3 for v in seconds.values()], color="tab:blue")
    ax.set_xscale("log")
    ax.set_xlabel("milliseconds (median, log scale)")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(out, dpi=100)


if __name__ == "__main__":
    main()
