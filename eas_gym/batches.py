"""On-device batches: shuffle, augment (pad-4 random crop, horizontal flip) and normalise.

:func:`iterate_batches` works with batched tensor ops on the split's device, drawing every
random number from an explicit CPU ``torch.Generator``, so a seed fixes the batches on any
device.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from eas_gym.splits import Split

__all__ = ["iterate_batches"]

# Images augmented and normalised per tensor op: amortises per-op overhead while the chunk's
# temporaries still fit in the CPU's cache (256 measured fastest here, 2048 was 25% slower).
_CHUNK_IMAGES = 256


def iterate_batches(
    split: Split,
    batch_size: int,
    *,
    mean: Sequence[float],
    std: Sequence[float],
    shuffle: bool = False,
    augment: bool = False,
    drop_last: bool = False,
    generator: torch.Generator | None = None,
    padding: int = 4,
) -> Iterator[tuple[Tensor, Tensor]]:
    """Yield normalised float32 ``(B, C, H, W)`` images and their labels, on the split's device.

    With `augment`, each image gets a random crop of its zero-padded copy (``padding`` pixels on
    every side) and a horizontal flip with probability 1/2, as torchvision's
    ``RandomCrop(H, padding)`` + ``RandomHorizontalFlip()``, but as one copy for a chunk of
    images. Random numbers come from `generator` on the CPU and are moved to the device once per
    pass, so the batches depend only on the seed.

    Args:
        split: The images and labels.
        batch_size: Images per batch.
        mean: Per-channel mean in [0, 1] pixel units.
        std: Per-channel standard deviation in [0, 1] pixel units.
        shuffle: Visit the images in a random order.
        augment: Random crop and flip.
        drop_last: Drop the last batch when it is smaller than `batch_size`.
        generator: A CPU generator; required when `shuffle` or `augment`.
        padding: Pixels of zero padding for the random crop.

    Yields:
        ``(images, labels)``: float32 ``(B, C, H, W)`` and int64 ``(B,)``.
    """
    if batch_size < 1:
        raise ValueError(f"Expected `batch_size` >= 1, got {batch_size}")
    if (shuffle or augment) and generator is None:
        raise ValueError("`generator` is required when `shuffle` or `augment` is set")
    if generator is not None and generator.device.type != "cpu":
        raise ValueError(f"Expected a CPU `generator`, got one on {generator.device}")
    n = len(split)
    device = split.device
    # All random numbers are drawn on the CPU for the whole pass, then moved once.
    order = torch.randperm(n, generator=generator, device="cpu").to(device) if shuffle else None
    if augment:
        # Offsets in [0, 2p] into the padded image and one flip bit per image: (N,) each.
        draws = torch.randint(0, 2 * padding + 1, (2, n), generator=generator, device="cpu")
        flip = torch.randint(0, 2, (n,), generator=generator, dtype=torch.bool, device="cpu")
        flip = flip.to(device)
        dy, dx = draws.to(device)
    scale = torch.tensor([1.0 / (255.0 * s) for s in std], device=device).view(1, -1, 1, 1)
    shift = torch.tensor([-m / s for m, s in zip(mean, std, strict=True)], device=device)
    shift = shift.view(1, -1, 1, 1)

    stop = n - n % batch_size if drop_last else n
    chunk = max(batch_size, _CHUNK_IMAGES // batch_size * batch_size)
    for start in range(0, stop, chunk):
        end = min(start + chunk, stop)
        if order is None:
            images, labels = split.images[start:end], split.labels[start:end]
        else:
            index = order[start:end]  # index_select: ~10x faster than images[index] on CPU
            images = split.images.index_select(0, index)
            labels = split.labels.index_select(0, index)
        if augment:
            images = _crop_flip(images, dy[start:end], dx[start:end], flip[start:end], padding)
        x = images.float().mul_(scale).add_(shift)  # (x / 255 - mean) / std
        for b in range(0, end - start, batch_size):
            yield x[b : b + batch_size], labels[b : b + batch_size]


def _crop_flip(images: Tensor, dy: Tensor, dx: Tensor, flip: Tensor, padding: int) -> Tensor:
    """Crops of zero-padded `images` (n, C, H, W) at offsets (dy, dx), mirrored where `flip`.

    One copy: both orientations are padded into one buffer, and a strided view of it whose first
    index is any start offset lets a single ``index_select`` pick every crop (on CPU ~7x faster
    than a per-pixel gather). A mirrored crop at dx is the plain crop at 2p - dx, mirrored; dx
    is uniform on [0, 2p], so the distribution is the same.
    """
    n, c, h, w = images.shape
    hp, wp = h + 2 * padding, w + 2 * padding
    both = F.pad(torch.stack([images, images.flip(3)]), (padding,) * 4)  # (2, n, C, Hp, Wp)
    span = (c - 1) * hp * wp + (h - 1) * wp + w  # elements from a crop's first to last pixel
    windows = both.view(-1).as_strided((both.numel() - span + 1, c, h, w), (1, hp * wp, wp, 1))
    image = flip.long() * n + torch.arange(n, device=images.device)  # which padded image
    return windows.index_select(0, image * (c * hp * wp) + dy * wp + dx)
