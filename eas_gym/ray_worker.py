"""One environment copy in a Ray actor: the worker side of :mod:`eas_gym.ray_vector`.

The driver sends each copy its whole history since the episode's seeded reset; a live actor
applies the new entry, a restarted one (its process died) replays them all before it answers.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import torch

__all__ = ["Entry", "EnvWorker", "cap_gpu_memory"]

Entry = tuple[Any, ...]
"""One replayable call: ``("reset", seed, options)`` or ``("step", action)``."""


class EnvWorker:
    """One environment copy inside a Ray actor (rebuilt from the same arguments on restart)."""

    def __init__(
        self, env_id: str, kwargs: dict[str, Any], wrappers: Sequence[Callable[[gym.Env], gym.Env]]
    ) -> None:
        import ray

        import eas_gym  # noqa: F401  (a worker process must register the ids)

        # Ray sets OMP_NUM_THREADS to the actor's CPUs; torch's pool must follow it too.
        assigned = ray.get_runtime_context().get_assigned_resources()
        torch.set_num_threads(max(1, int(assigned.get("CPU", 1.0))))
        cap_gpu_memory(assigned.get("GPU", 0.0))
        self.env = gym.make(env_id, **kwargs)
        for wrapper in wrappers:
            self.env = wrapper(self.env)
        self._episode: int | None = None
        self._applied = 0
        with warnings.catch_warnings():  # Ray's own use of a deprecated actor_id property
            warnings.simplefilter("ignore", DeprecationWarning)
            self._restarted = bool(ray.get_runtime_context().was_current_actor_reconstructed)

    def apply(self, episode: int, entries: list[Entry]) -> tuple[tuple, dict[str, Any] | None]:
        """Bring the env to the end of `entries`; returns the last call's result.

        `entries` is the whole history since the episode's seeded reset. A live actor has applied
        all but the last; a restarted one has applied none and replays them (a recovery).
        """
        if episode != self._episode:  # a new seeded reset, or a restarted actor
            self._episode, self._applied = episode, 0
        replayed = hits = 0
        for entry in entries[self._applied :]:
            result = self._run(entry)
            self._applied += 1
            if entry[0] == "step" and self._applied < len(entries):  # a replayed step
                hit = self.env.get_wrapper_attr("step_provenance")["cache_hit"]
                replayed, hits = replayed + 1, hits + bool(hit)
        recovery = None
        if self._restarted:
            self._restarted = False
            recovery = {"pid": os.getpid(), "replayed": replayed, "hits": hits}
        return result, recovery

    def get_attr(self, name: str) -> Any:
        """An attribute of the env (through its wrappers)."""
        return self.env.get_wrapper_attr(name)

    def close(self) -> None:
        """Close the env (its store connection)."""
        self.env.close()

    def _run(self, entry: Entry) -> tuple:
        if entry[0] == "reset":
            return self.env.reset(seed=entry[1], options=entry[2])
        return self.env.step(entry[1])


def cap_gpu_memory(share: float) -> None:
    """Keep this actor's caching allocator to ``0.95 * share`` of its GPU when it shares one.

    Ray gives an actor a fraction of a GPU (``num_gpus``) but does not limit its memory; as
    with the local workers (:func:`eas_gym.vector.apply_worker_settings`), one wide child must
    not starve the actors beside it into OOM. Ray makes the actor's GPU its device 0.
    """
    if 0.0 < share < 1.0 and torch.cuda.is_available():
        torch.cuda.set_per_process_memory_fraction(0.95 * share, 0)
