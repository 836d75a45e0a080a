"""A cheap, known stand-in for child training: accuracy as a smooth function of the architecture.

Used by the ``EAS-Surrogate-v0`` id: tests, CI and agent learning tests get an environment whose
reward needs no training and whose optimum is known (wide and deep, in every block). The
DenseNet counterpart is :mod:`eas_gym.densenet.surrogate`.
"""

from __future__ import annotations

import math

from eas_gym.arch import FC, Arch, Conv, SearchSpace

__all__ = ["surrogate_accuracy"]


def surrogate_accuracy(arch: Arch, space: SearchSpace) -> float:
    """A deterministic accuracy in (0.1, 0.95) that grows with width and depth, saturating.

    Each conv block contributes by its depth and its mean width relative to the space's
    maximum, so growing any block helps, and balanced growth helps most.

    >>> from eas_gym.arch import SMALL_SPACE, SMALL_START
    >>> 0.1 < surrogate_accuracy(SMALL_START, SMALL_SPACE) < 0.5
    True
    """
    blocks = [b for b in arch.block_indices[:-1] if b]
    score = 0.0
    for block in blocks:
        convs = [arch.layers[i] for i in block]  # a conv block holds convs only
        widths = [layer.filters for layer in convs if isinstance(layer, Conv)]
        width = sum(widths) / len(widths) / space.filters[-1]
        depth = len(block) / space.max_layers_per_block
        score += math.sqrt(width * depth)
    score /= max(len(blocks), 1)
    hidden = [arch.layers[i] for i in arch.block_indices[-1]]  # the FC block
    units = sum(layer.units for layer in hidden if isinstance(layer, FC))
    fc = units / (space.units[-1] * space.max_layers_per_block)
    return 0.1 + 0.85 * math.tanh(2.0 * score + 0.3 * fc)
