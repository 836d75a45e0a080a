"""Function preservation of Net2Wider / Net2Deeper, checked numerically in eval mode."""

import pytest
import torch
from conftest import probe_batch, trained_like
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_arch import archs

from eas_gym.arch import FC, PAPER_SPACE, PAPER_START, SMALL_SPACE, SMALL_START, Arch, Conv, Pool
from eas_gym.morph import (
    DEEPER_NOISE,
    WIDER_NOISE,
    max_logit_diff,
    net2deeper,
    net2wider,
    widen_layers,
)
from eas_gym.net import build_net

STEP_TOL = {"rtol": 1e-5, "atol": 1e-5}
# Bound on the drift after a whole chain of >= 20 exact transforms (float32 rounding only).
CHAIN_TOL = {"rtol": 1e-4, "atol": 1e-4}


def logits(arch, state, x):
    return build_net(arch, state).eval()(x).detach()


def legal_moves(arch: Arch, space=SMALL_SPACE):
    """(kind, layer) pairs that the space allows from `arch`."""
    moves = []
    blocks = arch.blocks()
    for i, layer in enumerate(arch.layers):
        if isinstance(layer, Pool):
            continue
        if space.next_width(layer) is not None:
            moves.append(("wider", i))
        block = next(b for b in blocks if i in b)
        if len(arch.layers) < space.max_layers and len(block) < space.max_layers_per_block:
            moves.append(("deeper", i))
    return moves


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(arch=archs(narrow=True, min_blocks=2, min_fcs=1), data=st.data())
def test_random_chains_preserve_function(arch, data):
    # Narrow widths, two conv blocks, an FC and one-step widening (as the env does) leave room
    # for >= 20 moves whatever the order.
    net = trained_like(arch, seed=data.draw(st.integers(0, 2**16), label="seed"))
    state = net.state_dict()
    x = probe_batch(arch)
    gen = torch.Generator().manual_seed(data.draw(st.integers(0, 2**16), label="gen"))
    first = previous = net(x).detach()
    steps = 0
    while steps < 20:
        moves = legal_moves(arch)
        if not moves:
            break
        kind, i = data.draw(st.sampled_from(moves), label="move")
        if kind == "wider":
            width = SMALL_SPACE.next_width(arch.layers[i])
            new = net2wider(arch, state, i, width, space=SMALL_SPACE, generator=gen)
        else:
            kernel = (
                data.draw(st.sampled_from(SMALL_SPACE.kernels))
                if isinstance(arch.layers[i], Conv)
                else None
            )
            new = net2deeper(arch, state, i, kernel, batch=x, space=SMALL_SPACE, generator=gen)
        arch, state = new
        net = build_net(arch, state)  # strict=True load: shapes and keys consistent
        assert sum(p.numel() for p in net.parameters()) == arch.num_params()
        current = net.eval()(x).detach()
        torch.testing.assert_close(current, previous, **STEP_TOL)
        previous = current
        steps += 1
    assert steps >= 20, f"chain stopped after {steps} steps at {arch}"
    torch.testing.assert_close(previous, first, **CHAIN_TOL)


def test_widen_every_consumer_kind(gen):
    # conv -> conv across a pool, conv -> FC across GAP, FC -> FC, FC -> classifier
    arch = Arch.from_string("C4-3 MP C8-3 GAP FC8 FC16")
    state = trained_like(arch).state_dict()
    x = probe_batch(arch)
    before = logits(arch, state, x)
    new_arch, new_state = widen_layers(
        arch, state, {0: 12, 2: 20, 3: 24, 4: 32}, space=SMALL_SPACE, generator=gen
    )
    assert new_arch.to_string() == "C12-3 MP C20-3 GAP FC24 FC32"
    assert new_state["layers.2.conv.weight"].shape == (20, 12, 3, 3)
    assert new_state["layers.3.fc.weight"].shape == (24, 20)
    assert new_state["classifier.weight"].shape == (10, 32)
    torch.testing.assert_close(logits(new_arch, new_state, x), before, **STEP_TOL)


def test_widen_copies_bn_statistics(gen):
    arch = Arch.from_string("C4-3 GAP")
    state = trained_like(arch).state_dict()
    _, new_state = net2wider(arch, state, 0, 8, generator=gen)
    w_old, w_new = state["layers.0.conv.weight"], new_state["layers.0.conv.weight"]
    for j in range(4, 8):  # each new unit is an exact copy of some old unit, stats included
        src = next(i for i in range(4) if torch.equal(w_new[j], w_old[i]))
        for name in ("weight", "bias", "running_mean", "running_var"):
            assert new_state[f"layers.0.bn.{name}"][j] == state[f"layers.0.bn.{name}"][src]


@pytest.mark.parametrize("kernel", [1, 3, 5])
def test_deeper_conv_is_identity_and_bn_from_data(kernel, gen):
    arch = SMALL_START
    state = trained_like(arch).state_dict()
    x = probe_batch(arch)
    new_arch, new_state = net2deeper(arch, state, 2, kernel, batch=x, space=SMALL_SPACE)
    assert new_arch.layers[3] == Conv(4, kernel) and len(new_arch.layers) == 9
    assert new_arch.num_params() == arch.num_params() + 16 * kernel**2 + 8
    # later layers moved up by one, untouched
    assert torch.equal(new_state["layers.8.fc.weight"], state["layers.7.fc.weight"])
    hidden = build_net(arch, state).eval()(x, until=2)
    mu = hidden.mean(dim=(0, 2, 3))
    torch.testing.assert_close(new_state["layers.3.bn.running_mean"], mu)
    torch.testing.assert_close(new_state["layers.3.bn.bias"], mu)
    torch.testing.assert_close(logits(new_arch, new_state, x), logits(arch, state, x), **STEP_TOL)


