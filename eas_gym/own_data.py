"""Your own images as a dataset: an ``.npz`` file of arrays, or a folder of image files.

Wherever a dataset name goes (``gym.make(ID, dataset=...)``, ``--set dataset=...``,
:func:`eas_gym.data.load_dataset`), a path may go instead:

* an ``.npz`` file (``numpy.savez``) in Keras's layout: ``x_train`` and ``y_train``, optionally
  ``x_test`` and ``y_test``. Images are uint8, ``(N, H, W, C)`` or ``(N, C, H, W)`` with C in
  (1, 3), or ``(N, H, W)``; labels are integers ``0 .. K-1``, ``(N,)`` or ``(N, 1)`` (as
  Keras's loaders give), every class among the training images;
* a folder in torchvision's ``ImageFolder`` layout (``train/CLASS/*.png`` and optionally
  ``test/CLASS/*.png`` or ``val/CLASS/*.png``, the test images; or ``CLASS/*.png`` directly:
  then every image is a training image). Any
  format PIL reads; classes are numbered in sorted folder-name order, as ``ImageFolder`` does.
  All images must share one size (``image_size`` then resizes them, as for the built-in sets).

Grayscale images are repeated to 3 channels, since the search spaces take RGB. The validation
split is drawn from the training images exactly as for the built-in sets; without test images
the test split is empty (and test accuracy is not reported).

In the store a file dataset is known by its name and the SHA-256 of its contents
(:func:`dataset_identity`), so an edited file never reuses results of the old one, while a copy
under the same name elsewhere does; a run folder compares the same identity when it resumes.
Paths are made absolute for run folders and Ray actors; on a cluster the dataset must be at that
path on every node.
"""

from __future__ import annotations

import functools
import hashlib
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from eas_gym.splits import Split

__all__ = ["BUILTIN_DATASETS", "dataset_identity", "is_own_dataset", "load_own", "own_classes"]

BUILTIN_DATASETS = ("cifar10", "cifar100", "svhn", "synthetic")
"""The dataset names; anything else is read as a path to your own dataset."""

FORMATS = "an .npz file (x_train, y_train[, x_test, y_test]) or an ImageFolder directory"
"""What a path to your own dataset may point at, for error messages."""

_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm")


def is_own_dataset(name: str) -> bool:
    """Whether `name` is a path to your own dataset rather than a built-in name."""
    return name not in BUILTIN_DATASETS


def check_own_dataset(name: str) -> Path:
    """`name` as an existing path of a supported kind; a ValueError saying what is allowed."""
    path = Path(name).expanduser()
    if path.is_file() and path.suffix.lower() == ".npz":
        return path
    if path.is_dir():
        return path
    what = "does not exist" if not path.exists() else "is neither an .npz file nor a folder"
    raise ValueError(
        f"Unknown `dataset` {name!r}: {what}; expected one of {BUILTIN_DATASETS} or a path to "
        f"{FORMATS}"
    )


def dataset_identity(name: str) -> str:
    """How the store knows the dataset: a built-in name, or ``FILENAME@sha256:DIGEST``."""
    if not is_own_dataset(name):
        return name
    path = check_own_dataset(name).resolve()
    return f"{path.name}@sha256:{_digest(path, _signature(path))}"


def own_classes(name: str) -> int:
    """The number of classes of your own dataset (cheap: labels or folder names only)."""
    path = check_own_dataset(name)
    if path.is_dir():
        return len(_class_names(_train_folder(path)))
    with _open_npz(path) as arrays:
        _require(arrays, path)
        return _label_count(arrays["y_train"], path)


def _open_npz(path: Path) -> Any:
    """``np.load(path)`` of an .npz archive of arrays; a ValueError naming the file otherwise.

    numpy reads anything that is not a zip archive as a pickle and suggests ``allow_pickle``,
    which would run the file's code: never done here.
    """
    try:
        return np.load(path)
    except (ValueError, zipfile.BadZipFile, EOFError, OSError) as e:
        raise ValueError(
            f"{path} is not an .npz archive of arrays (np.savez writes one; "
            f"numpy: {type(e).__name__}); it is not read as a pickle"
        ) from e


