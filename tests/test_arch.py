import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eas_gym.arch import (
    FC,
    PAPER_SPACE,
    PAPER_START,
    SMALL_SPACE,
    SMALL_START,
    Arch,
    Conv,
    Pool,
    SearchSpace,
)


@st.composite
def archs(
    draw,
    space: SearchSpace = SMALL_SPACE,
    max_pools: int = 3,
    narrow: bool = False,
    min_blocks: int = 1,
    min_fcs: int = 0,
) -> Arch:
    """Random valid architectures inside `space`; `narrow` keeps widths in the lowest four."""
    filters = space.filters[:4] if narrow else space.filters
    units = space.units[:4] if narrow else space.units
    num_blocks = draw(st.integers(min_blocks, max_pools + 1))
    layers = []
    for b in range(num_blocks):
        if b:
            layers.append(Pool())
        for _ in range(draw(st.integers(1, 2))):
            layers.append(
                Conv(draw(st.sampled_from(filters)), draw(st.sampled_from(space.kernels)))
            )
    for _ in range(draw(st.integers(min_fcs, 2))):
        layers.append(FC(draw(st.sampled_from(units))))
    return Arch(tuple(layers), num_classes=draw(st.integers(2, 12)))


@given(archs())
def test_string_round_trips(arch):
    assert Arch.from_string(arch.to_string(), num_classes=arch.num_classes) == arch
    assert Arch.from_string(arch.to_tokens(), num_classes=arch.num_classes) == arch


def test_paper_start_forms():
    assert PAPER_START.to_string() == "C16-3 MP C32-3 MP C64-3 MP C128-3 GAP FC256"
    assert (
        PAPER_START.to_tokens() == "conv-16-3_pool_conv-32-3_pool_conv-64-3_pool_conv-128-3_fc-256"
    )
    assert SMALL_START.to_string() == "C4-3 MP C4-3 MP C4-3 MP C4-3 GAP FC8"
    assert hash(PAPER_START) == hash(Arch.from_string(PAPER_START.to_string()))


def test_structure_helpers():
    a = Arch.from_string("C4-3 C8-5 MP C8-3 GAP FC8 FC16")
    assert a.blocks() == [[0, 1], [3], [4, 5]]
    assert a.num_feature_layers == 4 and a.num_pools == 1 and a.depth == 5
    assert a.consumer(1) == 3 and a.consumer(3) == 4 and a.consumer(5) is None
    assert a.input_width(0) == 3 and a.input_width(3) == 8 and a.input_width(6) == 16
    assert Arch.from_string("C8-3 GAP").blocks() == [[0], []]


def test_costs_by_hand():
    a = Arch.from_string("C4-3 MP C8-1 GAP FC16", num_classes=10)
    # conv 3*4*9 + bn 8; conv 4*8 + bn 16; fc 8*16 + bn 32; classifier 16*10 + 10
    assert a.num_params() == 108 + 8 + 32 + 16 + 128 + 32 + 170
    assert a.num_flops(8) == 8 * 8 * 108 + 4 * 4 * 32 + 128 + 160
    assert a.num_flops((8, 4)) == 8 * 4 * 108 + 4 * 2 * 32 + 128 + 160
    with pytest.raises(ValueError, match="does not survive"):
        PAPER_START.num_flops(4)


def test_space_helpers():
    assert SMALL_SPACE.next_width(Conv(4, 3)) == 8
    assert SMALL_SPACE.next_width(Conv(40, 3)) is None
    assert SMALL_SPACE.next_width(FC(10)) == 16
    assert PAPER_SPACE.next_width(FC(256)) == 384
    assert PAPER_SPACE.contains(PAPER_START) and SMALL_SPACE.contains(SMALL_START)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "empty"),
        ("C16-3 MP C32-3", "exactly one 'GAP'"),
        ("C16-3 GAP GAP", "exactly one 'GAP'"),
        ("C16-3 XP GAP", "bad token 'XP'"),
        ("C16-4 GAP", "bad token 'C16-4'.*odd"),
        ("C0-3 GAP", "bad token 'C0-3'"),
        ("C16-3 GAP FC0", "bad token 'FC0'"),
        ("C16-3 GAP C8-3", "before 'GAP'"),
        ("C16-3 FC8 GAP", "before 'GAP'"),
        ("MP C16-3 GAP", "start with a conv"),
        ("C16-3 MP GAP", "followed by a conv"),
        ("C16-3 MP MP C16-3 GAP", "followed by a conv"),
        ("conv-16-3_pol", "bad token 'pol'.*'conv-<filters>-<kernel>'"),
        ("conv-16_fc-8", "bad token 'conv-16'"),
        ("fc-8", "start with a conv"),
    ],
)
def test_malformed_strings(text, match):
    with pytest.raises(ValueError, match=match):
        Arch.from_string(text)


def test_bad_values():
    with pytest.raises(TypeError, match="`text`"):
        Arch.from_string(3)
    with pytest.raises(ValueError, match="`num_classes`"):
        Arch((Conv(4, 3),), num_classes=0)
    with pytest.raises(TypeError, match="layer 0"):
        Arch(("conv",))
    with pytest.raises(ValueError, match="`filters` must be ascending"):
        SearchSpace(filters=(8, 4), units=(8,))
    with pytest.raises(ValueError, match="`kernels` must all be odd"):
        SearchSpace(filters=(4,), units=(8,), kernels=(2,))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("C16-3 MP MP", "pool at layer 1 must be followed by a conv"),
        ("C0-3", "`filters` <= 16384, got 0"),
        ("C16-4", "odd `kernel`"),
        ("C99999999-3 GAP", "got 99999999"),
        ("C\uff116-3 GAP", "bad token"),  # a full-width digit
        ("C16-3 MP C8-3", "exactly one 'GAP'"),
        ("D8 4x10000000000", "over 1024"),
        ("D8 100000 T 4", "growth rates must be ints in [1, 4096]"),
    ],
)
def test_net_strings_report_the_first_real_fault(text, message):
    from eas_gym.family import parse_net

    with pytest.raises(ValueError, match=re.escape(message)):
        parse_net(text)
