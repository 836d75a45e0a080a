"""Time the DenseNet wider and deeper transforms on the paper-scale start net against one step.

    python benchmarks/morph_speed_densenet.py [--repeats 20] [--out PNG]

Prints one JSON line: median seconds of each transform (the deeper one also with the
preservation check's network build and two forward passes), of one SGD training step (batch 64,
32x32, forward + backward + update), and their ratios. Both transforms act on the first unit of
block 0, the worst case: the change reaches every later unit, both transitions and the
classifier. The transforms should cost less than one step.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from eas_gym.densenet.arch import DENSE_PAPER_SPACE, DENSE_PAPER_START
from eas_gym.densenet.morph import dense_deeper, dense_wider
from eas_gym.densenet.net import build_dense_net
from eas_gym.morph import WIDER_NOISE, max_logit_diff


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).with_name("morph_speed_densenet.png")
    )
    args = parser.parse_args()

    g = torch.Generator().manual_seed(0)
    arch = DENSE_PAPER_START
    net = build_dense_net(arch, generator=g)
    x = torch.rand(args.batch_size, 3, 32, 32, generator=g)
    y = torch.randint(10, (args.batch_size,), generator=g)
    state = net.state_dict()
    growth = DENSE_PAPER_SPACE.next_growth(arch.blocks[0][0])

    def wider() -> object:
        return dense_wider(
            arch, state, 0, 0, growth, space=DENSE_PAPER_SPACE, noise=WIDER_NOISE, generator=g
        )

    def deeper() -> object:
        return dense_deeper(
            arch, state, 0, 1, space=DENSE_PAPER_SPACE, noise=WIDER_NOISE, generator=g
        )

    def check() -> float:
        return max_logit_diff(net, build_dense_net(*deeper()), x)

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
    result = {
        "benchmark": "morph_speed_densenet",
        "net": arch.to_string(),
        "params": arch.num_params(),
        "batch_size": args.batch_size,
        "threads": torch.get_num_threads(),
        "seconds": {k: round(v, 5) for k, v in seconds.items()},
        "wider_over_step": round(seconds["wider"] / seconds["train_step"], 3),
        "deeper_over_step": round(seconds["deeper"] / seconds["train_step"], 3),
        "deeper_plus_check_over_step": round(
            seconds["deeper_plus_check"] / seconds["train_step"], 3
        ),
    }
    print(json.dumps(result))
    plot(seconds, args.out)


def plot(seconds: dict[str, float], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3))
    ax.barh(list(seconds), [v * 1e3 for v in seconds.values()], color="tab:green")
    ax.set_xscale("log")
    ax.set_xlabel("milliseconds (median, log scale)")
    ax.set_title("DenseNet-BC-100 transforms vs one training step, CPU")
    fig.tight_layout()
    fig.savefig(out, dpi=100)


if __name__ == "__main__":
    main()
