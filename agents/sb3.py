"""Stable-baselines3 baselines on EASEnv: PPO, A2C and sb3-contrib's MaskablePPO.

The algorithms are used through their standard APIs (``make_vec_env``, ``learn``, ``save`` /
``load``); only the hyperparameters are sized for EAS:

* an episode is ``len(schedule)`` steps (9 for the paper's ``"WWWWDDDDD"``) with the same length
  every time, so a rollout of ``n_steps = len(schedule)`` per env holds exactly one whole episode
  per env, and ``num_envs`` envs give a batch of ``num_envs`` networks (the paper: 10);
* ``gamma = 1`` and ``gae_lambda = 1``: undiscounted Monte-Carlo returns, as the paper's
  REINFORCE with a baseline;
* PPO's minibatch is the whole rollout (``batch_size = n_steps * num_envs``), which divides it.

MaskablePPO reads ``EASEnv.action_masks()`` with no ``ActionMasker``: ``DummyVecEnv`` and
``SubprocVecEnv`` call it through ``env.get_wrapper_attr``, which in gymnasium 1.x reaches the
base env through ``Monitor`` and ``gym.make``'s wrappers.

>>> model = train_sb3(
...     "maskable-ppo", "EAS-Surrogate-v0", num_networks=2, num_envs=2,
...     env_kwargs={"store": ":memory:"},
... )  # doctest: +SKIP
>>> model.save("eas_ppo.zip")  # doctest: +SKIP
>>> model = algo_class("maskable-ppo").load("eas_ppo.zip")  # doctest: +SKIP
"""

from __future__ import annotations

import copy
from typing import Any

from sb3_contrib import MaskablePPO
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv

import eas_gym  # noqa: F401  (registers the EAS-* ids)

__all__ = ["SB3_ALGOS", "algo_class", "make_sb3_vec_env", "make_sb3_model", "train_sb3"]

SB3_ALGOS = ("ppo", "a2c", "maskable-ppo")
"""Algorithm names accepted by :func:`make_sb3_model` and :func:`train_sb3`."""

_CLASSES: dict[str, type[BaseAlgorithm]] = {"ppo": PPO, "a2c": A2C, "maskable-ppo": MaskablePPO}


def algo_class(algo: str) -> type[BaseAlgorithm]:
    """The SB3 class of `algo` (use its ``load`` to restore a saved model).

    Raises:
        ValueError: `algo` is not one of :data:`SB3_ALGOS`.
    """
    if algo not in SB3_ALGOS:
        raise ValueError(f"Expected `algo` in {SB3_ALGOS}, actually: {algo!r}")
    return _CLASSES[algo]


def make_sb3_vec_env(
    env_id: str,
    num_envs: int,
    *,
    seed: int,
    env_kwargs: dict[str, Any] | None = None,
    vec_env_cls: type[DummyVecEnv] | type[SubprocVecEnv] | None = None,
) -> VecEnv:
    """``num_envs`` monitored copies of `env_id` in a ``VecEnv``, env ``i`` seeded ``seed + i``.

    Args:
        env_id: A registered id, e.g. ``"EAS-Surrogate-v0"``.
        num_envs: Parallel envs, i.e. networks per rollout.
        seed: Base seed.
        env_kwargs: Keyword arguments for ``gym.make``. ``render_mode`` defaults to None:
            ``make_vec_env`` would otherwise ask for ``"rgb_array"``, which EASEnv rejects.
        vec_env_cls: ``DummyVecEnv`` (None, the default) or ``SubprocVecEnv``.

    Returns:
        The vectorized env; ``env_method("action_masks")`` reaches each EASEnv.
    """
    if num_envs < 1:
        raise ValueError(f"Expected `num_envs` >= 1, actually: {num_envs}")
    kwargs = {"render_mode": None, **(env_kwargs or {})}
    return make_vec_env(
        env_id, n_envs=num_envs, seed=seed, env_kwargs=kwargs, vec_env_cls=vec_env_cls
    )


def make_sb3_model(
    algo: str, venv: VecEnv, *, seed: int, n_steps: int | None = None, **kwargs: Any
) -> BaseAlgorithm:
    """An SB3 model with ``MultiInputPolicy`` and EAS-sized defaults (see the module docstring).

    Args:
        algo: One of :data:`SB3_ALGOS`.
        venv: The vectorized env, e.g. from :func:`make_sb3_vec_env`.
        seed: Seed for the model (torch, numpy, the action space and the envs).
        n_steps: Steps per env per rollout; default: the episode length ``len(schedule)``.
        **kwargs: Override any default or pass other arguments of the algorithm's constructor.

    Returns:
        The (untrained) model.

    Raises:
        ValueError: `algo` is unknown or `n_steps` is below 1.
    """
    cls = algo_class(algo)
    kwargs = copy.deepcopy(kwargs)  # SB3 writes into some (A2C: policy_kwargs' optimizer)
    if n_steps is None:
        n_steps = len(venv.get_attr("schedule", indices=0)[0])
    if n_steps < 1:
        raise ValueError(f"Expected `n_steps` >= 1, actually: {n_steps}")
    # A small MLP: SB3 recommends the CPU (https://github.com/DLR-RM/stable-baselines3/issues/1245).
    defaults: dict[str, Any] = {
        "n_steps": n_steps,
        "gamma": 1.0,
        "gae_lambda": 1.0,
        "device": "cpu",
    }
    if algo != "a2c":
        defaults["batch_size"] = n_steps * venv.num_envs
    return cls("MultiInputPolicy", venv, seed=seed, **{**defaults, **kwargs})


def train_sb3(
    algo: str,
    env_id: str,
    *,
    num_networks: int,
    num_envs: int = 10,
    seed: int = 0,
    env_kwargs: dict[str, Any] | None = None,
    callback: BaseCallback | None = None,
    **model_kwargs: Any,
) -> BaseAlgorithm:
    """Train `algo` on `env_id` for `num_networks` episodes.

    ``total_timesteps = num_networks * len(schedule)``. Each episode ends with one network:
    with ``reward_mode="sparse"`` (the paper) it is the only one trained; with ``"dense"`` each
    changed intermediate child is fine-tuned as well. SB3 collects whole rollouts, so the count
    is rounded up to a multiple of `num_envs`.

    Args:
        algo: One of :data:`SB3_ALGOS`.
        env_id: A registered id, e.g. ``"EAS-CIFAR10-v0"``.
        num_networks: Episodes (final networks) to sample.
        num_envs: Parallel envs: networks per rollout (the paper samples 10 per batch).
        seed: Seed of the model and the envs.
        env_kwargs: Keyword arguments for ``gym.make``.
        callback: An SB3 callback passed to ``learn``.
        **model_kwargs: Passed to :func:`make_sb3_model`.

    Returns:
        The trained model; ``model.get_env()`` is its (still open) ``VecEnv``.

    Raises:
        ValueError: `algo` is unknown or `num_networks` is below 1.
    """
    algo_class(algo)  # fail before building envs
    if num_networks < 1:
        raise ValueError(f"Expected `num_networks` >= 1, actually: {num_networks}")
    venv = make_sb3_vec_env(env_id, num_envs, seed=seed, env_kwargs=env_kwargs)
    model = make_sb3_model(algo, venv, seed=seed, **model_kwargs)
    episode_length = len(venv.get_attr("schedule", indices=0)[0])
    return model.learn(total_timesteps=num_networks * episode_length, callback=callback)
