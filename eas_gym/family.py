"""Architecture families: the plain CNN and DenseNet spaces behind one interface.

A :class:`Family` is what the environment, the scorer and the exports need to know about one
kind of network: its search space and start network, how to parse a net string, build a
module, encode observations and masks, decode actions and apply the function-preserving
transforms. Both families share one observation and action layout (see :mod:`eas_gym.spaces`
and :mod:`eas_gym.densenet.spaces`), so agents work on either unchanged.

:data:`FAMILIES` names them as the env's ``space`` argument takes them; :func:`parse_net` and
:func:`build_model` pick the family from a net string or an architecture.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from eas_gym import spaces as plain
from eas_gym.arch import PAPER_SPACE, PAPER_START, SMALL_SPACE, SMALL_START, Arch, SearchSpace
from eas_gym.densenet import spaces as dense
from eas_gym.densenet.arch import (
    DENSE_PAPER_SPACE,
    DENSE_PAPER_START,
    DENSE_SMALL_SPACE,
    DENSE_SMALL_START,
    DenseArch,
    DenseSearchSpace,
)
from eas_gym.densenet.morph import dense_deeper, dense_widen_units
from eas_gym.densenet.net import build_dense_net
from eas_gym.morph import DEEPER_NOISE, WIDER_NOISE, net2deeper, widen_layers
from eas_gym.net import StateDict, build_net
from eas_gym.spaces import Decoded
from eas_gym.surrogate import dense_surrogate_accuracy, surrogate_accuracy

__all__ = ["Family", "PlainFamily", "DenseFamily", "FAMILIES", "parse_net", "build_model"]

AnyArch = Arch | DenseArch
Transforms = list[dict[str, Any]]


class Family:
    """One architecture family with its search space and default start network.

    Args:
        space: The search space (widths or growth rates, and size limits).
        start: The default start network.
    """

    def __init__(self, space: Any, start: AnyArch) -> None:
        self.space, self.start = space, start

    def parse(self, net: str, num_classes: int) -> AnyArch:
        """The architecture of a net string."""
        raise NotImplementedError

    def check(self, arch: AnyArch) -> None:
        """Raise ValueError unless `arch` lies in the space (limits, listed widths)."""
        raise NotImplementedError

    def observation_space(self, start: AnyArch, num_steps: int) -> spaces.Dict:
        """The observation space of searches from `start` with `num_steps` steps."""
        raise NotImplementedError

    def action_space(self, start: AnyArch) -> spaces.MultiDiscrete:
        """The action space of searches from `start`."""
        raise NotImplementedError

    def encode(self, arch: AnyArch, step_kind: int, steps_left: int) -> dict[str, Any]:
        """The observation of `arch` before a step of `step_kind`."""
        raise NotImplementedError

    def mask(self, arch: AnyArch, step_kind: int) -> tuple[np.ndarray, ...]:
        """Legal values of each action entry."""
        raise NotImplementedError

    def decode(self, action: np.ndarray, arch: AnyArch, step_kind: int) -> Decoded:
        """What an action asks of `arch`, and whether part of it was illegal."""
        raise NotImplementedError

    def apply(
        self,
        decoded: Decoded,
        arch: AnyArch,
        state: StateDict,
        *,
        noise: bool,
        generator: torch.Generator,
        probe: torch.Tensor,
    ) -> tuple[AnyArch, StateDict, Transforms]:
        """The child of a decoded action, its weights, and store records of the transforms."""
        raise NotImplementedError

    def surrogate(self, arch: AnyArch) -> float:
        """The surrogate evaluator's accuracy (no training)."""
        raise NotImplementedError

    def build(
        self,
        arch: AnyArch,
        state: StateDict | None = None,
        *,
        generator: torch.Generator | None = None,
    ) -> nn.Module:
        """The module of `arch`, loading `state` strictly when given."""
        return build_model(arch, state, generator=generator)


