"""A dataset as tensors on the training device: one split, a bundle of splits, the device.

Each split is one ``(N, C, H, W)`` uint8 tensor and its ``(N,)`` int64 labels, kept on the
device that trains on them; :mod:`eas_gym.batches` turns a split into batches there, and
:mod:`eas_gym.data` loads the splits.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["DataBundle", "Split", "resolve_device"]


def resolve_device(device: torch.device | str = "auto") -> torch.device:
    """``"auto"`` -> ``cuda`` when available, else ``cpu``; anything else -> ``torch.device``.

    Raises:
        ValueError: `device` names no torch device (``"gpu"``, say).
    """
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as e:  # torch's message lists its device types
        raise ValueError(
            f"Expected `device` 'auto', 'cpu', 'cuda' or 'cuda:N' (a torch device), actually: "
            f"{device!r}"
        ) from e


@dataclass(frozen=True, eq=False)
class Split:
    """Images and labels of one split.

    Args:
        images: ``(N, C, H, W)`` uint8 pixels.
        labels: ``(N,)`` int64 class indices, on the same device.
    """

    images: Tensor
    labels: Tensor

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(
                f"Expected `images` to be a (N, C, H, W) uint8 tensor, got {self.images.dtype} "
                f"of shape {tuple(self.images.shape)}"
            )
        if self.labels.shape != self.images.shape[:1]:
            raise ValueError(
                f"Expected `labels` of shape {tuple(self.images.shape[:1])}, "
                f"got {tuple(self.labels.shape)}"
            )

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def device(self) -> torch.device:
        """Where the tensors live."""
        return self.images.device

    def to(self, device: torch.device | str) -> Split:
        """This split on `device` (self if already there)."""
        device = torch.device(device)
        if self.images.device == device:
            return self
        return Split(self.images.to(device), self.labels.to(device))


@dataclass(frozen=True, eq=False)
class DataBundle:
    """A dataset's train, validation and test splits and its normalisation.

    Args:
        name: One of :data:`DATASETS`.
        train: Training split (the paper: 45,000 images).
        val: Validation split drawn from the training set (the paper: 5,000 images).
        test: The official test set (or a class-balanced subset of it).
        mean: Per-channel mean of the training split, pixel values scaled to [0, 1].
        std: Per-channel standard deviation of the training split, same scale.
        num_classes: Number of classes.
    """

    name: str
    train: Split
    val: Split
    test: Split
    mean: tuple[float, ...]
    std: tuple[float, ...]
    num_classes: int

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of every image."""
        channels, height, width = self.train.images.shape[1:]
        return channels, height, width

    @property
    def device(self) -> torch.device:
        """Where the splits live."""
        return self.train.device

    def to(self, device: torch.device | str) -> DataBundle:
        """This bundle with every split on `device`."""
        device = resolve_device(device)
        return DataBundle(
            self.name,
            self.train.to(device),
            self.val.to(device),
            self.test.to(device),
            self.mean,
            self.std,
            self.num_classes,
        )
