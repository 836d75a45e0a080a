"""Function-preserving transforms of DenseNets: wider units and deeper blocks, as pure functions.

Both transforms describe a block's new running feature map by a source index per channel: new
channel ``j`` carries the value of old channel ``src[j]``. Every consumer of the map (the
units after the change, then the transition or the final BN) is then rewritten the same way,
which is exact because BN -> ReLU acts per channel: a consumer's new channel ``j`` gets the BN
parameters and running statistics of old channel ``src[j]`` and its 1x1 input weights divided by
the number of new channels that copy ``src[j]``; a channel the old consumer did not read gets
zero weights. When the block's width changes, its transition (``floor(compression * width)``
outputs) widens too, by Net2Wider copies whose consumers in the next block are rewritten in turn,
down to the classifier.

Inputs are never mutated; tensors a transform does not change are shared between the old and the
new state dict. New tensors follow the device and dtype of the input state. All randomness
comes from the explicit ``generator`` (a CPU ``torch.Generator``).

References:
    Chen, Goodfellow, Shlens. Net2Net: Accelerating Learning via Knowledge Transfer. ICLR 2016.
    Huang, Liu, van der Maaten, Weinberger. Densely Connected Convolutional Networks. CVPR 2017.
    Cai, Chen, Zhang, Yu, Wang. Efficient Architecture Search by Network Transformation. AAAI 2018.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import torch
from torch import Tensor

from eas_gym.densenet.arch import DenseArch, DenseSearchSpace
from eas_gym.densenet.net import transition_key, unit_key
from eas_gym.net2net import StateDict, check_noise, relative_noise, replication_map

__all__ = ["dense_wider", "dense_widen_units", "dense_deeper"]

_BN_FILL = {"weight": 1.0, "bias": 0.0, "running_mean": 0.0, "running_var": 1.0}
"""BN entries for a channel its consumer did not read before (its weights there are zero)."""

_CPU = torch.device("cpu")

_Module = dict[str, Tensor]
"""One module's tensors by name relative to its prefix (``"norm1.weight"``, ``"conv.weight"``)."""


# ---- helpers ---------------------------------------------------------------------------------


def _check_int(value: object, label: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"Expected `{label}` to be an int, got {type(value).__name__}")
    return value


def _check_block(arch: DenseArch, block: int) -> None:
    _check_int(block, "block")
    if not 0 <= block < arch.num_blocks:
        raise ValueError(f"`block` {block} out of range: {arch} has {arch.num_blocks} blocks")


def _modules(state: StateDict) -> dict[str, _Module]:
    """Group a state dict by module prefix: ``"blocks.0.3."``, ``"transitions.1."``, ``"stem."``."""
    groups: dict[str, _Module] = {}
    for key, value in state.items():
        parts = key.split(".")
        cut = {"blocks": 3, "transitions": 2}.get(parts[0], 1)
        groups.setdefault(".".join(parts[:cut]) + ".", {})[".".join(parts[cut:])] = value
    return groups


def _module(groups: dict[str, _Module], prefix: str) -> _Module:
    try:
        return groups[prefix]
    except KeyError as e:
        raise ValueError(
            f"`state` has no {prefix + '*'!r}; does it belong to this architecture?"
        ) from e


def _is_identity(src: Tensor, old: int) -> bool:
    return len(src) == old and bool(torch.equal(src, torch.arange(old)))


def _visible(src: Tensor, new_len: int, old_len: int) -> Tensor:
    """A consumer's input map: ``src[:new_len]``, -1 where the old consumer did not read it."""
    g = src[:new_len]
    return torch.where(g < old_len, g, -1)


def _remap_in(weight: Tensor, g: Tensor) -> Tensor:
    """Input columns ``weight[:, g]`` divided by each source's copy count; zero where g = -1."""
    g = g.to(weight.device)
    valid = g >= 0
    idx = g.clamp(min=0)
    counts = torch.bincount(idx[valid], minlength=weight.shape[1]).to(weight.dtype)
    scale = torch.where(valid, 1.0 / counts[idx].clamp(min=1), 0.0).to(weight.dtype)
    return weight[:, idx] * scale.view(1, -1, *([1] * (weight.dim() - 2)))


def _remap_bn(module: _Module, prefix: str, g: Tensor) -> _Module:
    """A BN's parameters and statistics copied along `g` (fill values where g = -1)."""
    out: _Module = {}
    for name, fill in _BN_FILL.items():
        t = _module_get(module, prefix + name)
        gd = g.to(t.device)
        out[prefix + name] = torch.where(gd >= 0, t[gd.clamp(min=0)], fill).to(t.dtype)
    return out


