"""What every search space shares: the family interface, the action layout, Net2Net's tricks.

Both network families, the plain CNN (:mod:`eas_gym.arch`, :mod:`eas_gym.net`,
:mod:`eas_gym.morph`, :mod:`eas_gym.spaces`) and DenseNet (:mod:`eas_gym.densenet`), build on
this module and on nothing of each other's:

* :class:`Family`, the interface the env, the scorer and the exports use;
* one observation and action layout: the step kinds :data:`WIDER` and :data:`DEEPER`, the
  :class:`LayerKind` codes a controller reads, :class:`Decoded` actions, and the mask and no-op
  rules (:func:`step_mask`, :func:`decode_wider`, :func:`decode_deeper`), so agents work on
  either family unchanged;
* weights: :data:`StateDict` and :func:`build_module`;
* Net2Net: the paper's noise levels, the replication mapping and relative noise.

References:
    Chen, Goodfellow, Shlens. Net2Net: Accelerating Learning via Knowledge Transfer. ICLR 2016.
    Cai, Chen, Zhang, Yu, Wang. Efficient Architecture Search by Network Transformation. AAAI 2018.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Generic, TypeVar

import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor, nn

__all__ = [
    "WIDER",
    "DEEPER",
    "LayerKind",
    "parse_schedule",
    "Decoded",
    "Observation",
    "StateDict",
    "copy_counts",
    "fp32_exact",
    "state_digest",
    "Transforms",
    "Family",
    "observation_space",
    "action_space",
    "observation",
    "step_mask",
    "decode_wider",
    "decode_deeper",
    "build_module",
    "WIDER_NOISE",
    "DEEPER_NOISE",
    "check_noise",
    "relative_noise",
    "replication_map",
]

StateDict = dict[str, Tensor]
"""Named weights, as ``module.state_dict()`` returns them and the transforms rewrite them."""

Observation = dict[str, np.ndarray | np.int64]
"""One observation of the shared layout (see :func:`observation_space`)."""

Transforms = list[dict[str, Any]]
"""Store records of the transforms that made a child (JSON-able)."""

ArchT = TypeVar("ArchT")
SpaceT = TypeVar("SpaceT")

# ---- the layout ------------------------------------------------------------------------------

WIDER, DEEPER = 0, 1
"""Step kinds: a wider step widens any subset of layers, a deeper step inserts one layer."""


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


class LayerKind(IntEnum):
    """A slot's ``kind`` in the observation, the same in both families.

    DenseNet fills slots with dense units (read as :attr:`CONV`) and transitions (read as
    :attr:`POOL`: they split the slots into blocks as pools do); it has no :attr:`FC`.

    >>> [int(k) for k in LayerKind]
    [0, 1, 2, 3]
    """

    PAD = 0
    CONV = 1
    POOL = 2
    FC = 3


@dataclass(frozen=True)
class Decoded:
    """A decoded action: what to apply, and whether any part of it was illegal.

    Args:
        widths: Wider step: ``{slot: new_width}`` of the legal flagged slots.
        layer: Deeper step: insert after this slot (None when illegal: a no-op).
        kernel: Deeper step: kernel of an inserted conv (None after an FC and in DenseNet).
        illegal: Some flagged slot or the position could not be applied.
    """

    widths: dict[int, int]
    layer: int | None
    kernel: int | None
    illegal: bool


def observation_space(
    num_slots: int, num_widths: int, num_kernels: int, num_steps: int
) -> spaces.Dict:
    """The observation ``Dict`` both families use (stable-baselines3 accepts it).

    ``kind`` (a :class:`LayerKind` per slot), ``width`` and ``kernel`` (indices in the space's
    lists), ``num_layers`` (filled slots), ``step_kind`` (0 wider, 1 deeper), ``steps_left``.
    """
    return spaces.Dict(
        {
            "kind": spaces.MultiDiscrete(np.full(num_slots, len(LayerKind), dtype=np.int64)),
            "width": spaces.MultiDiscrete(np.full(num_slots, num_widths, dtype=np.int64)),
            "kernel": spaces.MultiDiscrete(np.full(num_slots, num_kernels, dtype=np.int64)),
            "num_layers": spaces.Discrete(num_slots + 1),
            "step_kind": spaces.Discrete(2),
            "steps_left": spaces.Discrete(num_steps + 1),
        }
    )


def action_space(num_slots: int, num_kernels: int) -> spaces.MultiDiscrete:
    """``MultiDiscrete([2] * L + [L, K])``: widen flags, then insert position and kernel."""
    return spaces.MultiDiscrete(np.array([2] * num_slots + [num_slots, num_kernels], np.int64))


def observation(
    kind: np.ndarray,
    width: np.ndarray,
    kernel: np.ndarray,
    num_layers: int,
    step_kind: int,
    steps_left: int,
) -> Observation:
    """An observation of the layout from its per-slot arrays and scalars."""
    return {
        "kind": kind,
        "width": width,
        "kernel": kernel,
        "num_layers": np.int64(num_layers),
        "step_kind": np.int64(step_kind),
        "steps_left": np.int64(steps_left),
    }


def step_mask(
    step_kind: int, legal: Collection[int], num_slots: int, num_kernels: int
) -> tuple[np.ndarray, ...]:
    """Legal values of each action entry, as ``MultiDiscrete.sample(mask=...)`` takes them.

    `legal` holds the slots the step can act on: those a wider step can widen, or those after
    which a deeper step can insert. Entries a step does not read allow only 0. If a deeper step
    has no legal position, position 0 stays allowed and the step is a no-op (see ``EASEnv``).
    Flatten with ``np.concatenate`` for sb3-contrib's MaskablePPO.

    >>> [m.tolist() for m in step_mask(DEEPER, [], 2, 1)]
    [[1, 0], [1, 0], [1, 0], [1]]
    """
    flags = np.zeros((num_slots, 2), np.int8)  # one array, returned as row views: fewer allocs
    flags[:, 0] = 1
    position = np.zeros(num_slots, np.int8)
    kernel = np.zeros(num_kernels, np.int8)
    if step_kind == WIDER:
        flags[list(legal), 1] = 1
        position[0] = kernel[0] = 1
    else:
        position[list(legal) or [0]] = 1
        kernel[:] = 1
    return (*flags, position, kernel)


def decode_wider(action: np.ndarray, num_slots: int, targets: Mapping[int, int]) -> Decoded:
    """A wider step's action: the flagged slots among `targets` (``{slot: next width}``).

    Flags on other slots (pools, padding, maximal widths) are dropped and make it illegal.
    """
    flagged = [i for i in range(num_slots) if action[i]]
    widths = {i: targets[i] for i in flagged if i in targets}
    return Decoded(widths, None, None, illegal=len(widths) != len(flagged))


def decode_deeper(
    action: np.ndarray,
    num_slots: int,
    legal: Collection[int],
    kernel_of: Callable[[int, int], int | None],
) -> Decoded:
    """A deeper step's action: insert after a `legal` slot, ``kernel_of(slot, kernel index)``.

    An illegal position is a no-op. With no legal position at all, position 0 is the mask's
    no-op and not illegal.
    """
    layer = int(action[num_slots])
    if layer not in legal:
        return Decoded({}, None, None, illegal=bool(legal) or layer != 0)
    return Decoded({}, layer, kernel_of(layer, int(action[num_slots + 1])), False)


# ---- the family interface --------------------------------------------------------------------


class Family(Generic[ArchT, SpaceT]):
    """One architecture family with its search space and default start network.

    A family is what the environment, the scorer and the exports need to know about one kind
    of network: how to parse a net string, build a module, encode observations and masks,
    decode actions and apply the function-preserving transforms.

    Args:
        space: The search space (widths or growth rates, and size limits).
        start: The default start network.
    """

    def __init__(self, space: SpaceT, start: ArchT) -> None:
        self.space, self.start = space, start

    def parse(self, net: str, num_classes: int) -> ArchT:
        """The architecture of a net string."""
        raise NotImplementedError

    def check(self, arch: ArchT) -> None:
        """Raise ValueError unless `arch` lies in the space (limits, listed widths)."""
        raise NotImplementedError

    def observation_space(self, start: ArchT, num_steps: int) -> spaces.Dict:
        """The observation space of searches from `start` with `num_steps` steps."""
        raise NotImplementedError

    def action_space(self, start: ArchT) -> spaces.MultiDiscrete:
        """The action space of searches from `start`."""
        raise NotImplementedError

    def encode(self, arch: ArchT, step_kind: int, steps_left: int) -> Observation:
        """The observation of `arch` before a step of `step_kind`."""
        raise NotImplementedError

    def mask(self, arch: ArchT, step_kind: int) -> tuple[np.ndarray, ...]:
        """Legal values of each action entry."""
        raise NotImplementedError

    def decode(self, action: np.ndarray, arch: ArchT, step_kind: int) -> Decoded:
        """What an action asks of `arch`, and whether part of it was illegal."""
        raise NotImplementedError

    def apply(
        self,
        decoded: Decoded,
        arch: ArchT,
        state: StateDict,
        *,
        noise: bool,
        generator: torch.Generator,
        probe: Tensor,
    ) -> tuple[ArchT, StateDict, Transforms]:
        """The child of a decoded action, its weights, and store records of the transforms."""
        raise NotImplementedError

    def apply_arch(self, decoded: Decoded, arch: ArchT) -> tuple[ArchT, Transforms]:
        """The child of a decoded action and its transform records, without weights.

        The same architecture and records as :meth:`apply`, for evaluators that need no
        weights (the surrogates): no tensors, no noise, nothing drawn.
        """
        raise NotImplementedError

    def surrogate(self, arch: ArchT) -> float:
        """The surrogate evaluator's accuracy (no training)."""
        raise NotImplementedError

    def build(
        self,
        arch: ArchT,
        state: StateDict | None = None,
        *,
        generator: torch.Generator | None = None,
    ) -> nn.Module:
        """The module of `arch`, loading `state` strictly when given."""
        raise NotImplementedError


