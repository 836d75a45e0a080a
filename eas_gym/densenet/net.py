"""Build a ``torch.nn.Module`` from a :class:`~eas_gym.densenet.arch.DenseArch`.

Parameter names are stable and tied to (block, unit) positions, so the transforms in
:mod:`eas_gym.densenet.morph` can rewrite a state dict directly:

* stem: ``stem.weight``;
* unit ``u`` of block ``b``: ``blocks.b.u.norm1.*``, ``blocks.b.u.conv1.weight`` (1x1 bottleneck),
  ``blocks.b.u.norm2.*``, ``blocks.b.u.conv2.weight`` (3x3, ``growth`` filters);
* transition after block ``b``: ``transitions.b.norm.*``, ``transitions.b.conv.weight``;
* final BN and classifier: ``norm.*``, ``classifier.weight``, ``classifier.bias``.

Within a block the running feature map is ordered ``[block input, unit 0 output, unit 1 output,
...]``; a unit reads the prefix that precedes its own output.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import Tensor, nn

from eas_gym.densenet.arch import DenseArch
from eas_gym.net2net import StateDict, build_module

__all__ = ["DenseNet", "build_dense_net", "unit_key", "transition_key"]


def unit_key(block: int, unit: int) -> str:
    """State-dict prefix of a dense unit (``"blocks.1.3."``)."""
    return f"blocks.{block}.{unit}."


def transition_key(block: int) -> str:
    """State-dict prefix of the transition after `block` (``"transitions.1."``)."""
    return f"transitions.{block}."


class DenseUnit(nn.Sequential):
    """BN -> ReLU -> conv1x1 (bottleneck) -> BN -> ReLU -> conv3x3: ``(B, Cin) -> (B, growth)``."""

    def __init__(self, in_channels: int, bottleneck: int, growth: int) -> None:
        super().__init__(
            OrderedDict(
                norm1=nn.BatchNorm2d(in_channels),
                relu1=nn.ReLU(inplace=True),
                conv1=nn.Conv2d(in_channels, bottleneck, 1, bias=False),
                norm2=nn.BatchNorm2d(bottleneck),
                relu2=nn.ReLU(inplace=True),
                conv2=nn.Conv2d(bottleneck, growth, 3, padding=1, bias=False),
            )
        )


class DenseBlock(nn.ModuleList):
    """Units whose outputs are concatenated onto the running feature map (channel dim)."""

    def forward(self, x: Tensor) -> Tensor:
        """``(B, Cin, H, W) -> (B, Cin + sum(growths), H, W)``."""
        features = [x]
        for unit in self:
            features.append(unit(torch.cat(features, 1)))
        return torch.cat(features, 1)


class Transition(nn.Sequential):
    """BN -> ReLU -> conv1x1 -> 2x2 average pool."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            OrderedDict(
                norm=nn.BatchNorm2d(in_channels),
                relu=nn.ReLU(inplace=True),
                conv=nn.Conv2d(in_channels, out_channels, 1, bias=False),
                pool=nn.AvgPool2d(2),
            )
        )


class DenseNet(nn.Module):
    """The network described by a :class:`DenseArch`.

    Args:
        arch: The architecture.
        generator: Seeds the weight initialisation; None uses torch's global RNG.

    Input: ``(B, in_channels, H, W)`` with ``H, W >= arch.min_input_size()``.
    Output: logits ``(B, num_classes)``.
    """

    def __init__(self, arch: DenseArch, *, generator: torch.Generator | None = None) -> None:
        super().__init__()
        if not isinstance(arch, DenseArch):
            raise TypeError(f"Expected `arch` to be a DenseArch, got {type(arch).__name__}")
        self.arch = arch
        self.stem = nn.Conv2d(arch.in_channels, arch.stem, 3, padding=1, bias=False)
        self.blocks = nn.ModuleList(
            DenseBlock(
                DenseUnit(arch.unit_in_channels(b, u), arch.bottleneck_width(b, u), k)
                for u, k in enumerate(block)
            )
            for b, block in enumerate(arch.blocks)
        )
        self.transitions = nn.ModuleList(
            Transition(arch.block_out_channels(b), arch.transition_width(b))
            for b in range(arch.num_blocks - 1)
        )
        width = arch.block_out_channels(arch.num_blocks - 1)
        self.norm = nn.BatchNorm2d(width)
        self.classifier = nn.Linear(width, arch.num_classes)
        self._init_weights(generator)

    def _init_weights(self, generator: torch.Generator | None) -> None:
        if self.classifier.weight.is_meta:  # built to take a state (build_module): no values;
            return  # drawing there imports torch._dynamo (2.5 s), which no evaluation needs
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(
                    m.weight, mode="fan_out", nonlinearity="relu", generator=generator
                )
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.classifier.weight, 0.0, 0.01, generator=generator)
        nn.init.zeros_(self.classifier.bias)

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``(B, num_classes)``."""
        x = self.stem(x)
        for b, block in enumerate(self.blocks):
            x = block(x)
            if b < len(self.transitions):
                x = self.transitions[b](x)
        x = torch.relu(self.norm(x))
        return self.classifier(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def build_dense_net(
    arch: DenseArch,
    state: StateDict | None = None,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> DenseNet:
    """Build a :class:`DenseNet`, optionally loading `state` with ``strict=True``.

    Args:
        arch: The architecture.
        state: Weights as returned by ``net.state_dict()`` or a transform.
        generator: Seeds the fresh initialisation (ignored where `state` overwrites it).
        device: Where the module lives; defaults to the device of `state`, else CPU.

    Returns:
        The module, in training mode.
    """
    return build_module(DenseNet, arch, state, generator=generator, device=device)
