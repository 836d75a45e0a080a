"""Function preservation of the DenseNet wider and deeper transforms, checked in eval mode."""

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_densenet_arch import dense_archs

from eas_gym.densenet.arch import (
    DENSE_PAPER_SPACE,
    DENSE_PAPER_START,
    DENSE_SMALL_SPACE,
    DENSE_SMALL_START,
    DenseArch,
)
from eas_gym.densenet.morph import dense_deeper, dense_widen_units, dense_wider
from eas_gym.densenet.net import DenseNet, build_dense_net
from eas_gym.morph import DEEPER_NOISE, WIDER_NOISE, max_logit_diff

STEP_TOL = {"rtol": 1e-5, "atol": 1e-5}
# Bound on the drift after a whole chain of >= 20 exact transforms (float32 rounding only).
CHAIN_TOL = {"rtol": 1e-4, "atol": 1e-4}


def dense_trained_like(arch: DenseArch, seed: int = 0) -> DenseNet:
    """A DenseNet with random BN affine/statistics and O(1) logits (a fresh init hides bugs)."""
    g = torch.Generator().manual_seed(seed)
    net = build_dense_net(arch, generator=g)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.copy_(0.5 + torch.rand(m.weight.shape, generator=g))
                m.bias.copy_(0.2 * torch.randn(m.bias.shape, generator=g))
                m.running_mean.copy_(0.2 * torch.randn(m.running_mean.shape, generator=g))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))
        net.classifier.weight.normal_(0.0, 0.5, generator=g)
        # Tiny nets can have tiny features: rescale so the logits on the probe have std 1.
        net.classifier.weight /= net.eval()(probe(arch)).std()
    return net.eval()


def probe(arch: DenseArch, n: int = 4, size: int = 8, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, arch.in_channels, size, size, generator=g)


def logits(arch, state, x):
    return build_dense_net(arch, state).eval()(x).detach()


def check_step(arch, state, x, expected):
    net = build_dense_net(arch, state).eval()  # strict=True load: keys and shapes consistent
    assert list(state) == list(net.state_dict())  # same key order as a fresh module
    assert sum(p.numel() for p in net.parameters()) == arch.num_params()
    out = net(x).detach()
    torch.testing.assert_close(out, expected, **STEP_TOL)
    return out


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(1234)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(arch=dense_archs(narrow=True, min_blocks=2), data=st.data())
def test_random_chains_preserve_function(arch, data):
    # Growths in the lowest three, one-step widening (as the env does) and >= 2 blocks leave
    # room for >= 20 moves in the small space whatever the order: a unit has >= 5 wider steps,
    # so n units allow >= 5n + (12 - n) moves.
    space = DENSE_SMALL_SPACE
    net = dense_trained_like(arch, seed=data.draw(st.integers(0, 2**16), label="seed"))
    state = net.state_dict()
    x = probe(arch)
    gen = torch.Generator().manual_seed(data.draw(st.integers(0, 2**16), label="gen"))
    first = previous = net(x).detach()
    assert 0.5 < first.abs().max() < 100  # O(1) logits, so a wrong transform shows
    for _ in range(20):
        wider = [
            (b, u)
            for b, block in enumerate(arch.blocks)
            for u, k in enumerate(block)
            if space.next_growth(k) is not None
        ]
        deeper = [
            b
            for b, block in enumerate(arch.blocks)
            if len(block) < space.max_units_per_block and arch.num_units < space.max_units
        ]
        moves = [("wider", m) for m in wider] + [("deeper", b) for b in deeper]
        kind, move = data.draw(st.sampled_from(moves), label="move")
        if kind == "wider":
            b, u = move
            growth = space.next_growth(arch.blocks[b][u])
            arch, state = dense_wider(arch, state, b, u, growth, space=space, generator=gen)
        else:
            position = data.draw(st.integers(0, len(arch.blocks[move])), label="position")
            source = data.draw(
                st.integers(0, min(position, len(arch.blocks[move]) - 1)), label="source"
            )
            arch, state = dense_deeper(
                arch, state, move, position, source=source, space=space, generator=gen
            )
        previous = check_step(arch, state, x, previous)
    torch.testing.assert_close(previous, first, **CHAIN_TOL)


def test_wider_propagates_through_transitions(gen):
    arch = DenseArch.from_string("D8 4 4 T 4x2 T 4x2")
    state = dense_trained_like(arch).state_dict()
    x = probe(arch)
    new_arch, new_state = dense_wider(arch, state, 0, 0, 10, generator=gen)
    assert new_arch.to_string() == "D8 10 4 T 4x2 T 4x2"
    # block 0: 8 + 10 + 4 = 22 -> transition 11 (was 8); block 1: 11 + 8 = 19 -> 9 (was 8)
    assert new_state["blocks.0.0.conv1.weight"].shape == (40, 8, 1, 1)
    assert new_state["blocks.0.0.conv2.weight"].shape == (10, 40, 3, 3)
    assert new_state["blocks.0.1.conv1.weight"].shape == (16, 18, 1, 1)
    assert new_state["transitions.0.conv.weight"].shape == (11, 22, 1, 1)
    assert new_state["blocks.1.1.norm1.running_var"].shape == (15,)
    assert new_state["transitions.1.conv.weight"].shape == (9, 19, 1, 1)
    assert new_state["classifier.weight"].shape == (10, 17)
    check_step(new_arch, new_state, x, logits(arch, state, x))


