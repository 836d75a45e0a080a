"""The DenseNet family: DenseNet-BC behind the :class:`~eas_gym.net2net.Family` interface."""

from __future__ import annotations

import functools

import numpy as np
import torch
from gymnasium import spaces

from eas_gym.densenet import spaces as dense
from eas_gym.densenet.arch import DenseArch, DenseSearchSpace
from eas_gym.densenet.morph import (
    dense_deeper,
    dense_deeper_arch,
    dense_widen_units,
    dense_widen_units_arch,
)
from eas_gym.densenet.net import DenseNet, build_dense_net
from eas_gym.densenet.surrogate import dense_surrogate_accuracy
from eas_gym.net2net import WIDER_NOISE, Decoded, Family, Observation, StateDict, Transforms

__all__ = ["DenseFamily"]


class DenseFamily(Family[DenseArch, DenseSearchSpace]):
    """DenseNet-BC: dense blocks of units joined by transitions (:mod:`eas_gym.densenet`)."""

    def parse(self, net: str, num_classes: int) -> DenseArch:
        return DenseArch.from_string(net, num_classes=num_classes)

    def check(self, arch: DenseArch) -> None:
        dense.check_arch_in_space(arch, self.space)

    def observation_space(self, start: DenseArch, num_steps: int) -> spaces.Dict:
        return dense.observation_space(self.space, start.num_blocks, num_steps)

    def action_space(self, start: DenseArch) -> spaces.MultiDiscrete:
        return dense.action_space(self.space, start.num_blocks)

    def encode(self, arch: DenseArch, step_kind: int, steps_left: int) -> Observation:
        return dense.encode_observation(arch, self.space, step_kind, steps_left)

    def mask(self, arch: DenseArch, step_kind: int) -> tuple[np.ndarray, ...]:
        return dense.action_mask(arch, self.space, step_kind)

    def decode(self, action: np.ndarray, arch: DenseArch, step_kind: int) -> Decoded:
        return dense.decode_action(action, arch, self.space, step_kind)

    def apply(
        self,
        decoded: Decoded,
        arch: DenseArch,
        state: StateDict,
        *,
        noise: bool,
        generator: torch.Generator,
        probe: torch.Tensor,
    ) -> tuple[DenseArch, StateDict, Transforms]:
        units = dense.slot_units(arch)
        # The DenseNet transforms copy units (no identity layer), so both take Net2Wider's noise.
        amount = WIDER_NOISE if noise else 0.0
        if decoded.widths:
            growths = {_unit(units, i): k for i, k in decoded.widths.items()}
            arch, state = dense_widen_units(
                arch, state, growths, space=self.space, noise=amount, generator=generator
            )
            records = [
                {"block": b, "unit": u, "growth": k} for (b, u), k in sorted(growths.items())
            ]
            return arch, state, [{"op": "wider", "units": records}]
        if decoded.layer is not None:
            block, unit = _unit(units, decoded.layer)
            arch, state = dense_deeper(
                arch,
                state,
                block,
                unit + 1,
                source=unit,
                space=self.space,
                noise=amount,
                generator=generator,
            )
            record = {"op": "deeper", "block": block, "position": unit + 1, "source": unit}
            return arch, state, [record]
        return arch, state, []

    def apply_arch(self, decoded: Decoded, arch: DenseArch) -> tuple[DenseArch, Transforms]:
        units = dense.slot_units(arch)
        if decoded.widths:
            growths = {_unit(units, i): k for i, k in decoded.widths.items()}
            arch = dense_widen_units_arch(arch, growths, space=self.space)
            records = [
                {"block": b, "unit": u, "growth": k} for (b, u), k in sorted(growths.items())
            ]
            return arch, [{"op": "wider", "units": records}]
        if decoded.layer is not None:
            block, unit = _unit(units, decoded.layer)
            arch = dense_deeper_arch(arch, block, unit + 1, source=unit, space=self.space)
            record = {"op": "deeper", "block": block, "position": unit + 1, "source": unit}
            return arch, [record]
        return arch, []

    def surrogate(self, arch: DenseArch) -> float:
        return _dense_surrogate_accuracy(arch, self.space)

    def build(
        self,
        arch: DenseArch,
        state: StateDict | None = None,
        *,
        generator: torch.Generator | None = None,
    ) -> DenseNet:
        return build_dense_net(arch, state, generator=generator)


def _unit(units: list[tuple[int, int] | None], slot: int) -> tuple[int, int]:
    """``(block, unit)`` of a decoded slot (decoding only yields slots that hold a unit)."""
    unit = units[slot]
    if unit is None:
        raise ValueError(f"slot {slot} is a transition, not a unit")
    return unit


# The weightless ids score the same networks again and again: the formula is pure.
_dense_surrogate_accuracy = functools.lru_cache(maxsize=2**16)(dense_surrogate_accuracy)
