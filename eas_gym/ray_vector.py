"""RayVectorEnv: each environment copy in a Ray actor, so children train across a Ray cluster.

Every copy lives in its own actor with the resources it asks for (a GPU, a share of one, or
CPUs). All copies write to one evaluation store, so a child trained by any copy is not trained
again by another. That store is SQLite in WAL mode, safe for the processes of one host: on one
machine (any number of GPUs) the copies open the file directly; on a cluster of several
machines they reach it through a store service (:mod:`eas_gym.ray_store`), one actor on the
driver's node that owns the file, so no shared filesystem is needed.

A worker that dies is restarted by Ray (``max_restarts``) and the call it was running is retried
(``max_task_retries``). The restarted actor (:mod:`eas_gym.ray_worker`) rebuilds its env from the
same arguments and replays the episode so far (the seeded reset and every action since) before
it answers, so the results equal those of an uninterrupted run; the children trained before the
crash are store hits.
"""

from __future__ import annotations

import json
import math
import os
import time
import warnings
from collections.abc import Callable, Sequence
from copy import deepcopy
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space, concatenate, create_empty_array, iterate

from eas_gym.own_data import is_own_dataset
from eas_gym.ray_store import PREFIX, import_ray, start_store_service
from eas_gym.ray_worker import Entry, EnvWorker
from eas_gym.store import default_store_path

__all__ = ["RayVectorEnv", "gpu_share", "import_ray"]

# A batch of observations, as gymnasium's `concatenate` returns it (a dict for EASEnv).
ObsBatch = tuple[Any, ...] | dict[str, Any] | np.ndarray


