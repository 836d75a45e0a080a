"""Families: a net string or an architecture picks its search-space family."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from eas_gym.densenet.arch import DenseArch
from eas_gym.family import FAMILIES, build_model, parse_net
from eas_gym.net2net import parse_schedule


def test_parse_net_and_build_model_pick_the_family():
    dense_arch, plain_arch = parse_net("D8 4x2 T 4"), parse_net("C8-3 MP C8-3 GAP FC16")
    assert isinstance(dense_arch, DenseArch) and dense_arch.num_units == 3
    assert type(build_model(dense_arch)).__name__ == "DenseNet"
    assert type(build_model(plain_arch)).__name__ == "EASNet"


@pytest.mark.parametrize("space", ["small", "dense-small"])
@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_weightless_transforms_make_the_same_networks(space, seed):
    # The surrogate and bench ids transform the architecture alone: the same child, the same
    # records as the weight-carrying transforms, for any legal action sequence.
    family = FAMILIES[space]
    rng = np.random.default_rng(seed)
    arch = arch_only = family.start
    net = family.build(arch, generator=torch.Generator().manual_seed(0)).eval()
    state = net.state_dict()
    probe = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    for kind in parse_schedule("WWDDWD"):
        masks = family.mask(arch, kind)
        action = np.array([rng.choice(np.flatnonzero(m)) for m in masks])
        decoded = family.decode(action, arch, kind)
        arch, state, records = family.apply(
            decoded, arch, state, noise=True, generator=torch.Generator(), probe=probe
        )
        arch_only, arch_records = family.apply_arch(decoded, arch_only)
        assert arch_only == arch and arch_records == records
