"""Time Net2Wider and Net2Deeper on the paper-scale start net against one training step.

    python benchmarks/morph_speed.py [--repeats 20] [--out benchmarks/morph_speed.png]

Prints one JSON line: median seconds of each transform (including the preservation check's
network build), of one SGD training step (batch 64, 32x32, forward + backward + update), and
their ratios. The transforms should cost less than one step.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from eas_gym.arch import PAPER_SPACE, PAPER_START
from eas_gym.morph import DEEPER_NOISE, WIDER_NOISE, max_logit_diff, net2deeper, widen_layers
from eas_gym.net import build_net


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
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("morph_speed.png"))
    args = parser.parse_args()

    g = torch.Generator().manual_seed(0)
    arch = PAPER_START
    net = build_net(arch, generator=g)
    x = torch.rand(args.batch_size, 3, 32, 32, generator=g)
    y = torch.randint(10, (args.batch_size,), generator=g)
    state = net.state_dict()
    # The paper's wider step on every layer, and a deeper step in the widest conv block.
    widths = {i: PAPER_SPACE.next_width(layer) for i, layer in enumerate(arch.layers) if i % 2 == 0}
    widths[len(arch.layers) - 1] = PAPER_SPACE.next_width(arch.layers[-1])

    def wider() -> object:
        return widen_layers(arch, state, widths, space=PAPER_SPACE, noise=WIDER_NOISE, generator=g)

    def deeper() -> object:
        return net2deeper(
            arch, state, 6, 3, batch=x, space=PAPER_SPACE, noise=DEEPER_NOISE, generator=g
        )

    def check() -> float:
        return max_logit_diff(net, build_net(*deeper()), x)

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
        "benchmark": "morph_speed",
        "net": arch.to_string(),
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
    ax.barh(list(seconds), [v * 1e3 for v in seconds.values()], color="tab:blue")
    ax.set_xlabel("milliseconds (median)")
    ax.set_title("Transforms vs one training step, paper start net, CPU")
    fig.tight_layout()
    fig.savefig(out, dpi=100)


if __name__ == "__main__":
    main()