def load_own(name: str) -> tuple[Split, Split, int]:
    """The training images (validation still in them), the test images and the class count.

    Images are ``(N, 3, H, W)`` uint8, labels int64. Raises ValueError for a file or folder that
    does not hold a dataset in one of the layouts above, naming what is wrong.
    """
    path = check_own_dataset(name)
    if path.is_dir():
        return _load_folder(path)
    with _open_npz(path) as arrays:
        _require(arrays, path)
        num_classes = _label_count(arrays["y_train"], path)
        train = _split(arrays["x_train"], arrays["y_train"], num_classes, path, "train")
        if "x_test" in arrays.files:
            test = _split(arrays["x_test"], arrays["y_test"], num_classes, path, "test")
        else:
            test = _empty_like(train)
    if test.images.shape[1:] != train.images.shape[1:] and len(test):
        raise ValueError(
            f"{path}: x_test images are {tuple(test.images.shape[1:])}, x_train images "
            f"{tuple(train.images.shape[1:])}; expected one shape"
        )
    return train, test, num_classes


# ---- .npz files ----------------------------------------------------------------------------


def _require(arrays: np.lib.npyio.NpzFile, path: Path) -> None:
    missing = [k for k in ("x_train", "y_train") if k not in arrays.files]
    for have, need in (("x_test", "y_test"), ("y_test", "x_test")):
        if have in arrays.files and need not in arrays.files:
            missing.append(need)
    if missing:
        raise ValueError(
            f"{path} lacks {', '.join(missing)}; it holds {sorted(arrays.files)}; expected "
            "x_train and y_train, optionally x_test and y_test"
        )


def _labels(labels: np.ndarray) -> np.ndarray:
    """Labels as 1-D: Keras's loaders give (N, 1)."""
    return labels.reshape(-1) if labels.ndim == 2 and labels.shape[1] == 1 else labels


def _label_count(labels: np.ndarray, path: Path) -> int:
    labels = _labels(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer) or labels.size == 0:
        raise ValueError(
            f"{path}: expected y_train to be a non-empty 1-D integer array, got dtype "
            f"{labels.dtype} and shape {labels.shape}"
        )
    if labels.min() < 0:
        raise ValueError(f"{path}: labels must be >= 0, found {int(labels.min())}")
    count = int(labels.max()) + 1
    if count < 2:
        raise ValueError(f"{path}: expected at least 2 classes, y_train has {count}")
    empty = np.flatnonzero(np.bincount(labels, minlength=count) == 0).tolist()
    if empty:
        raise ValueError(
            f"{path}: y_train has no images of classes {empty} (labels must be 0..K-1, each used)"
        )
    return count


def _split(images: np.ndarray, labels: np.ndarray, classes: int, path: Path, part: str) -> Split:
    labels = _labels(labels)
    if images.dtype != np.uint8:
        raise ValueError(
            f"{path}: expected x_{part} to be uint8 pixels (0-255), got {images.dtype}; "
            "convert with (x * 255).round().astype(np.uint8) if they are in [0, 1]"
        )
    if len(images) != len(labels):
        raise ValueError(f"{path}: {len(images)} images in x_{part}, {len(labels)} labels")
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{path}: expected y_{part} to be a 1-D integer array")
    if len(labels) and (labels.min() < 0 or labels.max() >= classes):
        raise ValueError(
            f"{path}: y_{part} holds labels outside 0..{classes - 1} (the classes of y_train)"
        )
    pixels = _to_nchw_rgb(torch.from_numpy(images), path, part)
    return Split(pixels, torch.from_numpy(labels).long())


def _to_nchw_rgb(images: torch.Tensor, path: Path | str, part: str) -> torch.Tensor:
    if images.ndim == 3:  # (N, H, W) grayscale
        images = images.unsqueeze(1)
    elif images.ndim == 4 and images.shape[-1] in (1, 3):  # (N, H, W, C), Keras's layout
        images = images.permute(0, 3, 1, 2)
    elif not (images.ndim == 4 and images.shape[1] in (1, 3)):
        raise ValueError(
            f"{path}: expected x_{part} as (N, H, W, C), (N, C, H, W) with C in (1, 3), or "
            f"(N, H, W); got shape {tuple(images.shape)}"
        )
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    return images.contiguous()


