"""The store's records and interface: :class:`Evaluation`, :data:`BY_NET`, :class:`Store`.

What every store speaks, apart from the SQLite implementation (:mod:`eas_gym.store`, which
re-exports all of it): :class:`~eas_gym.store.EvalStore` and the Ray service's client
(:class:`~eas_gym.ray_store.RemoteStore`) both satisfy :class:`Store`.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from eas_gym.net import StateDict

__all__ = ["BY_NET", "Evaluation", "Store"]

BY_NET = ""
"""The lineage of rows cached by net string alone (the paper's cache, ``cache_by="net"``)."""


@dataclass(frozen=True)
class Evaluation:
    """One evaluated child.

    Args:
        net: Net string (``Arch.to_string()``).
        config_key: See :func:`eas_gym.store.config_key`.
        accuracy: Validation accuracy in [0, 1].
        loss: Validation loss.
        params: Trainable parameters.
        flops: Multiply-adds per image.
        seconds: Wall time of its fine-tune and evaluation.
        parent: The parent's net string.
        transforms: The transforms that made it from the parent, as JSON-able records.
        config: The full configuration (for people; the key is what matches).
        seed: The seed of its training.
        diverged: Training stopped on a non-finite loss.
        oom: Training ran out of device memory (not served as a cache hit).
        weights: Path of its saved weights, relative to the store's folder, if kept.
        lineage: What made this evaluation: a hash of the start network's configuration, the
            transforms with their noise seed and the training seeds (see ``EASEnv``);
            :data:`BY_NET` for rows cached by net string alone.
        start_digest: The weights digest (:func:`eas_gym.net2net.state_digest`) of the start
            network it grew from: the lineage names the start's configuration, not its weights,
            and one configuration trained on another CPU or thread count gives other weights.
            ``""`` for start networks themselves and for rows written before it was recorded
            (store layout 3), which no run that knows its start network is served.
    """

    net: str
    config_key: str
    accuracy: float
    loss: float | None = None
    params: int | None = None
    flops: int | None = None
    seconds: float | None = None
    parent: str | None = None
    transforms: list[dict[str, Any]] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    diverged: bool = False
    oom: bool = False
    weights: str | None = None
    lineage: str = BY_NET
    start_digest: str = ""


@runtime_checkable
class Store(Protocol):
    """What the env and scorer need of a store: :class:`EvalStore`, or a Ray service's client.

    :func:`open_store` gives one for a path or a service address.
    """

    path: str
    """The database file, ``":memory:"``, or ``"ray-store:<actor name>"``."""

    def get(
        self, net: str, key: str, lineage: str = BY_NET, start_digest: str = ""
    ) -> Evaluation | None:
        """The stored evaluation of `net` under `key`, `lineage` and `start_digest`, or None."""

    def with_weights(self, net: str, key: str, start_digest: str = "") -> Evaluation | None:
        """The newest evaluation of `net` under `key` and `start_digest` with kept weights."""

    def put(self, evaluation: Evaluation) -> None:
        """Record `evaluation` (first writer wins, except over an out-of-memory row)."""

    def set_weights(self, evaluation: Evaluation, weights: str) -> None:
        """Point `evaluation`'s row at new weights, with `evaluation`'s accuracy for them."""

    def all(self, key: str | None = None) -> list[Evaluation]:
        """Every stored evaluation (under `key` if given), oldest first."""

    def save_weights(self, net: str, key: str, state: StateDict) -> str:
        """Save `state`; returns the name to record in the row's ``weights``."""

    def load_weights(self, evaluation: Evaluation) -> StateDict | None:
        """The saved weights of `evaluation`, or None."""

    def lock(self, name: str) -> contextlib.AbstractContextManager[None]:
        """An exclusive lock shared by every user of the store."""

    def close(self) -> None:
        """Release what this handle holds."""
