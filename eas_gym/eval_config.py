"""What decides a child's accuracy: :class:`EvalConfig`, the store's keys, and lineages.

A store row is found by its net string, its configuration key (:meth:`EvalConfig.key`) and,
cached by lineage, by the computation that produced it (:func:`lineage_step`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from eas_gym.store import config_key
from eas_gym.train_config import TrainConfig

__all__ = ["KEY_VERSION", "WEIGHTLESS_EVALUATORS", "EvalConfig", "device_key", "lineage_step"]

WEIGHTLESS_EVALUATORS = ("surrogate", "bench")
"""Evaluators that score an architecture without weights: a hand-written formula, and
EAS-Bench's model fitted on real evaluations (:mod:`eas_gym.bench`)."""

KEY_VERSION = 2
"""Child keys of eas_gym 0.1.0 were version 1: no ``probe_size``, no version (see
:meth:`EvalConfig.legacy_key`)."""

_LEGACY_PROBE_SIZE = 64  # 0.1.0's default probe size: its rows are read as this probe size


def device_key(device_type: str) -> str:
    """What :attr:`EvalConfig.device_type` records for a device type: its numerics.

    A GPU trains in fp32 with TF32 convolutions since 2026-12 (bf16 autocast before, keyed
    ``"cuda"``): the new key keeps old bf16 rows from being served for fp32 children.

    >>> device_key("cuda"), device_key("cpu")
    ('cuda-fp32', 'cpu')
    """
    return "cuda-fp32" if device_type == "cuda" else device_type


@dataclass(frozen=True)
class EvalConfig:
    """What decides a child's accuracy besides its net string (and, by lineage, its history).

    Args:
        dataset: The dataset's name.
        train_size: Training images (None: all but the validation split).
        val_size: Validation images (None: the paper's 5,000).
        image_size: Downsampled image side, or None.
        evaluator: ``"train"``, or one of :data:`WEIGHTLESS_EVALUATORS`.
        start_net: The start network's net string.
        start_train: The start network's training from scratch.
        train: Each child's fine-tune.
        num_classes: Classes of the dataset.
        reward_mode: ``"dense"`` fine-tunes after every transform, ``"sparse"`` once at the end.
        noise: The paper's symmetry-breaking noise on new units.
        device_type: ``"cpu"``, or ``"cuda-fp32"`` for a GPU (fp32, TF32 convolutions).
            eas_gym 0.x before 2026-12 wrote ``"cuda"`` and trained GPU children in bf16:
            those rows keep their own key and are not served for fp32 ones.
        probe_size: Training images in the probe batch, which sets the BN statistics of every
            plain deeper step.
    """

    dataset: str
    train_size: int | None
    val_size: int | None
    image_size: int | None
    evaluator: str
    start_net: str
    start_train: TrainConfig
    train: TrainConfig
    num_classes: int
    reward_mode: str
    noise: bool
    device_type: str
    probe_size: int

    def record(self) -> dict[str, Any]:
        """The configuration as JSON-able data (stored with every row, for people)."""
        values = dataclasses.asdict(self)
        values["start_train"], values["train"] = self.start_train.to_dict(), self.train.to_dict()
        return values

    def start_record(self) -> dict[str, Any]:
        """What decides the start network: child-only settings must not retrain it."""
        child_only = ("train", "reward_mode", "noise", "probe_size")
        return {k: v for k, v in self.record().items() if k not in child_only} | {"role": "start"}

    def start_key(self) -> str:
        """The start network's configuration key (unchanged since 0.1.0)."""
        return config_key(self.start_record())

    def key(self) -> str:
        """The children's configuration key."""
        return config_key({**self.record(), "key_version": KEY_VERSION})

    def legacy_key(self) -> str | None:
        """The key 0.1.0 gave these children, if its rows can stand for them.

        0.1.0 left ``probe_size`` out of the key; its rows are read as rows of probe size 64,
        its default (the documented compatibility rule), and only by the net-string cache.
        """
        if self.probe_size != _LEGACY_PROBE_SIZE:
            return None
        return config_key({k: v for k, v in self.record().items() if k != "probe_size"})


def lineage_step(lineage: str, *parts: Any) -> str:
    """The lineage after `parts` (transforms, seeds) happened to a network of `lineage`.

    >>> lineage_step("start", {"op": "wider"}, 7) == lineage_step("start", {"op": "wider"}, 7)
    True
    """
    text = json.dumps([lineage, *parts], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]
