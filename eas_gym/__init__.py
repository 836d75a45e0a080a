"""eas_gym: Efficient Architecture Search (Cai et al., AAAI 2018) as a Gymnasium environment."""

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
from eas_gym.morph import max_logit_diff, net2deeper, net2wider, widen_layers
from eas_gym.net import EASNet, build_net

__version__ = "0.1.0"

__all__ = [
    "FC",
    "PAPER_SPACE",
    "PAPER_START",
    "SMALL_SPACE",
    "SMALL_START",
    "Arch",
    "Conv",
    "EASNet",
    "Pool",
    "SearchSpace",
    "build_net",
    "max_logit_diff",
    "net2deeper",
    "net2wider",
    "widen_layers",
]