def test_wider_last_unit_reaches_classifier(gen):
    arch = DENSE_SMALL_START
    state = dense_trained_like(arch).state_dict()
    x = probe(arch)
    new_arch, new_state = dense_widen_units(
        arch, state, {(2, 1): 8, (0, 1): 6}, space=DENSE_SMALL_SPACE, generator=gen
    )
    assert new_arch.to_string() == "D8 4 6 T 4x2 T 4 8"
    assert new_state["norm.running_mean"].shape == (new_arch.block_out_channels(2),)
    assert new_state["classifier.weight"].shape == (10, new_arch.block_out_channels(2))
    # untouched modules are shared, not copied
    assert new_state["blocks.0.0.conv1.weight"] is state["blocks.0.0.conv1.weight"]
    check_step(new_arch, new_state, x, logits(arch, state, x))


def test_wider_copies_filters_and_bn_statistics(gen):
    arch = DenseArch.from_string("D8 4 4")
    state = dense_trained_like(arch).state_dict()
    _, new = dense_wider(arch, state, 0, 0, 8, generator=gen)
    old_w, new_w = state["blocks.0.0.conv1.weight"], new["blocks.0.0.conv1.weight"]
    for j in range(16, 32):  # each new bottleneck filter copies an old one, BN included
        src = next(i for i in range(16) if torch.equal(new_w[j], old_w[i]))
        for name in ("weight", "bias", "running_mean", "running_var"):
            assert new[f"blocks.0.0.norm2.{name}"][j] == state[f"blocks.0.0.norm2.{name}"][src]
    # the next unit reads the copied channels with the source channel's BN entries
    consumer = new["blocks.0.1.norm1.running_mean"]
    for j in range(8 + 4, 8 + 8):
        assert consumer[j] in state["blocks.0.1.norm1.running_mean"][8:12]


def test_deeper_duplicates_a_unit(gen):
    arch = DenseArch.from_string("D8 4 6 2")
    state = dense_trained_like(arch).state_dict()
    x = probe(arch)
    new_arch, new = dense_deeper(arch, state, 0, 2, source=0)
    assert new_arch.to_string() == "D8 4 6 4 2"
    # the new unit: the source's weights, zero weights for the 6 channels unit 1 added
    conv1 = new["blocks.0.2.conv1.weight"]
    assert torch.equal(conv1[:, :8], state["blocks.0.0.conv1.weight"])
    assert conv1[:, 8:].abs().max() == 0 and conv1.shape == (16, 18, 1, 1)
    assert torch.equal(new["blocks.0.2.conv2.weight"], state["blocks.0.0.conv2.weight"])
    # the shifted last unit reads source and duplicate at half weight each
    old_last, new_last = state["blocks.0.2.conv1.weight"], new["blocks.0.3.conv1.weight"]
    assert new_last.shape == (8, 22, 1, 1)
    torch.testing.assert_close(new_last[:, 8:12], old_last[:, 8:12] / 2)
    torch.testing.assert_close(new_last[:, 18:22], old_last[:, 8:12] / 2)
    torch.testing.assert_close(new_last[:, 12:18], old_last[:, 12:18])
    assert new_arch.num_params() > arch.num_params()
    check_step(new_arch, new, x, logits(arch, state, x))


def test_deeper_in_front_of_its_source():
    arch = DenseArch.from_string("D8 4 6 T 2")
    state = dense_trained_like(arch).state_dict()
    x = probe(arch)
    new_arch, new = dense_deeper(arch, state, 0, 1, source=1)
    assert new_arch.to_string() == "D8 4 6x2 T 2"
    # the source, now unit 2, did not read its own outputs: zero weights for the duplicate
    assert new["blocks.0.2.conv1.weight"][:, 12:18].abs().max() == 0
    check_step(new_arch, new, x, logits(arch, state, x))
    # position 0: the default source is unit 0, which reads exactly the block input
    new_arch, new = dense_deeper(arch, state, 1, 0)
    assert new_arch.to_string() == "D8 4 6 T 2x2"
    check_step(new_arch, new, x, logits(arch, state, x))


def test_inputs_are_not_mutated(gen):
    arch = DENSE_SMALL_START
    state = dense_trained_like(arch).state_dict()
    copy = {k: v.clone() for k, v in state.items()}
    dense_wider(arch, state, 0, 1, 8, noise=WIDER_NOISE, generator=gen)
    dense_deeper(arch, state, 1, 1, noise=WIDER_NOISE, generator=gen)
    assert arch == DENSE_SMALL_START and list(state) == list(copy)
    assert all(torch.equal(state[k], copy[k]) for k in state)


