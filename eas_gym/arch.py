"""Plain-CNN architectures as immutable data, their net strings, and the search-space limits.

An :class:`Arch` is a flat tuple of layers: conv layers and 2x2 max-pools (the feature part),
then hidden fully connected layers. A global average pool sits implicitly between the two parts
and a classifier (``num_classes`` outputs) implicitly after them. Layer indices used by the
transforms and the environment are positions in ``Arch.layers``.

Two string forms round-trip exactly:

* the compact net string, ``"C16-3 MP C32-3 MP C64-3 MP C128-3 GAP FC256"``;
* the paper's token form, ``"conv-16-3_pool_conv-32-3_pool_conv-64-3_pool_conv-128-3_fc-256"``.

This module imports neither torch nor gymnasium.

Kept whole over 400 lines: layers, the net-string grammar and the space's limits are one concept,
what a plain architecture is.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

__all__ = [
    "Conv",
    "Pool",
    "FC",
    "Layer",
    "Arch",
    "SearchSpace",
    "PAPER_SPACE",
    "SMALL_SPACE",
    "PAPER_START",
    "SMALL_START",
    "MAX_WIDTH",
]

MAX_WIDTH = 16384
"""The largest width (filters, units, classes) an architecture may have: a sanity bound."""
MAX_KERNEL = 15


@dataclass(frozen=True)
class Conv:
    """A conv -> BN -> ReLU layer (stride 1, same padding)."""

    filters: int
    kernel: int

    def __post_init__(self) -> None:
        _check_int("filters", self.filters, MAX_WIDTH)
        _check_int("kernel", self.kernel, MAX_KERNEL)
        if self.kernel % 2 == 0:
            raise ValueError(f"Expected an odd `kernel` (same padding), got {self.kernel}")


@dataclass(frozen=True)
class Pool:
    """A 2x2 max-pool with stride 2 between conv blocks."""


@dataclass(frozen=True)
class FC:
    """A hidden fully connected layer: FC (no bias) -> BN -> ReLU."""

    units: int

    def __post_init__(self) -> None:
        _check_int("units", self.units, MAX_WIDTH)


Layer = Conv | Pool | FC


def _check_int(label: str, value: int, limit: int) -> None:
    """`value` is an int in [1, limit] (a sanity bound: larger layers would not fit in memory)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"Expected `{label}` to be an int, got {value!r}")
    if not 1 <= value <= limit:
        raise ValueError(f"Expected 1 <= `{label}` <= {limit}, got {value}")


# ASCII digits only: ``\d`` would take full-width and other Unicode digits.
_COMPACT_CONV = re.compile(r"^C([0-9]+)-([0-9]+)$")
_COMPACT_FC = re.compile(r"^FC([0-9]+)$")
_TOKEN_CONV = re.compile(r"^conv-([0-9]+)-([0-9]+)$")
_TOKEN_FC = re.compile(r"^fc-([0-9]+)$")


