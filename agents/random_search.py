"""Random search: the same schedule and budget as the controller, uniform over legal choices."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from agents.base import split_masks

__all__ = ["RandomSearch"]


class SeededHeuristic:
    """The shared part of agents that never learn: rewards ignored, no update.

    Their state is the seeded generator ``self.rng``, so a resumed search draws what an
    uninterrupted one would.
    """

    rng: np.random.Generator

    def observe(self, rewards: np.ndarray, terminated: np.ndarray) -> None:
        """A heuristic ignores rewards."""

    def update(self) -> dict[str, float]:
        """Nothing to learn."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        """The generator state."""
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the generator state."""
        self.rng.bit_generator.state = state["rng"]


class RandomSearch(SeededHeuristic):
    """Each action entry uniform over its legal values (the env's masks), seeded.

    Args:
        observation_space: The single-environment observation space (unused).
        action_space: The single-environment ``MultiDiscrete`` action space.
        seed: Seeds the draws.
    """

    def __init__(
        self, observation_space: spaces.Space, action_space: spaces.MultiDiscrete, *, seed: int
    ) -> None:
        self.action_space = action_space
        self.rng = np.random.default_rng(seed)

    def act(self, obs: dict[str, np.ndarray], masks: np.ndarray) -> np.ndarray:
        """Draw each entry uniformly among its legal values."""
        parts = split_masks(masks, self.action_space)
        batch = parts[0].shape[0]
        actions = np.zeros((batch, len(parts)), dtype=np.int64)
        for d, legal in enumerate(parts):
            for b in range(batch):
                actions[b, d] = self.rng.choice(np.flatnonzero(legal[b]))
        return actions
