"""Observation and action encoding and masks for the DenseNet space (pure functions).

The DenseNet space reuses the plain CNN's layout (:mod:`eas_gym.spaces`), so every agent that
handles one handles the other unchanged. With ``B`` dense blocks there are
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

from eas_gym.densenet.arch import DenseArch, DenseSearchSpace
from eas_gym.spaces import WIDER, Decoded

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

UNIT, TRANSITION = 1, 2


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
    return spaces.Dict(
        {
            "kind": spaces.MultiDiscrete(np.full(slots, 4, dtype=np.int64)),
            "width": spaces.MultiDiscrete(np.full(slots, len(space.growths), dtype=np.int64)),
            "kernel": spaces.MultiDiscrete(np.ones(slots, dtype=np.int64)),
            "num_layers": spaces.Discrete(slots + 1),
            "step_kind": spaces.Discrete(2),
            "steps_left": spaces.Discrete(num_steps + 1),
        }
    )


def action_space(space: DenseSearchSpace, num_blocks: int) -> spaces.MultiDiscrete:
    """``MultiDiscrete([2] * L + [L, 1])``: widen flags, then the unit to duplicate."""
    slots = num_slots(space, num_blocks)
    return spaces.MultiDiscrete(np.array([2] * slots + [slots, 1], np.int64))


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
) -> dict[str, np.ndarray | int]:
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
    return {
        "kind": kind,
        "width": width,
        "kernel": np.zeros(slots, np.int64),
        "num_layers": np.int64(len(filled)),
        "step_kind": np.int64(step_kind),
        "steps_left": np.int64(steps_left),
    }


def legal_widen(arch: DenseArch, space: DenseSearchSpace) -> list[int]:
    """Slots whose unit a wider step can move to its next growth rate."""
    return [
        i
        for i, unit in enumerate(slot_units(arch))
        if unit is not None and space.next_growth(arch.blocks[unit[0]][unit[1]]) is not None
    ]


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
    slots = num_slots(space, arch.num_blocks)
    flags = [np.array([1, 0], np.int8) for _ in range(slots)]
    position = np.zeros(slots, np.int8)
    if step_kind == WIDER:
        for i in legal_widen(arch, space):
            flags[i] = np.array([1, 1], np.int8)
        position[0] = 1
    else:
        legal = legal_deepen(arch, space)
        position[legal if legal else [0]] = 1
    return (*flags, position, np.ones(1, np.int8))


def decode_action(
    action: np.ndarray, arch: DenseArch, space: DenseSearchSpace, step_kind: int
) -> Decoded:
    """Decode an action (already checked to be in the action space) for `arch`.

    ``Decoded.widths`` maps slots to new growth rates; ``Decoded.layer`` is the slot of the
    unit to duplicate (use :func:`slot_units` for its block and index); ``kernel`` is None.
    """
    slots = num_slots(space, arch.num_blocks)
    units = slot_units(arch)
    if step_kind == WIDER:
        flagged = [i for i in range(slots) if action[i]]
        legal = set(legal_widen(arch, space))
        widths = {}
        for i in flagged:
            if i in legal:
                b, u = units[i]
                widths[i] = space.next_growth(arch.blocks[b][u])
        return Decoded(widths, None, None, illegal=len(widths) != len(flagged))
    slot = int(action[slots])
    legal = legal_deepen(arch, space)
    if slot not in legal:  # with no legal slot at all, slot 0 is the mask's no-op
        return Decoded({}, None, None, illegal=bool(legal) or slot != 0)
    return Decoded({}, slot, None, False)