def _module_get(module: _Module, name: str) -> Tensor:
    try:
        return module[name]
    except KeyError as e:
        raise ValueError(f"`state` lacks {name!r} in a module it should have") from e


def _widen_rows(
    weight: Tensor,
    new: int,
    noise: float,
    generator: torch.Generator | None,
) -> tuple[Tensor, Tensor]:
    """Net2Wider on output rows: ``(weight[g], g)``, noise on the copies only."""
    old = weight.shape[0]
    g = replication_map(old, new, generator, _CPU)
    rows = weight[g.to(weight.device)].clone()
    if noise > 0:
        rows[old:] += relative_noise(rows[old:], noise, generator, weight)
    return rows, g


def _add_noise(weight: Tensor, noise: float, generator: torch.Generator | None) -> Tensor:
    if noise <= 0:
        return weight
    return weight + relative_noise(weight, noise, generator, weight)


# ---- the shared rewrite ----------------------------------------------------------------------


def _rewrite(
    old: DenseArch,
    state: StateDict,
    new: DenseArch,
    block: int,
    counterparts: list[int],
    src: Tensor,
    overrides: Mapping[int, _Module],
    noise: float,
    generator: torch.Generator | None,
) -> StateDict:
    """The new state dict, given how `block`'s feature map changed.

    Args:
        old: The architecture `state` belongs to.
        state: Its weights.
        new: The architecture to produce weights for; its blocks equal `old`'s but `block`.
        block: The block whose units or feature map changed.
        counterparts: For each unit of `new`'s `block`, the old unit it starts from.
        src: For each channel of `new`'s `block` feature map, the old channel it copies.
        overrides: Per new unit of `block`, tensors replacing its counterpart's (before its
            input columns are rewritten).
        noise: Relative noise on new transition outputs.
        generator: Draws transition copies and noise.
    """
    groups = _modules(state)
    units: StateDict = {}
    transitions: StateDict = {}
    changed: Tensor | None = None  # the current block's src; None where nothing changes
    for b in range(new.num_blocks):
        if b == block:
            changed = src
        for u in range(len(new.blocks[b])):
            prefix = unit_key(b, u)
            if changed is None:
                module = _module(groups, prefix)
            else:
                c = counterparts[u] if b == block else u
                override = overrides.get(u, {}) if b == block else {}
                module = {**_module(groups, unit_key(b, c)), **override}
                g = _visible(changed, new.unit_in_channels(b, u), old.unit_in_channels(b, c))
                if not _is_identity(g, old.unit_in_channels(b, c)):
                    module.update(_remap_bn(module, "norm1.", g))
                    module["conv1.weight"] = _remap_in(_module_get(module, "conv1.weight"), g)
            units.update({prefix + name: t for name, t in module.items()})
        if b == new.num_blocks - 1:
            break
        prefix = transition_key(b)
        module = _module(groups, prefix)
        if changed is not None:
            g = _visible(changed, new.block_out_channels(b), old.block_out_channels(b))
            module, copies = _rewrite_transition(
                module, g, new.transition_width(b), noise, generator
            )
            # The next block's map: the transition's copies, then its own units, unchanged.
            width = old.transition_width(b)
            rest = torch.arange(width, old.block_out_channels(b + 1))
            changed = None if _is_identity(copies, width) else torch.cat([copies, rest])
        transitions.update({prefix + name: t for name, t in module.items()})
    norm, classifier = _module(groups, "norm."), _module(groups, "classifier.")
    if changed is not None:
        last = new.num_blocks - 1
        g = _visible(changed, new.block_out_channels(last), old.block_out_channels(last))
        norm = {**norm, **_remap_bn(norm, "", g)}
        classifier = {**classifier, "weight": _remap_in(_module_get(classifier, "weight"), g)}
    return {
        "stem.weight": _module_get(_module(groups, "stem."), "weight"),
        **units,
        **transitions,
        **{f"norm.{name}": t for name, t in norm.items()},
        **{f"classifier.{name}": t for name, t in classifier.items()},
    }


def _rewrite_transition(
    module: _Module, g: Tensor, width: int, noise: float, generator: torch.Generator | None
) -> tuple[_Module, Tensor]:
    """A transition reading the map `g`, widened by copies to `width` outputs (``(module, t)``)."""
    module = {**module, **_remap_bn(module, "norm.", g)}
    conv = _remap_in(_module_get(module, "conv.weight"), g)  # (T, C', 1, 1)
    module["conv.weight"], t = _widen_rows(conv, width, noise, generator)
    return module, t