class RayVectorEnv(VectorEnv):
    """`num_envs` copies of `env_id`, each in a Ray actor; batched like ``SyncVectorEnv``.

    Observations, rewards and flags are batched, and ``infos`` merged (with ``_key`` masks), as
    gymnasium's vector envs do; ``infos["worker_restarts"]`` counts each copy's recoveries.
    Autoreset follows gymnasium's default, ``NEXT_STEP``: the step after an episode ends resets
    that copy (its action is ignored, reward 0). Each recovery replays the history since the
    copy's last seeded reset, so seed resets regularly (``agents.runner`` seeds every episode).

    Example:
        >>> envs = RayVectorEnv("EAS-Surrogate-v0", 2, store=":memory:")  # doctest: +SKIP
        >>> obs, infos = envs.reset(seed=0)  # doctest: +SKIP

    Args:
        env_id: A registered id, e.g. ``"EAS-CIFAR10-v0"``.
        num_envs: Copies (actors).
        address: Ray cluster to connect to when Ray is not initialised yet (``"auto"``,
            ``"HOST:6379"``, ``"ray://HOST:10001"``); None: as ``ray.init()`` (``$RAY_ADDRESS``,
            else the cluster last started here, else a new local instance). When this object
            initialises Ray, :meth:`close` shuts it down.
        num_cpus: CPUs per actor; None: 1, or an equal share when the cluster has fewer CPUs
            than copies (so every copy runs at once).
        num_gpus: GPUs per actor (fractions share a GPU, e.g. 0.5); None: 1 per copy when the
            cluster has GPUs and `device` is not "cpu"; with fewer GPUs than copies,
            :func:`gpu_share`.
        max_restarts: Restarts of each actor after its process dies (-1: no limit).
        store_service: Serve the store from one actor on this node (:mod:`eas_gym.ray_store`)
            instead of letting every copy open the file; None: when the cluster has more than
            one node.
        failure_log: A file to which each recovery appends a JSON line.
        wrappers: Applied in the actor to each copy after ``gym.make`` (as ``gym.make_vec``).
        **kwargs: Passed to ``gym.make``. ``store`` and ``data_dir`` are made absolute here
            (default store: :func:`eas_gym.store.default_store_path` of this machine).
            ``device`` must be "auto", "cpu" or "cuda": Ray picks each actor's GPU.
    """

    def __init__(
        self,
        env_id: str,
        num_envs: int,
        *,
        address: str | None = None,
        num_cpus: float | None = None,
        num_gpus: float | None = None,
        max_restarts: int = 3,
        store_service: bool | None = None,
        failure_log: str | os.PathLike[str] | None = None,
        wrappers: Sequence[Callable[[gym.Env], gym.Env]] = (),
        **kwargs: Any,
    ) -> None:
        device = kwargs.get("device", gym.spec(env_id).kwargs.get("device", "auto"))
        _check_arguments(num_envs, num_cpus, num_gpus, max_restarts, device)
        kwargs = _absolute_paths(kwargs)
        self._probe_spaces(env_id, kwargs)

        ray = import_ray()
        self._owns_ray = not ray.is_initialized()
        if self._owns_ray:
            ray.init(address=address)
        resources = ray.cluster_resources()
        num_cpus, num_gpus = _resources_per_copy(resources, num_envs, num_cpus, num_gpus, device)
        if num_gpus == 0:
            kwargs["device"] = "cpu"  # an actor without a GPU must not pick one up by itself
        kwargs["store"] = self._serve_store(kwargs["store"], store_service, ray)
        self.store = kwargs["store"]
        """Where the copies read and write evaluations (a file, or ``ray-store:<actor>``)."""
        _warn_if_short(resources, num_envs, {"CPU": num_cpus, "GPU": num_gpus})

        self.num_envs = num_envs
        self.num_cpus, self.num_gpus, self.max_restarts = num_cpus, num_gpus, max_restarts
        self.failure_log = None if failure_log is None else Path(failure_log)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self._actors = self._start_actors(ray, env_id, kwargs, tuple(wrappers))
        self.worker_restarts = np.zeros(num_envs, dtype=np.int64)
        self._episodes = [-1] * num_envs
        self._histories: list[list[Entry]] = [[] for _ in range(num_envs)]
        self._observations = _empty_batch(self.single_observation_space, num_envs)
        self._autoreset = np.zeros(num_envs, dtype=np.bool_)

    def _probe_spaces(self, env_id: str, kwargs: dict[str, Any]) -> None:
        """Build one copy here: bad kwargs fail fast with their own error; it gives the spaces."""
        probe = gym.make(env_id, **{**kwargs, "device": "cpu"})
        self.single_observation_space = probe.observation_space
        self.single_action_space = probe.action_space
        self.metadata = {**probe.metadata, "autoreset_mode": AutoresetMode.NEXT_STEP}
        self.render_mode = probe.render_mode
        probe.close()

    def _serve_store(self, store: str, store_service: bool | None, ray: Any) -> str:
        """The store the copies open: `store`, or the address of a service started for it here."""
        nodes = len([n for n in ray.nodes() if n["Alive"]])
        served = store.startswith(PREFIX)  # a service someone else runs
        if store_service is None:
            store_service = nodes > 1 and store != ":memory:" and not served
        self._store_service = None
        if store_service:
            if store == ":memory:" or served:
                raise ValueError(f"`store_service=True` needs a store file, actually: {store!r}")
            self._store_service, store = start_store_service(store)
        elif store != ":memory:" and not served and nodes > 1:
            warnings.warn(
                f"the store {store} is SQLite (WAL mode), safe for the processes of one "
                "host only; with `store_service=False` on several machines it must be on a "
                "shared filesystem and concurrent writes may fail",
                stacklevel=3,
            )
        return store

    def _start_actors(
        self,
        ray: Any,
        env_id: str,
        kwargs: dict[str, Any],
        wrappers: tuple[Callable[[gym.Env], gym.Env], ...],
    ) -> list[Any]:
        """One :class:`EnvWorker` actor per copy, restarted by Ray after a crash."""
        actor = ray.remote(EnvWorker).options(
            num_cpus=self.num_cpus,
            num_gpus=self.num_gpus,
            max_restarts=self.max_restarts,
            max_task_retries=-1,  # retry the interrupted call while restarts remain
        )
        return [actor.remote(env_id, kwargs, wrappers) for _ in range(self.num_envs)]

    def reset(
        self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[ObsBatch, dict[str, Any]]:
        """Reset every copy; `seed` as in ``SyncVectorEnv`` (an int seeds ``seed + i``).

        `options` go to every copy; ``options["reset_mask"]`` (partial resets) is not supported.
        """
        if options is not None and "reset_mask" in options:
            raise ValueError(
                "RayVectorEnv resets every copy: `options['reset_mask']` is not supported"
            )
        if seed is None or isinstance(seed, int):
            seed = [None if seed is None else seed + i for i in range(self.num_envs)]
        if len(seed) != self.num_envs:
            raise ValueError(f"Expected {self.num_envs} seeds in `seed`, actually: {len(seed)}")
        for i, s in enumerate(seed):
            if s is None and not self._histories[i]:
                s = int(np.random.SeedSequence().generate_state(1)[0])  # fixed: can be replayed
            if s is None:
                self._histories[i].append(("reset", None, options))
            else:
                self._episodes[i] += 1
                self._histories[i] = [("reset", s, options)]
        results = self._apply(range(self.num_envs))
        self._autoreset[:] = False
        infos: dict[str, Any] = {}
        for i, (_, info) in enumerate(results):
            infos = self._add_info(infos, {**info, "worker_restarts": self.worker_restarts[i]}, i)
        self._observations = concatenate(
            self.single_observation_space, [r[0] for r in results], self._observations
        )
        return deepcopy(self._observations), infos

    def step(
        self, actions: np.ndarray
    ) -> tuple[ObsBatch, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step every copy in parallel (a copy whose episode ended is reset instead)."""
        for i, action in enumerate(iterate(self.action_space, actions)):
            entry = ("reset", None, None) if self._autoreset[i] else ("step", np.asarray(action))
            self._histories[i].append(entry)
        results = self._apply(range(self.num_envs))
        rewards = np.zeros(self.num_envs, dtype=np.float64)
        terminated = np.zeros(self.num_envs, dtype=np.bool_)
        truncated = np.zeros(self.num_envs, dtype=np.bool_)
        infos: dict[str, Any] = {}
        for i, result in enumerate(results):
            if len(result) == 5:
                _, rewards[i], terminated[i], truncated[i], _ = result
            infos = self._add_info(
                infos, {**result[-1], "worker_restarts": self.worker_restarts[i]}, i
            )
        self._autoreset = terminated | truncated
        self._observations = concatenate(
            self.single_observation_space, [r[0] for r in results], self._observations
        )
        return deepcopy(self._observations), rewards, terminated, truncated, infos

    def get_attr(self, name: str) -> tuple[Any, ...]:
        """Each copy's attribute `name` (as ``SyncVectorEnv.get_attr``)."""
        ray = import_ray()
        return tuple(ray.get([a.get_attr.remote(name) for a in self._actors]))

    def close_extras(self, **kwargs: Any) -> None:
        """Close each copy's env, end the actors, and shut Ray down if this object started it."""
        ray = import_ray()
        if not ray.is_initialized():
            return
        try:
            ray.get([a.close.remote() for a in self._actors], timeout=30)
        except Exception as e:  # a copy that cannot close must not keep the others alive
            warnings.warn(f"closing the Ray actors: {e}", stacklevel=2)
        for a in self._actors:
            ray.kill(a, no_restart=True)
        if self._store_service is not None:
            try:
                ray.get(self._store_service.close.remote(), timeout=30)
            except Exception as e:  # a dead service must not keep Ray running
                warnings.warn(f"closing the store service: {e}", stacklevel=2)
            ray.kill(self._store_service, no_restart=True)
        if self._owns_ray:
            ray.shutdown()

    # ---- helpers -------------------------------------------------------------------------

    def _apply(self, indices: range) -> list[tuple]:
        """Send each copy its history (all at once, so they run in parallel); gather results."""
        ray = import_ray()
        refs = [
            self._actors[i].apply.remote(self._episodes[i], self._histories[i]) for i in indices
        ]
        results = []
        for i, ref in zip(indices, refs, strict=True):
            try:
                result, recovery = ray.get(ref)
            except ray.exceptions.RayActorError as e:
                raise RuntimeError(
                    f"the Ray actor of environment {i} died and could not be restarted "
                    f"(max_restarts={self.max_restarts}): {e}"
                ) from e
            if recovery is not None:
                self._record_recovery(i, recovery)
            results.append(result)
        return results

    def _record_recovery(self, index: int, recovery: dict[str, Any]) -> None:
        self.worker_restarts[index] += 1
        warnings.warn(
            f"environment {index}: its Ray worker died and was restarted; it replayed "
            f"{recovery['replayed']} steps ({recovery['hits']} store hits)",
            RuntimeWarning,
            stacklevel=3,
        )
        if self.failure_log is not None:
            record = {"time": time.time(), "env": index, **recovery}
            with open(self.failure_log, "a") as log:
                log.write(json.dumps(record) + "\n")


def _check_arguments(
    num_envs: int,
    num_cpus: float | None,
    num_gpus: float | None,
    max_restarts: int,
    device: str,
) -> None:
    if num_envs < 1:
        raise ValueError(f"Expected `num_envs` >= 1, actually: {num_envs}")
    for label, value in (("num_cpus", num_cpus), ("num_gpus", num_gpus)):
        if value is not None and not (value >= 0 and (value <= 1 or float(value).is_integer())):
            raise ValueError(f"Expected `{label}` >= 0, whole above 1, actually: {value}")
    if max_restarts < -1:
        raise ValueError(f"Expected `max_restarts` >= -1, actually: {max_restarts}")
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"Expected `device` in ('auto', 'cpu', 'cuda'), actually: {device!r}")


def _resources_per_copy(
    resources: dict[str, float],
    num_envs: int,
    num_cpus: float | None,
    num_gpus: float | None,
    device: str,
) -> tuple[float, float]:
    """(CPUs, GPUs) of each actor: as given, or shared out of the cluster's (see the class)."""
    if num_gpus is None:
        gpus = resources.get("GPU", 0.0) if device != "cpu" else 0.0
        num_gpus = 0.0 if gpus == 0 else gpu_share(int(gpus), num_envs)
    if num_cpus is None:
        num_cpus = _share(resources.get("CPU", 1.0), num_envs)
    if num_gpus == 0 and device == "cuda":
        raise ValueError("`device='cuda'` needs `num_gpus` > 0 and a cluster with GPUs")
    return num_cpus, num_gpus


def _warn_if_short(resources: dict[str, float], num_envs: int, need: dict[str, float]) -> None:
    for name, each in need.items():
        if each * num_envs > resources.get(name, 0.0) + 1e-9:
            warnings.warn(
                f"{num_envs} copies need {each * num_envs:g} {name}s but the cluster has "
                f"{resources.get(name, 0.0):g}: some wait until it grows",
                stacklevel=3,
            )


def _empty_batch(space: gym.Space, num_envs: int) -> ObsBatch:
    batch = create_empty_array(space, num_envs, np.zeros)
    if batch is None:  # only for spaces gymnasium cannot batch (e.g. Graph): not this env's
        raise TypeError(f"cannot batch observations of {space}")
    return batch


def _share(total: float, num_envs: int) -> float:
    """1, or an equal share of `total` rounded down to Ray's resource precision (1e-4)."""
    return min(1.0, math.floor(10_000 * total / num_envs) / 10_000) or 1e-4


def gpu_share(gpus: int, num_envs: int) -> float:
    """Each actor's GPU request: 1, or ``1 / ceil(num_envs / gpus)`` when GPUs are fewer.

    Ray places a fractional request on one GPU, so shares must tile whole GPUs: 10 copies on
    8 GPUs at ``8 / 10 = 0.8`` each fit one per GPU and leave 2 actors pending for ever, at
    ``1 / 2`` each all 10 run (two on each of 5 GPUs).

    >>> gpu_share(8, 10), gpu_share(1, 10), gpu_share(4, 3), gpu_share(1, 7)
    (0.5, 0.1, 1.0, 0.1428)
    """
    if gpus < 1:
        raise ValueError(f"Expected `gpus` >= 1, actually: {gpus}")
    if gpus >= num_envs:
        return 1.0
    per_gpu = math.ceil(num_envs / gpus)
    return math.floor(10_000 / per_gpu) / 10_000  # Ray's precision: k shares must fit in 1


def _absolute_paths(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Actors do not run in this folder: give them absolute store and data paths."""
    kwargs = dict(kwargs)
    if kwargs.get("store") != ":memory:" and not str(kwargs.get("store")).startswith(PREFIX):
        store = Path(kwargs.get("store") or default_store_path())
        kwargs["store"] = str(store.expanduser().resolve())
    if kwargs.get("data_dir") is not None:
        kwargs["data_dir"] = str(Path(kwargs["data_dir"]).expanduser().resolve())
    dataset = kwargs.get("dataset")
    if isinstance(dataset, str) and is_own_dataset(dataset):  # on every node at this path
        kwargs["dataset"] = str(Path(dataset).expanduser().resolve())
    return kwargs
