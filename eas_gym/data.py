"""Loading datasets: the files, a fixed validation split, normalisation statistics.

CIFAR-10, CIFAR-100 and SVHN are read through torchvision's dataset classes (and downloaded by
them when ``download=True``). A ``"synthetic"`` dataset with learnable class structure needs no
files; tests, CI and offline demos use it.

The paper's protocol (Cai et al., 2018): 45,000 training and 5,000 validation images drawn from
the training set with a fixed seed (88; here class-balanced, 500 per class for CIFAR-10), pad-4
random crops and horizontal flips, per-channel normalisation from the training split.
Departures for CPU presets, all off by default: class-balanced subsets (``train_size``,
``val_size``, ``test_size``) and smaller images (``image_size``, antialiased bilinear
downsampling).

Each split is one ``(N, C, H, W)`` uint8 tensor (:mod:`eas_gym.splits`). :func:`iterate_batches`
(:mod:`eas_gym.batches`) shuffles, augments and normalises with batched tensor ops on that
tensor's device, drawing every random number from an explicit CPU ``torch.Generator``, so a seed
fixes the batches on any device. The synthetic set lives in :mod:`eas_gym.synthetic`. Those
modules' public names are re-exported here.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from eas_gym.batches import iterate_batches
from eas_gym.own_data import (
    BUILTIN_DATASETS,
    check_own_dataset,
    dataset_identity,
    is_own_dataset,
    load_own,
    own_classes,
)
from eas_gym.splits import DataBundle, Split, resolve_device
from eas_gym.synthetic import SYNTHETIC_SEED, make_synthetic

__all__ = [
    "DATASETS",
    "DataBundle",
    "DatasetNotFoundError",
    "check_dataset",
    "dataset_classes",
    "dataset_identity",
    "Split",
    "default_data_dir",
    "iterate_batches",
    "load_dataset",
    "make_synthetic",
    "resolve_device",
]

DATASETS = BUILTIN_DATASETS
"""The built-in names accepted by :func:`load_dataset` (a path to your own dataset is too)."""

_CLASSES = {"cifar10": 10, "cifar100": 100, "svhn": 10, "synthetic": 10}

PAPER_VAL_SIZE = 5000
SPLIT_SEED = 88


class DatasetNotFoundError(FileNotFoundError):
    """The dataset's files are not in the data folder and were not downloaded."""


def default_data_dir() -> Path:
    """``$EAS_DATA_DIR`` if set, else ``$XDG_CACHE_HOME/eas_gym/data`` (``~/.cache/...``)."""
    if env := os.environ.get("EAS_DATA_DIR"):
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "eas_gym" / "data"


def dataset_classes(name: str) -> int:
    """The number of classes of a built-in dataset, or of your own (read from its labels)."""
    if is_own_dataset(name):
        return own_classes(name)
    return _CLASSES[name]


# ---- loading -------------------------------------------------------------------------------


