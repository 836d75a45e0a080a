"""Regularized (aging) evolution (Real et al., AAAI 2019) over episode genomes.

A population of the last `population_size` evaluated genomes (see :mod:`agents.genome`). Each
new episode's parent is the fittest of `tournament_size` members drawn uniformly without
replacement; the child is the parent with one step's action redrawn. After each update the
batch's children join the population and the oldest members leave, whatever their fitness
(the "aging" that regularizes against lucky evaluations). Until the population is full, new
episodes are random genomes. Fitness is the episode's return.

Defaults P = 20, S = 5: scaled down from Real et al.'s P = 100, S = 25 (for 20,000 models) to
budgets of hundreds of networks, keeping S / P = 1/4 (the selection pressure). This variant is
batch-synchronous: the population changes only after each update's batch, as the controller.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np
from gymnasium import spaces

from agents.genome import Genome, GenomeAgent, Plan

__all__ = ["RegularizedEvolution"]


class RegularizedEvolution(GenomeAgent):
    """Aging evolution with tournament selection, as an :class:`agents.base.Agent`.

    Args:
        observation_space: The single-environment observation space.
        action_space: The single-environment ``MultiDiscrete`` action space.
        seed: Seeds every draw.
        population_size: P, the genomes kept (the most recent).
        tournament_size: S, the members drawn per parent selection.
    """

    def __init__(
        self,
        observation_space: spaces.Dict,
        action_space: spaces.MultiDiscrete,
        *,
        seed: int,
        population_size: int = 20,
        tournament_size: int = 5,
    ) -> None:
        if population_size < 1:
            raise ValueError(f"Expected `population_size` >= 1, actually: {population_size}")
        if not 1 <= tournament_size <= population_size:
            raise ValueError(
                f"Expected 1 <= `tournament_size` <= `population_size` ({population_size}), "
                f"actually: {tournament_size}"
            )
        super().__init__(observation_space, action_space, seed=seed)
        self.population_size, self.tournament_size = population_size, tournament_size
        self.population: deque[tuple[Genome, float]] = deque()

    def plan(self, num_envs: int) -> list[Plan]:
        """Random genomes until the population is full, then tournament winners, mutated."""
        if len(self.population) < self.population_size:
            return [None] * num_envs
        plans: list[Plan] = []
        for _ in range(num_envs):
            drawn = self.rng.choice(len(self.population), self.tournament_size, replace=False)
            parent = max((self.population[int(i)] for i in drawn), key=lambda m: m[1])
            plans.append((parent[0], self.mutate_step()))
        return plans

    def learn(self, episodes: list[tuple[Genome, float]]) -> dict[str, float]:
        """The children join; the oldest leave."""
        self.population.extend(episodes)
        while len(self.population) > self.population_size:
            self.population.popleft()
        fitness = [f for _, f in self.population]
        return {
            "charts/population_best": float(np.max(fitness)),
            "charts/population_mean": float(np.mean(fitness)),
        }

    def state_dict(self) -> dict[str, Any]:
        """Generator state and population."""
        return {**super().state_dict(), "population": [[g, f] for g, f in self.population]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        super().load_state_dict(state)
        self.population = deque((g, float(f)) for g, f in state["population"])
