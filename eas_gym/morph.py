"""Function-preserving transforms: Net2Wider and Net2Deeper as pure functions.

Each transform maps ``(arch, state)`` to a new ``(arch, state)`` whose network computes the same
function in eval mode (exactly, up to float rounding, when ``noise=0``). Inputs are never mutated;
tensors the transform does not change are shared between the old and the new state dict.
New tensors follow the device and dtype of the input state. All randomness comes from the
explicit ``generator`` (a CPU ``torch.Generator``).

References:
    Chen, Goodfellow, Shlens. Net2Net: Accelerating Learning via Knowledge Transfer. ICLR 2016.
    Cai, Chen, Zhang, Yu, Wang. Efficient Architecture Search by Network Transformation. AAAI 2018.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from eas_gym.arch import FC, Arch, Conv, Pool, SearchSpace
from eas_gym.net import build_net, layer_key
from eas_gym.net2net import (  # the noise levels are re-exported from here, their old home
    DEEPER_NOISE,
    WIDER_NOISE,
    StateDict,
    check_noise,
    copy_counts,
    fp32_exact,
    relative_noise,
    replication_map,
    state_tensor,
)

__all__ = [
    "WIDER_NOISE",
    "DEEPER_NOISE",
    "net2wider",
    "widen_layers",
    "net2deeper",
    "wider_arch",
    "widen_arch",
    "deeper_arch",
    "max_logit_diff",
]

_BN_COPIED = ("weight", "bias", "running_mean", "running_var")
_LAYER_KEY = re.compile(r"^layers\.(\d+)\.(.+)$")


# ---- helpers ---------------------------------------------------------------------------------


def _check_layer(arch: Arch, layer: int) -> Conv | FC:
    if isinstance(layer, bool) or not isinstance(layer, int):
        raise TypeError(f"Expected `layer` to be an int, got {type(layer).__name__}")
    if not 0 <= layer < len(arch.layers):
        raise ValueError(f"`layer` {layer} out of range: {arch} has {len(arch.layers)} layers")
    target = arch.layers[layer]
    if isinstance(target, Pool):
        raise ValueError(f"`layer` {layer} is a pool; only conv and FC layers can be transformed")
    return target


_get = state_tensor


def _weight_key(arch: Arch, layer: int | None) -> str:
    """Key of the weight that reads layer outputs: conv, FC or (None) the classifier."""
    if layer is None:
        return "classifier.weight"
    kind = "conv" if isinstance(arch.layers[layer], Conv) else "fc"
    return f"{layer_key(layer)}{kind}.weight"


# ---- Net2Wider -------------------------------------------------------------------------------


def net2wider(
    arch: Arch,
    state: StateDict,
    layer: int,
    new_width: int,
    *,
    space: SearchSpace | None = None,
    noise: float = 0.0,
    generator: torch.Generator | None = None,
) -> tuple[Arch, StateDict]:
    """Widen conv or FC layer `layer` to `new_width` units (Net2WiderNet).

    New units copy existing ones (sampled with replacement); the layer's BN parameters and
    running statistics are copied with the same indices; the consumer's matching input weights
    (next conv, next FC across the global pool, or the classifier) are divided by each unit's
    copy count.

    Invariant: in eval mode the new network's logits equal the old one's when ``noise=0``.
    With ``noise > 0`` Gaussian noise of ``noise * std(weight)`` goes on the new copies' incoming
    weights only (the paper uses ``WIDER_NOISE``).

    Args:
        arch: The architecture.
        state: Its weights (``EASNet.state_dict()``).
        layer: Index into ``arch.layers`` of a conv or FC layer.
        new_width: Larger width; with `space`, one of the space's widths for that layer kind.
        space: When given, `new_width` must be in its list.
        noise: Relative noise on the new copies.
        generator: Draws the copied indices and the noise; None copies round-robin (noise 0).

    Returns:
        The widened ``(arch, state)``.

    Raises:
        ValueError: the layer is a pool or out of range, or `new_width` is not larger or not in
            the space's list.
    """
    _check_layer(arch, layer)
    check_noise(noise, generator)
    new_arch = wider_arch(arch, layer, new_width, space=space)
    old = arch.width(layer)

    prefix = layer_key(layer)
    weight = _get(state, _weight_key(arch, layer))
    g = replication_map(old, new_width, generator, weight.device)
    counts = copy_counts(g, old, weight.dtype)

    new_weight = weight[g].clone()  # conv (C', Cin, k, k) or FC (U', In)
    if noise > 0:
        new_weight[old:] += relative_noise(new_weight[old:], noise, generator, weight)
    new_state = dict(state)
    new_state[_weight_key(arch, layer)] = new_weight
    for name in _BN_COPIED:
        new_state[f"{prefix}bn.{name}"] = _get(state, f"{prefix}bn.{name}")[g].clone()

    consumer_key = _weight_key(arch, arch.consumer(layer))
    consumer = _get(state, consumer_key)  # (Out, C, ...) reads C channels/features
    scale = (1.0 / counts[g]).view(1, -1, *([1] * (consumer.dim() - 2)))
    new_state[consumer_key] = consumer[:, g] * scale

    return new_arch, new_state


def wider_arch(arch: Arch, layer: int, new_width: int, *, space: SearchSpace | None = None) -> Arch:
    """The architecture :func:`net2wider` makes, without weights (same checks and errors)."""
    wider = _wider_layer(arch, layer, new_width, space)
    return dataclasses.replace(
        arch, layers=arch.layers[:layer] + (wider,) + arch.layers[layer + 1 :]
    )


def _wider_layer(arch: Arch, layer: int, new_width: int, space: SearchSpace | None) -> Conv | FC:
    """Layer `layer` of `arch` at `new_width`, checked."""
    target = _check_layer(arch, layer)
    old = arch.width(layer)
    if isinstance(new_width, bool) or not isinstance(new_width, int):
        raise TypeError(f"Expected `new_width` to be an int, got {type(new_width).__name__}")
    if new_width <= old:
        raise ValueError(f"`new_width` {new_width} must be larger than layer {layer}'s {old}")
    if space is not None and new_width not in space.widths(target):
        raise ValueError(
            f"`new_width` {new_width} not in the space's widths {space.widths(target)}"
        )
    return Conv(new_width, target.kernel) if isinstance(target, Conv) else FC(new_width)


def widen_arch(arch: Arch, widths: Mapping[int, int], *, space: SearchSpace | None = None) -> Arch:
    """The architecture :func:`widen_layers` makes, without weights."""
    if not widths:
        return arch
    layers = list(arch.layers)
    for layer in sorted(widths):  # widening one layer leaves the others' checks as they were
        layers[layer] = _wider_layer(arch, layer, widths[layer], space)
    return dataclasses.replace(arch, layers=tuple(layers))


def widen_layers(
    arch: Arch,
    state: StateDict,
    widths: Mapping[int, int],
    *,
    space: SearchSpace | None = None,
    noise: float = 0.0,
    generator: torch.Generator | None = None,
) -> tuple[Arch, StateDict]:
    """The paper's wider step: widen several layers at once, ``{layer: new_width}``.

    Applies :func:`net2wider` in ascending layer order; same invariant and errors.
    """
    for layer in sorted(widths):
        arch, state = net2wider(
            arch, state, layer, widths[layer], space=space, noise=noise, generator=generator
        )
    return arch, state


# ---- Net2Deeper ------------------------------------------------------------------------------


def net2deeper(
    arch: Arch,
    state: StateDict,
    layer: int,
    kernel: int | None = None,
    *,
    batch: Tensor | None = None,
    space: SearchSpace | None = None,
    noise: float = 0.0,
    generator: torch.Generator | None = None,
) -> tuple[Arch, StateDict]:
    """Insert an identity layer after conv or FC layer `layer` (Net2DeeperNet).

    After a conv: a conv of the same width with an identity kernel (centre tap = I, same
    padding). After a hidden FC: an FC with an identity matrix. The new BN is set from the
    per-channel mean ``mu`` and variance ``var`` of its input on `batch` (the network in eval
    mode): ``running_mean = beta = mu``, ``running_var = var``, ``gamma = sqrt(var + eps)``, so BN
    is the identity in eval mode and close to it in train mode; ReLU is the identity because
    its input is already a ReLU output. Without `batch`, ``mu = 0`` and ``var = 1``.

    Invariant: in eval mode the new network's logits equal the old one's when ``noise=0``.
    With ``noise > 0`` Gaussian noise of ``noise * std(new weight)`` goes on the new weight
    (the paper uses ``DEEPER_NOISE``).

    Args:
        arch: The architecture.
        state: Its weights (``EASNet.state_dict()``).
        layer: Index into ``arch.layers`` of a conv or FC layer; the new layer goes after it.
        kernel: Odd kernel of the new conv (default 3); must be None for an FC layer.
        batch: Input images ``(B, C, H, W)`` whose statistics initialise the new BN.
        space: When given, enforces its kernels, ``max_layers`` and ``max_layers_per_block``.
        noise: Relative noise on the new weight.
        generator: Draws the noise.

    Returns:
        The deepened ``(arch, state)``; later layers' state keys shift by one.

    Raises:
        ValueError: the layer is a pool or out of range, the kernel is even or not allowed,
            the space's limits would be exceeded, or `batch` is not ``(B, in_channels, H, W)``.
    """
    _check_layer(arch, layer)
    check_noise(noise, generator)
    new_arch = deeper_arch(arch, layer, kernel, space=space)
    new_layer = new_arch.layers[layer + 1]

    width = arch.width(layer)
    ref = _get(state, _weight_key(arch, layer))
    mean, var = _input_stats(arch, state, layer, batch, width, ref)

    if isinstance(new_layer, Conv):
        k = new_layer.kernel
        weight = torch.zeros(width, width, k, k, device=ref.device, dtype=ref.dtype)
        weight[:, :, k // 2, k // 2] = torch.eye(width, device=ref.device)
        kind = "conv"
    else:
        weight = torch.eye(width, device=ref.device, dtype=ref.dtype)
        kind = "fc"
    if noise > 0:
        weight = weight + relative_noise(weight, noise, generator, weight)

    eps = nn.BatchNorm2d(1).eps
    prefix = layer_key(layer + 1)
    inserted = {
        f"{prefix}{kind}.weight": weight,
        f"{prefix}bn.weight": torch.sqrt(var + eps),
        f"{prefix}bn.bias": mean.clone(),
        f"{prefix}bn.running_mean": mean.clone(),
        f"{prefix}bn.running_var": var.clone(),
        f"{prefix}bn.num_batches_tracked": torch.zeros((), dtype=torch.long, device=ref.device),
    }
    return new_arch, _shift_after(state, layer, inserted)


def deeper_arch(
    arch: Arch, layer: int, kernel: int | None = None, *, space: SearchSpace | None = None
) -> Arch:
    """The architecture :func:`net2deeper` makes, without weights (same checks and errors)."""
    target = _check_layer(arch, layer)
    if isinstance(target, Conv):
        kernel = 3 if kernel is None else kernel
        if kernel < 1 or kernel % 2 == 0:
            raise ValueError(f"`kernel` must be odd and positive for same padding, got {kernel}")
        if space is not None and kernel not in space.kernels:
            raise ValueError(f"`kernel` {kernel} not in the space's kernels {space.kernels}")
        new_layer: Conv | FC = Conv(target.filters, kernel)
    else:
        if kernel is not None:
            raise ValueError(f"`kernel` must be None when deepening FC layer {layer}, got {kernel}")
        new_layer = FC(target.units)
    layers = arch.layers[: layer + 1] + (new_layer,) + arch.layers[layer + 1 :]
    new_arch = dataclasses.replace(arch, layers=layers)
    if space is not None:
        _check_limits(new_arch, space, layer)
    return new_arch


def _check_limits(new_arch: Arch, space: SearchSpace, layer: int) -> None:
    if len(new_arch.layers) > space.max_layers:
        raise ValueError(
            f"deepening layer {layer} gives {len(new_arch.layers)} layers, over the space's "
            f"`max_layers` {space.max_layers}"
        )
    block = next(b for b in new_arch.block_indices if layer + 1 in b)
    if len(block) > space.max_layers_per_block:
        raise ValueError(
            f"deepening layer {layer} gives a block of {len(block)} layers, over the space's "
            f"`max_layers_per_block` {space.max_layers_per_block}"
        )


@torch.no_grad()
def _input_stats(
    arch: Arch, state: StateDict, layer: int, batch: Tensor | None, width: int, ref: Tensor
) -> tuple[Tensor, Tensor]:
    """Per-channel mean and (biased) variance of layer `layer`'s output on `batch`."""
    if batch is None:
        ones = torch.ones(width, device=ref.device, dtype=ref.dtype)
        return torch.zeros_like(ones), ones
    if batch.dim() != 4 or batch.shape[1] != arch.in_channels or len(batch) < 1:
        raise ValueError(
            f"Expected `batch` images of shape (B, {arch.in_channels}, H, W) with B >= 1 (the "
            f"network's input channels), actually: {tuple(batch.shape)}"
        )
    net = build_net(arch, state, device=ref.device).eval()
    with fp32_exact():  # the statistics must not depend on the GPU's TF32 setting
        out = net(
            batch.to(device=ref.device, dtype=ref.dtype), until=layer
        )  # (B, C, H, W) | (B, U)
    dims = [0, 2, 3] if out.dim() == 4 else [0]
    return out.mean(dim=dims), out.var(dim=dims, unbiased=False)