def _empty_like(split: Split) -> Split:
    shape = (0, *split.images.shape[1:])
    images = torch.empty(shape, dtype=torch.uint8, device="cpu")
    return Split(images, torch.empty(0, dtype=torch.int64, device="cpu"))


# ---- image folders -------------------------------------------------------------------------


_HELD_OUT = ("test", "val")  # the first found is the test split, as torchvision's layouts name it


def _train_folder(root: Path) -> Path:
    if (root / "train").is_dir():
        return root / "train"
    held_out = [name for name in _HELD_OUT if (root / name).is_dir()]
    if held_out:
        raise ValueError(
            f"{root} has {held_out[0]}/ but no train/: put the training images in "
            f"{root / 'train'}/CLASS/ (or every image in {root}/CLASS/, with no {held_out[0]}/)"
        )
    return root


def _class_names(folder: Path, *, at_least: int = 2) -> list[str]:
    """Class folders of `folder`, sorted (hidden folders such as .ipynb_checkpoints skipped)."""
    names = sorted(
        entry.name for entry in os.scandir(folder) if entry.is_dir() and not entry.name[0] == "."
    )
    if len(names) < at_least:
        raise ValueError(
            f"{folder}: expected one folder per class (at least {at_least}), found {names}; a "
            f"dataset folder is {FORMATS}"
        )
    return names


def _image_files(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in _IMAGE_SUFFIXES
    )


def _load_folder(root: Path) -> tuple[Split, Split, int]:
    from PIL import Image  # torchvision's dependency; deferred with it

    train_folder = _train_folder(root)
    names = _class_names(train_folder)
    parts = {"train": train_folder}
    held_out = [root / name for name in _HELD_OUT if (root / name).is_dir()]
    if len(held_out) > 1:
        raise ValueError(f"{root} has both test/ and val/; keep one, the test images")
    if held_out:
        parts["test"] = held_out[0]
    splits: dict[str, Split] = {}
    size, first = None, None
    for part, folder in parts.items():
        unknown = set(_class_names(folder, at_least=1)) - set(names) if part == "test" else set()
        if unknown:
            raise ValueError(f"{folder}: classes {sorted(unknown)} are not among train's {names}")
        images, labels = [], []
        for label, name in enumerate(names):
            files = _image_files(folder / name) if (folder / name).is_dir() else []
            if part == "train" and not files:
                raise ValueError(f"{folder / name}: no images (expected {_IMAGE_SUFFIXES})")
            for file in files:
                with Image.open(file) as image:
                    pixels = np.asarray(image.convert("RGB"))
                if size is None:
                    size, first = pixels.shape, file
                elif pixels.shape != size:
                    raise ValueError(
                        f"{file} is {pixels.shape[1]}x{pixels.shape[0]}, {first} is "
                        f"{size[1]}x{size[0]}; resize the images to one size first"
                    )
                images.append(pixels)
                labels.append(label)
        if images:
            x = _to_nchw_rgb(torch.from_numpy(np.stack(images)), folder, part)
            splits[part] = Split(x, torch.tensor(labels, dtype=torch.int64, device="cpu"))
    train = splits["train"]
    return train, splits.get("test") or _empty_like(train), len(names)


# ---- identity ------------------------------------------------------------------------------


def _signature(path: Path) -> tuple:
    """What changes when the contents may have: sizes and modification times of the files."""
    files = [path] if path.is_file() else _image_files(path)
    return tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files)


@functools.lru_cache(maxsize=16)
def _digest(path: Path, signature: tuple) -> str:
    """SHA-256 (first 16 hex digits) of the file, or of a folder's relative paths and files."""
    total = hashlib.sha256()
    files = [path] if path.is_file() else _image_files(path)
    for file in files:
        if path.is_dir():
            total.update(file.relative_to(path).as_posix().encode() + b"\0")
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                total.update(block)
        total.update(b"\0")
    return total.hexdigest()[:16]
