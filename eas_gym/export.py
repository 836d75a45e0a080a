"""Save a found network (architecture JSON + weights) and load it back in one line."""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from eas_gym.arch import Arch
from eas_gym.densenet import DenseArch
from eas_gym.family import AnyArch, build_model, parse_net
from eas_gym.net import StateDict
from eas_gym.splits import resolve_device

__all__ = ["save_model", "load_model", "load_arch", "load_state"]


def save_model(
    path: str | os.PathLike[str],
    arch: AnyArch,
    state: StateDict | None,
    meta: dict[str, Any] | None = None,
) -> Path:
    """Write ``arch.json`` (net string, classes, channels, `meta`) and ``weights.pt`` to `path`.

    ``arch.json`` records the SHA-256 of ``weights.pt`` (or null when `state` is None), which
    :func:`load_model` checks.

    Raises:
        TypeError: `arch` is not an architecture (a net string: parse it with
            :func:`eas_gym.family.parse_net`).
        ValueError: `state` does not fit `arch`, or `meta` is not JSON; nothing is written.
    """
    if not isinstance(arch, Arch | DenseArch):
        raise TypeError(
            f"Expected `arch` an Arch or DenseArch (eas_gym.family.parse_net reads a net "
            f"string), got {type(arch).__name__}"
        )
    if state is not None and not state:
        raise ValueError("`state` is empty: pass None to save the architecture alone")
    if state is not None:
        try:
            build_model(arch, state)  # strict: the keys and shapes load_model will need
        except RuntimeError as e:
            raise ValueError(f"`state` does not fit {arch}: {e}") from None
    record: dict[str, Any] = {
        "net": arch.to_string(),
        "num_classes": arch.num_classes,
        "in_channels": arch.in_channels,
        "params": arch.num_params(),
        "weights_sha256": None,
        **(meta or {}),
    }
    try:
        json.dumps(record)
    except (TypeError, ValueError) as e:
        raise ValueError(f"`meta` must be JSON (numbers, strings, lists, dicts): {e}") from None
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    if state is not None:
        buffer = io.BytesIO()
        torch.save({k: v.detach().cpu() for k, v in state.items()}, buffer)
        (folder / "weights.pt").write_bytes(buffer.getvalue())
        record["weights_sha256"] = hashlib.sha256(buffer.getvalue()).hexdigest()
    elif (folder / "weights.pt").exists():
        (folder / "weights.pt").unlink()  # never leave weights that belong to another network
    (folder / "arch.json").write_text(json.dumps(record, indent=2) + "\n")
    return folder


def _arch_file(path: str | os.PathLike[str]) -> Path:
    file = Path(path)
    file = file / "arch.json" if file.is_dir() else file
    if not file.exists():
        raise FileNotFoundError(f"no arch.json at {path}; expected a folder from `save_model`")
    return file


def _record(file: Path) -> dict[str, Any]:
    try:
        record = json.loads(file.read_text())
        if not isinstance(record, dict) or not isinstance(record.get("net"), str):
            raise ValueError("no net string")
        return record
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"{file} is not an arch.json written by save_model ({e})") from e


def load_arch(path: str | os.PathLike[str]) -> AnyArch:
    """The architecture saved by :func:`save_model` (a folder or its ``arch.json``)."""
    file = _arch_file(path)
    record = _record(file)
    try:
        return parse_net(
            record["net"],
            num_classes=int(record.get("num_classes", 10)),
            in_channels=int(record.get("in_channels", 3)),
        )
    except (TypeError, ValueError) as e:
        raise ValueError(f"{file}: {e}") from e


def load_state(path: str | os.PathLike[str]) -> StateDict | None:
    """The weights saved by :func:`save_model`, checked against ``arch.json``; None if none.

    Raises:
        ValueError: ``weights.pt`` is missing though ``arch.json`` records one, does not match
            its checksum, or is not a weights file.
    """
    file = _arch_file(path)
    record = _record(file)
    weights = file.parent / "weights.pt"
    expected = record.get("weights_sha256")
    if not weights.exists():
        if expected is not None:
            raise ValueError(f"{file.parent} lost its weights.pt (arch.json records one)")
        return None
    data = weights.read_bytes()
    if expected is not None and hashlib.sha256(data).hexdigest() != expected:
        raise ValueError(f"{weights} does not match the checksum in {file}: it was altered")
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:  # a foreign or damaged file: torch raises several kinds
        raise ValueError(f"{weights} cannot be loaded as weights: {e}") from e


def load_model(
    path: str | os.PathLike[str], *, device: str | torch.device = "cpu", untrained: bool = False
) -> nn.Module:
    """The network saved by :func:`save_model` (a folder or its ``arch.json``), in eval mode.

    Args:
        path: The folder, or its ``arch.json``.
        device: Where the module goes (``"auto"``: a GPU if there is one).
        untrained: Accept a folder saved without weights (the network is then initialised).

    Raises:
        ValueError: No weights were saved (and not `untrained`), or they fail
            :func:`load_state`'s checks, or do not fit the architecture.

    >>> net = load_model("runs/search/best")  # doctest: +SKIP
    """
    device = resolve_device(device)
    arch, state = load_arch(path), load_state(path)
    if state is None and not untrained:
        raise ValueError(f"{path} was saved without weights; pass untrained=True for a fresh one")
    try:
        model = build_model(arch, state)
    except RuntimeError as e:
        raise ValueError(f"the weights at {path} do not fit {arch}: {e}") from e
    return model.to(device).eval()  # a device error is the device's, not the weights'
