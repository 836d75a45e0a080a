"""PooledVectorEnv: `num_envs` environments in fewer processes, each stepping its share in turn.

Gymnasium's ``AsyncVectorEnv`` starts one process per environment. On a CPU the paper's batch of
10 networks then runs as 10 single-threaded processes on a few cores: no faster than one process
per core (the cores are the limit), but each process holds its own torch, data and networks (the
main job on 2 cores: 11 processes, 7.7 GB PSS). Here `workers` processes each own a contiguous
group of the environments and step them one after the other, with Gymnasium's next-step
autoreset, so the vector env behaves as ``SyncVectorEnv`` over the same environments would.
"""

from __future__ import annotations

import multiprocessing as mp
import traceback
from collections.abc import Callable, Sequence
from copy import deepcopy
from typing import Any, cast

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import (
    CloudpickleWrapper,
    batch_space,
    concatenate,
    create_empty_array,
    iterate,
)

__all__ = ["PooledVectorEnv", "env_groups"]


def env_groups(num_envs: int, workers: int) -> list[list[int]]:
    """Contiguous groups of environment indices, one per worker, sizes differing by at most 1.

    >>> env_groups(10, 3)
    [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]
    """
    if num_envs < 1:
        raise ValueError(f"Expected `num_envs` >= 1, actually: {num_envs}")
    if not 1 <= workers <= num_envs:
        raise ValueError(f"Expected 1 <= `workers` <= num_envs ({num_envs}), actually: {workers}")
    return [group.tolist() for group in np.array_split(np.arange(num_envs), workers)]


