"""Save a found network (architecture JSON + weights) and load it back in one line."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from eas_gym.family import AnyArch, build_model, parse_net
from eas_gym.net import StateDict

__all__ = ["save_model", "load_model", "load_arch"]


def save_model(
    path: str | os.PathLike[str],
    arch: AnyArch,
    state: StateDict | None,
    meta: dict[str, Any] | None = None,
) -> Path:
    """Write ``arch.json`` (net string, classes, channels, `meta`) and ``weights.pt`` to `path`."""
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    record = {
        "net": arch.to_string(),
        "num_classes": arch.num_classes,
        "in_channels": arch.in_channels,
        "params": arch.num_params(),
        **(meta or {}),
    }
    (folder / "arch.json").write_text(json.dumps(record, indent=2) + "\n")
    if state is not None:
        torch.save({k: v.detach().cpu() for k, v in state.items()}, folder / "weights.pt")
    return folder


def load_arch(path: str | os.PathLike[str]) -> AnyArch:
    """The architecture saved by :func:`save_model` (a folder or its ``arch.json``)."""
    file = Path(path)
    file = file / "arch.json" if file.is_dir() else file
    if not file.exists():
        raise FileNotFoundError(f"no arch.json at {path}; expected a folder from `save_model`")
    record = json.loads(file.read_text())
    return parse_net(
        record["net"], num_classes=record["num_classes"], in_channels=record["in_channels"]
    )


def load_model(path: str | os.PathLike[str], *, device: str | torch.device = "cpu") -> nn.Module:
    """The network saved by :func:`save_model`, in eval mode, with its weights if saved.

    >>> net = load_model("runs/search/best")  # doctest: +SKIP
    """
    arch = load_arch(path)
    weights = Path(path) / "weights.pt"
    state = torch.load(weights, map_location="cpu", weights_only=True) if weights.exists() else None
    return build_model(arch, state).to(device).eval()