def test_deeper_fc_and_without_batch(gen):
    arch = SMALL_START
    state = trained_like(arch).state_dict()
    x = probe_batch(arch)
    new_arch, new_state = net2deeper(arch, state, 7)
    assert new_arch.layers[-2:] == (FC(8), FC(8))
    assert torch.equal(new_state["layers.8.bn.running_var"], torch.ones(8))
    torch.testing.assert_close(logits(new_arch, new_state, x), logits(arch, state, x), **STEP_TOL)


def test_inputs_are_not_mutated(gen):
    arch = SMALL_START
    state = trained_like(arch).state_dict()
    copy = {k: v.clone() for k, v in state.items()}
    x = probe_batch(arch)
    net2wider(arch, state, 0, 8, noise=WIDER_NOISE, generator=gen)
    net2deeper(arch, state, 2, 3, batch=x, noise=DEEPER_NOISE, generator=gen)
    assert arch == SMALL_START and state.keys() == copy.keys()
    assert all(torch.equal(state[k], copy[k]) for k in state)


def test_paper_noise_perturbs_but_stays_small(gen):
    arch = PAPER_START
    state = trained_like(arch).state_dict()
    x = probe_batch(arch, size=16)
    base = logits(arch, state, x)
    wide = widen_layers(
        arch,
        state,
        {0: 32, 2: 64, 4: 96, 6: 192, 7: 384},
        space=PAPER_SPACE,
        noise=WIDER_NOISE,
        generator=gen,
    )
    deep = net2deeper(*wide, 4, 3, batch=x, space=PAPER_SPACE, noise=DEEPER_NOISE, generator=gen)
    scale = base.abs().max()
    for new in (wide, deep):
        diff = (logits(*new, x) - base).abs().max()
        assert 1e-5 * scale < diff < 0.05 * scale, (diff, scale)


def test_same_generator_same_result():
    arch = SMALL_START
    state = trained_like(arch).state_dict()
    a = net2wider(arch, state, 0, 16, noise=WIDER_NOISE, generator=torch.Generator().manual_seed(5))
    b = net2wider(arch, state, 0, 16, noise=WIDER_NOISE, generator=torch.Generator().manual_seed(5))
    assert all(torch.equal(a[1][k], b[1][k]) for k in a[1])


def test_max_logit_diff_restores_modes():
    net_a, net_b = trained_like(SMALL_START).train(), trained_like(SMALL_START, seed=1).eval()
    diff = max_logit_diff(net_a, net_b, probe_batch(SMALL_START))
    assert diff > 0.0 and net_a.training and not net_b.training
    assert max_logit_diff(net_a, net_a, probe_batch(SMALL_START)) == 0.0


def _full_block_arch():
    return Arch.from_string("C4-3 C4-3 C4-3 C4-3 MP C4-3 GAP")


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda a, s: net2wider(a, s, 0, 4), "must be larger"),
        (lambda a, s: net2wider(a, s, 0, 2), "must be larger"),
        (lambda a, s: net2wider(a, s, 0, 6, space=SMALL_SPACE), "not in the space's widths"),
        (lambda a, s: net2wider(a, s, 7, 12, space=SMALL_SPACE), "not in the space's widths"),
        (lambda a, s: net2wider(a, s, 1, 8), "is a pool"),
        (lambda a, s: net2wider(a, s, 8, 8), "out of range"),
        (lambda a, s: net2wider(a, s, -1, 8), "out of range"),
        (lambda a, s: net2deeper(a, s, 1), "is a pool"),
        (lambda a, s: net2deeper(a, s, 8), "out of range"),
        (lambda a, s: net2deeper(a, s, 0, 2), "must be odd"),
        (lambda a, s: net2deeper(a, s, 0, 7, space=SMALL_SPACE), "not in the space's kernels"),
        (lambda a, s: net2deeper(a, s, 7, 3), "must be None"),
        (lambda a, s: net2wider(a, s, 0, 8, noise=-1.0), "`noise` >= 0"),
        (lambda a, s: net2wider(a, s, 0, 8, noise=0.01), "explicit `generator`"),
        (lambda a, s: net2wider(a, {}, 0, 8), "`state` has no"),
        (lambda a, s: net2deeper(a, s, 0, batch=torch.zeros(2, 1, 16, 16)), r"\(B, 3, H, W\)"),
        (
            lambda a, s: net2deeper(a, s, 0, batch=torch.zeros(3, 16, 16)),
            "actually: \\(3, 16, 16\\)",
        ),
    ],
)
def test_illegal_requests(call, match):
    arch = SMALL_START
    with pytest.raises(ValueError, match=match):
        call(arch, build_net(arch).state_dict())


def test_space_limits():
    arch = _full_block_arch()
    state = build_net(arch).state_dict()
    with pytest.raises(ValueError, match="max_layers_per_block"):
        net2deeper(arch, state, 3, space=SMALL_SPACE)
    net2deeper(arch, state, 5, space=SMALL_SPACE)  # the other block still has room
    tight = type(SMALL_SPACE)(filters=(4, 8), units=(8,), max_layers=6)
    with pytest.raises(ValueError, match="`max_layers` 6"):
        net2deeper(arch, state, 5, space=tight)


def test_wrong_types():
    state = build_net(SMALL_START).state_dict()
    with pytest.raises(TypeError, match="`layer`"):
        net2wider(SMALL_START, state, 0.0, 8)
    with pytest.raises(TypeError, match="`new_width`"):
        net2wider(SMALL_START, state, 0, 8.0)
