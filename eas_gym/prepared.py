"""Datasets prepared once per machine and memory-mapped by every process that trains on them.

:func:`~eas_gym.data.load_dataset` reads the whole dataset (CIFAR-10: 50,000 images through
torchvision's pickles), resizes it and draws the splits. Ten worker processes doing that each
paid ~3 s of CPU and kept ~450 MB of private memory apiece (allocator arenas of the transient
copies), for final splits of ~31 MB at 16 px. :func:`load_prepared` does it once: the splits
are saved as uint8 tensors in ``prepared/`` beside the default store
(``$EAS_CACHE_DIR``, else ``~/.cache/eas_gym``) and read back with ``torch.load(mmap=True)``,
so the processes of one machine share one copy in the page cache.

A prepared file is named by a hash of everything that decides its content: the dataset's
identity, the source files' sizes and modification times, the split sizes, the image size, the
split seed and this module's format version. A changed source file or setting gives a new file;
a damaged one is prepared again, with a warning. ``EAS_PREPARED=0`` turns the cache off.
The synthetic dataset is generated in memory, as before.
"""

from __future__ import annotations

import io
import os
import warnings
import weakref
from pathlib import Path
from typing import Any

import torch

from eas_gym.data import _FILES, default_data_dir, load_dataset, resolve_device
from eas_gym.own_data import dataset_identity, is_own_dataset
from eas_gym.splits import DataBundle, Split
from eas_gym.store import config_key, default_store_path, write_atomically

__all__ = ["FORMAT_VERSION", "load_prepared", "prepared_dir", "prepared_path"]

FORMAT_VERSION = 1
"""Bumped when what :func:`~eas_gym.data.load_dataset` returns changes for the same inputs."""

_SPLITS = ("train", "val", "test")


def prepared_dir() -> Path:
    """``prepared/`` beside the default store (``$EAS_CACHE_DIR`` or ``~/.cache/eas_gym``)."""
    return default_store_path().parent / "prepared"


def prepared_path(**kwargs: Any) -> Path | None:
    """Where :func:`load_prepared` keeps the dataset of `kwargs` (``load_dataset``'s arguments).

    None when it is not cached: synthetic, the cache off, or source files that are missing
    (:func:`~eas_gym.data.load_dataset` then says what is wrong).
    """
    name = kwargs["name"]
    if name == "synthetic" or os.environ.get("EAS_PREPARED") == "0":
        return None
    if is_own_dataset(name):
        source: Any = dataset_identity(name)  # names its content by SHA-256
    else:
        root = Path(kwargs.get("data_dir") or default_data_dir()).expanduser()
        files = [root / f for f in _FILES[name][1]]
        if not all(f.is_file() for f in files):
            return None
        source = [[str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns] for f in files]
    settings = {k: v for k, v in kwargs.items() if k not in ("data_dir", "download", "device")}
    key = config_key({"format": FORMAT_VERSION, "source": source, **settings})
    stem = Path(name).name if is_own_dataset(name) else name
    return prepared_dir() / f"{stem}-{key}.pt"


def load_prepared(*, device: torch.device | str = "cpu", **kwargs: Any) -> DataBundle:
    """:func:`~eas_gym.data.load_dataset` of `kwargs`, prepared once and memory-mapped.

    Args:
        device: Where the splits live (on the CPU they stay memory-mapped, shared by the
            processes; on a GPU one copy per process and device, shared by its envs).
        **kwargs: ``load_dataset``'s arguments (``name``, ``data_dir``, sizes, ...).
    """
    path = prepared_path(**kwargs)
    if path is None:
        return load_dataset(device=device, **kwargs)
    target = resolve_device(device)
    if target.type == "cpu":  # memory-mapped: the page cache already holds one copy
        return _load_prepared(path, target, kwargs)
    # On a GPU, the envs of one process (a SyncVectorEnv, SB3's DummyVecEnv) share one copy
    # while any of them holds it; nothing writes to a split in place.
    key = (str(path), str(_with_index(target)))
    data = _ON_DEVICES.get(key)
    if data is None:
        data = _ON_DEVICES[key] = _load_prepared(path, target, kwargs)
    return data


_ON_DEVICES: weakref.WeakValueDictionary[tuple[str, str], DataBundle] = (
    weakref.WeakValueDictionary()
)


def _with_index(device: torch.device) -> torch.device:
    """`device` with its index: plain ``cuda`` is the current GPU (and shares its copy)."""
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    return device


def _load_prepared(path: Path, device: torch.device, kwargs: dict[str, Any]) -> DataBundle:
    if path.exists():
        try:
            return _read(path).to(device)
        except Exception as e:  # truncated, foreign or from another torch: prepare it again
            warnings.warn(f"{path} cannot be read ({e}); preparing it again", stacklevel=3)
    data = load_dataset(device="cpu", **kwargs)
    buffer = io.BytesIO()
    torch.save(_as_dict(data), buffer)
    try:
        write_atomically(path, buffer.getvalue())
    except OSError as e:  # a read-only cache: this process keeps its own copy
        warnings.warn(f"cannot keep the prepared dataset in {path}: {e}", stacklevel=3)
        return data.to(device)
    del data
    return _read(path).to(device)


def _as_dict(data: DataBundle) -> dict[str, Any]:
    tensors = {
        f"{split}_{part}": getattr(getattr(data, split), part)
        for split in _SPLITS
        for part in ("images", "labels")
    }
    meta = {"name": data.name, "num_classes": data.num_classes}
    return {**tensors, **meta, "mean": list(data.mean), "std": list(data.std)}


def _read(path: Path) -> DataBundle:
    saved = torch.load(path, mmap=True, weights_only=True)
    train, val, test = (Split(saved[f"{s}_images"], saved[f"{s}_labels"]) for s in _SPLITS)
    return DataBundle(
        saved["name"],
        train,
        val,
        test,
        tuple(saved["mean"]),
        tuple(saved["std"]),
        saved["num_classes"],
    )
