"""Observation and action encoding and masks for the DenseNet space (pure functions).

The DenseNet space uses the layout both families share (:mod:`eas_gym.net2net`), so every agent
that handles the plain CNN handles DenseNet unchanged. With ``B`` dense blocks there are
``L = space.max_units + B - 1`` slots, filled in network order: one per unit and one per
transition.

* observation ``Dict``: ``kind`` (0 padding, 1 unit, 2 transition; 3, the plain CNN's FC, never
  occurs), ``width`` (a unit's growth-rate index in ``space.growths``; 0 for transitions),
  ``kernel`` (always 0: a unit's 3x3 conv is fixed), ``num_layers`` (filled slots),
  ``step_kind`` and ``steps_left``.
* action ``MultiDiscrete([2] * L + [L, 1])``: entries ``0..L-1`` widen the unit in slot ``i`` to
  the next growth rate; entry ``L`` deepens by inserting a copy of the unit in that slot right
  after it; entry ``L + 1`` is a kernel choice with one value.

Transitions split the slots into blocks the way pools split a plain CNN, so "insert after slot
i" is the paper's (block, position) decision: the REINFORCE controller decodes it as the block,
then the position in the block.
"""

from __future__ import annotations

import bisect

import numpy as np
from gymnasium import spaces

from eas_gym import net2net
from eas_gym.densenet.arch import DenseArch, DenseSearchSpace
from eas_gym.net2net import WIDER, Decoded, LayerKind, Observation

__all__ = [
    "UNIT",
    "TRANSITION",
    "num_slots",
    "slot_units",
    "observation_space",
    "action_space",
    "check_arch_in_space",
    "encode_observation",
    "legal_widen",
    "legal_deepen",
    "action_mask",
    "decode_action",
]

UNIT, TRANSITION = LayerKind.CONV, LayerKind.POOL
"""A unit's and a transition's ``kind``: a controller reads them as a conv and a pool."""


def num_slots(space: DenseSearchSpace, num_blocks: int) -> int:
    """Slots of a search with `num_blocks` dense blocks: every unit and every transition."""
    return space.max_units + num_blocks - 1


def slot_units(arch: DenseArch) -> list[tuple[int, int] | None]:
    """``(block, unit)`` of each filled slot in network order; None for a transition."""
    slots: list[tuple[int, int] | None] = []
    for b, block in enumerate(arch.blocks):
        if b:
            slots.append(None)
        slots += [(b, u) for u in range(len(block))]
    return slots


def observation_space(space: DenseSearchSpace, num_blocks: int, num_steps: int) -> spaces.Dict:
    """The observation space for searches with `num_blocks` blocks and `num_steps` steps."""
    slots = num_slots(space, num_blocks)
    return net2net.observation_space(slots, len(space.growths), 1, num_steps)


def action_space(space: DenseSearchSpace, num_blocks: int) -> spaces.MultiDiscrete:
    """``MultiDiscrete([2] * L + [L, 1])``: widen flags, then the unit to duplicate."""
    return net2net.action_space(num_slots(space, num_blocks), 1)


def check_arch_in_space(arch: DenseArch, space: DenseSearchSpace) -> None:
    """Raise ValueError unless `arch` is within the space's limits with listed growth rates."""
    if not space.contains(arch):
        raise ValueError(
            f"`start_net` {arch} exceeds the space's limits: at most "
            f"{space.max_units_per_block} units a block and {space.max_units} in all"
        )
    for b, block in enumerate(arch.blocks):
        for u, k in enumerate(block):
            if k not in space.growths:
                raise ValueError(
                    f"`start_net` block {b} unit {u} growth rate {k} not in {space.growths}"
                )


def encode_observation(
    arch: DenseArch, space: DenseSearchSpace, step_kind: int, steps_left: int
) -> Observation:
    """The observation of `arch` before a step of `step_kind` with `steps_left` steps to go."""
    slots = num_slots(space, arch.num_blocks)
    kind = np.zeros(slots, np.int64)
    width = np.zeros(slots, np.int64)
    filled = slot_units(arch)
    for i, unit in enumerate(filled):
        if unit is None:
            kind[i] = TRANSITION
        else:
            kind[i] = UNIT
            width[i] = bisect.bisect_left(space.growths, arch.blocks[unit[0]][unit[1]])
    kernel = np.zeros(slots, np.int64)
    return net2net.observation(kind, width, kernel, len(filled), step_kind, steps_left)


def legal_widen(arch: DenseArch, space: DenseSearchSpace) -> list[int]:
    """Slots whose unit a wider step can move to its next growth rate."""
    return list(_widen_targets(arch, space))


def legal_deepen(arch: DenseArch, space: DenseSearchSpace) -> list[int]:
    """Slots whose unit a deeper step can duplicate within the space's limits."""
    if arch.num_units >= space.max_units:
        return []
    return [
        i
        for i, unit in enumerate(slot_units(arch))
        if unit is not None and len(arch.blocks[unit[0]]) < space.max_units_per_block
    ]


def action_mask(arch: DenseArch, space: DenseSearchSpace, step_kind: int) -> tuple[np.ndarray, ...]:
    """Legal values of each action entry (as in :func:`eas_gym.spaces.action_mask`).

    If a deeper step has no legal slot, slot 0 stays allowed and the step is a no-op.
    """
    legal = legal_widen(arch, space) if step_kind == WIDER else legal_deepen(arch, space)
    return net2net.step_mask(step_kind, legal, num_slots(space, arch.num_blocks), 1)


def decode_action(
    action: np.ndarray, arch: DenseArch, space: DenseSearchSpace, step_kind: int
) -> Decoded:
    """Decode an action (already checked to be in the action space) for `arch`.

    ``Decoded.widths`` maps slots to new growth rates; ``Decoded.layer`` is the slot of the
    unit to duplicate (use :func:`slot_units` for its block and index); ``kernel`` is None.
    """
    slots = num_slots(space, arch.num_blocks)
    if step_kind == WIDER:
        return net2net.decode_wider(action, slots, _widen_targets(arch, space))
    legal = legal_deepen(arch, space)
    return net2net.decode_deeper(action, slots, legal, lambda slot, kernel: None)


def _widen_targets(arch: DenseArch, space: DenseSearchSpace) -> dict[int, int]:
    """``{slot: next growth rate}`` of the units a wider step can widen."""
    targets = {}
    for i, unit in enumerate(slot_units(arch)):
        growth = None if unit is None else space.next_growth(arch.blocks[unit[0]][unit[1]])
        if growth is not None:
            targets[i] = growth
    return targets
