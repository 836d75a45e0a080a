"""Build a ``torch.nn.Module`` from an :class:`~eas_gym.arch.Arch`.

Parameter names are stable and tied to positions in ``Arch.layers``, so the transforms in
:mod:`eas_gym.morph` can rewrite a state dict directly:

* conv layer ``i``: ``layers.i.conv.weight`` and ``layers.i.bn.{weight,bias,running_mean,...}``;
* FC layer ``i``: ``layers.i.fc.weight`` and ``layers.i.bn.*``;
* pool layer ``i``: no parameters;
* classifier: ``classifier.weight``, ``classifier.bias``.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import Tensor, nn

from eas_gym.arch import Arch, Conv, Layer, Pool
from eas_gym.net2net import StateDict, build_module

__all__ = ["EASNet", "build_net", "StateDict", "layer_key"]  # StateDict: from eas_gym.net2net


def layer_key(index: int) -> str:
    """State-dict prefix of the layer at `index` (``"layers.3."``)."""
    return f"layers.{index}."


class ConvBNReLU(nn.Sequential):
    """conv (no bias, same padding) -> BatchNorm2d -> ReLU."""

    def __init__(self, in_channels: int, filters: int, kernel: int) -> None:
        super().__init__(
            OrderedDict(
                conv=nn.Conv2d(in_channels, filters, kernel, padding=kernel // 2, bias=False),
                bn=nn.BatchNorm2d(filters),
                relu=nn.ReLU(inplace=True),
            )
        )


class FCBNReLU(nn.Sequential):
    """Linear (no bias) -> BatchNorm1d -> ReLU."""

    def __init__(self, in_features: int, units: int) -> None:
        super().__init__(
            OrderedDict(
                fc=nn.Linear(in_features, units, bias=False),
                bn=nn.BatchNorm1d(units),
                relu=nn.ReLU(inplace=True),
            )
        )


def _make_layer(layer: Layer, in_width: int) -> nn.Module:
    if isinstance(layer, Conv):
        return ConvBNReLU(in_width, layer.filters, layer.kernel)
    if isinstance(layer, Pool):
        return nn.MaxPool2d(2)
    return FCBNReLU(in_width, layer.units)


class EASNet(nn.Module):
    """The network described by an :class:`Arch`.

    Args:
        arch: The architecture.
        generator: Seeds the weight initialisation; None uses torch's global RNG.

    Input: ``(B, in_channels, H, W)`` with ``H, W >= arch.min_input_size()``.
    Output: logits ``(B, num_classes)``.
    """

    def __init__(self, arch: Arch, *, generator: torch.Generator | None = None) -> None:
        super().__init__()
        if not isinstance(arch, Arch):
            raise TypeError(f"Expected `arch` to be an Arch, got {type(arch).__name__}")
        self.arch = arch
        self.layers = nn.ModuleList(
            _make_layer(layer, arch.input_width(i)) for i, layer in enumerate(arch.layers)
        )
        self.classifier = nn.Linear(arch.input_width(len(arch.layers)), arch.num_classes)
        self._init_weights(generator)

    def _init_weights(self, generator: torch.Generator | None) -> None:
        if self.classifier.weight.is_meta:  # built to take a state (build_module): no values;
            return  # drawing there imports torch._dynamo (2.5 s), which no evaluation needs
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(
                    m.weight, mode="fan_out", nonlinearity="relu", generator=generator
                )
            elif isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear) and m is not self.classifier:
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu", generator=generator)
        nn.init.normal_(self.classifier.weight, 0.0, 0.01, generator=generator)
        nn.init.zeros_(self.classifier.bias)

    def forward(self, x: Tensor, *, until: int | None = None) -> Tensor:
        """Logits, or with `until=i` the output of layer ``i`` (after its ReLU or pool)."""
        num_features = self.arch.num_feature_layers
        for i, layer in enumerate(self.layers):
            if i == num_features:
                x = torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)  # GAP: (B, C)
            x = layer(x)
            if until == i:
                return x
        if num_features == len(self.layers):
            x = torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)
        return self.classifier(x)


def build_net(
    arch: Arch,
    state: StateDict | None = None,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> EASNet:
    """Build an :class:`EASNet`, optionally loading `state` with ``strict=True``.

    Args:
        arch: The architecture.
        state: Weights as returned by ``net.state_dict()`` or a transform.
        generator: Seeds the fresh initialisation (ignored where `state` overwrites it).
        device: Where the module lives; defaults to the device of `state`, else CPU.
    """
    return build_module(EASNet, arch, state, generator=generator, device=device)
