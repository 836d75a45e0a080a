"""Where a search's children are evaluated: here, in worker processes, or on Ray actors.

:func:`make_envs` builds the vector env of one search: environments stepped in turn in this
process (toy and surrogate children), in worker processes (children that train on a CPU of
several cores: no more processes than cores, :func:`training_processes`; one per environment on
GPUs), or one Ray actor per environment (``executor="ray"``).
"""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import torch

from agents.registry import AgentSpec
from agents.search_args import SearchArgs
from eas_gym.vector import make_vector_env

__all__ = [
    "EXECUTORS",
    "check_executor",
    "make_envs",
    "runs_asynchronously",
    "train_start_here",
    "training_processes",
]

EXECUTORS = ("local", "ray")


def check_executor(args: SearchArgs, spec: AgentSpec) -> None:
    """ValueError unless `args` names a known executor and settings it can use."""
    if args.executor not in EXECUTORS:
        raise ValueError(f"Expected `executor` in {EXECUTORS}, actually: {args.executor!r}")
    if args.workers is not None and args.workers < 1:
        raise ValueError(f"Expected `workers` >= 1 or None, actually: {args.workers}")
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"Expected `threads` >= 1 or None, actually: {args.threads}")
    if spec.is_sb3 and (args.asynchronous or args.workers is not None):
        raise ValueError(
            f"SB3 agents ({spec.name}) step their environments in this process: leave out "
            "--async and --workers, or use a protocol agent (reinforce, random, module:Class)"
        )
    if args.executor != "ray":
        if args.ray_address is not None:
            raise ValueError("`ray_address` needs `executor='ray'` (--executor ray)")
        if args.store_service:
            raise ValueError("`store_service` needs `executor='ray'` (--executor ray)")
        return
    if spec.is_sb3:
        raise ValueError(
            f"SB3 agents ({spec.name}) evaluate children locally; "
            "use --executor local, or a protocol agent (reinforce, random, module:Class) on Ray"
        )
    from eas_gym.ray_store import import_ray

    try:
        import_ray()
    except ImportError as e:
        raise ValueError(str(e)) from e


def make_envs(args: SearchArgs, out: Path, env_kwargs: dict[str, Any], num_envs: int):
    """The local vector env, or one Ray actor per environment (recoveries: ray_failures.jsonl)."""
    if args.executor == "ray":
        from eas_gym.ray_vector import RayVectorEnv

        return RayVectorEnv(
            args.env_id,
            num_envs,
            address=args.ray_address,
            store_service=args.store_service,
            failure_log=out / "ray_failures.jsonl",
            **env_kwargs,
        )
    asynchronous = runs_asynchronously(args, env_kwargs, num_envs)
    if args.threads is not None and not asynchronous:
        torch.set_num_threads(args.threads)
    workers = None
    if asynchronous:
        train_start_here(args.env_id, env_kwargs)
        workers = training_processes(args, env_kwargs, num_envs)
    return make_vector_env(
        args.env_id,
        num_envs,
        asynchronous=asynchronous,
        threads=args.threads,
        workers=workers,
        **env_kwargs,
    )


def training_processes(args: SearchArgs, env_kwargs: dict[str, Any], num_envs: int) -> int | None:
    """`args.workers`, or no more than the cores on a CPU; None: one process per environment.

    Each process holds its own torch, data and networks (about 0.3-0.7 GB): 10 of them on 2
    cores were no faster than 2 (``benchmarks/main_job.py``), only larger.
    """
    import gymnasium as gym

    from eas_gym.data import resolve_device
    from eas_gym.vector import worker_threads

    if args.workers is not None:
        return args.workers if args.workers < num_envs else None
    device = {**gym.spec(args.env_id).kwargs, **env_kwargs}.get("device", "auto")
    if resolve_device(device).type != "cpu":
        return None
    cores = worker_threads(1)
    return cores if cores < num_envs else None


def train_start_here(env_id: str, env_kwargs: dict[str, Any]) -> None:
    """Train (or find) the start network in this process, with every core, before workers start.

    Otherwise the first worker to reset trains it on its one thread while the others wait on
    the store's lock and the other cores idle (the main job's first minutes). On a GPU this
    process then hands back the memory its allocator cached: the workers' memory shares
    (:func:`eas_gym.vector.apply_worker_settings`) do not count it.
    """
    import gymnasium as gym

    env = gym.make(env_id, **env_kwargs)
    try:
        env.unwrapped.get_wrapper_attr("scorer").start()
    finally:
        env.close()
    del env
    if torch.cuda.is_initialized():
        gc.collect()  # the env's data and networks, so their blocks can be handed back
        torch.cuda.empty_cache()


def runs_asynchronously(args: SearchArgs, env_kwargs: dict[str, Any], num_envs: int) -> bool:
    """``args.asynchronous``, or the measured default (see :class:`SearchArgs`)."""
    if args.asynchronous is not None:
        return args.asynchronous
    import gymnasium as gym

    from eas_gym.data import resolve_device
    from eas_gym.vector import worker_threads

    kwargs = {**gym.spec(args.env_id).kwargs, **env_kwargs}
    trains_for_real = (
        kwargs.get("evaluator", "train") == "train"
        and kwargs.get("dataset", "cifar10") != "synthetic"
    )
    device = resolve_device(kwargs.get("device", "auto")).type
    if device == "cuda":  # children share the GPU: 8 processes trained 5.9x one's images/s
        return trains_for_real and num_envs > 1
    return trains_for_real and device == "cpu" and worker_threads(1) > 1 and num_envs > 1
