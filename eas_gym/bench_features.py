"""EAS-Bench's description of a network: a fixed-length feature vector of a small-space arch.

What the surrogate (:mod:`eas_gym.bench`) reads, and what ``benchmarks/bench_fit.py`` fits on.
A model file names the features it uses, so a model fitted on a subset keeps working when
features are added here (a renamed or removed one makes :meth:`eas_gym.bench.BenchModel.load`
refuse the file). This module imports neither torch nor gymnasium.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from eas_gym.arch import FC, SMALL_SPACE, Arch, Conv, Pool

__all__ = [
    "IMAGE_SIZE",
    "NUM_BLOCKS",
    "NUM_SLOTS",
    "arch_features",
    "as_bench_arch",
    "check_start_accuracy",
    "feature_names",
    "features_matrix",
]

NUM_SLOTS = SMALL_SPACE.max_layers
"""Layer slots of the per-layer features: the small space's ``max_layers`` (pools included)."""
NUM_CONV_BLOCKS = 4
NUM_BLOCKS = NUM_CONV_BLOCKS + 1
"""Blocks described one by one: the four conv blocks of the ``-v2`` start net (its three pools
are fixed: no transform adds or removes one), then the FC block."""
IMAGE_SIZE = 16
"""Input side of ``-v2``'s images, for the FLOPs feature."""

_KIND = {Conv: 1.0, Pool: 2.0, FC: 3.0}
_SLOT_FIELDS = ("kind", "width", "kernel")
_BLOCK_FIELDS = ("layers", "min_width", "mean_width", "max_width", "out_width", "k1", "k5", "rf")
_GLOBAL_FIELDS = (
    "depth",
    "convs",
    "fcs",
    "params",
    "log_params",
    "flops",
    "log_flops",
    "receptive_field",
    "min_conv_width",
    "start_accuracy",
)


def feature_names() -> list[str]:
    """Names of the entries of :func:`arch_features`, in order.

    >>> names = feature_names()
    >>> len(names) == len(set(names)), names[:3], names[-1]
    (True, ['slot0_kind', 'slot0_width', 'slot0_kernel'], 'start_accuracy')
    """
    names = [f"slot{i}_{f}" for i in range(NUM_SLOTS) for f in _SLOT_FIELDS]
    names += [f"block{b}_{f}" for b in range(NUM_BLOCKS) for f in _BLOCK_FIELDS]
    return names + list(_GLOBAL_FIELDS)


