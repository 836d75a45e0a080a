"""Genomes for black-box search agents: an episode's action sequence from the start network.

The transforms are deterministic in the architecture, so replaying an episode's actions from
the start network gives the same architecture again, and no stored weights are needed. A
*mutation* redraws one step's action uniformly among the legal ones (the env's masks) and
replays the rest: where a replayed entry is no longer legal (the mutation moved a layer), it is
redrawn uniformly too. :class:`GenomeAgent` does this bookkeeping for a batch of environments;
subclasses decide which genome each episode starts from (:meth:`GenomeAgent.plan`) and what to
learn from the returns (:meth:`GenomeAgent.learn`).
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np
from gymnasium import spaces

from agents.base import split_masks

__all__ = ["Genome", "GenomeAgent", "Plan"]

Genome = list[list[int]]
"""One full action vector per step of the episode."""

Plan = tuple[Genome, int] | None
"""Replay this genome, redrawing step ``m``; None: draw every step uniformly (a random genome)."""


class GenomeAgent:
    """Base of agents that search over genomes; implements the :class:`agents.base.Agent` protocol.

    Args:
        observation_space: The single-environment observation space (``steps_left`` tells the
            step).
        action_space: The single-environment ``MultiDiscrete`` action space.
        seed: Seeds every draw.
    """

    def __init__(
        self, observation_space: spaces.Dict, action_space: spaces.MultiDiscrete, *, seed: int
    ) -> None:
        self.action_space = action_space
        steps_left = cast(spaces.Discrete, observation_space["steps_left"])  # the env's layout
        self.num_steps = int(steps_left.n) - 1
        self.rng = np.random.default_rng(seed)
        self._plans: list[Plan] = []
        self._taken: list[Genome] = []
        self._returns: np.ndarray | None = None
        self._finished: list[tuple[Genome, float]] = []  # this update's episodes

    # ---- subclass hooks ------------------------------------------------------------------

    def plan(self, num_envs: int) -> list[Plan]:
        """What each of the batch's new episodes replays and mutates."""
        raise NotImplementedError

    def learn(self, episodes: list[tuple[Genome, float]]) -> dict[str, float]:
        """Take in the finished episodes (genome, return) of an update."""
        raise NotImplementedError

    # ---- the protocol --------------------------------------------------------------------

    def act(self, obs: dict[str, np.ndarray], masks: np.ndarray) -> np.ndarray:
        """The batch's actions: replayed or mutated genome steps, legal under `masks`."""
        t = self.num_steps - int(np.asarray(obs["steps_left"])[0])
        parts = split_masks(masks, self.action_space)
        batch = parts[0].shape[0]
        if t == 0:
            self._plans = self.plan(batch)
            self._taken = [[] for _ in range(batch)]
            self._returns = np.zeros(batch)
        actions = np.zeros((batch, len(parts)), dtype=np.int64)
        for b in range(batch):
            legal = [p[b] for p in parts]
            plan = self._plans[b]
            if plan is None or plan[1] == t or t >= len(plan[0]):
                previous = None if plan is None or t >= len(plan[0]) else plan[0][t]
                actions[b] = self._draw(legal, avoid=previous if plan is not None else None)
            else:
                actions[b] = [
                    a if legal[d][a] else self._uniform(legal[d]) for d, a in enumerate(plan[0][t])
                ]
            self._taken[b].append(actions[b].tolist())
        return actions

    def observe(self, rewards: np.ndarray, terminated: np.ndarray) -> None:
        """Sum the rewards of each episode; keep the finished ones for :meth:`update`."""
        if self._returns is None:
            return
        self._returns += np.asarray(rewards, dtype=float)
        if np.all(terminated):
            self._finished += [
                (genome, float(r)) for genome, r in zip(self._taken, self._returns, strict=True)
            ]
            self._returns = None

    def update(self) -> dict[str, float]:
        """Learn from the update's finished episodes."""
        episodes, self._finished = self._finished, []
        return self.learn(episodes) if episodes else {}

    def state_dict(self) -> dict[str, Any]:
        """The generator state (subclasses add what they learned)."""
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        self.rng.bit_generator.state = state["rng"]

    # ---- helpers -------------------------------------------------------------------------

    def mutate_step(self) -> int:
        """A step index to redraw, uniform over the episode."""
        return int(self.rng.integers(self.num_steps))

    def _uniform(self, legal: np.ndarray) -> int:
        return int(self.rng.choice(np.flatnonzero(legal)))

    def _draw(self, legal: list[np.ndarray], avoid: list[int] | None, tries: int = 8) -> list[int]:
        """A uniform legal action, different from `avoid` where the masks allow another."""
        action = [self._uniform(m) for m in legal]
        for _ in range(tries):
            if avoid is None or action != list(avoid):
                break
            action = [self._uniform(m) for m in legal]
        return action
