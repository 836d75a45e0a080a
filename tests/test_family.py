"""Families: a net string or an architecture picks its search-space family."""

from eas_gym.densenet.arch import DenseArch
from eas_gym.family import build_model, parse_net


def test_parse_net_and_build_model_pick_the_family():
    dense_arch, plain_arch = parse_net("D8 4x2 T 4"), parse_net("C8-3 MP C8-3 GAP FC16")
    assert isinstance(dense_arch, DenseArch) and dense_arch.num_units == 3
    assert type(build_model(dense_arch)).__name__ == "DenseNet"
    assert type(build_model(plain_arch)).__name__ == "EASNet"
