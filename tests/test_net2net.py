import ast
import pathlib
import subprocess
import sys

import numpy as np

from eas_gym import net2net
from eas_gym.arch import SMALL_SPACE, SMALL_START
from eas_gym.densenet import spaces as dense
from eas_gym.net2net import DEEPER, WIDER, LayerKind, decode_deeper, decode_wider, step_mask
from eas_gym.spaces import encode_observation

DENSENET = pathlib.Path(net2net.__file__).parent / "densenet"


def test_layer_kinds_are_the_observation_codes():
    obs = encode_observation(SMALL_START, SMALL_SPACE, WIDER, 3)
    kinds = [LayerKind(k) for k in obs["kind"][:4]]
    assert kinds == [LayerKind.CONV, LayerKind.POOL, LayerKind.CONV, LayerKind.POOL]
    assert obs["kind"][len(SMALL_START.layers) :].tolist() == [LayerKind.PAD] * (
        SMALL_SPACE.max_layers - len(SMALL_START.layers)
    )
    assert (dense.UNIT, dense.TRANSITION) == (LayerKind.CONV, LayerKind.POOL)


def test_step_mask_reads_only_its_step_and_keeps_the_no_op():
    wider = step_mask(WIDER, [1], 3, 2)
    assert [m.tolist() for m in wider] == [[1, 0], [1, 1], [1, 0], [1, 0, 0], [1, 0]]
    deeper = step_mask(DEEPER, [0, 2], 3, 2)
    assert [m.tolist() for m in deeper[3:]] == [[1, 0, 1], [1, 1]]
    no_op = step_mask(DEEPER, [], 3, 2)
    assert no_op[3].tolist() == [1, 0, 0]


def test_decode_drops_illegal_parts():
    action = np.array([1, 1, 0, 2, 1])
    decoded = decode_wider(action, 3, {1: 8})
    assert decoded.widths == {1: 8} and decoded.illegal
    decoded = decode_deeper(action, 3, [2], lambda slot, k: 5 + k)
    assert (decoded.layer, decoded.kernel, decoded.illegal) == (2, 6, False)
    assert decode_deeper(action, 3, [0], lambda slot, k: None).illegal
    nothing_legal = decode_deeper(np.array([0, 0, 0, 0, 0]), 3, [], lambda slot, k: None)
    assert nothing_legal.layer is None and not nothing_legal.illegal


def test_densenet_builds_on_the_shared_kernel_only():
    plain = {"eas_gym.arch", "eas_gym.net", "eas_gym.morph", "eas_gym.spaces", "eas_gym.family"}
    for path in DENSENET.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert node.module not in plain, f"{path.name} imports {node.module}"


def test_family_modules_import_in_either_order():
    for first in ("eas_gym.densenet.family", "eas_gym.family", "eas_gym.net2net"):
        code = f"import {first}; from eas_gym.family import FAMILIES; print(len(FAMILIES))"
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert out.returncode == 0 and out.stdout.strip() == "4", out.stderr
