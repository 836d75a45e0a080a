"""Rewards in the env: dense rewards telescope, sparse ones come at the end, costs lower them."""

import math

import gymnasium as gym
import pytest
from conftest import rollout

from eas_gym.reward import reward


def test_dense_rewards_telescope(surrogate):
    for seed in range(3):
        traj = rollout(surrogate, seed)
        total = sum(t[1] for t in traj[1:])
        start = surrogate.unwrapped._start[1]
        assert math.isclose(total, reward(traj[-1][5]) - reward(start), rel_tol=1e-9, abs_tol=1e-9)


def test_sparse_reward_only_at_the_end():
    env = gym.make("EAS-Surrogate-v0", store=":memory:", reward_mode="sparse")
    env.action_space.seed(0)
    traj = rollout(env, 0)
    rewards = [t[1] for t in traj[1:]]
    assert rewards[:-1] == [0.0] * 8
    assert rewards[-1] == pytest.approx(reward(traj[-1][5])) and rewards[-1] > 0
    assert all(t[5] is None for t in traj[1:-1])  # untrained children have no accuracy


def test_cost_penalty_lowers_reward():
    plain = gym.make("EAS-Surrogate-v0", store=":memory:", reward_mode="sparse")
    costly = gym.make("EAS-Surrogate-v0", store=":memory:", reward_mode="sparse", cost_weight=0.5)
    for env in (plain, costly):
        env.action_space.seed(0)
    r_plain, r_costly = rollout(plain, 0)[-1][1], rollout(costly, 0)[-1][1]
    assert r_costly < r_plain