def test_paper_noise_perturbs_but_stays_small(gen):
    arch = DENSE_PAPER_START
    state = dense_trained_like(arch).state_dict()
    x = probe(arch, n=2)
    base = logits(arch, state, x)
    scale = base.abs().max()
    wide = dense_wider(
        arch, state, 1, 3, 24, space=DENSE_PAPER_SPACE, noise=WIDER_NOISE, generator=gen
    )
    deep = dense_deeper(*wide, 0, 16, space=DENSE_PAPER_SPACE, noise=DEEPER_NOISE, generator=gen)
    for new in (wide, deep):
        diff = (logits(*new, x) - base).abs().max()
        assert 1e-5 * scale < diff < 0.05 * scale, (diff, scale)


def test_same_generator_same_result():
    arch = DENSE_SMALL_START
    state = dense_trained_like(arch).state_dict()

    def run(seed):
        g = torch.Generator().manual_seed(seed)
        return dense_wider(arch, state, 0, 0, 12, noise=WIDER_NOISE, generator=g)[1]

    a, b, c = run(5), run(5), run(6)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_dtype_follows_state(gen):
    arch = DENSE_SMALL_START
    state = {
        k: v.double() if v.is_floating_point() else v
        for k, v in build_dense_net(arch).state_dict().items()
    }
    _, new = dense_deeper(*dense_wider(arch, state, 0, 0, 6, generator=gen), 2, 1)
    assert all(v.dtype == torch.float64 for k, v in new.items() if "num_batches" not in k)


def test_max_logit_diff_on_dense_nets(gen):
    arch = DENSE_SMALL_START
    net = dense_trained_like(arch)
    x = probe(arch)
    child = build_dense_net(*dense_wider(arch, net.state_dict(), 1, 0, 6, generator=gen))
    assert max_logit_diff(net, child.train(), x) < 1e-4 and child.training
    assert max_logit_diff(net, dense_trained_like(arch, seed=1), x) > 1e-2


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda a, s: dense_wider(a, s, 0, 0, 4), "`new_growth` 4 must be larger"),
        (lambda a, s: dense_wider(a, s, 0, 0, 2), "must be larger"),
        (lambda a, s: dense_wider(a, s, 0, 0, 5, space=DENSE_SMALL_SPACE), "not in the space's"),
        (lambda a, s: dense_wider(a, s, 0, 0, 18, space=DENSE_SMALL_SPACE), "not in the space's"),
        (lambda a, s: dense_wider(a, s, 3, 0, 8), "`block` 3 out of range"),
        (lambda a, s: dense_wider(a, s, -1, 0, 8), "`block` -1 out of range"),
        (lambda a, s: dense_wider(a, s, 0, 2, 8), "`unit` 2 out of range"),
        (lambda a, s: dense_deeper(a, s, 3, 0), "`block` 3 out of range"),
        (lambda a, s: dense_deeper(a, s, 0, 3), "`position` 3 out of range"),
        (lambda a, s: dense_deeper(a, s, 0, -1), "`position` -1 out of range"),
        (lambda a, s: dense_deeper(a, s, 0, 1, source=2), "`source` 2 must be"),
        (lambda a, s: dense_deeper(a, s, 0, 0, source=1), "`source` 1 must be"),
        (lambda a, s: dense_wider(a, s, 0, 0, 8, noise=-1.0), "`noise` >= 0"),
        (lambda a, s: dense_deeper(a, s, 0, 0, noise=0.01), "explicit `generator`"),
        (lambda a, s: dense_wider(a, {}, 0, 0, 8), "`state` has no"),
        (lambda a, s: dense_deeper(a, {}, 0, 0), "`state` has no"),
    ],
)
def test_illegal_requests(call, match):
    arch = DENSE_SMALL_START
    with pytest.raises(ValueError, match=match):
        call(arch, build_dense_net(arch).state_dict())


def test_space_limits():
    arch = DenseArch.from_string("D8 2x6 T 2x4 T 2")
    state = build_dense_net(arch).state_dict()
    with pytest.raises(ValueError, match="`max_units_per_block` 6"):
        dense_deeper(arch, state, 0, 6, space=DENSE_SMALL_SPACE)
    new_arch, new_state = dense_deeper(arch, state, 2, 1, space=DENSE_SMALL_SPACE)
    with pytest.raises(ValueError, match="`max_units` 12"):
        dense_deeper(new_arch, new_state, 1, 0, space=DENSE_SMALL_SPACE)


def test_wrong_types():
    state = build_dense_net(DENSE_SMALL_START).state_dict()
    with pytest.raises(TypeError, match="`block`"):
        dense_wider(DENSE_SMALL_START, state, 0.0, 0, 8)
    with pytest.raises(TypeError, match="`new_growth`"):
        dense_wider(DENSE_SMALL_START, state, 0, 0, 8.0)
    with pytest.raises(TypeError, match="`position`"):
        dense_deeper(DENSE_SMALL_START, state, 0, True)
    with pytest.raises(TypeError, match="`source`"):
        dense_deeper(DENSE_SMALL_START, state, 0, 1, source="0")
