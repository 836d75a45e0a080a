"""Rewriting a DenseNet state dict after a block's feature map changed (the transforms' core).

A block's new running feature map is described by a source index per channel: new channel ``j``
carries the value of old channel ``src[j]``. Every consumer of the map (the units after the
change, then the transition or the final BN) is rewritten the same way, which is exact because
BN -> ReLU acts per channel: a consumer's new channel ``j`` gets the BN parameters and running
statistics of old channel ``src[j]`` and its 1x1 input weights divided by the number of new
channels that copy ``src[j]``; a channel the old consumer did not read gets zero weights. A
transition whose width grows gets Net2Wider copies, passed on through the following blocks.

Inputs are never mutated; new tensors follow the device and dtype of the input state.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from eas_gym.densenet.arch import DenseArch
from eas_gym.densenet.net import transition_key, unit_key
from eas_gym.net2net import StateDict, relative_noise, replication_map, state_tensor

__all__ = [
    "ModuleTensors",
    "get_module",
    "get_tensor",
    "group_modules",
    "remap_bn",
    "remap_in",
    "rewrite_state",
    "widen_rows",
]

_BN_FILL = {"weight": 1.0, "bias": 0.0, "running_mean": 0.0, "running_var": 1.0}
"""BN entries for a channel its consumer did not read before (its weights there are zero)."""

_CPU = torch.device("cpu")

ModuleTensors = dict[str, Tensor]
"""One module's tensors by name relative to its prefix (``"norm1.weight"``, ``"conv.weight"``)."""


def group_modules(state: StateDict) -> dict[str, ModuleTensors]:
    """Group a state dict by module prefix: ``"blocks.0.3."``, ``"transitions.1."``, ``"stem."``."""
    groups: dict[str, ModuleTensors] = {}
    for key, value in state.items():
        parts = key.split(".")
        cut = {"blocks": 3, "transitions": 2}.get(parts[0], 1)
        groups.setdefault(".".join(parts[:cut]) + ".", {})[".".join(parts[cut:])] = value
    return groups


def get_module(groups: dict[str, ModuleTensors], prefix: str) -> ModuleTensors:
    """The module at `prefix` of :func:`group_modules`'s `groups`; ValueError if it is absent."""
    try:
        return groups[prefix]
    except KeyError as e:
        raise ValueError(
            f"`state` has no {prefix + '*'!r}; does it belong to this architecture?"
        ) from e


def _is_identity(src: Tensor, old: int) -> bool:
    return len(src) == old and bool(torch.equal(src, torch.arange(old, device=src.device)))


def _visible(src: Tensor, new_len: int, old_len: int) -> Tensor:
    """A consumer's input map: ``src[:new_len]``, -1 where the old consumer did not read it."""
    g = src[:new_len]
    return torch.where(g < old_len, g, -1)


def remap_in(weight: Tensor, g: Tensor) -> Tensor:
    """Input columns ``weight[:, g]`` divided by each source's copy count; zero where g = -1."""
    g = g.to(weight.device)
    valid = g >= 0
    idx = g.clamp(min=0)
    # A bincount of the valid sources, as a scatter-add: its shape does not depend on the data.
    counts = torch.zeros(weight.shape[1], dtype=weight.dtype, device=weight.device)
    counts.index_add_(0, idx, valid.to(weight.dtype))
    scale = torch.where(valid, 1.0 / counts[idx].clamp(min=1), 0.0).to(weight.dtype)
    return weight[:, idx] * scale.view(1, -1, *([1] * (weight.dim() - 2)))


def remap_bn(module: ModuleTensors, prefix: str, g: Tensor) -> ModuleTensors:
    """A BN's parameters and statistics copied along `g` (fill values where g = -1)."""
    out: ModuleTensors = {}
    for name, fill in _BN_FILL.items():
        t = get_tensor(module, prefix + name)
        gd = g.to(t.device)
        out[prefix + name] = torch.where(gd >= 0, t[gd.clamp(min=0)], fill).to(t.dtype)
    return out


get_tensor = state_tensor  # a module's tensor by name; ValueError if absent


def widen_rows(
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


# ---- the shared rewrite ----------------------------------------------------------------------


def rewrite_state(
    old: DenseArch,
    state: StateDict,
    new: DenseArch,
    block: int,
    counterparts: list[int],
    src: Tensor,
    overrides: Mapping[int, ModuleTensors],
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
    groups = group_modules(state)
    units: StateDict = {}
    transitions: StateDict = {}
    changed: Tensor | None = None  # the current block's src; None where nothing changes
    for b in range(new.num_blocks):
        if b == block:
            changed = src
        for u in range(len(new.blocks[b])):
            prefix = unit_key(b, u)
            if changed is None:
                module = get_module(groups, prefix)
            else:
                c = counterparts[u] if b == block else u
                override = overrides.get(u, {}) if b == block else {}
                module = {**get_module(groups, unit_key(b, c)), **override}
                g = _visible(changed, new.unit_in_channels(b, u), old.unit_in_channels(b, c))
                if not _is_identity(g, old.unit_in_channels(b, c)):
                    module.update(remap_bn(module, "norm1.", g))
                    module["conv1.weight"] = remap_in(get_tensor(module, "conv1.weight"), g)
            units.update({prefix + name: t for name, t in module.items()})
        if b == new.num_blocks - 1:
            break
        prefix = transition_key(b)
        module = get_module(groups, prefix)
        if changed is not None:
            g = _visible(changed, new.block_out_channels(b), old.block_out_channels(b))
            module, copies = _rewrite_transition(
                module, g, new.transition_width(b), noise, generator
            )
            # The next block's map: the transition's copies, then its own units, unchanged.
            width = old.transition_width(b)
            rest = torch.arange(width, old.block_out_channels(b + 1), device="cpu")
            changed = None if _is_identity(copies, width) else torch.cat([copies, rest])
        transitions.update({prefix + name: t for name, t in module.items()})
    norm, classifier = get_module(groups, "norm."), get_module(groups, "classifier.")
    if changed is not None:
        last = new.num_blocks - 1
        g = _visible(changed, new.block_out_channels(last), old.block_out_channels(last))
        norm = {**norm, **remap_bn(norm, "", g)}
        classifier = {**classifier, "weight": remap_in(get_tensor(classifier, "weight"), g)}
    return {
        "stem.weight": get_tensor(get_module(groups, "stem."), "weight"),
        **units,
        **transitions,
        **{f"norm.{name}": t for name, t in norm.items()},
        **{f"classifier.{name}": t for name, t in classifier.items()},
    }


def _rewrite_transition(
    module: ModuleTensors, g: Tensor, width: int, noise: float, generator: torch.Generator | None
) -> tuple[ModuleTensors, Tensor]:
    """A transition reading the map `g`, widened by copies to `width` outputs (``(module, t)``)."""
    module = {**module, **remap_bn(module, "norm.", g)}
    conv = remap_in(get_tensor(module, "conv.weight"), g)  # (T, C', 1, 1)
    module["conv.weight"], t = widen_rows(conv, width, noise, generator)
    return module, t