class PlainFamily(Family):
    """The plain CNN: conv, pool and FC layers (:mod:`eas_gym.arch`)."""

    space: SearchSpace

    def parse(self, net: str, num_classes: int) -> Arch:
        return Arch.from_string(net, num_classes=num_classes)

    def check(self, arch: Arch) -> None:
        plain.check_arch_in_space(arch, self.space)

    def observation_space(self, start: Arch, num_steps: int) -> spaces.Dict:
        return plain.observation_space(self.space, num_steps)

    def action_space(self, start: Arch) -> spaces.MultiDiscrete:
        return plain.action_space(self.space)

    def encode(self, arch: Arch, step_kind: int, steps_left: int) -> dict[str, Any]:
        return plain.encode_observation(arch, self.space, step_kind, steps_left)

    def mask(self, arch: Arch, step_kind: int) -> tuple[np.ndarray, ...]:
        return plain.action_mask(arch, self.space, step_kind)

    def decode(self, action: np.ndarray, arch: Arch, step_kind: int) -> Decoded:
        return plain.decode_action(action, arch, self.space, step_kind)

    def apply(self, decoded, arch, state, *, noise, generator, probe):
        if decoded.widths:
            arch, state = widen_layers(
                arch,
                state,
                decoded.widths,
                space=self.space,
                noise=WIDER_NOISE if noise else 0.0,
                generator=generator,
            )
            return arch, state, [{"op": "wider", "widths": decoded.widths}]
        if decoded.layer is not None:
            arch, state = net2deeper(
                arch,
                state,
                decoded.layer,
                decoded.kernel,
                batch=probe,
                space=self.space,
                noise=DEEPER_NOISE if noise else 0.0,
                generator=generator,
            )
            return arch, state, [{"op": "deeper", "layer": decoded.layer, "kernel": decoded.kernel}]
        return arch, state, []

    def surrogate(self, arch: Arch) -> float:
        return surrogate_accuracy(arch, self.space)


class DenseFamily(Family):
    """DenseNet-BC: dense blocks of units joined by transitions (:mod:`eas_gym.densenet`)."""

    space: DenseSearchSpace

    def parse(self, net: str, num_classes: int) -> DenseArch:
        return DenseArch.from_string(net, num_classes=num_classes)

    def check(self, arch: DenseArch) -> None:
        dense.check_arch_in_space(arch, self.space)

    def observation_space(self, start: DenseArch, num_steps: int) -> spaces.Dict:
        return dense.observation_space(self.space, start.num_blocks, num_steps)

    def action_space(self, start: DenseArch) -> spaces.MultiDiscrete:
        return dense.action_space(self.space, start.num_blocks)

    def encode(self, arch: DenseArch, step_kind: int, steps_left: int) -> dict[str, Any]:
        return dense.encode_observation(arch, self.space, step_kind, steps_left)

    def mask(self, arch: DenseArch, step_kind: int) -> tuple[np.ndarray, ...]:
        return dense.action_mask(arch, self.space, step_kind)

    def decode(self, action: np.ndarray, arch: DenseArch, step_kind: int) -> Decoded:
        return dense.decode_action(action, arch, self.space, step_kind)

    def apply(self, decoded, arch, state, *, noise, generator, probe):
        units = dense.slot_units(arch)
        # The DenseNet transforms copy units (no identity layer), so both take Net2Wider's noise.
        amount = WIDER_NOISE if noise else 0.0
        if decoded.widths:
            growths = {units[i]: k for i, k in decoded.widths.items()}
            arch, state = dense_widen_units(
                arch, state, growths, space=self.space, noise=amount, generator=generator
            )
            records = [
                {"block": b, "unit": u, "growth": k} for (b, u), k in sorted(growths.items())
            ]
            return arch, state, [{"op": "wider", "units": records}]
        if decoded.layer is not None:
            block, unit = units[decoded.layer]
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

    def surrogate(self, arch: DenseArch) -> float:
        return dense_surrogate_accuracy(arch, self.space)


FAMILIES: dict[str, Family] = {
    "paper": PlainFamily(PAPER_SPACE, PAPER_START),
    "small": PlainFamily(SMALL_SPACE, SMALL_START),
    "dense-paper": DenseFamily(DENSE_PAPER_SPACE, DENSE_PAPER_START),
    "dense-small": DenseFamily(DENSE_SMALL_SPACE, DENSE_SMALL_START),
}
"""The env's ``space`` names: the plain CNN's paper and small spaces, and DenseNet's."""


def parse_net(net: str, *, num_classes: int = 10, in_channels: int = 3) -> AnyArch:
    """A plain or DenseNet architecture from its net string (DenseNet strings start ``D<n>``).

    >>> parse_net("D8 4x2 T 4x2").num_units, len(parse_net("C16-3 MP C16-3 GAP FC32").layers)
    (4, 4)
    """
    if not isinstance(net, str):
        raise TypeError(f"Expected a net string, got {type(net).__name__}")
    if net.strip().startswith("D"):
        return DenseArch.from_string(net, num_classes=num_classes, in_channels=in_channels)
    return Arch.from_string(net, num_classes=num_classes, in_channels=in_channels)


def build_model(
    arch: AnyArch,
    state: StateDict | None = None,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> nn.Module:
    """The module of a plain or DenseNet architecture, loading `state` strictly when given."""
    if isinstance(arch, DenseArch):
        return build_dense_net(arch, state, generator=generator, device=device)
    return build_net(arch, state, generator=generator, device=device)