# ---- wider -----------------------------------------------------------------------------------


def dense_wider(
    arch: DenseArch,
    state: StateDict,
    block: int,
    unit: int,
    new_growth: int,
    *,
    space: DenseSearchSpace | None = None,
    noise: float = 0.0,
    generator: torch.Generator | None = None,
) -> tuple[DenseArch, StateDict]:
    """Raise the growth rate of one dense unit (Net2WiderNet for DenseNet, EAS).

    The unit's bottleneck widens from ``bottleneck * k`` to ``bottleneck * new_growth`` filters
    and its 3x3 conv from ``k`` to ``new_growth``, both by copying existing filters (sampled
    with replacement): the bottleneck's BN is copied along, and the 3x3 conv's input weights are
    divided by the copy counts. The unit's new output channels sit next to its old ones in the
    block's feature map; every later unit of the block and the block's transition (or the
    final BN and classifier) read them with copied BN entries and input weights divided by the
    copy counts. A transition whose width ``floor(compression * channels)`` grows gets copied
    output filters too, passed on the same way through the following blocks.

    Invariant: in eval mode the new network's logits equal the old one's when ``noise=0``.
    With ``noise > 0`` Gaussian noise of ``noise * std(weight)`` goes on the copied filters'
    weights only (the paper's Net2Wider uses ``eas_gym.net2net.WIDER_NOISE``).

    Args:
        arch: The architecture.
        state: Its weights (``DenseNet.state_dict()``).
        block: Index of the dense block.
        unit: Index of the unit within the block.
        new_growth: Larger growth rate; with `space`, one of the space's growth rates.
        space: When given, `new_growth` must be in its list.
        noise: Relative noise on the new copies.
        generator: Draws the copied indices and the noise; None copies round-robin (noise 0).

    Returns:
        The widened ``(arch, state)``.

    Raises:
        ValueError: `block` or `unit` is out of range, or `new_growth` is not larger or not in
            the space's list.
    """
    _check_block(arch, block)
    _check_int(unit, "unit")
    if not 0 <= unit < len(arch.blocks[block]):
        raise ValueError(
            f"`unit` {unit} out of range: block {block} of {arch} has "
            f"{len(arch.blocks[block])} units"
        )
    _check_int(new_growth, "new_growth")
    check_noise(noise, generator)
    old = arch.blocks[block][unit]
    if new_growth <= old:
        raise ValueError(
            f"`new_growth` {new_growth} must be larger than unit {unit}'s growth {old} in "
            f"block {block}"
        )
    if space is not None and new_growth not in space.growths:
        raise ValueError(f"`new_growth` {new_growth} not in the space's growths {space.growths}")

    growths = list(arch.blocks[block])
    growths[unit] = new_growth
    blocks = arch.blocks[:block] + (tuple(growths),) + arch.blocks[block + 1 :]
    new_arch = dataclasses.replace(arch, blocks=blocks)

    source = _module(_modules(state), unit_key(block, unit))
    # Bottleneck: (4k, Cin, 1, 1) -> (4k', Cin, 1, 1); the 3x3 conv divides by copy counts.
    mid = new_arch.bottleneck_width(block, unit)
    conv1, h = _widen_rows(_module_get(source, "conv1.weight"), mid, noise, generator)
    conv2 = _remap_in(_module_get(source, "conv2.weight"), h)  # (k, 4k', 3, 3)
    conv2, g = _widen_rows(conv2, new_growth, noise, generator)  # (k', 4k', 3, 3)
    override = {"conv1.weight": conv1, "conv2.weight": conv2, **_remap_bn(source, "norm2.", h)}

    offset = arch.unit_in_channels(block, unit)
    src = torch.cat(
        [
            torch.arange(offset),
            offset + g,
            torch.arange(offset + old, arch.block_out_channels(block)),
        ]
    )
    counterparts = list(range(len(growths)))
    return new_arch, _rewrite(
        arch, state, new_arch, block, counterparts, src, {unit: override}, noise, generator
    )


def dense_widen_units(
    arch: DenseArch,
    state: StateDict,
    growths: Mapping[tuple[int, int], int],
    *,
    space: DenseSearchSpace | None = None,
    noise: float = 0.0,
    generator: torch.Generator | None = None,
) -> tuple[DenseArch, StateDict]:
    """The paper's wider step: widen several units at once, ``{(block, unit): new_growth}``.

    Applies :func:`dense_wider` in ascending ``(block, unit)`` order; same invariant and errors.
    """
    for block, unit in sorted(growths):
        arch, state = dense_wider(
            arch,
            state,
            block,
            unit,
            growths[block, unit],
            space=space,
            noise=noise,
            generator=generator,
        )
    return arch, state


