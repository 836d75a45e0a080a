"""The DenseNet space's surrogate accuracy: a cheap, known stand-in for child training.

The plain CNN's is :func:`eas_gym.surrogate.surrogate_accuracy`; both saturate toward 0.95 as
the network grows, so the surrogate env's optimum is known.
"""

from __future__ import annotations

import math

from eas_gym.densenet.arch import DenseArch, DenseSearchSpace

__all__ = ["dense_surrogate_accuracy"]


def dense_surrogate_accuracy(arch: DenseArch, space: DenseSearchSpace) -> float:
    """A deterministic accuracy in (0.1, 0.95) that grows with the growth rates and units.

    >>> from eas_gym.densenet import DENSE_SMALL_SPACE, DENSE_SMALL_START
    >>> 0.1 < dense_surrogate_accuracy(DENSE_SMALL_START, DENSE_SMALL_SPACE) < 0.5
    True
    """
    score = 0.0
    for block in arch.blocks:
        width = sum(block) / len(block) / space.growths[-1]
        depth = len(block) / space.max_units_per_block
        score += math.sqrt(width * depth)
    return 0.1 + 0.85 * math.tanh(1.5 * score / arch.num_blocks)