@dataclass(frozen=True)
class Arch:
    """A plain CNN: conv/pool layers, an implicit global average pool, hidden FCs, a classifier.

    Args:
        layers: Conv and Pool layers first (starting with a Conv, no two pools in a row, no pool
            last), then FC layers.
        num_classes: Outputs of the classifier.
        in_channels: Channels of the input images.

    Example:
        >>> a = Arch.from_string("C16-3 MP C32-3 GAP FC64")
        >>> a.to_tokens()
        'conv-16-3_pool_conv-32-3_fc-64'
        >>> Arch.from_string(a.to_tokens()) == a
        True
    """

    layers: tuple[Layer, ...]
    num_classes: int = 10
    in_channels: int = 3

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(self.layers))
        _check_int("num_classes", self.num_classes, MAX_WIDTH)
        _check_int("in_channels", self.in_channels, MAX_WIDTH)
        _validate_layers(self.layers)

    # ---- structure -------------------------------------------------------------------------

    # Structure and hash are cached on the (frozen) instance: the weightless envs ask for them
    # several times per step (masks, observations, decoding, the surrogate's lru_cache).
    def __hash__(self) -> int:
        return self._hash

    @functools.cached_property
    def _hash(self) -> int:
        return hash((self.layers, self.num_classes, self.in_channels))

    @functools.cached_property
    def num_feature_layers(self) -> int:
        """Number of conv and pool layers (the index of the first FC layer, if any)."""
        return sum(not isinstance(layer, FC) for layer in self.layers)

    @property
    def num_pools(self) -> int:
        """Number of 2x2 max-pools."""
        return sum(isinstance(layer, Pool) for layer in self.layers)

    @property
    def depth(self) -> int:
        """Number of conv and FC layers (pools and the classifier are not counted)."""
        return sum(not isinstance(layer, Pool) for layer in self.layers)

    def blocks(self) -> list[list[int]]:
        """Layer indices grouped into conv blocks (split by pools), then the FC block.

        The FC block is present (possibly empty) as the last entry.

        >>> Arch.from_string("C4-3 C4-3 MP C8-3 GAP FC8").blocks()
        [[0, 1], [3], [4]]
        """
        return [list(block) for block in self.block_indices]

    @functools.cached_property
    def block_indices(self) -> tuple[tuple[int, ...], ...]:
        """:meth:`blocks` as tuples, computed once per (frozen) instance: no copy per call."""
        blocks: list[list[int]] = [[]]
        for i, layer in enumerate(self.layers[: self.num_feature_layers]):
            if isinstance(layer, Pool):
                blocks.append([])
            else:
                blocks[-1].append(i)
        blocks.append(list(range(self.num_feature_layers, len(self.layers))))
        return tuple(tuple(block) for block in blocks)

    def width(self, index: int) -> int:
        """Output width (filters or units) of the conv or FC layer at `index`."""
        layer = self.layers[index]
        if isinstance(layer, Conv):
            return layer.filters
        if isinstance(layer, FC):
            return layer.units
        raise ValueError(f"layer {index} is a pool and has no width")

    def consumer(self, index: int) -> int | None:
        """Index of the next conv/FC layer reading layer `index`'s output; None = classifier."""
        for j in range(index + 1, len(self.layers)):
            if not isinstance(self.layers[j], Pool):
                return j
        return None

    def input_width(self, index: int) -> int:
        """Channels or features entering the layer at `index` (len(layers) = the classifier)."""
        return self._input_widths[index]

    @functools.cached_property
    def _input_widths(self) -> tuple[int, ...]:
        # one pass, not one walk back per layer: the costs ask for every layer's
        widths, current = [], self.in_channels
        for layer in self.layers:
            widths.append(current)
            if not isinstance(layer, Pool):
                current = self.width(len(widths) - 1)
        widths.append(current)
        return tuple(widths)

    def min_input_size(self) -> int:
        """Smallest square input side that survives every pool."""
        return 2**self.num_pools

    # ---- costs -----------------------------------------------------------------------------

    def num_params(self) -> int:
        """Trainable parameters: conv and FC weights (no bias), BN affine, classifier."""
        total = 0
        for i, layer in enumerate(self.layers):
            cin = self.input_width(i)
            if isinstance(layer, Conv):
                total += layer.kernel**2 * cin * layer.filters + 2 * layer.filters
            elif isinstance(layer, FC):
                total += cin * layer.units + 2 * layer.units
        return total + (self.input_width(len(self.layers)) + 1) * self.num_classes

    def num_flops(self, input_size: int | tuple[int, int] = 32) -> int:
        """Multiply-adds of one forward pass on one image (convs, FCs and classifier only)."""
        h, w = (input_size, input_size) if isinstance(input_size, int) else input_size
        if min(h, w) < self.min_input_size():
            raise ValueError(
                f"`input_size` {input_size} does not survive {self.num_pools} pools; "
                f"need at least {self.min_input_size()}"
            )
        total = 0
        for i, layer in enumerate(self.layers):
            cin = self.input_width(i)
            if isinstance(layer, Conv):
                total += h * w * layer.kernel**2 * cin * layer.filters
            elif isinstance(layer, Pool):
                h, w = h // 2, w // 2
            else:
                total += cin * layer.units
        return total + self.input_width(len(self.layers)) * self.num_classes

    # ---- strings ---------------------------------------------------------------------------

    def to_string(self) -> str:
        """The compact net string, e.g. ``"C16-3 MP C32-3 GAP FC64"`` (the cache key)."""
        parts = [_compact(layer) for layer in self.layers[: self.num_feature_layers]]
        parts.append("GAP")
        parts += [_compact(layer) for layer in self.layers[self.num_feature_layers :]]
        return " ".join(parts)

    def to_tokens(self) -> str:
        """The paper's token form, e.g. ``"conv-16-3_pool_conv-32-3_fc-64"``."""
        return "_".join(layer_token(layer) for layer in self.layers)

    @classmethod
    def from_string(cls, text: str, *, num_classes: int = 10, in_channels: int = 3) -> Arch:
        """Parse a compact net string or the paper's token form.

        Raises:
            ValueError: naming the bad token and the expected form.
        """
        if not isinstance(text, str):
            raise TypeError(f"Expected `text` to be a str, got {type(text).__name__}")
        text = text.strip()
        if not text:
            raise ValueError("empty net string; expected e.g. 'C16-3 MP C32-3 GAP FC64'")
        if " " in text or text.startswith("C") or text == "GAP":
            layers = _parse_compact(text)
        else:
            layers = _parse_tokens(text)
        return cls(tuple(layers), num_classes=num_classes, in_channels=in_channels)

    def __str__(self) -> str:
        return self.to_string()


