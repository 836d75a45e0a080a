"""Architecture families: the plain CNN and DenseNet spaces behind one interface.

A :class:`Family` (defined in :mod:`eas_gym.net2net`, the module both families build on) is
what the environment, the scorer and the exports need to know about one kind of network: its
search space and start network, how to parse a net string, build a module, encode observations
and masks, decode actions and apply the function-preserving transforms. Both families share one
observation and action layout, so agents work on either unchanged. :class:`PlainFamily` lives
here, :class:`DenseFamily` next to the DenseNet space (:mod:`eas_gym.densenet.family`).

:data:`FAMILIES` names them as the env's ``space`` argument takes them; :func:`parse_net` and
:func:`build_model` pick the family from a net string or an architecture.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from eas_gym import spaces as plain
from eas_gym.arch import PAPER_SPACE, PAPER_START, SMALL_SPACE, SMALL_START, Arch, SearchSpace
from eas_gym.densenet.arch import (
    DENSE_PAPER_SPACE,
    DENSE_PAPER_START,
    DENSE_SMALL_SPACE,
    DENSE_SMALL_START,
    DenseArch,
)
from eas_gym.densenet.family import DenseFamily
from eas_gym.densenet.net import build_dense_net
from eas_gym.morph import deeper_arch, net2deeper, widen_arch, widen_layers
from eas_gym.net import EASNet, build_net
from eas_gym.net2net import (
    DEEPER_NOISE,
    WIDER_NOISE,
    Decoded,
    Family,
    Observation,
    StateDict,
    Transforms,
)
from eas_gym.surrogate import surrogate_accuracy

__all__ = ["Family", "PlainFamily", "DenseFamily", "FAMILIES", "parse_net", "build_model"]

AnyArch = Arch | DenseArch


class PlainFamily(Family[Arch, SearchSpace]):
    """The plain CNN: conv, pool and FC layers (:mod:`eas_gym.arch`)."""

    def parse(self, net: str, num_classes: int) -> Arch:
        return Arch.from_string(net, num_classes=num_classes)

    def check(self, arch: Arch) -> None:
        plain.check_arch_in_space(arch, self.space)

    def observation_space(self, start: Arch, num_steps: int) -> spaces.Dict:
        return plain.observation_space(self.space, num_steps)

    def action_space(self, start: Arch) -> spaces.MultiDiscrete:
        return plain.action_space(self.space)

    def encode(self, arch: Arch, step_kind: int, steps_left: int) -> Observation:
        return plain.encode_observation(arch, self.space, step_kind, steps_left)

    def mask(self, arch: Arch, step_kind: int) -> tuple[np.ndarray, ...]:
        return plain.action_mask(arch, self.space, step_kind)

    def decode(self, action: np.ndarray, arch: Arch, step_kind: int) -> Decoded:
        return plain.decode_action(action, arch, self.space, step_kind)

    def apply(
        self,
        decoded: Decoded,
        arch: Arch,
        state: StateDict,
        *,
        noise: bool,
        generator: torch.Generator,
        probe: torch.Tensor,
    ) -> tuple[Arch, StateDict, Transforms]:
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

    def apply_arch(self, decoded: Decoded, arch: Arch) -> tuple[Arch, Transforms]:
        if decoded.widths:
            arch = widen_arch(arch, decoded.widths, space=self.space)
            return arch, [{"op": "wider", "widths": decoded.widths}]
        if decoded.layer is not None:
            arch = deeper_arch(arch, decoded.layer, decoded.kernel, space=self.space)
            return arch, [{"op": "deeper", "layer": decoded.layer, "kernel": decoded.kernel}]
        return arch, []

    def surrogate(self, arch: Arch) -> float:
        return _surrogate_accuracy(arch, self.space)

    def build(
        self,
        arch: Arch,
        state: StateDict | None = None,
        *,
        generator: torch.Generator | None = None,
    ) -> EASNet:
        return build_net(arch, state, generator=generator)


FAMILIES: dict[str, Family[Any, Any]] = {
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


# The weightless ids score the same networks again and again: the formula is pure.
_surrogate_accuracy = functools.lru_cache(maxsize=2**16)(surrogate_accuracy)
