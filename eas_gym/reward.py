"""Rewards: the paper's ``tan(acc * pi / 2)``, raw accuracy, and an optional cost penalty."""

from __future__ import annotations

import math

__all__ = ["REWARDS", "COSTS", "ACC_CLIP", "reward"]

REWARDS = ("tan", "acc")
"""Shapes accepted by :func:`reward`."""

COSTS = ("params", "flops")
"""Cost measures accepted by :func:`reward`."""

ACC_CLIP = 0.999
"""Accuracy is clipped here before ``tan`` so the reward stays finite (tan(0.999 pi/2) ~ 636)."""


def reward(
    accuracy: float,
    *,
    shape: str = "tan",
    cost: float | None = None,
    reference_cost: float | None = None,
    cost_weight: float = 0.0,
) -> float:
    """Reward of a network with validation `accuracy` in [0, 1].

    ``R = f(acc) - cost_weight * log(cost / reference_cost)`` with ``f(acc) = tan(acc * pi / 2)``
    (Cai et al., 2018; accuracy clipped to :data:`ACC_CLIP`) or ``f(acc) = acc``. The cost term
    is off unless ``cost_weight > 0``; it is zero at the reference (the start network).

    >>> round(reward(0.5), 6)
    1.0
    >>> reward(0.9, shape="acc")
    0.9
    """
    if shape not in REWARDS:
        raise ValueError(f"`shape` must be one of {REWARDS}, got {shape!r}")
    if not 0.0 <= accuracy <= 1.0:
        raise ValueError(f"`accuracy` must be in [0, 1], got {accuracy}")
    value = math.tan(min(accuracy, ACC_CLIP) * math.pi / 2) if shape == "tan" else accuracy
    if cost_weight:
        if not cost or not reference_cost or cost <= 0 or reference_cost <= 0:
            raise ValueError(
                f"`cost` and `reference_cost` must be positive when `cost_weight` is set, got "
                f"{cost} and {reference_cost}"
            )
        value -= cost_weight * math.log(cost / reference_cost)
    return value