def layer_token(layer: Layer) -> str:
    """The paper's token for one layer: ``conv-F-K``, ``pool`` or ``fc-U``."""
    if isinstance(layer, Conv):
        return f"conv-{layer.filters}-{layer.kernel}"
    if isinstance(layer, Pool):
        return "pool"
    return f"fc-{layer.units}"


def _compact(layer: Layer) -> str:
    if isinstance(layer, Conv):
        return f"C{layer.filters}-{layer.kernel}"
    if isinstance(layer, Pool):
        return "MP"
    return f"FC{layer.units}"


def _parse_compact(text: str) -> list[Layer]:
    """Layers of a compact net string; the first fault found in reading order is reported."""
    tokens = text.split()
    layers: list[Layer] = []
    for token in tokens:
        if token == "GAP":
            continue
        if token == "MP":
            layers.append(Pool())
        elif m := _COMPACT_CONV.match(token):
            layers.append(_checked(Conv, token, int(m[1]), int(m[2])))
        elif m := _COMPACT_FC.match(token):
            layers.append(_checked(FC, token, int(m[1])))
        else:
            raise ValueError(
                f"bad token {token!r} in net string {text!r}; expected 'C<filters>-<kernel>', "
                "'MP', 'GAP' or 'FC<units>'"
            )
    _validate_layers(tuple(layers))  # e.g. two pools in a row, before a missing GAP
    if tokens.count("GAP") != 1:
        raise ValueError(
            f"net string {text!r} must contain exactly one 'GAP' between the conv part and the "
            "FC part, e.g. 'C16-3 MP C32-3 GAP FC64'"
        )
    gap_at = tokens.index("GAP")
    if any(isinstance(layer, FC) for layer in layers[:gap_at]) or any(
        not isinstance(layer, FC) for layer in layers[gap_at:]
    ):
        raise ValueError(f"net string {text!r}: conv/MP tokens go before 'GAP', FC tokens after")
    return layers


def _parse_tokens(text: str) -> list[Layer]:
    layers: list[Layer] = []
    for token in text.split("_"):
        if token == "pool":
            layers.append(Pool())
        elif m := _TOKEN_CONV.match(token):
            layers.append(_checked(Conv, token, int(m[1]), int(m[2])))
        elif m := _TOKEN_FC.match(token):
            layers.append(_checked(FC, token, int(m[1])))
        else:
            raise ValueError(
                f"bad token {token!r} in {text!r}; expected 'conv-<filters>-<kernel>', 'pool' "
                "or 'fc-<units>' joined by '_'"
            )
    return layers


def _checked(kind: type, token: str, *values: int) -> Layer:
    try:
        return kind(*values)
    except (TypeError, ValueError) as e:
        raise ValueError(f"bad token {token!r}: {e}") from e


