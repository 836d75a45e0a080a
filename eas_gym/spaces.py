"""Observation and action encoding, step schedules and action masks (pure functions).

Layout for a space with ``L = max_layers`` layer slots and ``K`` kernels:

* observation, a flat ``Dict`` (stable-baselines3 accepts it):
  ``kind`` (``MultiDiscrete([4] * L)``: 0 padding, 1 conv, 2 pool, 3 FC),
  ``width`` (``MultiDiscrete([W] * L)``: index in the kind's width list),
  ``kernel`` (``MultiDiscrete([K] * L)``: index in ``space.kernels``; 0 for non-conv),
  ``num_layers`` (``Discrete(L + 1)``), ``step_kind`` (``Discrete(2)``: 0 wider, 1 deeper),
  ``steps_left`` (``Discrete(T + 1)``).
* action, one ``MultiDiscrete([2] * L + [L, K])``: entries ``0..L-1`` are the wider step's
  "widen layer i to the next width" flags; entry ``L`` is the deeper step's "insert after layer"
  and entry ``L + 1`` its kernel index. A step reads only the entries of its kind.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

import numpy as np
from gymnasium import spaces

from eas_gym.arch import FC, Arch, Conv, Pool, SearchSpace

__all__ = [
    "WIDER",
    "DEEPER",
    "Decoded",
    "parse_schedule",
    "observation_space",
    "action_space",
    "encode_observation",
    "legal_widen",
    "legal_deepen",
    "action_mask",
    "decode_action",
    "check_arch_in_space",
]

WIDER, DEEPER = 0, 1
_KIND = {Conv: 1, Pool: 2, FC: 3}


def parse_schedule(schedule: str) -> tuple[int, ...]:
    """``"WWWWDDDDD"`` (the paper: 4 wider then 5 deeper steps) -> step kinds.

    >>> parse_schedule("WWD")
    (0, 0, 1)
    """
    if not isinstance(schedule, str) or not schedule or set(schedule.upper()) - {"W", "D"}:
        raise ValueError(
            f"`schedule` must be a non-empty string of 'W' (wider) and 'D' (deeper) steps, "
            f"got {schedule!r}"
        )
    return tuple(WIDER if c == "W" else DEEPER for c in schedule.upper())


def observation_space(space: SearchSpace, num_steps: int) -> spaces.Dict:
    """The observation space for `space` and an episode of `num_steps` steps."""
    slots = space.max_layers
    num_widths = max(len(space.filters), len(space.units))
    return spaces.Dict(
        {
            "kind": spaces.MultiDiscrete(np.full(slots, 4, dtype=np.int64)),
            "width": spaces.MultiDiscrete(np.full(slots, num_widths, dtype=np.int64)),
            "kernel": spaces.MultiDiscrete(np.full(slots, len(space.kernels), dtype=np.int64)),
            "num_layers": spaces.Discrete(slots + 1),
            "step_kind": spaces.Discrete(2),
            "steps_left": spaces.Discrete(num_steps + 1),
        }
    )


def action_space(space: SearchSpace) -> spaces.MultiDiscrete:
    """``MultiDiscrete([2] * L + [L, K])``: widen flags, then insert position and kernel."""
    slots = space.max_layers
    return spaces.MultiDiscrete(np.array([2] * slots + [slots, len(space.kernels)], np.int64))


def check_arch_in_space(arch: Arch, space: SearchSpace) -> None:
    """Raise ValueError unless every width and kernel of `arch` is on the space's lists."""
    if not space.contains(arch):
        raise ValueError(f"`start_net` {arch} exceeds the space's layer limits")
    for i, layer in enumerate(arch.layers):
        if isinstance(layer, Pool):
            continue
        if arch.width(i) not in space.widths(layer):
            raise ValueError(
                f"`start_net` layer {i} width {arch.width(i)} not in {space.widths(layer)}"
            )
        if isinstance(layer, Conv) and layer.kernel not in space.kernels:
            raise ValueError(f"`start_net` layer {i} kernel {layer.kernel} not in {space.kernels}")