# ---- deeper ----------------------------------------------------------------------------------


def dense_deeper(
    arch: DenseArch,
    state: StateDict,
    block: int,
    position: int,
    *,
    source: int | None = None,
    space: DenseSearchSpace | None = None,
    noise: float = 0.0,
    generator: torch.Generator | None = None,
) -> tuple[DenseArch, StateDict]:
    """Insert a unit into a dense block by duplicating an existing one (EAS's DenseNet deeper).

    The new unit goes to index `position` of the block and copies unit `source` (at or before
    `position`, so it reads every channel the source reads): the same growth rate, bottleneck,
    BN entries and weights, with zero input weights for the channels it newly sees (outputs of
    units between the source and `position`). Its outputs thus duplicate the source's. Every
    later unit, and the transition or final BN, reads both copies with the source's BN entries
    and half the source's input weights each (in general: divided by the copy count); a unit
    that did not read the source (the source itself, when ``source == position``) gets zero
    weights for the new channels. Later units' state keys shift up by one, and transitions
    widen by copies as in :func:`dense_wider`.

    Invariant: in eval mode the new network's logits equal the old one's when ``noise=0``.
    With ``noise > 0`` Gaussian noise of ``noise * std(weight)`` goes on the new unit's copied
    conv weights and on new transition copies (``eas_gym.net2net.WIDER_NOISE`` suits it: the new
    unit is a copy, not an identity).

    Args:
        arch: The architecture.
        state: Its weights (``DenseNet.state_dict()``).
        block: Index of the dense block.
        position: Index of the new unit in the block, ``0 .. len(block)``.
        source: The unit to copy, ``0 .. min(position, len(block) - 1)``; by default the unit
            just before `position` (unit 0 when `position` is 0).
        space: When given, enforces its ``max_units_per_block`` and ``max_units``.
        noise: Relative noise on the new weights.
        generator: Draws the noise and transition copies; None copies round-robin (noise 0).

    Returns:
        The deepened ``(arch, state)``.

    Raises:
        ValueError: `block`, `position` or `source` is out of range, or the space's limits
            would be exceeded.
    """
    _check_block(arch, block)
    num = len(arch.blocks[block])
    _check_int(position, "position")
    if not 0 <= position <= num:
        raise ValueError(
            f"`position` {position} out of range: block {block} of {arch} has {num} units, "
            f"so a new unit goes at 0..{num}"
        )
    source = max(position - 1, 0) if source is None else _check_int(source, "source")
    if not 0 <= source <= min(position, num - 1):
        raise ValueError(
            f"`source` {source} must be an existing unit at or before `position` {position}: "
            f"0..{min(position, num - 1)}"
        )
    check_noise(noise, generator)
    if space is not None:
        if num + 1 > space.max_units_per_block:
            raise ValueError(
                f"deepening block {block} gives {num + 1} units, over the space's "
                f"`max_units_per_block` {space.max_units_per_block}"
            )
        if arch.num_units + 1 > space.max_units:
            raise ValueError(
                f"deepening block {block} gives {arch.num_units + 1} units, over the space's "
                f"`max_units` {space.max_units}"
            )

    growths = arch.blocks[block]
    k = growths[source]
    blocks = (
        arch.blocks[:block]
        + (growths[:position] + (k,) + growths[position:],)
        + arch.blocks[block + 1 :]
    )
    new_arch = dataclasses.replace(arch, blocks=blocks)

    copy = _module(_modules(state), unit_key(block, source))
    override = {
        "conv1.weight": _add_noise(_module_get(copy, "conv1.weight"), noise, generator),
        "conv2.weight": _add_noise(_module_get(copy, "conv2.weight"), noise, generator),
    }
    insert_at = arch.unit_in_channels(block, position)
    offset = arch.unit_in_channels(block, source)
    src = torch.cat(
        [
            torch.arange(insert_at),
            torch.arange(offset, offset + k),
            torch.arange(insert_at, arch.block_out_channels(block)),
        ]
    )
    counterparts = list(range(position)) + [source] + list(range(position, num))
    return new_arch, _rewrite(
        arch, state, new_arch, block, counterparts, src, {position: override}, noise, generator
    )