def load_dataset(
    name: str,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    train_size: int | None = None,
    val_size: int | None = None,
    test_size: int | None = None,
    image_size: int | None = None,
    split_seed: int = SPLIT_SEED,
    download: bool = False,
    device: torch.device | str = "cpu",
) -> DataBundle:
    """Load a dataset, split off the validation set and move everything to `device`.

    The validation set is a class-balanced draw from the training set, fixed by `split_seed`;
    the training split is the rest (or a class-balanced subset of it). Subsets are nested: a
    smaller `train_size` takes a prefix of a larger one's images per class, and `val_size`
    alone decides the validation set.

    Args:
        name: ``"cifar10"``, ``"cifar100"``, ``"svhn"``, ``"synthetic"``, or a path to your own
            dataset: an ``.npz`` file or an ``ImageFolder`` directory (:mod:`eas_gym.own_data`).
        data_dir: Folder holding torchvision's files (``cifar-10-batches-py/``,
            ``cifar-100-python/``, ``train_32x32.mat``...). Defaults to :func:`default_data_dir`.
        train_size: Training images, class-balanced. None: all but the validation set (the
            paper). Departure from the paper when set. Synthetic default: 2,000.
        val_size: Validation images, class-balanced. None: 5,000 (the paper). Synthetic default:
            500. 0: no validation set.
        test_size: Test images, class-balanced. None: the whole test set (synthetic: 500).
        image_size: Side of the square images after antialiased bilinear resizing. None: keep
            their size (32x32 for the built-in datasets; your own file's as it is). Departure
            from the paper when set.
        split_seed: Seed of the train/validation split (the paper's code: 88).
        download: Let torchvision download missing files into `data_dir`.
        device: Where the tensors live (``"auto"``: CUDA when available).

    Returns:
        The splits, the training split's per-channel mean and std, and the class count.

    Raises:
        ValueError: For an unknown `name` or impossible sizes.
        DatasetNotFoundError: When the files are missing and `download` is False or failed.
    """
    if is_own_dataset(name):
        check_own_dataset(name)  # a ValueError naming what is allowed
    if train_size is not None and train_size < 1:
        raise ValueError(f"Expected `train_size` >= 1, got {train_size}")
    for label, value in (("val_size", val_size), ("test_size", test_size)):
        if value is not None and value < 0:
            raise ValueError(f"Expected `{label}` >= 0, got {value}")
    if image_size is not None and image_size < 1:
        raise ValueError(f"Expected `image_size` >= 1, got {image_size}")

    if name == "synthetic":
        train_size = 2000 if train_size is None else train_size
        val_size = 500 if val_size is None else val_size
        pool, test = make_synthetic(
            train_size + val_size,
            500 if test_size is None else test_size,
            image_size=image_size or 32,
            seed=SYNTHETIC_SEED,
        )
        num_classes = 10
    else:
        if is_own_dataset(name):
            pool, test, num_classes = load_own(name)
        else:
            root = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
            pool, test, num_classes = _load_torchvision(name, root, download)
        if image_size is not None and pool.images.shape[-2:] != (image_size, image_size):
            pool = Split(_resize(pool.images, image_size), pool.labels)
            test = Split(_resize(test.images, image_size), test.labels)

    val_size = PAPER_VAL_SIZE if val_size is None else val_size
    split_gen = torch.Generator().manual_seed(split_seed)
    val_idx, train_idx = _balanced_split(
        pool.labels, num_classes, {"val_size": val_size, "train_size": train_size}, split_gen
    )
    train = Split(pool.images[train_idx], pool.labels[train_idx])
    val = Split(pool.images[val_idx], pool.labels[val_idx])
    if test_size is not None and test_size < len(test):
        (test_idx,) = _balanced_split(test.labels, num_classes, {"test_size": test_size}, split_gen)
        test = Split(test.images[test_idx], test.labels[test_idx])
    mean, std = _channel_stats(train.images)
    return DataBundle(name, train, val, test, mean, std, num_classes).to(device)


