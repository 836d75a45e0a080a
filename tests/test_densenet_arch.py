"""DenseNet architectures: net strings, structure, costs, search-space limits."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from eas_gym.densenet.arch import (
    DENSE_PAPER_SPACE,
    DENSE_PAPER_START,
    DENSE_SMALL_SPACE,
    DENSE_SMALL_START,
    DenseArch,
    DenseSearchSpace,
)
from eas_gym.densenet.net import build_dense_net


@st.composite
def dense_archs(
    draw,
    space: DenseSearchSpace = DENSE_SMALL_SPACE,
    min_blocks: int = 1,
    max_blocks: int = 3,
    max_units: int = 3,
    narrow: bool = False,
    variants: bool = True,
) -> DenseArch:
    """Random valid DenseNets with growths from `space` (`narrow`: the lowest three only).

    `variants` also draws the fields the net string leaves out (classes, bottleneck,
    compression), so transforms are checked away from the DenseNet-BC defaults too.
    """
    growths = space.growths[:3] if narrow else space.growths
    blocks = tuple(
        tuple(draw(st.lists(st.sampled_from(growths), min_size=1, max_size=max_units)))
        for _ in range(draw(st.integers(min_blocks, max_blocks)))
    )
    extra = {}
    if variants:
        extra = {
            "num_classes": draw(st.integers(2, 12)),
            "bottleneck": draw(st.sampled_from([4, 1, 2])),
            "compression": draw(st.sampled_from([0.5, 1.0])),
        }
    return DenseArch(draw(st.sampled_from([2, 4, 8, 9])), blocks, **extra)


def parse_like(text: str, arch: DenseArch) -> DenseArch:
    return DenseArch.from_string(
        text,
        num_classes=arch.num_classes,
        bottleneck=arch.bottleneck,
        compression=arch.compression,
    )


@given(dense_archs())
def test_string_round_trips(arch):
    text = arch.to_string()
    assert parse_like(text, arch) == arch
    assert parse_like(text, arch).to_string() == text  # canonical
    spelled_out = " ".join(
        [f"D{arch.stem}", " T ".join(" ".join(map(str, block)) for block in arch.blocks)]
    )
    assert parse_like(spelled_out, arch) == arch
    assert hash(parse_like(text, arch)) == hash(arch)


def test_canonical_forms():
    assert DENSE_PAPER_START.to_string() == "D24 12x16 T 12x16 T 12x16"
    assert DENSE_SMALL_START.to_string() == "D8 4x2 T 4x2 T 4x2"
    a = DenseArch.from_string("  D8 4 4 6  4x1 T 2x3 ")
    assert a.blocks == ((4, 4, 6, 4), (2, 2, 2)) and str(a) == "D8 4x2 6 4 T 2x3"


def test_structure_helpers():
    a = DenseArch.from_string("D8 4 6 T 4x2 T 2")
    assert a.num_blocks == 3 and a.num_units == 5 and a.depth == 1 + 10 + 2 + 1
    assert [a.unit_in_channels(0, u) for u in range(3)] == [8, 12, 18]
    assert a.block_out_channels(0) == 18 and a.transition_width(0) == 9
    assert a.block_in_channels(1) == 9 and a.block_out_channels(1) == 17
    assert a.transition_width(1) == 8 and a.block_out_channels(2) == 10
    assert a.bottleneck_width(0, 1) == 24 and a.min_input_size() == 4
    with pytest.raises(ValueError, match="no transition"):
        a.transition_width(2)
    assert DenseArch(8, ((4, 6),), compression=1.0).block_out_channels(0) == 18
    assert DENSE_PAPER_START.depth == 100  # DenseNet-BC's L


def test_costs_by_hand():
    a = DenseArch.from_string("D4 2 T 2", num_classes=10, bottleneck=2)
    stem = 9 * 3 * 4
    unit0 = 2 * 4 + 4 * 4 + 2 * 4 + 9 * 4 * 2  # BN(4), 1x1 4->4, BN(4), 3x3 4->2
    trans = 2 * 6 + 6 * 3  # BN(6), 1x1 6->3
    unit1 = 2 * 3 + 3 * 4 + 2 * 4 + 9 * 4 * 2
    head = 2 * 5 + 5 * 10 + 10
    assert a.num_params() == stem + unit0 + trans + unit1 + head
    flops = 64 * 9 * 3 * 4 + 64 * (4 * 4 + 9 * 4 * 2) + 64 * 6 * 3 + 16 * (3 * 4 + 9 * 4 * 2)
    assert a.num_flops(8) == flops + 5 * 10
    assert a.num_flops((8, 4)) < a.num_flops(8)
    with pytest.raises(ValueError, match="does not survive"):
        DENSE_PAPER_START.num_flops(2)
    # DenseNet-BC (L=100, k=12) has 0.8M parameters (Huang et al., 2017, Table 2).
    assert DENSE_PAPER_START.num_params() == 769_162


@settings(max_examples=20, deadline=None)
@given(dense_archs())
def test_param_count_and_shapes_match_module(arch):
    net = build_dense_net(arch).eval()
    assert sum(p.numel() for p in net.parameters()) == arch.num_params()
    size = arch.min_input_size()
    assert net(torch.zeros(2, 3, size, size + 2)).shape == (2, arch.num_classes)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "expected 'D<stem filters>'"),
        ("C8 4", "bad token 'C8'"),
        ("D8x2 4", "bad token 'D8x2'"),
        ("D8", "block 0 .* is empty"),
        ("D8 4 T", "block 1 .* is empty"),
        ("D8 T 4", "block 0 .* is empty"),
        ("D8 4 T T 4", "block 1 .* is empty"),
        ("D8 4 | T | 4", r"bad token '\|'"),
        ("D8 4 X", "bad token 'X'.*'<k>x<units>'"),
        ("D8 4x0", "bad token '4x0'.*>= 1 unit"),
        ("D8 0", r"growth rates must be ints in \[1, 4096\]"),
        ("D0 4", "`stem` >= 1"),
        ("D8 4 -2", "bad token '-2'"),
    ],
)
def test_bad_strings(text, match):
    with pytest.raises(ValueError, match=match):
        DenseArch.from_string(text)


def test_bad_fields():
    with pytest.raises(ValueError, match="`blocks` must hold"):
        DenseArch(8, ())
    with pytest.raises(ValueError, match="block 1 of `blocks` is empty"):
        DenseArch(8, ((4,), ()))
    with pytest.raises(ValueError, match="`compression`"):
        DenseArch(8, ((4,),), compression=1.5)
    with pytest.raises(ValueError, match="transition 0 would have no channels"):
        DenseArch(1, ((1,), (1,)), compression=0.3)
    with pytest.raises(ValueError, match="`bottleneck` >= 1"):
        DenseArch(8, ((4,),), bottleneck=0)
    with pytest.raises(TypeError, match="`stem`"):
        DenseArch(True, ((4,),))
    with pytest.raises(TypeError, match="`text`"):
        DenseArch.from_string(None)


def test_space_helpers():
    assert DENSE_PAPER_SPACE.growths == tuple(range(4, 49, 2))
    assert DENSE_SMALL_SPACE.next_growth(4) == 6
    assert DENSE_SMALL_SPACE.next_growth(16) is None
    assert DENSE_SMALL_SPACE.next_growth(3) == 4
    assert DENSE_PAPER_SPACE.contains(DENSE_PAPER_START)
    assert DENSE_SMALL_SPACE.contains(DENSE_SMALL_START)
    assert not DENSE_SMALL_SPACE.contains(DenseArch.from_string("D8 4x7"))
    assert not DENSE_SMALL_SPACE.contains(DenseArch.from_string("D8 4x5 T 4x5 T 4x3"))
    with pytest.raises(ValueError, match="`growths`"):
        DenseSearchSpace(growths=(4, 2))
    with pytest.raises(ValueError, match="`max_units_per_block`"):
        DenseSearchSpace(growths=(2,), max_units_per_block=0)
