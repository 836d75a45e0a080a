import subprocess
import sys

import pytest
import torch

from eas_gym.arch import PAPER_START, SMALL_START, Arch
from eas_gym.net import build_net


@pytest.mark.parametrize("text", ["C16-3 MP C32-3 MP C64-3 MP C128-3 GAP FC256", "C4-1 GAP"])
def test_param_count_matches_arch(text):
    arch = Arch.from_string(text, num_classes=7)
    net = build_net(arch)
    assert sum(p.numel() for p in net.parameters()) == arch.num_params()
    assert net(torch.zeros(2, 3, 8, 8)).shape == (2, 7)


def test_state_keys_follow_layer_positions():
    keys = build_net(SMALL_START).state_dict().keys()
    assert "layers.0.conv.weight" in keys and "layers.7.fc.weight" in keys
    assert not any(k.startswith("layers.1.") for k in keys)  # a pool has no parameters
    assert {"classifier.weight", "classifier.bias"} <= set(keys)


def test_until_returns_intermediate_output():
    net = build_net(SMALL_START).eval()
    x = torch.rand(2, 3, 16, 16)
    assert net(x, until=0).shape == (2, 4, 16, 16)
    assert net(x, until=2).shape == (2, 4, 8, 8)
    assert net(x, until=3).shape == (2, 4, 4, 4)
    assert net(x, until=7).shape == (2, 8)


def test_generator_makes_init_reproducible():
    a = build_net(PAPER_START, generator=torch.Generator().manual_seed(3)).state_dict()
    b = build_net(PAPER_START, generator=torch.Generator().manual_seed(3)).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_non_square_and_other_channels():
    arch = Arch.from_string("C4-3 MP C4-3 GAP", in_channels=1, num_classes=3)
    assert build_net(arch)(torch.rand(2, 1, 6, 10)).shape == (2, 3)


def test_load_rejects_other_arch():
    state = build_net(SMALL_START).state_dict()
    with pytest.raises(RuntimeError):
        build_net(PAPER_START, state)


def test_type_error():
    with pytest.raises(TypeError, match="`arch`"):
        build_net("C4-3 GAP")


def test_build_with_weights_leaves_the_global_rng_alone():
    state = build_net(SMALL_START).state_dict()
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    build_net(SMALL_START, state)
    build_net(SMALL_START, generator=torch.Generator().manual_seed(1))
    assert torch.equal(torch.rand(3), expected)


def test_building_from_a_state_draws_nothing_and_imports_no_compiler():
    """A net built to take a state is made on ``meta`` with no init: drawing normal_ there went
    through torch's reference kernels and imported torch._dynamo, 2.5 s in a fresh process
    that only evaluates (a training process imports it anyway, in torch.optim)."""
    code = (
        "import sys, torch\n"
        "from eas_gym.arch import SMALL_START\n"
        "from eas_gym.densenet import DENSE_SMALL_START, build_dense_net\n"
        "from eas_gym.net import build_net\n"
        "g = torch.Generator().manual_seed(0)\n"
        "plain = build_net(SMALL_START, generator=g).state_dict()\n"
        "dense = build_dense_net(DENSE_SMALL_START, generator=g).state_dict()\n"
        "assert torch.equal(build_net(SMALL_START, plain).state_dict()['classifier.weight'],\n"
        "                   plain['classifier.weight'])\n"
        "build_dense_net(DENSE_SMALL_START, dense)\n"
        "print(any(m.startswith('torch._dynamo') for m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "False"
