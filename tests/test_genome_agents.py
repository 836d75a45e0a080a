"""Regularized evolution and local search: legal actions, replay, aging, first improvement."""

import numpy as np
import pytest
from conftest import legal_actions

from agents.evolution import RegularizedEvolution
from agents.genome import GenomeAgent
from agents.local_search import LocalSearch
from agents.run_folder import load_checkpoint, save_checkpoint
from eas_gym.vector import make_vector_env


@pytest.fixture
def envs():
    envs = make_vector_env("EAS-Surrogate-v0", 2, asynchronous=False, store=":memory:")
    yield envs
    envs.close()


def _episode(envs, agent, seed):
    """Run one batch; check every action is legal; returns the final nets."""
    obs, infos = envs.reset(seed=seed)
    terminated = np.zeros(envs.num_envs, bool)
    while not terminated.all():
        actions = legal_actions(agent, obs, infos, envs)
        obs, rewards, terminated, _, infos = envs.step(actions)
        agent.observe(rewards, terminated)
    return list(infos["net"])


@pytest.mark.parametrize(
    "make",
    [
        lambda o, a: RegularizedEvolution(o, a, seed=0, population_size=4, tournament_size=2),
        lambda o, a: LocalSearch(o, a, seed=0, patience=3),
    ],
)
def test_genome_agents_act_legally_and_resume_exactly(envs, make, tmp_path):
    spaces = envs.single_observation_space, envs.single_action_space
    agent = make(*spaces)
    for update in range(4):
        _episode(envs, agent, seed=update)
        agent.update()
    save_checkpoint({"agent": agent.state_dict()}, tmp_path / "c.pt")
    restored = make(*spaces)
    restored.load_state_dict(load_checkpoint(tmp_path / "c.pt")["agent"])
    assert _episode(envs, agent, seed=9) == _episode(envs, restored, seed=9)


def test_a_genome_replays_to_the_same_network(envs):
    class Replay(GenomeAgent):
        genome = None

        def plan(self, num_envs):
            return [None if self.genome is None else (self.genome, -1)] * num_envs

        def learn(self, episodes):
            self.genome = episodes[0][0]
            return {}

    agent = Replay(envs.single_observation_space, envs.single_action_space, seed=3)
    first = _episode(envs, agent, seed=0)
    agent.update()
    again = _episode(envs, agent, seed=5)  # other env seeds: same actions, same architecture
    assert again == [first[0], first[0]]


def test_mutation_changes_exactly_one_step(envs):
    class MutateStep2(GenomeAgent):
        genome = None

        def plan(self, num_envs):
            return [None if self.genome is None else (self.genome, 2)] * num_envs

        def learn(self, episodes):
            self.genome = self.genome or episodes[0][0]
            return {}

    agent = MutateStep2(envs.single_observation_space, envs.single_action_space, seed=1)
    _episode(envs, agent, seed=0)
    agent.update()
    parent = agent.genome
    _episode(envs, agent, seed=0)
    for child, _ in agent._finished:
        assert child[:2] == parent[:2] and child[2] != parent[2]


def test_evolution_ages_out_the_oldest_and_selects_by_tournament():
    obs_space = {"steps_left": type("D", (), {"n": 3})()}
    from gymnasium import spaces

    agent = RegularizedEvolution(
        obs_space, spaces.MultiDiscrete([2, 2]), seed=0, population_size=3, tournament_size=3
    )
    assert agent.plan(2) == [None, None]  # not full yet: random genomes
    agent.learn([([[0, 0]], 9.0), ([[0, 1]], 1.0)])
    agent.learn([([[1, 0]], 2.0), ([[1, 1]], 3.0)])
    # the fittest (9.0) was the oldest: aged out although it was the best
    assert [f for _, f in agent.population] == [1.0, 2.0, 3.0]
    assert all(plan[0] == [[1, 1]] for plan in agent.plan(4))  # S = P: always the fittest


def test_local_search_takes_the_first_improvement_and_restarts():
    from gymnasium import spaces

    obs_space = {"steps_left": type("D", (), {"n": 3})()}
    agent = LocalSearch(obs_space, spaces.MultiDiscrete([2, 2]), seed=0, patience=2)
    agent.learn([([[0, 0]], 1.0), ([[0, 1]], 2.0)])
    assert agent.incumbent == ([[0, 1]], 2.0)  # the best of the random start
    agent.learn([([[1, 0]], 1.5), ([[1, 1]], 3.0), ([[0, 0]], 4.0)])
    assert agent.incumbent == ([[1, 1]], 3.0)  # first improvement, not the best
    assert agent.failures == 0
    agent.learn([([[1, 0]], 0.5), ([[1, 1]], 0.5)])  # patience 2: restart
    assert agent.incumbent is None and agent.restarts == 1
    assert agent.plan(2) == [None, None]


@pytest.mark.parametrize(
    ("cls", "kwargs", "match"),
    [
        (RegularizedEvolution, {"population_size": 0}, "population_size"),
        (RegularizedEvolution, {"population_size": 3, "tournament_size": 4}, "tournament_size"),
        (LocalSearch, {"patience": 0}, "patience"),
    ],
)
def test_bad_options_are_refused(envs, cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls(envs.single_observation_space, envs.single_action_space, seed=0, **kwargs)