def _shift_after(state: StateDict, layer: int, inserted: StateDict) -> StateDict:
    """State with keys of layers after `layer` moved up by one and `inserted` placed between."""
    shifted: StateDict = {}
    placed = False
    for key, value in state.items():
        m = _LAYER_KEY.match(key)
        index = int(m[1]) if m else None
        if not placed and (index is None or index > layer):
            shifted.update(inserted)
            placed = True
        if m is not None and index is not None and index > layer:
            key = f"layers.{index + 1}.{m[2]}"
        shifted[key] = value
    if not placed:
        shifted.update(inserted)
    return shifted


# ---- preservation check ----------------------------------------------------------------------


@torch.no_grad()
def max_logit_diff(net_a: nn.Module, net_b: nn.Module, probe: Tensor) -> float:
    """Max absolute difference of two networks' logits on `probe`, both in eval mode.

    The modules' train/eval modes are restored afterwards. Use it at run time to verify that a
    transform preserved the function (expect ~1e-6 in float32 with ``noise=0``). Runs in
    full float32 (:func:`~eas_gym.net2net.fp32_exact`) whatever the TF32 settings.
    """
    modes = (net_a.training, net_b.training)
    net_a.eval()
    net_b.eval()
    try:
        with fp32_exact():  # TF32 convolutions alone move logits by ~1e-3
            return float((net_a(probe) - net_b(probe)).abs().max())
    finally:
        net_a.train(modes[0])
        net_b.train(modes[1])
