"""The DenseNet search space: DenseNet-BC architectures, their networks, and their transforms.

EAS's second setting (Cai et al., 2018): a wider step raises a unit's growth rate, a deeper step
inserts a copy of a unit into a dense block; both preserve the network's function.
"""

from eas_gym.densenet.arch import (
    DENSE_PAPER_SPACE,
    DENSE_PAPER_START,
    DENSE_SMALL_SPACE,
    DENSE_SMALL_START,
    DenseArch,
    DenseSearchSpace,
)
from eas_gym.densenet.morph import dense_deeper, dense_widen_units, dense_wider
from eas_gym.densenet.net import DenseNet, build_dense_net, transition_key, unit_key

__all__ = [
    "DENSE_PAPER_SPACE",
    "DENSE_PAPER_START",
    "DENSE_SMALL_SPACE",
    "DENSE_SMALL_START",
    "DenseArch",
    "DenseNet",
    "DenseSearchSpace",
    "build_dense_net",
    "dense_deeper",
    "dense_widen_units",
    "dense_wider",
    "transition_key",
    "unit_key",
]