class PooledVectorEnv(gym.vector.VectorEnv):
    """`len(env_fns)` environments run by `workers` processes (see the module docstring).

    Args:
        env_fns: One function per environment that makes it (called in its worker process).
        workers: Processes; environment ``i`` lives in the worker of :func:`env_groups`.
        context: The multiprocessing start method ("spawn": forking a process whose torch thread
            pool is running can deadlock the child); None, the platform's default.

    An exception in a worker is raised again here, with the worker's traceback as a note.
    """

    def __init__(
        self,
        env_fns: Sequence[Callable[[], gym.Env]],
        workers: int,
        *,
        context: str | None = "spawn",
    ) -> None:
        self.num_envs = len(env_fns)
        self.groups = env_groups(self.num_envs, workers)
        probe = env_fns[0]()  # the spaces, read here as AsyncVectorEnv does
        self.metadata = {**probe.metadata, "autoreset_mode": AutoresetMode.NEXT_STEP}
        self.render_mode = probe.render_mode
        self.spec = probe.spec
        self.single_observation_space = probe.observation_space
        self.single_action_space = probe.action_space
        probe.close()
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._observations: Any = create_empty_array(self.single_observation_space, self.num_envs)

        ctx: Any = mp.get_context(context)
        self._pipes: list[Any] = []
        self._processes: list[Any] = []
        for index, group in enumerate(self.groups):
            parent, child = ctx.Pipe()
            fns = CloudpickleWrapper(cast(Any, [env_fns[i] for i in group]))
            process = ctx.Process(
                target=_worker,
                name=f"PooledVectorEnv-{index}",
                args=(fns, child, parent),
                daemon=True,
            )
            process.start()
            child.close()
            self._pipes.append(parent)
            self._processes.append(process)
        self.closed = False

    def reset(
        self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Reset every environment (or those of ``options["reset_mask"]``), as SyncVectorEnv."""
        if seed is None:
            seed = [None] * self.num_envs
        elif isinstance(seed, int):
            seed = [seed + i for i in range(self.num_envs)]
        if len(seed) != self.num_envs:
            raise ValueError(f"Expected {self.num_envs} seeds, actually: {len(seed)}")
        options = dict(options or {})
        mask = np.asarray(options.pop("reset_mask", np.ones(self.num_envs, dtype=bool)))
        if mask.shape != (self.num_envs,) or mask.dtype != np.bool_:
            raise ValueError(f"Expected `reset_mask` of {self.num_envs} bools, actually: {mask}")
        results = self._ask(
            "reset", [[(seed[i], options, bool(mask[i])) for i in group] for group in self.groups]
        )
        infos: dict[str, Any] = {}
        observations: list[Any] = list(iterate(self.observation_space, self._observations))
        for i, (obs, info) in enumerate(results):
            if mask[i]:
                observations[i] = obs
                infos = self._add_info(infos, info, i)
        return self._concatenate(observations), infos

    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict]:
        """Step every environment (an ended one is reset instead: next-step autoreset)."""
        each = list(iterate(self.action_space, actions))
        results = self._ask("step", [[each[i] for i in group] for group in self.groups])
        infos: dict[str, Any] = {}
        for i, (_, _, _, _, info) in enumerate(results):
            infos = self._add_info(infos, info, i)
        rewards = np.array([r[1] for r in results], dtype=np.float64)
        terminations = np.array([r[2] for r in results], dtype=np.bool_)
        truncations = np.array([r[3] for r in results], dtype=np.bool_)
        observations = self._concatenate([r[0] for r in results])
        return observations, rewards, terminations, truncations, infos

    def get_attr(self, name: str) -> tuple[Any, ...]:
        """Attribute `name` of every environment (through its wrappers)."""
        return tuple(self._ask("get_attr", [[name] * len(group) for group in self.groups]))

    def set_attr(self, name: str, values: Any) -> None:
        """Set attribute `name` of every environment: one value for all, or a list of values."""
        if not isinstance(values, list | tuple):
            values = [values] * self.num_envs
        if len(values) != self.num_envs:
            raise ValueError(f"Expected {self.num_envs} values, actually: {len(values)}")
        self._ask("set_attr", [[(name, values[i]) for i in group] for group in self.groups])

    def call(self, name: str, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
        """Call method `name` of every environment (or read the attribute if not callable)."""
        per_env = (name, args, kwargs)
        return tuple(self._ask("call", [[per_env] * len(group) for group in self.groups]))

    def close_extras(self, **kwargs: Any) -> None:
        """Close the environments and end the worker processes."""
        for pipe, process in zip(self._pipes, self._processes, strict=True):
            if process.is_alive():
                try:
                    pipe.send(("close", None))
                    pipe.recv()
                except (BrokenPipeError, EOFError):
                    pass
            process.join(timeout=30)
            if process.is_alive():
                process.terminate()
            pipe.close()

    def _ask(self, command: str, per_group: list[list[Any]]) -> list[Any]:
        """Send each worker its group's arguments, then gather the results in env order."""
        for pipe, data in zip(self._pipes, per_group, strict=True):
            pipe.send((command, data))
        results: list[Any] = []
        failure: BaseException | None = None
        for index, pipe in enumerate(self._pipes):  # every answer is read, even after a failure
            try:
                ok, payload = pipe.recv()
            except EOFError:
                ok, payload = False, (EOFError(f"worker {index} died"), "")
            if ok:
                results += payload
            elif failure is None:
                failure, remote_traceback = payload
                failure.add_note(f"in worker {index} of PooledVectorEnv:\n{remote_traceback}")
        if failure is not None:
            raise failure
        return results

    def _concatenate(self, observations: list[Any]) -> Any:
        self._observations = concatenate(
            self.single_observation_space, observations, self._observations
        )
        return deepcopy(self._observations)


def _worker(fns: CloudpickleWrapper, pipe: Any, parent_pipe: Any) -> None:
    """One worker: make its environments, then answer commands until "close"."""
    parent_pipe.close()
    envs: list[gym.Env] = []
    try:
        makers: list[Callable[[], gym.Env]] = cast(Any, fns.fn)
        envs = [make() for make in makers]
    except Exception as e:  # answered at the first command, raised there
        failure: tuple[BaseException, str] | None = (e, traceback.format_exc())
    else:
        failure = None
    ended = [False] * len(envs)
    while True:
        command, data = pipe.recv()
        if command == "close":
            for env in envs:
                env.close()
            pipe.send((True, None))
            return
        if failure is not None:
            pipe.send((False, failure))
            continue
        try:
            pipe.send((True, _answer(command, data, envs, ended)))
        except Exception as e:
            pipe.send((False, (_picklable(e), traceback.format_exc())))


def _answer(command: str, data: list[Any], envs: list[gym.Env], ended: list[bool]) -> list[Any]:
    out: list[Any] = []
    if command == "reset":
        for i, (env, (seed, options, reset)) in enumerate(zip(envs, data, strict=True)):
            out.append(env.reset(seed=seed, options=options or None) if reset else (None, {}))
            ended[i] = ended[i] and not reset
        return out
    if command == "step":
        for i, (env, action) in enumerate(zip(envs, data, strict=True)):
            result: tuple[Any, ...]
            if ended[i]:  # next-step autoreset, as SyncVectorEnv
                obs, info = env.reset()
                result = (obs, 0.0, False, False, info)
            else:
                result = env.step(action)
            ended[i] = bool(result[2] or result[3])
            out.append(result)
        return out
    if command == "get_attr":
        return [env.get_wrapper_attr(name) for env, name in zip(envs, data, strict=True)]
    if command == "set_attr":
        for env, (name, value) in zip(envs, data, strict=True):
            env.set_wrapper_attr(name, value)
        return [None] * len(envs)
    if command == "call":
        for env, (name, args, kwargs) in zip(envs, data, strict=True):
            attribute = env.get_wrapper_attr(name)
            out.append(attribute(*args, **kwargs) if callable(attribute) else attribute)
        return out
    raise ValueError(f"unknown command {command!r} of PooledVectorEnv's worker")


def _picklable(error: Exception) -> BaseException:
    """`error` if it can cross the pipe, else a RuntimeError with its text."""
    import pickle

    try:
        pickle.loads(pickle.dumps(error))
        return error
    except Exception:
        return RuntimeError(f"{type(error).__name__}: {error}")
