"""Observation and action encoding, step schedules and action masks (pure functions).

Layout for a space with ``L = max_layers`` layer slots and ``K`` kernels (the layout both
families share, :mod:`eas_gym.net2net`):

* observation, a flat ``Dict`` (stable-baselines3 accepts it):
  ``kind`` (``MultiDiscrete([4] * L)``: 0 padding, 1 conv, 2 pool, 3 FC; see ``LayerKind``),
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
import functools

import numpy as np
from gymnasium import spaces

from eas_gym import net2net
from eas_gym.arch import FC, Arch, Conv, Pool, SearchSpace
from eas_gym.net2net import DEEPER, WIDER, Decoded, LayerKind, Observation, parse_schedule

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

_KIND = {Conv: LayerKind.CONV, Pool: LayerKind.POOL, FC: LayerKind.FC}


def observation_space(space: SearchSpace, num_steps: int) -> spaces.Dict:
    """The observation space for `space` and an episode of `num_steps` steps."""
    num_widths = max(len(space.filters), len(space.units))
    return net2net.observation_space(space.max_layers, num_widths, len(space.kernels), num_steps)


def action_space(space: SearchSpace) -> spaces.MultiDiscrete:
    """``MultiDiscrete([2] * L + [L, K])``: widen flags, then insert position and kernel."""
    return net2net.action_space(space.max_layers, len(space.kernels))


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
) -> Observation:
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
    return net2net.observation(kind, width, kernel, len(arch.layers), step_kind, steps_left)


def legal_widen(arch: Arch, space: SearchSpace) -> list[int]:
    """Layers that a wider step can move to their next width."""
    return list(_widen_targets(arch, space))


def legal_deepen(arch: Arch, space: SearchSpace) -> list[int]:
    """Layers after which a deeper step can insert a layer within the space's limits."""
    return list(_deepen_positions(arch, space))


# A step's mask and the next step's decoding ask about the same network: computed once.
@functools.lru_cache(maxsize=4096)
def _deepen_positions(arch: Arch, space: SearchSpace) -> tuple[int, ...]:
    if len(arch.layers) >= space.max_layers:
        return ()
    legal: list[int] = []
    for block in arch.block_indices:
        if len(block) < space.max_layers_per_block:
            legal += block
    return tuple(sorted(legal))


def action_mask(arch: Arch, space: SearchSpace, step_kind: int) -> tuple[np.ndarray, ...]:
    """Legal values of each action entry, as ``MultiDiscrete.sample(mask=...)`` takes them.

    Entries a step does not read allow only 0. If a deeper step has no legal position, position
    0 stays allowed and the step is a no-op (see ``EASEnv``). Flatten with ``np.concatenate``
    for sb3-contrib's MaskablePPO.
    """
    legal = legal_widen(arch, space) if step_kind == WIDER else legal_deepen(arch, space)
    return net2net.step_mask(step_kind, legal, space.max_layers, len(space.kernels))


def decode_action(action: np.ndarray, arch: Arch, space: SearchSpace, step_kind: int) -> Decoded:
    """Decode an action (already checked to be in the action space) for `arch`."""
    if step_kind == WIDER:
        return net2net.decode_wider(action, space.max_layers, _widen_targets(arch, space))

    def kernel_of(layer: int, index: int) -> int | None:
        return space.kernels[index] if isinstance(arch.layers[layer], Conv) else None

    return net2net.decode_deeper(action, space.max_layers, legal_deepen(arch, space), kernel_of)


def _widen_targets(arch: Arch, space: SearchSpace) -> dict[int, int]:
    """``{layer: next width}`` of the layers a wider step can widen."""
    return dict(_widen_pairs(arch, space))


@functools.lru_cache(maxsize=4096)
def _widen_pairs(arch: Arch, space: SearchSpace) -> tuple[tuple[int, int], ...]:
    pairs = []
    for i, layer in enumerate(arch.layers):
        width = None if isinstance(layer, Pool) else space.next_width(layer)
        if width is not None:
            pairs.append((i, width))
    return tuple(pairs)