def arch_features(arch: Arch | str, start_accuracy: float) -> np.ndarray:
    """A fixed-length float64 description of a small-space network for the surrogate.

    Three parts: per layer slot (padded to :data:`NUM_SLOTS` with zeros) its kind (1 conv,
    2 pool, 3 FC), width and kernel; per block (four conv blocks, then the FC block) its layer
    count, min/mean/max/output width, counts of 1x1 and 5x5 kernels and receptive-field growth
    in input pixels; then depth, conv and FC counts, parameters and FLOPs at 16x16 (raw and
    log10), the receptive field, the narrowest conv, and the start network's accuracy.

    Args:
        arch: The network, or its net string.
        start_accuracy: Validation accuracy in [0, 1] of the start network it grew from.

    Returns:
        A vector of ``len(feature_names())`` entries.

    Raises:
        ValueError: If `arch` is outside the space (:func:`as_bench_arch`) or `start_accuracy`
            is not in [0, 1].

    >>> arch_features("C4-3 MP C4-3 MP C4-3 MP C4-3 GAP FC8", 0.36).shape == (len(feature_names()),)
    True
    """
    arch = as_bench_arch(arch)
    start_accuracy = check_start_accuracy(start_accuracy)
    # one pass over the layers (Arch's cost methods rescan them per layer: 10x slower)
    slots = np.zeros((NUM_SLOTS, len(_SLOT_FIELDS)))
    blocks: list[list[tuple[int, int]]] = [[]]  # per block: (width, kernel; 0 for FC)
    cin, side, params, flops = arch.in_channels, IMAGE_SIZE, 0, 0
    for i, layer in enumerate(arch.layers):
        if isinstance(layer, Pool):
            slots[i, 0] = _KIND[Pool]
            side //= 2
            blocks.append([])
            continue
        if isinstance(layer, Conv):
            width, kernel = layer.filters, layer.kernel
            params += kernel * kernel * cin * width + 2 * width
            flops += side * side * kernel * kernel * cin * width
        else:
            if len(blocks) == NUM_CONV_BLOCKS:  # the first FC opens the FC block
                blocks.append([])
            width, kernel = layer.units, 0
            params += cin * width + 2 * width
            flops += cin * width
        slots[i] = (_KIND[type(layer)], width, kernel)
        blocks[-1].append((width, kernel))
        cin = width
    params += (cin + 1) * arch.num_classes
    flops += cin * arch.num_classes
    if len(blocks) == NUM_CONV_BLOCKS:
        blocks.append([])  # no FC layer
    block_rows = np.zeros((NUM_BLOCKS, len(_BLOCK_FIELDS)))
    receptive = 1
    for b, block in enumerate(blocks):
        if not block:
            continue
        widths = [w for w, _ in block]
        kernels = [k for _, k in block if k]
        growth = sum(k - 1 for k in kernels) * 2**b  # input pixels a block-b conv adds
        receptive += growth
        block_rows[b] = (
            len(block),
            min(widths),
            sum(widths) / len(widths),
            max(widths),
            widths[-1],
            kernels.count(1),
            kernels.count(5),
            growth,
        )
    convs = sum(len(block) for block in blocks[:-1])
    whole = (
        convs + len(blocks[-1]),
        convs,
        len(blocks[-1]),
        params,
        math.log10(params),
        flops,
        math.log10(flops),
        receptive,
        min(w for block in blocks[:-1] for w, _ in block),
        start_accuracy,
    )
    return np.concatenate([slots.ravel(), block_rows.ravel(), np.asarray(whole, dtype=float)])


def features_matrix(archs: Sequence[Arch | str], start_accuracy: float) -> np.ndarray:
    """:func:`arch_features` of each network, stacked: shape ``(len(archs), num_features)``."""
    if not archs:
        return np.zeros((0, len(feature_names())))
    return np.stack([arch_features(a, start_accuracy) for a in archs])


def as_bench_arch(arch: Arch | str) -> Arch:
    """`arch` (parsed if a net string), checked to lie in EAS-Bench's space.

    The space is ``-v2``'s: the small space (at most 20 layers, 4 per block), four conv blocks,
    CIFAR-10's 10 classes and 3 input channels.

    Raises:
        TypeError: If `arch` is neither an :class:`~eas_gym.arch.Arch` nor a str.
        ValueError: If it is a bad net string or lies outside the space.
    """
    if isinstance(arch, str):
        arch = Arch.from_string(arch)
    if not isinstance(arch, Arch):
        raise TypeError(f"Expected `arch` to be an Arch or a net string, got {type(arch).__name__}")
    if not SMALL_SPACE.contains(arch) or arch.num_pools != NUM_CONV_BLOCKS - 1:
        raise ValueError(
            f"`arch` {arch.to_string()!r} is outside EAS-Bench's space: the small space "
            f"(at most {SMALL_SPACE.max_layers} layers, {SMALL_SPACE.max_layers_per_block} per "
            f"block) with {NUM_CONV_BLOCKS} conv blocks"
        )
    if arch.num_classes != 10 or arch.in_channels != 3:
        raise ValueError(
            "`arch` must have 10 classes and 3 input channels (CIFAR-10), got "
            f"{arch.num_classes} and {arch.in_channels}"
        )
    return arch


def check_start_accuracy(value: object) -> float:
    """`value` as a float, checked to be a real number in [0, 1] (a start network's accuracy).

    Raises:
        TypeError: If it is not a real number.
        ValueError: If it is outside [0, 1] (or NaN).
    """
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating | np.integer):
        raise TypeError(f"Expected `start_accuracy` to be a float, got {value!r}")
    if not 0.0 <= float(value) <= 1.0:  # NaN fails too
        raise ValueError(f"Expected 0 <= `start_accuracy` <= 1, got {value}")
    return float(value)
