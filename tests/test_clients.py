"""Clients we did not write: gymnasium's vector API and wrappers, SB3's helpers and policies.

Each drives the env the way its own documentation shows, with no eas_gym helper in between.
"""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from gymnasium.wrappers import FlattenObservation, RecordEpisodeStatistics, RenderCollection

import eas_gym  # noqa: F401  (registers the EAS-* ids)

SURROGATE = {"store": ":memory:", "probe_size": 4}


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_gymnasium_make_vec(mode):
    envs = gym.make_vec("EAS-Surrogate-v0", num_envs=2, vectorization_mode=mode, **SURROGATE)
    obs, info = envs.reset(seed=0)
    assert obs["kind"].shape == (2, envs.single_observation_space["kind"].shape[0])
    for _ in range(9):  # the default schedule: 4 wider, 5 deeper steps
        masks = info["action_mask"]  # one tuple of per-dimension masks per env
        actions = np.stack([envs.single_action_space.sample(tuple(masks[i])) for i in range(2)])
        obs, reward, terminated, truncated, info = envs.step(actions)
    assert terminated.all() and not truncated.any() and (reward > 0).all()
    envs.close()


def test_standard_wrappers_and_rgb_frames():
    env = gym.make("EAS-Surrogate-v0", render_mode="rgb_array", **SURROGATE)
    env = RenderCollection(RecordEpisodeStatistics(FlattenObservation(env)))
    obs, info = env.reset(seed=1)
    assert obs.shape == env.observation_space.shape and env.observation_space.contains(obs)
    terminated = False
    while not terminated:
        obs, _, terminated, _, info = env.step(env.action_space.sample(info["action_mask"]))
    assert info["episode"]["l"] == 9
    frames = env.render()
    assert len(frames) == 10 and all(f.dtype == np.uint8 and f.ndim == 3 for f in frames)
    assert not np.array_equal(frames[0], frames[-1])  # the network grew, and so did the picture


@pytest.mark.parametrize(
    ("env_id", "kwargs"),
    [("EAS-Surrogate-v0", {}), ("EAS-DenseNet-CIFAR10-CPU-v0", {"evaluator": "surrogate"})],
    ids=["plain", "densenet"],
)
def test_gymnasium_check_env_with_rgb_render(env_id, kwargs):
    env = gym.make(env_id, render_mode="rgb_array", **SURROGATE, **kwargs)
    check_env(env.unwrapped, skip_render_check=False)
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape[2] == 3 and (frame != 255).any()  # something is drawn


def test_sb3_make_vec_env_and_its_policies():
    sb3 = pytest.importorskip("stable_baselines3")
    from stable_baselines3.common.env_util import make_vec_env

    # make_vec_env asks for render_mode="rgb_array" unless told otherwise
    venv = make_vec_env("EAS-Surrogate-v0", n_envs=2, seed=0, env_kwargs=SURROGATE)
    model = sb3.PPO("MultiInputPolicy", venv, n_steps=9, batch_size=18, n_epochs=1, seed=0)
    model.learn(18)
    flat = make_vec_env(
        "EAS-Surrogate-v0", n_envs=1, seed=0, env_kwargs=SURROGATE, wrapper_class=FlattenObservation
    )
    sb3.A2C("MlpPolicy", flat, n_steps=9, seed=0).learn(9)
    venv.close()
    flat.close()
