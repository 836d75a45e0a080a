"""Vector environments: the paper's batch of 10 networks, one process each, one shared store."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import torch

__all__ = ["make_vector_env", "worker_devices"]


def worker_devices(num_envs: int, device: str = "auto") -> list[str]:
    """One device per worker: round-robin over the GPUs when `device` is "auto" and several exist.

    >>> worker_devices(3, "cpu")
    ['cpu', 'cpu', 'cpu']
    """
    count = torch.cuda.device_count() if device == "auto" else 0
    if count > 1:
        return [f"cuda:{i % count}" for i in range(num_envs)]
    return [device] * num_envs


def make_vector_env(
    env_id: str,
    num_envs: int = 10,
    *,
    asynchronous: bool = True,
    context: str = "spawn",
    **kwargs: Any,
) -> gym.vector.VectorEnv:
    """`num_envs` copies of `env_id` (``AsyncVectorEnv`` by default), all writing to one store.

    Args:
        env_id: A registered id, e.g. ``"EAS-CIFAR10-v0"``.
        num_envs: Copies (the paper: 10 networks per controller update).
        asynchronous: One process per copy; False runs them in turn in this process.
        context: The multiprocessing start method of the worker processes.
        **kwargs: Passed to ``gym.make``; ``device="auto"`` spreads copies over the GPUs.
    """
    if num_envs < 1:
        raise ValueError(f"Expected `num_envs` >= 1, actually: {num_envs}")
    registered = gym.spec(env_id).kwargs.get("device", "auto")
    devices = worker_devices(num_envs, kwargs.pop("device", registered))

    def factory(device: str) -> Callable[[], gym.Env]:
        def make() -> gym.Env:
            import eas_gym  # noqa: F401  (a spawned worker must register the ids again)

            return gym.make(env_id, device=device, **kwargs)

        return make

    fns = [factory(d) for d in devices]
    if not asynchronous:
        return gym.vector.SyncVectorEnv(fns)
    # "spawn": forking a process whose torch thread pool is running can deadlock the child.
    return gym.vector.AsyncVectorEnv(fns, context=context)
