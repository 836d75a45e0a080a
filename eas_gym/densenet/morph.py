"""Function-preserving transforms of DenseNets: wider units and deeper blocks, as pure functions.

Both transforms describe a block's new running feature map by a source index per channel: new
channel ``j`` carries the value of old channel ``src[j]``. Every consumer of the map (the
units after the change, then the transition or the final BN) is then rewritten the same way,
which is exact because BN -> ReLU acts per channel: a consumer's new channel ``j`` gets the BN
parameters and running statistics of old channel ``src[j]`` and its 1x1 input weights divided by
the number of new channels that copy ``src[j]``; a channel the old consumer did not read gets
zero weights. When the block's width changes, its transition (``floor(compression * width)``
outputs) widens too, by Net2Wider copies whose consumers in the next block are rewritten in turn,
down to the classifier. That rewrite, shared by both transforms, is
:mod:`eas_gym.densenet.rewrite`.

Inputs are never mutated; tensors a transform does not change are shared between the old and the
new state dict. New tensors follow the device and dtype of the input state. All randomness
comes from the explicit ``generator`` (a CPU ``torch.Generator``).

References:
    Chen, Goodfellow, Shlens. Net2Net: Accelerating Learning via Knowledge Transfer. ICLR 2016.
    Huang, Liu, van der Maaten, Weinberger. Densely Connected Convolutional Networks. CVPR 2017.
    Cai, Chen, Zhang, Yu, Wang. Efficient Architecture Search by Network Transformation. AAAI 2018.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import torch
from torch import Tensor

from eas_gym.densenet.arch import DenseArch, DenseSearchSpace
from eas_gym.densenet.net import unit_key
from eas_gym.densenet.rewrite import (
    get_module,
    get_tensor,
    group_modules,
    remap_bn,
    remap_in,
    rewrite_state,
    widen_rows,
)
from eas_gym.net2net import StateDict, check_noise, relative_noise

__all__ = [
    "dense_wider",
    "dense_widen_units",
    "dense_deeper",
    "dense_wider_arch",
    "dense_widen_units_arch",
    "dense_deeper_arch",
]


# ---- helpers ---------------------------------------------------------------------------------


def _check_int(value: object, label: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"Expected `{label}` to be an int, got {type(value).__name__}")
    return value


def _check_block(arch: DenseArch, block: int) -> None:
    _check_int(block, "block")
    if not 0 <= block < arch.num_blocks:
        raise ValueError(f"`block` {block} out of range: {arch} has {arch.num_blocks} blocks")


def _add_noise(weight: Tensor, noise: float, generator: torch.Generator | None) -> Tensor:
    if noise <= 0:
        return weight
    return weight + relative_noise(weight, noise, generator, weight)


# ---- wider -----------------------------------------------------------------------------------


def dense_wider(
    arch: DenseArch,
    state: StateDict,
    block: int,
    unit: int,
    new_growth: int,
    *,
    space: DenseSearchSpace | None = None,
    noise: float = 0.0,
    generator: torch.Generator | None = None,
) -> tuple[DenseArch, StateDict]:
    """Raise the growth rate of one dense unit (Net2WiderNet for DenseNet, EAS).

    The unit's bottleneck widens from ``bottleneck * k`` to ``bottleneck * new_growth`` filters
    and its 3x3 conv from ``k`` to ``new_growth``, both by copying existing filters (sampled
    with replacement): the bottleneck's BN is copied along, and the 3x3 conv's input weights are
    divided by the copy counts. The unit's new output channels sit next to its old ones in the
    block's feature map; every later unit of the block and the block's transition (or the
    final BN and classifier) read them with copied BN entries and input weights divided by the
    copy counts. A transition whose width ``floor(compression * channels)`` grows gets copied
    output filters too, passed on the same way through the following blocks.

    Invariant: in eval mode the new network's logits equal the old one's when ``noise=0``.
    With ``noise > 0`` Gaussian noise of ``noise * std(weight)`` goes on the copied filters'
    weights only (the paper's Net2Wider uses ``eas_gym.net2net.WIDER_NOISE``).

    Args:
        arch: The architecture.
        state: Its weights (``DenseNet.state_dict()``).
        block: Index of the dense block.
        unit: Index of the unit within the block.
        new_growth: Larger growth rate; with `space`, one of the space's growth rates.
        space: When given, `new_growth` must be in its list.
        noise: Relative noise on the new copies.
        generator: Draws the copied indices and the noise; None copies round-robin (noise 0).

    Returns:
        The widened ``(arch, state)``.

    Raises:
        ValueError: `block` or `unit` is out of range, or `new_growth` is not larger or not in
            the space's list.
    """
    _check_unit(arch, block, unit)
    _check_int(new_growth, "new_growth")
    check_noise(noise, generator)
    new_arch = dense_wider_arch(arch, block, unit, new_growth, space=space)
    old = arch.blocks[block][unit]
    growths = new_arch.blocks[block]

    source = get_module(group_modules(state), unit_key(block, unit))
    # Bottleneck: (4k, Cin, 1, 1) -> (4k', Cin, 1, 1); the 3x3 conv divides by copy counts.
    mid = new_arch.bottleneck_width(block, unit)
    conv1, h = widen_rows(get_tensor(source, "conv1.weight"), mid, noise, generator)
    conv2 = remap_in(get_tensor(source, "conv2.weight"), h)  # (k, 4k', 3, 3)
    conv2, g = widen_rows(conv2, new_growth, noise, generator)  # (k', 4k', 3, 3)
    override = {"conv1.weight": conv1, "conv2.weight": conv2, **remap_bn(source, "norm2.", h)}

    offset = arch.unit_in_channels(block, unit)
    src = torch.cat(
        [
            torch.arange(offset, device="cpu"),
            offset + g,
            torch.arange(offset + old, arch.block_out_channels(block), device="cpu"),
        ]
    )
    counterparts = list(range(len(growths)))
    return new_arch, rewrite_state(
        arch, state, new_arch, block, counterparts, src, {unit: override}, noise, generator
    )


def _check_unit(arch: DenseArch, block: int, unit: int) -> None:
    _check_block(arch, block)
    _check_int(unit, "unit")
    if not 0 <= unit < len(arch.blocks[block]):
        raise ValueError(
            f"`unit` {unit} out of range: block {block} of {arch} has "
            f"{len(arch.blocks[block])} units"
        )


def dense_wider_arch(
    arch: DenseArch,
    block: int,
    unit: int,
    new_growth: int,
    *,
    space: DenseSearchSpace | None = None,
) -> DenseArch:
    """The architecture :func:`dense_wider` makes, without weights (same checks and errors)."""
    _check_unit(arch, block, unit)
    _check_int(new_growth, "new_growth")
    old = arch.blocks[block][unit]
    if new_growth <= old:
        raise ValueError(
            f"`new_growth` {new_growth} must be larger than unit {unit}'s growth {old} in "
            f"block {block}"
        )
    if space is not None and new_growth not in space.growths:
        raise ValueError(f"`new_growth` {new_growth} not in the space's growths {space.growths}")
    growths = list(arch.blocks[block])
    growths[unit] = new_growth
    blocks = arch.blocks[:block] + (tuple(growths),) + arch.blocks[block + 1 :]
    return dataclasses.replace(arch, blocks=blocks)


def dense_widen_units_arch(
    arch: DenseArch,
    growths: Mapping[tuple[int, int], int],
    *,
    space: DenseSearchSpace | None = None,
) -> DenseArch:
    """The architecture :func:`dense_widen_units` makes, without weights."""
    for block, unit in sorted(growths):
        arch = dense_wider_arch(arch, block, unit, growths[block, unit], space=space)
    return arch


def dense_widen_units(
    arch: DenseArch,
    state: StateDict,
    growths: Mapping[tuple[int, int], int],
    *,
    space: DenseSearchSpace | None = None,
    noise: float = 0.0,
    generator: torch.Generator | None = None,
) -> tuple[DenseArch, StateDict]:
    """The paper's wider step: widen several units at once, ``{(block, unit): new_growth}``.

    Applies :func:`dense_wider` in ascending ``(block, unit)`` order; same invariant and errors.
    """
    for block, unit in sorted(growths):
        arch, state = dense_wider(
            arch,
            state,
            block,
            unit,
            growths[block, unit],
            space=space,
            noise=noise,
            generator=generator,
        )
    return arch, state


# ---- deeper ----------------------------------------------------------------------------------


def dense_deeper(
    arch: DenseArch,
    state: StateDict,
    block: int,
    position: int,
    *,
    source: int | None = None,
    space: DenseSearchSpace | None = None,
    noise: float = 0.0,
    generator: torch.Generator | None = None,
) -> tuple[DenseArch, StateDict]:
    """Insert a unit into a dense block by duplicating an existing one (EAS's DenseNet deeper).

    The new unit goes to index `position` of the block and copies unit `source` (at or before
    `position`, so it reads every channel the source reads): the same growth rate, bottleneck,
    BN entries and weights, with zero input weights for the channels it newly sees (outputs of
    units between the source and `position`). Its outputs thus duplicate the source's. Every
    later unit, and the transition or final BN, reads both copies with the source's BN entries
    and half the source's input weights each (in general: divided by the copy count); a unit
    that did not read the source (the source itself, when ``source == position``) gets zero
    weights for the new channels. Later units' state keys shift up by one, and transitions
    widen by copies as in :func:`dense_wider`.

    Invariant: in eval mode the new network's logits equal the old one's when ``noise=0``.
    With ``noise > 0`` Gaussian noise of ``noise * std(weight)`` goes on the new unit's copied
    conv weights and on new transition copies (``eas_gym.net2net.WIDER_NOISE`` suits it: the new
    unit is a copy, not an identity).

    Args:
        arch: The architecture.
        state: Its weights (``DenseNet.state_dict()``).
        block: Index of the dense block.
        position: Index of the new unit in the block, ``0 .. len(block)``.
        source: The unit to copy, ``0 .. min(position, len(block) - 1)``; by default the unit
            just before `position` (unit 0 when `position` is 0).
        space: When given, enforces its ``max_units_per_block`` and ``max_units``.
        noise: Relative noise on the new weights.
        generator: Draws the noise and transition copies; None copies round-robin (noise 0).

    Returns:
        The deepened ``(arch, state)``.

    Raises:
        ValueError: `block`, `position` or `source` is out of range, or the space's limits
            would be exceeded.
    """
    check_noise(noise, generator)
    new_arch = dense_deeper_arch(arch, block, position, source=source, space=space)
    num = len(arch.blocks[block])
    source = max(position - 1, 0) if source is None else source
    k = arch.blocks[block][source]

    copy = get_module(group_modules(state), unit_key(block, source))
    override = {
        "conv1.weight": _add_noise(get_tensor(copy, "conv1.weight"), noise, generator),
        "conv2.weight": _add_noise(get_tensor(copy, "conv2.weight"), noise, generator),
    }
    insert_at = arch.unit_in_channels(block, position)
    offset = arch.unit_in_channels(block, source)
    src = torch.cat(
        [
            torch.arange(insert_at, device="cpu"),
            torch.arange(offset, offset + k, device="cpu"),
            torch.arange(insert_at, arch.block_out_channels(block), device="cpu"),
        ]
    )
    counterparts = list(range(position)) + [source] + list(range(position, num))
    return new_arch, rewrite_state(
        arch, state, new_arch, block, counterparts, src, {position: override}, noise, generator
    )


def dense_deeper_arch(
    arch: DenseArch,
    block: int,
    position: int,
    *,
    source: int | None = None,
    space: DenseSearchSpace | None = None,
) -> DenseArch:
    """The architecture :func:`dense_deeper` makes, without weights (same checks and errors)."""
    _check_block(arch, block)
    num = len(arch.blocks[block])
    _check_int(position, "position")
    if not 0 <= position <= num:
        raise ValueError(
            f"`position` {position} out of range: block {block} of {arch} has {num} units, "
            f"so a new unit goes at 0..{num}"
        )
    source = max(position - 1, 0) if source is None else _check_int(source, "source")
    if not 0 <= source <= min(position, num - 1):
        raise ValueError(
            f"`source` {source} must be an existing unit at or before `position` {position}: "
            f"0..{min(position, num - 1)}"
        )
    if space is not None:
        if num + 1 > space.max_units_per_block:
            raise ValueError(
                f"deepening block {block} gives {num + 1} units, over the space's "
                f"`max_units_per_block` {space.max_units_per_block}"
            )
        if arch.num_units + 1 > space.max_units:
            raise ValueError(
                f"deepening block {block} gives {arch.num_units + 1} units, over the space's "
                f"`max_units` {space.max_units}"
            )

    growths = arch.blocks[block]
    k = growths[source]
    blocks = (
        arch.blocks[:block]
        + (growths[:position] + (k,) + growths[position:],)
        + arch.blocks[block + 1 :]
    )
    return dataclasses.replace(arch, blocks=blocks)