def _balanced_split(
    labels: Tensor, num_classes: int, sizes: dict[str, int | None], generator: torch.Generator
) -> list[Tensor]:
    """Disjoint, sorted index sets, one per entry of `sizes`, spread evenly over the classes.

    Each class's indices are shuffled once; each set takes the next quota from each class. A
    size of None takes everything left.
    """
    per_class = [
        idx[torch.randperm(len(idx), generator=generator, device="cpu")]
        for idx in (torch.nonzero(labels == k).flatten() for k in range(num_classes))
    ]
    taken = [0] * num_classes
    out = []
    for label, size in sizes.items():
        if size is None:
            quotas = [len(idx) - t for idx, t in zip(per_class, taken, strict=True)]
        else:
            quotas = [size // num_classes + (k < size % num_classes) for k in range(num_classes)]
        for k, quota in enumerate(quotas):
            if taken[k] + quota > len(per_class[k]):
                raise ValueError(
                    f"`{label}` {size} needs {quota} images of class {k}, but only "
                    f"{len(per_class[k]) - taken[k]} are left"
                )
        part = [idx[t : t + q] for idx, t, q in zip(per_class, taken, quotas, strict=True)]
        taken = [t + q for t, q in zip(taken, quotas, strict=True)]
        out.append(torch.cat(part).sort().values)
    return out


def _channel_stats(images: Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 images, in [0, 1] units (float64 sums, in chunks)."""
    if len(images) == 0:
        raise ValueError("cannot compute normalisation statistics of an empty training split")
    total = torch.zeros(images.shape[1], dtype=torch.float64, device=images.device)
    total_sq = torch.zeros_like(total)
    for chunk in images.split(4096):
        x = chunk.to(torch.float64)
        total += x.sum(dim=(0, 2, 3))
        total_sq += x.square().sum(dim=(0, 2, 3))
    count = images.numel() / images.shape[1]
    mean = total / count
    std = (total_sq / count - mean.square()).clamp_min(0).sqrt()
    return tuple((mean / 255).tolist()), tuple((std / 255).clamp_min(1e-6).tolist())


def _resize(images: Tensor, size: int) -> Tensor:
    """Antialiased bilinear resize of uint8 (N, C, H, W) to (N, C, size, size), in chunks."""
    if len(images) == 0:
        return images.new_empty((0, images.shape[1], size, size))
    out = [
        F.interpolate(chunk.float(), size=(size, size), mode="bilinear", antialias=True)
        .round_()
        .clamp_(0, 255)
        .to(torch.uint8)
        for chunk in images.split(4096)
    ]
    return torch.cat(out)


# ---- torchvision datasets ------------------------------------------------------------------

_FILES = {
    "cifar10": (
        "CIFAR-10",
        [f"cifar-10-batches-py/{f}" for f in ("data_batch_1", "data_batch_2", "data_batch_3")]
        + [f"cifar-10-batches-py/{f}" for f in ("data_batch_4", "data_batch_5")]
        + ["cifar-10-batches-py/test_batch", "cifar-10-batches-py/batches.meta"],
        "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz (about 170 MB)",
    ),
    "cifar100": (
        "CIFAR-100",
        ["cifar-100-python/train", "cifar-100-python/test", "cifar-100-python/meta"],
        "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz (about 170 MB)",
    ),
    "svhn": (
        "SVHN",
        ["train_32x32.mat", "test_32x32.mat"],
        "http://ufldl.stanford.edu/housenumbers/ (about 180 MB)",
    ),
}


def _load_torchvision(name: str, root: Path, download: bool) -> tuple[Split, Split, int]:
    """The full training and test sets of `name` from `root`, through torchvision."""
    from torchvision import datasets  # deferred: importing torchvision costs ~1 s

    title, files, url = _FILES[name]
    missing = [root / f for f in files if not (root / f).is_file()]
    if missing and not download:
        raise DatasetNotFoundError(_missing_message(title, root, files, url, missing))
    try:
        if name == "svhn":
            sets = [datasets.SVHN(str(root), split=s, download=download) for s in ("train", "test")]
            images = [torch.from_numpy(s.data) for s in sets]  # already (N, C, H, W)
            labels = [torch.from_numpy(s.labels) for s in sets]
            num_classes = 10
        else:
            kind = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
            sets = [kind(str(root), train=t, download=download) for t in (True, False)]
            images = [torch.from_numpy(s.data).permute(0, 3, 1, 2) for s in sets]  # from NHWC
            labels = [torch.tensor(s.targets, device="cpu") for s in sets]
            num_classes = len(sets[0].classes)
    except (OSError, RuntimeError) as e:  # failed download (URLError) or corrupt files
        missing = [root / f for f in files if not (root / f).is_file()]
        raise DatasetNotFoundError(
            f"{_missing_message(title, root, files, url, missing)} (torchvision said: {e})"
        ) from e
    splits = [Split(x.contiguous(), y.to(torch.int64)) for x, y in zip(images, labels, strict=True)]
    return splits[0], splits[1], num_classes


def _missing_message(title: str, root: Path, files: list[str], url: str, missing: list) -> str:
    """One line: what is missing where, and the three ways to provide it."""
    source = (
        "from EAS_DATA_DIR"
        if os.environ.get("EAS_DATA_DIR") and root == default_data_dir()
        else "data folder"
    )
    what = (
        f"{len(missing)} of its {len(files)} files missing (e.g. {Path(missing[0]).name})"
        if missing
        else "its files are present but unreadable or corrupt"
    )
    holding = files[0].split("/")[0] + "/" if "/" in files[0] else " ".join(files)
    return (
        f"{title} not found in {root} ({source}): {what}; point `data_dir` (--data-dir, or "
        f"EAS_DATA_DIR) at the folder holding {holding}, or let torchvision download {url} "
        "(`download=True`: --set download=true, or eas-gym train --download)"
    )


def check_dataset(name: str, data_dir: str | os.PathLike[str] | None, download: bool) -> None:
    """Raise :class:`DatasetNotFoundError` now, before any work, if `name`'s files are missing.

    The synthetic set needs no files; with `download` torchvision fetches what is missing. A
    path to your own dataset must exist, and an .npz file is read whole and checked (shapes,
    kinds, counts, labels): a ValueError otherwise. A folder's images are read when used.
    """
    if is_own_dataset(name):
        if check_own_dataset(name).is_file():  # an .npz: read and checked whole now, not mid-run
            load_own(name)
        return
    if name == "synthetic" or download:
        return
    if name not in _FILES:
        raise ValueError(f"Expected `name` in {DATASETS}, actually: {name!r}")
    root = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    title, files, url = _FILES[name]
    missing = [root / f for f in files if not (root / f).is_file()]
    if missing:
        raise DatasetNotFoundError(_missing_message(title, root, files, url, missing))
