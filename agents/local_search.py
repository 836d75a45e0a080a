"""First-improvement local search over episode genomes (the NAS peers' local search baseline).

The incumbent is a genome (see :mod:`agents.genome`); each new episode is a neighbour of it
(one step's action redrawn). After each update the first neighbour, in the batch's order, whose
return beats the incumbent's becomes the new incumbent (first improvement). After `patience`
neighbours in a row fail to improve, the search restarts from random genomes: the first update,
and the first after a restart, sample random genomes and take the best of them as incumbent.
"""

from __future__ import annotations

from typing import Any

from gymnasium import spaces

from agents.genome import Genome, GenomeAgent, Plan

__all__ = ["LocalSearch"]


class LocalSearch(GenomeAgent):
    """First-improvement local search with random restarts, as an :class:`agents.base.Agent`.

    Args:
        observation_space: The single-environment observation space.
        action_space: The single-environment ``MultiDiscrete`` action space.
        seed: Seeds every draw.
        patience: Non-improving neighbours in a row before a restart.
    """

    def __init__(
        self,
        observation_space: spaces.Dict,
        action_space: spaces.MultiDiscrete,
        *,
        seed: int,
        patience: int = 30,
    ) -> None:
        if patience < 1:
            raise ValueError(f"Expected `patience` >= 1, actually: {patience}")
        super().__init__(observation_space, action_space, seed=seed)
        self.patience = patience
        self.incumbent: tuple[Genome, float] | None = None
        self.failures = 0
        self.restarts = 0

    def plan(self, num_envs: int) -> list[Plan]:
        """Neighbours of the incumbent, or random genomes when there is none."""
        if self.incumbent is None:
            return [None] * num_envs
        return [(self.incumbent[0], self.mutate_step()) for _ in range(num_envs)]

    def learn(self, episodes: list[tuple[Genome, float]]) -> dict[str, float]:
        """Move to the first improving neighbour; restart after `patience` failures."""
        if self.incumbent is None:
            self.incumbent = max(episodes, key=lambda e: e[1])
            self.failures = 0
        else:
            for genome, fitness in episodes:
                if fitness > self.incumbent[1]:
                    self.incumbent, self.failures = (genome, fitness), 0
                    break
                self.failures += 1
            if self.failures >= self.patience:
                self.incumbent, self.failures = None, 0
                self.restarts += 1
        best = float("nan") if self.incumbent is None else self.incumbent[1]
        return {"charts/incumbent": best, "charts/restarts": float(self.restarts)}

    def state_dict(self) -> dict[str, Any]:
        """Generator state, incumbent and counters."""
        incumbent = None if self.incumbent is None else list(self.incumbent)
        return {
            **super().state_dict(),
            "incumbent": incumbent,
            "failures": self.failures,
            "restarts": self.restarts,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        super().load_state_dict(state)
        incumbent = state["incumbent"]
        self.incumbent = None if incumbent is None else (incumbent[0], float(incumbent[1]))
        self.failures, self.restarts = state["failures"], state["restarts"]
