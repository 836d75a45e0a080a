"""How to train a child: the :class:`TrainConfig`, the paper's presets and the LR schedule.

Frozen plain values, so a config hashes and is part of the evaluation-cache key;
:mod:`eas_gym.train` runs it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

__all__ = [
    "FINAL_CONFIG",
    "SCRATCH_CONFIG",
    "SEARCH_CONFIG",
    "TrainConfig",
    "learning_rate",
]

_SCHEDULES = ("cosine", "constant")
_TRAIN_SPLITS = ("train", "train+val")
_EVAL_SPLITS = ("val", "test", None)


@dataclass(frozen=True)
class TrainConfig:
    """How to train a child: SGD with Nesterov momentum and a cosine learning rate.

    Frozen and made of plain values, so it hashes and :meth:`to_dict` is JSON-able (it is part
    of the evaluation-cache key). Fields left at None are chosen per device and do not change
    what is computed beyond floating-point rounding, except `amp`.

    Args:
        epochs: Passes over the training split; fractions allowed (0: evaluate only).
        batch_size: Training images per SGD step (the last partial batch is dropped).
        lr: Peak learning rate.
        momentum: SGD momentum.
        nesterov: Nesterov momentum.
        weight_decay: L2 penalty on every parameter.
        schedule: ``"cosine"`` (per step, from `lr` to 0) or ``"constant"``.
        augment: Pad-4 random crop and horizontal flip on training batches.
        train_split: ``"train"``, or ``"train+val"`` to train on every training image.
        eval_split: Split evaluated after training: ``"val"``, ``"test"`` or None (skip).
        eval_batch_size: Images per evaluation batch; None: 1024 on CPU, 4096 on CUDA.
        channels_last: NHWC memory format; None: on CPU when the convs before the first pool
            all have at least 16 filters (where it measured faster), never on a GPU (an H200
            stepped as fast or faster in NCHW for every net measured).
        amp: bf16 autocast; None or False: off. On an H200 bf16 was no faster for these
            launch-bound nets at batch 64 (benchmarks/RESULTS.md, "The GPU suite"); fp32
            convolutions there run in TF32, torch's default.
    """

    epochs: float = 20.0
    batch_size: int = 64
    lr: float = 0.02
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 1e-4
    schedule: str = "cosine"
    augment: bool = True
    train_split: str = "train"
    eval_split: str | None = "val"
    eval_batch_size: int | None = None
    channels_last: bool | None = None
    amp: bool | None = None

    def __post_init__(self) -> None:
        # Equal configs must give equal JSON (the cache key): 20 and 20.0 both become 20.0.
        for name in ("epochs", "lr", "momentum", "weight_decay"):
            object.__setattr__(self, name, float(getattr(self, name)))
        if not math.isfinite(self.epochs) or self.epochs < 0:
            raise ValueError(f"Expected `epochs` >= 0, got {self.epochs}")
        if self.batch_size < 1:
            raise ValueError(f"Expected `batch_size` >= 1, got {self.batch_size}")
        if self.eval_batch_size is not None and self.eval_batch_size < 1:
            raise ValueError(f"Expected `eval_batch_size` >= 1, got {self.eval_batch_size}")
        if self.lr < 0 or self.momentum < 0 or self.weight_decay < 0:
            raise ValueError(
                "Expected `lr`, `momentum` and `weight_decay` >= 0, got "
                f"{self.lr}, {self.momentum} and {self.weight_decay}"
            )
        for label, value, allowed in (
            ("schedule", self.schedule, _SCHEDULES),
            ("train_split", self.train_split, _TRAIN_SPLITS),
            ("eval_split", self.eval_split, _EVAL_SPLITS),
        ):
            if value not in allowed:
                raise ValueError(f"Unknown `{label}` {value!r}; expected one of {allowed}")

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-able dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`."""
        return cls(**values)


SEARCH_CONFIG = TrainConfig(epochs=20, lr=0.02)
"""The paper's fine-tune of each child during search: 20 epochs, lr 0.02 cosine, batch 64."""

FINAL_CONFIG = TrainConfig(epochs=300, lr=0.1, train_split="train+val", eval_split="test")
"""The paper's final training of the winner: 300 epochs, lr 0.1, all training images, test."""

SCRATCH_CONFIG = TrainConfig(epochs=60, lr=0.1)
"""Training a start net from random weights (our choice; the paper gives no schedule)."""


def learning_rate(config: TrainConfig, step: int, total_steps: int) -> float:
    """The learning rate of SGD step `step` (0-based) of `total_steps` under `config`.

    ``"cosine"`` decays per step from ``config.lr`` to 0; ``"constant"`` keeps ``config.lr``.
    """
    if config.schedule == "constant":
        return config.lr
    return 0.5 * config.lr * (1.0 + math.cos(math.pi * step / total_steps))
