"""The plain space's action masks and decoding agree with what the transforms accept."""

import numpy as np

import eas_gym
from eas_gym.arch import SMALL_SPACE, Arch
from eas_gym.morph import net2deeper, widen_layers
from eas_gym.spaces import DEEPER, WIDER, action_mask, decode_action

L = SMALL_SPACE.max_layers


def test_masks_agree_with_transforms():
    """Every value a mask allows applies cleanly; every value it forbids is flagged illegal."""
    rng = np.random.default_rng(0)
    arch = Arch.from_string("C4-3 C8-3 C4-3 C4-3 MP C40-3 GAP FC80")
    state = eas_gym.build_net(arch).state_dict()
    for kind in (WIDER, DEEPER):
        mask = action_mask(arch, SMALL_SPACE, kind)
        for _ in range(50):
            action = np.array([rng.integers(len(m)) for m in mask])
            decoded = decode_action(action, arch, SMALL_SPACE, kind)
            read = slice(0, L) if kind == WIDER else slice(L, L + 2)  # the entries a step reads
            allowed = all(m[a] for m, a in zip(mask[read], action[read], strict=True))
            assert decoded.illegal == (not allowed)
            if decoded.widths:
                widen_layers(arch, state, decoded.widths, space=SMALL_SPACE)
            if decoded.layer is not None:
                net2deeper(arch, state, decoded.layer, decoded.kernel, space=SMALL_SPACE)
    deeper = action_mask(arch, SMALL_SPACE, DEEPER)[L]
    assert list(np.flatnonzero(deeper)) == [5, 6]  # first block is full (4 convs)
    wider = action_mask(arch, SMALL_SPACE, WIDER)
    assert not wider[5][1] and not wider[6][1] and wider[0][1]  # at max width