def encode_observation(
    arch: Arch, space: SearchSpace, step_kind: int, steps_left: int
) -> dict[str, np.ndarray | int]:
    """The observation of `arch` before a step of `step_kind` with `steps_left` steps to go."""
    slots = space.max_layers
    kind = np.zeros(slots, np.int64)
    width = np.zeros(slots, np.int64)
    kernel = np.zeros(slots, np.int64)
    for i, layer in enumerate(arch.layers):
        kind[i] = _KIND[type(layer)]
        if not isinstance(layer, Pool):
            width[i] = bisect.bisect_left(space.widths(layer), arch.width(i))
        if isinstance(layer, Conv):
            kernel[i] = bisect.bisect_left(space.kernels, layer.kernel)
    return {
        "kind": kind,
        "width": width,
        "kernel": kernel,
        "num_layers": np.int64(len(arch.layers)),
        "step_kind": np.int64(step_kind),
        "steps_left": np.int64(steps_left),
    }


def legal_widen(arch: Arch, space: SearchSpace) -> list[int]:
    """Layers that a wider step can move to their next width."""
    return [
        i
        for i, layer in enumerate(arch.layers)
        if not isinstance(layer, Pool) and space.next_width(layer) is not None
    ]


def legal_deepen(arch: Arch, space: SearchSpace) -> list[int]:
    """Layers after which a deeper step can insert a layer within the space's limits."""
    if len(arch.layers) >= space.max_layers:
        return []
    legal = []
    for block in arch.blocks():
        if len(block) < space.max_layers_per_block:
            legal += block
    return sorted(legal)


def action_mask(arch: Arch, space: SearchSpace, step_kind: int) -> tuple[np.ndarray, ...]:
    """Legal values of each action entry, as ``MultiDiscrete.sample(mask=...)`` takes them.

    Entries a step does not read allow only 0. If a deeper step has no legal position, position
    0 stays allowed and the step is a no-op (see ``EASEnv``). Flatten with ``np.concatenate``
    for sb3-contrib's MaskablePPO.
    """
    slots, num_kernels = space.max_layers, len(space.kernels)
    flags = [np.array([1, 0], np.int8) for _ in range(slots)]
    position = np.zeros(slots, np.int8)
    kernel = np.zeros(num_kernels, np.int8)
    if step_kind == WIDER:
        for i in legal_widen(arch, space):
            flags[i] = np.array([1, 1], np.int8)
        position[0] = kernel[0] = 1
    else:
        legal = legal_deepen(arch, space)
        position[legal if legal else [0]] = 1
        kernel[:] = 1
    return (*flags, position, kernel)


@dataclass(frozen=True)
class Decoded:
    """A decoded action: what to apply, and whether any part of it was illegal.

    Args:
        widths: Wider step: ``{layer: new_width}`` of the legal flagged layers.
        layer: Deeper step: insert after this layer (None when illegal: a no-op).
        kernel: Deeper step: kernel of an inserted conv (None after an FC).
        illegal: Some flagged layer or the position could not be applied.
    """

    widths: dict[int, int]
    layer: int | None
    kernel: int | None
    illegal: bool


def decode_action(action: np.ndarray, arch: Arch, space: SearchSpace, step_kind: int) -> Decoded:
    """Decode an action (already checked to be in the action space) for `arch`."""
    slots = space.max_layers
    if step_kind == WIDER:
        flagged = [i for i in range(slots) if action[i]]
        legal = set(legal_widen(arch, space))
        widths = {i: space.next_width(arch.layers[i]) for i in flagged if i in legal}
        return Decoded(widths, None, None, illegal=len(widths) != len(flagged))
    layer = int(action[slots])
    legal = legal_deepen(arch, space)
    if layer not in legal:  # with no legal position at all, position 0 is the mask's no-op
        return Decoded({}, None, None, illegal=bool(legal) or layer != 0)
    kernel = space.kernels[int(action[slots + 1])]
    return Decoded({}, layer, kernel if isinstance(arch.layers[layer], Conv) else None, False)
