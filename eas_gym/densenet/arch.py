"""DenseNet(-BC) architectures as immutable data, their net strings, and the search-space limits.

A :class:`DenseArch` is a 3x3 stem conv, then dense blocks separated by transitions, then a final
BN -> ReLU -> global average pool -> classifier. Each unit of a dense block has its own growth
rate ``k``: BN -> ReLU -> conv1x1 (``bottleneck * k`` filters) -> BN -> ReLU -> conv3x3 (``k``
filters), and its output is concatenated onto the block's running feature map. A transition is
BN -> ReLU -> conv1x1 -> 2x2 average pool; its width is derived, never stored:
``floor(compression * channels entering it)``, so widening or deepening a block changes it too.

The compact net string lists the stem, then each block's growth rates, with ``T`` between
blocks; ``<k>x<n>`` stands for a run of ``n`` units of growth ``k``::

    "D24 12x16 T 12x16 T 12x16"      # DenseNet-BC (L=100, k=12)
    "D8 4 6 T 4x2 T 4 4"

``from_string(to_string(a)) == a`` for every architecture, and ``to_string`` is canonical (runs of
two or more units are always written ``<k>x<n>``). Like the plain-CNN string, it leaves out
``num_classes``, ``in_channels``, ``bottleneck`` and ``compression``, which are fixed per search.

This module imports neither torch nor gymnasium.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

__all__ = [
    "DenseArch",
    "DenseSearchSpace",
    "DENSE_PAPER_SPACE",
    "DENSE_SMALL_SPACE",
    "DENSE_PAPER_START",
    "DENSE_SMALL_START",
]

_STEM = re.compile(r"^D([0-9]+)$")  # ASCII digits only
_RUN = re.compile(r"^([0-9]+)(?:x([0-9]+))?$")
_MAX_GROWTH = 4096  # sanity bounds: larger would not fit in memory
_MAX_UNITS = 1024
_EXAMPLE = "'D24 12x16 T 12x16 T 12x16'"


@dataclass(frozen=True)
class DenseArch:
    """A DenseNet-BC: stem conv, dense blocks joined by transitions, BN-ReLU-GAP-classifier.

    Args:
        stem: Filters of the initial 3x3 conv (no BN or ReLU after it: units are pre-activation).
        blocks: Growth rate of every unit, one tuple per dense block; each block has >= 1 unit.
        num_classes: Outputs of the classifier.
        in_channels: Channels of the input images.
        bottleneck: A unit's 1x1 conv has ``bottleneck * growth`` filters (4 in DenseNet-BC).
        compression: A transition keeps ``floor(compression * channels)`` channels (0.5 in -BC).

    Example:
        >>> a = DenseArch.from_string("D8 4 6 T 4x2")
        >>> a.blocks
        ((4, 6), (4, 4))
        >>> a.transition_width(0), a.block_out_channels(1)
        (9, 17)
        >>> DenseArch.from_string(a.to_string()) == a
        True
    """

    stem: int
    blocks: tuple[tuple[int, ...], ...]
    num_classes: int = 10
    in_channels: int = 3
    bottleneck: int = 4
    compression: float = 0.5

    def __post_init__(self) -> None:
        try:
            blocks = tuple(tuple(block) for block in self.blocks)
        except TypeError as e:
            raise TypeError(f"`blocks` must be a sequence of sequences, got {self.blocks!r}") from e
        object.__setattr__(self, "blocks", blocks)
        for label in ("stem", "num_classes", "in_channels", "bottleneck"):
            value = getattr(self, label)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"Expected `{label}` to be an int, got {type(value).__name__}")
            if value < 1:
                raise ValueError(f"Expected `{label}` >= 1, got {value}")
        if not 0 < self.compression <= 1:
            raise ValueError(f"Expected 0 < `compression` <= 1, got {self.compression}")
        if not blocks:
            raise ValueError("`blocks` must hold at least one dense block")
        for b, block in enumerate(blocks):
            if not block:
                raise ValueError(f"block {b} of `blocks` is empty; each block needs >= 1 unit")
            if len(block) > _MAX_UNITS:
                raise ValueError(f"block {b} has {len(block)} units, over {_MAX_UNITS}")
            for k in block:
                if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= _MAX_GROWTH:
                    raise ValueError(
                        f"growth rates must be ints in [1, {_MAX_GROWTH}], got {k!r} in block {b}"
                    )
        for b in range(len(blocks) - 1):
            if self.transition_width(b) < 1:
                raise ValueError(
                    f"transition {b} would have no channels: `compression` {self.compression} "
                    f"of {self.block_out_channels(b)}"
                )

    # ---- structure -------------------------------------------------------------------------

    @property
    def num_blocks(self) -> int:
        """Number of dense blocks (transitions: one fewer)."""
        return len(self.blocks)

    @property
    def num_units(self) -> int:
        """Number of dense units over all blocks."""
        return sum(len(block) for block in self.blocks)

    @property
    def depth(self) -> int:
        """Conv and FC layers, counted as DenseNet's ``L``: stem, 2 per unit, transitions, FC."""
        return 1 + 2 * self.num_units + (self.num_blocks - 1) + 1

    def block_in_channels(self, block: int) -> int:
        """Channels entering dense block `block` (the stem's or the previous transition's)."""
        return self.stem if block == 0 else self.transition_width(block - 1)

    def unit_in_channels(self, block: int, unit: int) -> int:
        """Channels entering unit `unit` of `block`: the block input and every earlier unit.

        With ``unit = len(blocks[block])`` this is the block's output width. It is also the
        offset of the unit's own output channels in the block's running feature map.
        """
        return self.block_in_channels(block) + sum(self.blocks[block][:unit])

    def block_out_channels(self, block: int) -> int:
        """Channels leaving dense block `block` (read by its transition or the final BN)."""
        return self.unit_in_channels(block, len(self.blocks[block]))

    def bottleneck_width(self, block: int, unit: int) -> int:
        """Filters of the unit's 1x1 bottleneck conv."""
        return self.bottleneck * self.blocks[block][unit]

    def transition_width(self, block: int) -> int:
        """Output channels of the transition after `block`: ``floor(compression * in)``."""
        if not 0 <= block < self.num_blocks - 1:
            raise ValueError(f"`block` {block} has no transition after it in {self}")
        return math.floor(self.compression * self.block_out_channels(block))

    def min_input_size(self) -> int:
        """Smallest square input side that survives every transition's 2x2 average pool."""
        return 2 ** (self.num_blocks - 1)

    # ---- costs -----------------------------------------------------------------------------

    def num_params(self) -> int:
        """Trainable parameters: conv weights (no bias), BN affine, classifier."""
        total = 9 * self.in_channels * self.stem
        for b, block in enumerate(self.blocks):
            for u, k in enumerate(block):
                cin, mid = self.unit_in_channels(b, u), self.bottleneck * k
                total += 2 * cin + cin * mid + 2 * mid + 9 * mid * k
            cout = self.block_out_channels(b)
            total += 2 * cout  # the transition's BN, or the final BN
            if b < self.num_blocks - 1:
                total += cout * self.transition_width(b)
        return total + (self.block_out_channels(self.num_blocks - 1) + 1) * self.num_classes

    def num_flops(self, input_size: int | tuple[int, int] = 32) -> int:
        """Multiply-adds of one forward pass on one image (convs and classifier only)."""
        h, w = (input_size, input_size) if isinstance(input_size, int) else input_size
        if min(h, w) < self.min_input_size():
            raise ValueError(
                f"`input_size` {input_size} does not survive {self.num_blocks - 1} transitions; "
                f"need at least {self.min_input_size()}"
            )
        total = h * w * 9 * self.in_channels * self.stem
        for b, block in enumerate(self.blocks):
            for u, k in enumerate(block):
                mid = self.bottleneck * k
                total += h * w * (self.unit_in_channels(b, u) * mid + 9 * mid * k)
            if b < self.num_blocks - 1:
                total += h * w * self.block_out_channels(b) * self.transition_width(b)
                h, w = h // 2, w // 2
        return total + self.block_out_channels(self.num_blocks - 1) * self.num_classes

    # ---- strings ---------------------------------------------------------------------------

    def to_string(self) -> str:
        """The canonical compact net string, e.g. ``"D24 12x16 T 12x16 T 12x16"``."""
        return " ".join([f"D{self.stem}", " T ".join(_runs(block) for block in self.blocks)])

    @classmethod
    def from_string(
        cls,
        text: str,
        *,
        num_classes: int = 10,
        in_channels: int = 3,
        bottleneck: int = 4,
        compression: float = 0.5,
    ) -> DenseArch:
        """Parse a compact dense net string (runs may also be written out: ``"12 12"``).

        Raises:
            TypeError: `text` is not a str.
            ValueError: naming the bad token and the expected form.
        """
        if not isinstance(text, str):
            raise TypeError(f"Expected `text` to be a str, got {type(text).__name__}")
        tokens = text.split()
        if not tokens or not (m := _STEM.match(tokens[0])):
            first = tokens[0] if tokens else ""
            raise ValueError(
                f"bad token {first!r} in dense net string {text!r}; expected 'D<stem filters>' "
                f"first, e.g. {_EXAMPLE}"
            )
        stem = int(m[1])
        blocks: list[list[int]] = [[]]
        for token in tokens[1:]:
            if token == "T":
                blocks.append([])
            elif m := _RUN.match(token):
                count = 1 if m[2] is None else int(m[2])
                if count > _MAX_UNITS:  # refuse before building a huge list
                    raise ValueError(f"bad token {token!r}: {count} units, over {_MAX_UNITS}")
                if count < 1:
                    raise ValueError(f"bad token {token!r} in {text!r}: a run needs >= 1 unit")
                blocks[-1] += [int(m[1])] * count
            else:
                raise ValueError(
                    f"bad token {token!r} in dense net string {text!r}; expected a growth rate "
                    f"'<k>', a run '<k>x<units>' or 'T' between blocks, e.g. {_EXAMPLE}"
                )
        for b, block in enumerate(blocks):
            if not block:
                raise ValueError(
                    f"block {b} of dense net string {text!r} is empty; put growth rates between "
                    f"the 'T' tokens, e.g. {_EXAMPLE}"
                )
        try:
            return cls(
                stem,
                tuple(tuple(block) for block in blocks),
                num_classes=num_classes,
                in_channels=in_channels,
                bottleneck=bottleneck,
                compression=compression,
            )
        except ValueError as e:
            raise ValueError(f"bad dense net string {text!r}: {e}") from e

    def __str__(self) -> str:
        return self.to_string()


