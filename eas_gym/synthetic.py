"""A learnable image dataset that needs no files; tests, CI and offline demos use it."""

from __future__ import annotations

import math

import torch

from eas_gym.splits import Split

__all__ = ["SYNTHETIC_SEED", "make_synthetic"]

SYNTHETIC_SEED = 0


def make_synthetic(
    num_train: int,
    num_test: int,
    *,
    num_classes: int = 10,
    image_size: int = 32,
    noise: float = 0.2,
    seed: int = SYNTHETIC_SEED,
) -> tuple[Split, Split]:
    """A learnable image dataset with no files: class-dependent colour and stripes plus noise.

    Class ``k`` has a colour (shared with one other class) and stripes of its own orientation,
    frequency and tint; every image draws its stripe phase and amplitude, a colour cast and
    pixel noise. A classifier must combine colour and stripe orientation, not match a fixed
    pixel pattern, so wider and deeper nets score higher. Labels are balanced.

    Args:
        num_train: Images in the training pool (validation is split from it later).
        num_test: Images in the test set.
        num_classes: Number of classes.
        image_size: Side of the square RGB images.
        noise: Standard deviation of the Gaussian pixel noise (pixels in [0, 1]).
        seed: Fixes templates, images and labels.

    Returns:
        ``(train_pool, test)`` on the CPU.

    Example:
        >>> train, test = make_synthetic(20, 10, image_size=8)
        >>> tuple(train.images.shape), train.images.dtype, test.labels.tolist()[:3]
        ((20, 3, 8, 8), torch.uint8, [0, 1, 2])
    """
    if num_classes < 2:
        raise ValueError(f"Expected `num_classes` >= 2, got {num_classes}")
    # on the CPU whatever the caller's default device (torch.set_default_device)
    with torch.device("cpu"):
        gen = torch.Generator().manual_seed(seed)
        # Classes 2j and 2j+1 share a colour, so telling them apart needs the stripes.
        colours = 0.25 + 0.5 * torch.rand(num_classes, 3, generator=gen)
        colours = colours[torch.arange(num_classes) // 2]  # (K, 3)
        stripe_rgb = torch.rand(num_classes, 3, generator=gen) - 0.5  # (K, 3)
        stripe_rgb = stripe_rgb / stripe_rgb.norm(dim=1, keepdim=True)
        angles = math.pi * (torch.arange(num_classes) + 0.5) / num_classes
        freqs = 1.5 + torch.arange(num_classes) % 3  # cycles per image
        coords = torch.linspace(0, 1, image_size)
        yy, xx = torch.meshgrid(coords, coords, indexing="ij")  # (S, S)

        def generate(n: int, gen: torch.Generator) -> Split:
            labels = torch.arange(n) % num_classes
            phase = 2 * math.pi * torch.rand(n, 1, 1, generator=gen)
            along = (
                xx * angles[labels].cos()[:, None, None] + yy * angles[labels].sin()[:, None, None]
            )
            wave = torch.sin(
                2 * math.pi * freqs[labels][:, None, None] * along + phase
            )  # (n, S, S)
            amplitude = 0.1 + 0.2 * torch.rand(n, 1, 1, 1, generator=gen)
            jitter = 0.1 * torch.randn(n, 3, 1, 1, generator=gen)  # per-image colour cast
            x = colours[labels][:, :, None, None] + jitter
            x = x + amplitude * stripe_rgb[labels][:, :, None, None] * wave[:, None]
            x = x + noise * torch.randn(n, 3, image_size, image_size, generator=gen)
            images = (x.clamp(0, 1) * 255).round().to(torch.uint8)
            return Split(images, labels.to(torch.int64))

        # Separate streams: the test set does not depend on `num_train`.
        train_gen = torch.Generator().manual_seed(seed + 1)
        test_gen = torch.Generator().manual_seed(seed + 2)
        return generate(num_train, train_gen), generate(num_test, test_gen)
