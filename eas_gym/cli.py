"""The ``eas-gym`` command line (thin: parsing and printing only)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["main"]


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


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``eas-gym`` console script."""
    parser = argparse.ArgumentParser(prog="eas-gym", description="Efficient Architecture Search")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="apply a wider and a deeper step and show preservation")
    demo.add_argument("--net", default="C4-3 MP C4-3 MP C4-3 MP C4-3 GAP FC8")
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(func=_demo)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ValueError as e:
        print(f"eas-gym: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
