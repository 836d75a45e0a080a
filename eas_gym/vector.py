"""Vector environments: the paper's batch of 10 networks, one process each, one shared store."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import torch

from eas_gym.data import resolve_device

__all__ = ["apply_worker_settings", "make_vector_env", "worker_devices", "worker_threads"]


def worker_threads(num_workers: int, threads: int | None = None) -> int:
    """Torch threads per worker process so that ``workers x threads <= cores`` (at least 1).

    `threads` (or ``$EAS_NUM_THREADS``) overrides the share. On 2 shared cores a transform chain
    ran 14x slower with 2 threads per process than with 1 when another process was busy:
    oversubscribed OpenMP threads spin against each other.

    >>> worker_threads(10, threads=2)
    2
    """
    if threads is None and os.environ.get("EAS_NUM_THREADS"):
        threads = int(os.environ["EAS_NUM_THREADS"])
    if threads is not None:
        if threads < 1:
            raise ValueError(f"Expected `threads` >= 1, actually: {threads}")
        return threads
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cores or 1) // max(num_workers, 1))


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
    context: str | None = "spawn",
    threads: int | None = None,
    workers: int | None = None,
    **kwargs: Any,
) -> gym.vector.VectorEnv:
    """`num_envs` copies of `env_id` (``AsyncVectorEnv`` by default), all writing to one store.

    Args:
        env_id: A registered id, e.g. ``"EAS-CIFAR10-v0"``.
        num_envs: Copies (the paper: 10 networks per controller update).
        asynchronous: One process per copy; False runs them in turn in this process.
        context: The multiprocessing start method of the worker processes; None, the
            platform's default ("fork", or None where that means fork, is refused with CUDA
            devices).
        threads: Torch threads in each worker process; None: :func:`worker_threads` (cores
            shared out, at least 1). Ignored when `asynchronous` is False (this process keeps
            its own setting).
        workers: Processes when `asynchronous`: None, one per copy (``AsyncVectorEnv``); fewer,
            a :class:`~eas_gym.pooled_vector.PooledVectorEnv` whose processes each step their
            share of the copies in turn (CPU devices only). Threads are shared out over these.
        **kwargs: Passed to ``gym.make``; ``device="auto"`` spreads copies over the GPUs.
            Worker processes sharing one GPU each get an equal share of its memory.

    The default ``"spawn"`` workers import your script again: in a script, call this under
    ``if __name__ == "__main__":`` (Python's multiprocessing rule), or pass
    ``asynchronous=False``.
    """
    if num_envs < 1:
        raise ValueError(f"Expected `num_envs` >= 1, actually: {num_envs}")
    registered = gym.spec(env_id).kwargs.get("device", "auto")
    devices = worker_devices(num_envs, kwargs.pop("device", registered))
    uses_cuda = any(resolve_device(d).type == "cuda" for d in devices)
    # None is the platform's default method: fork on Linux before Python 3.14
    method = multiprocessing.get_context(context).get_start_method() if asynchronous else None
    if method == "fork" and uses_cuda:
        raise ValueError(
            "Expected `context` 'spawn' or 'forkserver' with CUDA devices, actually: "
            f"{context!r}, which starts workers by 'fork' (a forked process cannot use CUDA)"
        )

    pooled = asynchronous and workers is not None and workers < num_envs
    if pooled and uses_cuda:
        raise ValueError(
            f"Expected `workers` None with CUDA devices (one process per copy), actually: {workers}"
        )
    processes = workers if pooled and workers is not None else num_envs
    per_worker = worker_threads(processes, threads) if asynchronous else None
    sharing = {d: devices.count(d) for d in devices}
    parent = os.getpid()

    def factory(device: str) -> Callable[[], gym.Env]:
        def make() -> gym.Env:
            # A spawned worker must register the ids again: importing any eas_gym module runs
            # eas_gym/__init__.py, which does (and `import eas_gym` would close an import circle).
            import eas_gym.env  # noqa: F401

            # AsyncVectorEnv also calls one factory in this process to read the spaces: the
            # per-process settings belong to the workers alone.
            if per_worker is not None and os.getpid() != parent:
                apply_worker_settings(device, per_worker, sharing[device])
            return gym.make(env_id, device=device, **kwargs)

        return make

    fns = [factory(d) for d in devices]
    if not asynchronous:
        return gym.vector.SyncVectorEnv(fns)
    if pooled and workers is not None:
        from eas_gym.pooled_vector import PooledVectorEnv

        return PooledVectorEnv(fns, workers, context=context)
    # "spawn": forking a process whose torch thread pool is running can deadlock the child.
    return gym.vector.AsyncVectorEnv(fns, context=context)


def apply_worker_settings(device: str, threads: int, sharing: int) -> None:
    """Settings of one worker process: its torch threads and, on a shared GPU, its memory share.

    Workers on one GPU each keep their caching allocator to ``0.95 / sharing`` of its memory,
    so one wide child cannot starve the others into OOM. A worker on ``cuda:k`` makes it its
    current device, so calls without a device (``torch.cuda.empty_cache()``, a library's
    ``torch.cuda.current_device()``) act on its GPU and open no context on ``cuda:0``.
    """
    torch.set_num_threads(threads)
    target = resolve_device(device)
    if target.type == "cuda" and target.index is not None:
        torch.cuda.set_device(target.index)
    if target.type == "cuda" and sharing > 1:
        index = target.index if target.index is not None else torch.cuda.current_device()
        torch.cuda.set_per_process_memory_fraction(0.95 / sharing, index)
