"""The Net2Net tricks every search space shares: the replication mapping and relative noise.

Chen, Goodfellow, Shlens. Net2Net: Accelerating Learning via Knowledge Transfer. ICLR 2016.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["check_noise", "relative_noise", "replication_map"]


def replication_map(
    old: int, new: int, generator: torch.Generator | None, device: torch.device
) -> Tensor:
    """Net2Net's mapping g: unit j of the wider layer copies unit g[j] of the old one.

    The first `old` entries are the identity; the rest are sampled uniformly with replacement
    from `generator`, or taken round-robin when it is None.

    >>> replication_map(2, 5, None, torch.device("cpu")).tolist()
    [0, 1, 0, 1, 0]
    """
    if generator is None:
        extra = torch.arange(new - old) % old
    else:
        extra = torch.randint(old, (new - old,), generator=generator)
    return torch.cat([torch.arange(old), extra]).to(device)


def relative_noise(
    weight: Tensor, scale: float, generator: torch.Generator | None, std_of: Tensor
) -> Tensor:
    """Gaussian noise shaped like `weight` with std ``scale * std(std_of)``, drawn on the CPU."""
    noise = torch.randn(weight.shape, generator=generator, dtype=torch.float32)
    return (noise * scale * std_of.float().std()).to(device=weight.device, dtype=weight.dtype)


def check_noise(noise: float, generator: torch.Generator | None) -> None:
    """Raise ValueError for negative `noise`, or positive `noise` without a `generator`."""
    if not noise >= 0:
        raise ValueError(f"Expected `noise` >= 0, got {noise}")
    if noise > 0 and generator is None:
        raise ValueError("`noise` > 0 needs an explicit `generator` (no hidden default seed)")