# ---- weights ---------------------------------------------------------------------------------


def build_module(
    module_class: type[nn.Module],
    arch: Any,
    state: StateDict | None = None,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Any:
    """``module_class(arch, generator=...)`` with `state` loaded strictly, on `device`.

    The body shared by :func:`eas_gym.net.build_net` and
    :func:`eas_gym.densenet.net.build_dense_net`. With `state`, the module is built on the
    ``meta`` device (nothing initialised, nothing allocated) and takes copies of `state`'s
    tensors, made straight on `device` (default: `state`'s): one copy, never through the host,
    and never an alias, so training the module leaves `state` as it was. It takes `state`'s
    dtypes; `generator` is not drawn from. Without `state`, `generator` (or the global RNG)
    initialises it on the CPU, and it is then moved to `device`.
    """
    if state is None:
        # on the CPU whatever the caller's default device (torch.set_default_device)
        if generator is None:
            with torch.device("cpu"):
                net = module_class(arch)  # documented: the global RNG initialises it
        else:
            # torch's layer constructors draw from the global RNG even though `generator`
            # decides the weights; keep the caller's global RNG stream untouched.
            with torch.random.fork_rng(devices=[]), torch.device("cpu"):
                net = module_class(arch, generator=generator)
        return net.to(device) if device is not None else net
    if device is None:
        device = next(iter(state.values())).device
    with torch.device("meta"):
        net = module_class(arch)
    own = {
        k: v.to(device=device, copy=True, memory_format=torch.contiguous_format)
        for k, v in state.items()
    }
    net.load_state_dict(own, strict=True, assign=True)
    tensors = [*net.named_parameters(), *net.named_buffers()]
    left = [name for name, t in tensors if t.is_meta and torch.device(device).type != "meta"]
    if left:  # a tensor the state dict does not hold (a non-persistent buffer) stayed unbuilt
        raise ValueError(f"{module_class.__name__} has tensors outside its state dict: {left}")
    return net


def state_digest(state: Mapping[str, Tensor]) -> str:
    """A SHA-256 prefix (16 hex digits) of `state`'s names, dtypes, shapes and values.

    Equal for equal weights on any device and in any key order; the weights' identity in
    records (which start network a child grew from).

    >>> state_digest({"w": torch.zeros(2)}) == state_digest({"w": torch.zeros(2, device="cpu")})
    True
    """
    digest = hashlib.sha256()
    for key in sorted(state):
        tensor = state[key].detach().to("cpu").contiguous().reshape(-1)
        digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()[:16]


# ---- Net2Net ---------------------------------------------------------------------------------

WIDER_NOISE = 0.01
"""The paper's symmetry-breaking noise for widened copies: 1% of the weights' std."""

DEEPER_NOISE = 0.001
"""The paper's noise for an inserted identity layer: 0.1% of its weights' std."""


def state_tensor(state: Mapping[str, Tensor], key: str) -> Tensor:
    """``state[key]``, or a ValueError saying the state does not fit the architecture."""
    try:
        return state[key]
    except KeyError as e:
        raise ValueError(f"`state` has no {key!r}; does it belong to this architecture?") from e


def replication_map(
    old: int, new: int, generator: torch.Generator | None, device: torch.device
) -> Tensor:
    """Net2Net's mapping g: unit j of the wider layer copies unit g[j] of the old one.

    The first `old` entries are the identity; the rest are sampled uniformly with replacement
    from `generator` (drawn on the CPU, then moved to `device`), or taken round-robin when it
    is None.

    >>> replication_map(2, 5, None, torch.device("cpu")).tolist()
    [0, 1, 0, 1, 0]
    """
    if generator is None:
        extra = torch.arange(new - old, device="cpu") % old
    else:
        extra = torch.randint(old, (new - old,), generator=generator, device="cpu")
    return torch.cat([torch.arange(old, device="cpu"), extra]).to(device)


def copy_counts(g: Tensor, old: int, dtype: torch.dtype) -> Tensor:
    """How many units of the wider layer copy each of the `old` ones (a ``bincount`` of `g`).

    A scatter-add of ones instead of ``torch.bincount``, whose output size depends on the
    data: the same exact integers, on `g`'s device, with a shape known before it runs.

    >>> copy_counts(torch.tensor([0, 1, 0, 0]), 3, torch.float32).tolist()
    [3.0, 1.0, 0.0]
    """
    counts = torch.zeros(old, dtype=dtype, device=g.device)
    return counts.index_add_(0, g, torch.ones(g.shape[0], dtype=dtype, device=g.device))


@contextmanager
def fp32_exact() -> Iterator[None]:
    """Full-precision float32 convolutions and matmuls inside (no TF32), restored after.

    PyTorch lets cuDNN convolutions use TF32 by default, about 1e-3 relative error on
    Ampere and later GPUs: enough to hide or fake a broken transform. Every preservation
    check runs under this. A no-op for the CPU's results.

    Torch >= 2.9 has two sets of switches that must agree, or reading a legacy one raises
    (``torch.backends.cudnn.allow_tf32`` inside a check would, as would code calling cuDNN
    without naming an operator): the legacy ones are set first (``allow_tf32`` off, matmul
    precision ``"highest"``), then the per-operator ones to ``"ieee"``, so that a TF32 setting
    at the cuDNN or CUDA level above them is not inherited. A caller who set the per-operator
    switches in a way the legacy ones cannot express (cuDNN's conv and rnn apart, or matmul
    TF32 per backend) already cannot read those legacy switches; they are left alone.
    """
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    try:
        legacy_cudnn: bool | None = cudnn.allow_tf32
    except RuntimeError:  # the caller set conv and rnn apart (new API): leave the legacy bool
        legacy_cudnn = None
    try:
        legacy_matmul: str | None = torch.get_float32_matmul_precision()
    except RuntimeError:  # likewise for matmuls set per backend (new API)
        legacy_matmul = None
    # the matmul precision's legacy setter writes oneDNN's matmul switch too: kept and restored
    mkldnn_matmul = getattr(getattr(torch.backends, "mkldnn", None), "matmul", None)
    operators = [
        (op, op.fp32_precision)
        for op in (getattr(cudnn, "conv", None), getattr(cudnn, "rnn", None), matmul, mkldnn_matmul)
        if op is not None and hasattr(op, "fp32_precision")  # torch >= 2.9
    ]
    if legacy_cudnn is not None:
        cudnn.allow_tf32 = False
    if legacy_matmul is not None:
        torch.set_float32_matmul_precision("highest")
    for op, _ in operators:
        op.fp32_precision = "ieee"
    try:
        yield
    finally:
        if legacy_cudnn is not None:
            cudnn.allow_tf32 = legacy_cudnn
        if legacy_matmul is not None:
            torch.set_float32_matmul_precision(legacy_matmul)
        for op, precision in operators:
            op.fp32_precision = precision


def relative_noise(
    weight: Tensor, scale: float, generator: torch.Generator | None, std_of: Tensor
) -> Tensor:
    """Gaussian noise shaped like `weight` with std ``scale * std(std_of)``, on `weight`'s device.

    The draws come from the CPU `generator` (the same numbers on any device), then move to
    `weight`'s device before meeting `std_of`, which may live there.
    """
    noise = torch.randn(weight.shape, generator=generator, dtype=torch.float32, device="cpu")
    noise = noise.to(weight.device)
    return (noise * scale * std_of.float().std()).to(dtype=weight.dtype)


def check_noise(noise: float, generator: torch.Generator | None) -> None:
    """Raise ValueError for bad `noise` or `generator` arguments.

    Refused: negative `noise`, positive `noise` without a `generator`, and a `generator` off
    the CPU (the draws are made on the CPU, the same numbers on every device).
    """
    if not noise >= 0:
        raise ValueError(f"Expected `noise` >= 0, got {noise}")
    if noise > 0 and generator is None:
        raise ValueError("`noise` > 0 needs an explicit `generator` (no hidden default seed)")
    if generator is not None and generator.device.type != "cpu":
        raise ValueError(f"Expected a CPU `generator`, got one on {generator.device}")