def _validate_layers(layers: tuple[Layer, ...]) -> None:
    for i, layer in enumerate(layers):
        if not isinstance(layer, Conv | Pool | FC):
            raise TypeError(f"layer {i} must be Conv, Pool or FC, got {type(layer).__name__}")
    if not layers or not isinstance(layers[0], Conv):
        raise ValueError("an architecture must start with a conv layer")
    seen_fc = False
    for i, layer in enumerate(layers):
        if isinstance(layer, FC):
            seen_fc = True
        elif seen_fc:
            raise ValueError(f"layer {i} ({_compact(layer)}) comes after an FC layer")
        elif isinstance(layer, Pool):
            following = layers[i + 1] if i + 1 < len(layers) else None
            if not isinstance(following, Conv):
                raise ValueError(f"pool at layer {i} must be followed by a conv layer")


@dataclass(frozen=True)
class SearchSpace:
    """Allowed widths, inserted kernels and size limits of a search.

    Args:
        filters: Conv widths, ascending; a wider step moves a layer up this list.
        units: Hidden FC widths, ascending.
        kernels: Odd kernel sizes a deeper step may insert.
        max_layers_per_block: Most conv/FC layers in one block (pools excluded).
        max_layers: Most entries of ``Arch.layers`` (pools included); observations pad to it.
    """

    filters: tuple[int, ...]
    units: tuple[int, ...]
    kernels: tuple[int, ...] = (1, 3, 5)
    max_layers_per_block: int = 6
    max_layers: int = 24
    name: str = field(default="custom", compare=False)

    def __post_init__(self) -> None:
        for label in ("filters", "units", "kernels"):
            values = tuple(getattr(self, label))
            object.__setattr__(self, label, values)
            if not values or list(values) != sorted(set(values)) or values[0] < 1:
                raise ValueError(f"`{label}` must be ascending positive integers, got {values}")
        if any(k % 2 == 0 for k in self.kernels):
            raise ValueError(f"`kernels` must all be odd, got {self.kernels}")
        if self.max_layers_per_block < 1 or self.max_layers < 1:
            raise ValueError(
                "`max_layers_per_block` and `max_layers` must be >= 1, got "
                f"{self.max_layers_per_block} and {self.max_layers}"
            )

    def __hash__(self) -> int:  # `name` is not compared, so not hashed (as dataclass would)
        return self._hash

    @functools.cached_property
    def _hash(self) -> int:
        fields = (self.filters, self.units, self.kernels)
        return hash((*fields, self.max_layers_per_block, self.max_layers))

    def widths(self, layer: Layer) -> tuple[int, ...]:
        """The width list that applies to `layer`."""
        if isinstance(layer, Conv):
            return self.filters
        if isinstance(layer, FC):
            return self.units
        raise ValueError("a pool has no width")

    def next_width(self, layer: Layer) -> int | None:
        """The next larger width in the list for `layer`, or None when it is at the maximum."""
        widths = self.widths(layer)
        assert not isinstance(layer, Pool)  # widths() raised for it
        current = layer.filters if isinstance(layer, Conv) else layer.units
        return next((w for w in widths if w > current), None)

    def contains(self, arch: Arch) -> bool:
        """Whether `arch` respects this space's limits (widths may be off-list)."""
        return len(arch.layers) <= self.max_layers and all(
            len(block) <= self.max_layers_per_block for block in arch.block_indices
        )


PAPER_SPACE = SearchSpace(
    filters=(16, 32, 64, 96, 128, 192, 256, 320, 384, 448, 512, 576, 640),
    units=(64, 128, 256, 384, 512, 640, 768, 896, 1024, 1152, 1280),
    kernels=(1, 3, 5),
    max_layers_per_block=6,
    max_layers=24,
    name="paper",
)
"""The paper's plain-CNN space (Cai et al., 2018)."""

SMALL_SPACE = SearchSpace(
    filters=tuple(range(4, 41, 4)),
    units=tuple(range(8, 81, 8)),
    kernels=(1, 3, 5),
    max_layers_per_block=4,
    max_layers=20,
    name="small",
)
"""A small space for quick CPU runs and tests: filters 4..40 step 4, units 8..80 step 8."""

PAPER_START = Arch.from_string("C16-3 MP C32-3 MP C64-3 MP C128-3 GAP FC256")
"""The paper's start net for CIFAR-10."""

SMALL_START = Arch.from_string("C4-3 MP C4-3 MP C4-3 MP C4-3 GAP FC8")
"""The small start net for quick runs."""
