"""The architecture as a picture: the env's ``rgb_array`` render mode, drawn from its observation.

One column per layer slot, left to right: a bar whose height grows with the layer's width (its
index in the space's list), coloured by kind (conv or dense unit blue, pool or transition grey,
FC orange). Drawn with numpy alone, so video recorders and SB3's ``make_vec_env`` (which asks
for ``render_mode="rgb_array"``) work without a plotting library.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from eas_gym.net2net import LayerKind

__all__ = ["architecture_image"]

_COLOURS = {
    LayerKind.CONV: (31, 119, 180),
    LayerKind.POOL: (150, 150, 150),
    LayerKind.FC: (255, 127, 14),
}
_COLUMN, _GAP, _HEIGHT = 6, 2, 48  # pixels


def architecture_image(obs: dict[str, Any], num_widths: int) -> np.ndarray:
    """An ``(H, W, 3)`` uint8 image of the network in observation `obs`.

    Pools and transitions are drawn at a quarter of the full height (they have no width).

    >>> from eas_gym.net2net import LayerKind as K
    >>> obs = {"kind": [K.CONV, K.POOL, K.FC, K.PAD], "width": [1, 0, 0, 0], "num_layers": 3}
    >>> architecture_image(obs, num_widths=2).shape
    (52, 32, 3)
    """
    kinds, widths = np.asarray(obs["kind"]), np.asarray(obs["width"])
    slots = len(kinds)
    image = np.full((_HEIGHT + 4, slots * (_COLUMN + _GAP), 3), 255, dtype=np.uint8)
    for i in range(int(obs["num_layers"])):
        kind = LayerKind(int(kinds[i]))
        if kind == LayerKind.PAD:
            continue
        share = 0.25 if kind == LayerKind.POOL else (int(widths[i]) + 1) / max(num_widths, 1)
        height = max(2, round(share * _HEIGHT))
        left = i * (_COLUMN + _GAP) + _GAP // 2
        image[-2 - height : -2, left : left + _COLUMN] = _COLOURS[kind]
    return image