def _runs(block: tuple[int, ...]) -> str:
    """Run-length form of one block's growth rates: ``(12, 12, 8) -> "12x2 8"``."""
    parts: list[str] = []
    start = 0
    for i in range(1, len(block) + 1):
        if i == len(block) or block[i] != block[start]:
            count = i - start
            parts.append(f"{block[start]}x{count}" if count > 1 else f"{block[start]}")
            start = i
    return " ".join(parts)


@dataclass(frozen=True)
class DenseSearchSpace:
    """Allowed growth rates and size limits of a DenseNet search.

    Args:
        growths: Growth rates, ascending; a wider step moves a unit up this list.
        max_units_per_block: Most units in one dense block.
        max_units: Most units over all blocks; observations pad to it.
    """

    growths: tuple[int, ...]
    max_units_per_block: int = 32
    max_units: int = 96
    name: str = field(default="custom", compare=False)

    def __post_init__(self) -> None:
        growths = tuple(self.growths)
        object.__setattr__(self, "growths", growths)
        if not growths or list(growths) != sorted(set(growths)) or growths[0] < 1:
            raise ValueError(f"`growths` must be ascending positive integers, got {growths}")
        if self.max_units_per_block < 1 or self.max_units < 1:
            raise ValueError(
                "`max_units_per_block` and `max_units` must be >= 1, got "
                f"{self.max_units_per_block} and {self.max_units}"
            )

    def next_growth(self, growth: int) -> int | None:
        """The next larger growth rate in the list, or None when `growth` is at the maximum."""
        return next((k for k in self.growths if k > growth), None)

    def contains(self, arch: DenseArch) -> bool:
        """Whether `arch` respects this space's unit limits (growth rates may be off-list)."""
        return arch.num_units <= self.max_units and all(
            len(block) <= self.max_units_per_block for block in arch.blocks
        )


DENSE_PAPER_SPACE = DenseSearchSpace(
    growths=tuple(range(4, 49, 2)),
    max_units_per_block=32,
    max_units=96,
    name="dense-paper",
)
"""The paper's DenseNet space (Cai et al., 2018): growth rates 4..48 step 2.

The unit limits are ours (the paper does not state them): up to 32 units per block, about
DenseNet-BC L=190's 31, which leaves room for the paper's 10.7M-parameter result.
"""

DENSE_SMALL_SPACE = DenseSearchSpace(
    growths=tuple(range(2, 17, 2)),
    max_units_per_block=6,
    max_units=12,
    name="dense-small",
)
"""A small space for CPU runs and tests: growth rates 2..16 step 2, at most 6 units a block."""

DENSE_PAPER_START = DenseArch.from_string("D24 12x16 T 12x16 T 12x16")
"""DenseNet-BC (L=100, k=12; Huang et al., 2017): 0.77M parameters, the start of the search."""

DENSE_SMALL_START = DenseArch.from_string("D8 4x2 T 4x2 T 4x2")
"""The small start net for quick runs: three blocks of two units with k=4."""
