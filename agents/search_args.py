"""The arguments of one search (:class:`SearchArgs`), in a module without torch.

``eas-gym --help`` builds its options from these fields; the runner imports torch.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from typing import Any

__all__ = ["SearchArgs", "check_search_numbers"]


def check_search_numbers(nets: int, batch: int, seed: int, seed_name: str = "seed") -> None:
    """Raise ValueError for `nets` or `batch` below 1 or a negative `seed`, naming the value."""
    for name, value, least in (("nets", nets, 1), ("batch", batch, 1), (seed_name, seed, 0)):
        whole = isinstance(value, numbers.Integral) and not isinstance(value, bool)
        if not whole or value < least:  # numpy integers are whole numbers too
            raise ValueError(f"Expected `{name}` an integer >= {least}, actually: {value!r}")


@dataclass
class SearchArgs:
    """Arguments of one search.

    Raises:
        ValueError: `nets` or `batch` below 1, or a negative `seed`.
    """

    env_id: str = "EAS-CIFAR10-CPU-v0"
    """A registered env id."""
    agent: str = "reinforce"
    """reinforce, random, evolution, local-search, fixed, tpe, bo, ppo, a2c, maskable-ppo or
    ``module:Class``, optionally with options: ``reinforce[lr=0.01]`` (see
    :mod:`agents.registry`)."""
    agent_options: dict[str, Any] = field(default_factory=dict)
    """More agent options (``--agent-set key=value``), merged over those in `agent`."""
    nets: int = 20
    """Networks to sample (episodes); rounded up to a multiple of `batch`."""
    batch: int = 10
    """Networks per agent update (environments run side by side; the paper: 10)."""
    seed: int = 0
    """Seeds the agent and every episode."""
    out: str = "runs/search"
    """The run folder."""
    store: str | None = None
    """Evaluation store path; None: ``out/store.sqlite``."""
    asynchronous: bool | None = None
    """Environments in worker processes (how many: `workers`); None: when children train on
    real data on a GPU (processes sharing an H200 fine-tuned 5.9x the images/s of one with 8)
    or on a CPU of several cores (one thread per worker: 1.16x the children per hour of one
    process using both cores; benchmarks/RESULTS.md), else in this process (toy and surrogate
    children are too cheap to pay for worker processes)."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Passed to ``gym.make`` (device, data_dir, epochs, ...)."""
    progress: bool = True
    """Show a progress bar."""
    tensorboard: bool = False
    """Also log every update's metrics (always in ``out/metrics.jsonl``) as TensorBoard event files
    in ``out/tensorboard`` (``pip install 'eas-gym[tb]'``; SB3 agents: their own logger's too)."""
    threads: int | None = None
    """Torch threads: of this process (synchronous), or of each worker process; None: this
    process keeps torch's setting, workers share the cores (``eas_gym.vector.worker_threads``)."""
    workers: int | None = None
    """Worker processes of an asynchronous search, each stepping its share of the batch in turn;
    None: one per core on a CPU (more would only take memory: ``benchmarks/main_job.py``), one
    per environment on GPUs (each holds a CUDA context and its copy of the data on the GPU,
    about 0.2 GB for CIFAR-10: on a small GPU, fewer)."""

    # ---- where children are evaluated (does not change the results) ----
    executor: str = "local"
    """local (a gymnasium vector env here) or ray (one Ray actor per environment)."""
    ray_address: str | None = None
    """Ray cluster address for ``executor="ray"`` (``HEAD_IP:6379``, or ``auto`` on a cluster
    machine); None: as ``ray.init()`` connects: to ``$RAY_ADDRESS``, else the cluster last started
    on this machine, else a new local instance."""
    store_service: bool | None = None
    """``executor="ray"``: serve the store from one actor; None: on multi-node clusters."""

    def __post_init__(self) -> None:
        check_search_numbers(self.nets, self.batch, self.seed)
