"""Memory of the search's worker processes, with and without the prepared-dataset cache.

    python benchmarks/worker_memory.py [--workers 3] [--env EAS-CIFAR10-CPU-v2]
        [--data-dir ../shared/data] [--pinned benchmarks/data/cpu_v2_long]

Starts `--workers` processes (spawned, one torch thread each, as ``eas_gym.vector`` does) that
each make the env on one store and reset it (loading the data and the start network, pinned
from `--pinned` so nothing trains), then reads every worker's PSS and USS (private memory) from
``/proc/PID/smaps_rollup``. Twice: ``EAS_PREPARED=0`` (each worker loads and resizes the
dataset itself) and with the cache (:mod:`eas_gym.prepared`: prepared once, memory-mapped by
all, prepared first by the main process as the runner does). A baseline run makes the env
without resetting it (imports and objects, no data).
Prints one JSON line; Linux only.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import tempfile
from pathlib import Path


def _rollup(pid: int) -> dict[str, int]:
    """PSS and USS (private clean + dirty) of process `pid`, in MB."""
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        parts = line.split()
        if parts and parts[0] in ("Pss:", "Private_Clean:", "Private_Dirty:"):
            fields[parts[0][:-1]] = int(parts[1]) // 1024
    return {"pss": fields["Pss"], "uss": fields["Private_Clean"] + fields["Private_Dirty"]}


def _worker(env_id: str, kwargs: dict, reset: bool, ready, done) -> None:
    import gymnasium as gym
    import torch

    import eas_gym  # noqa: F401

    torch.set_num_threads(1)
    env = gym.make(env_id, **kwargs)
    if reset:
        env.reset(seed=0)
    ready.put(os.getpid())
    done.wait()


def measure(env_id: str, kwargs: dict, workers: int, *, reset: bool, prepared: bool) -> dict:
    """Per-worker PSS/USS (MB) of `workers` processes that made (and reset) the env."""
    os.environ["EAS_PREPARED"] = "1" if prepared else "0"
    ctx = mp.get_context("spawn")
    ready, done = ctx.Queue(), ctx.Event()
    procs = [
        ctx.Process(target=_worker, args=(env_id, kwargs, reset, ready, done))
        for _ in range(workers)
    ]
    for p in procs:
        p.start()
    pids = [ready.get(timeout=600) for _ in procs]
    rows = [_rollup(pid) for pid in pids]
    done.set()
    for p in procs:
        p.join()
    return {
        "pss_sum_mb": sum(r["pss"] for r in rows),
        "uss_mean_mb": round(sum(r["uss"] for r in rows) / len(rows)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--env", default="EAS-CIFAR10-CPU-v2")
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--pinned", type=Path, default=Path("benchmarks/data/cpu_v2_long"))
    args = parser.parse_args()

    import gymnasium as gym

    import eas_gym  # noqa: F401
    from agents.pinned_start import restore_start
    from eas_gym.store import EvalStore

    with tempfile.TemporaryDirectory() as folder:
        os.environ["EAS_CACHE_DIR"] = folder  # a cold prepared cache, removed afterwards
        store_path = str(Path(folder) / "store.sqlite")
        kwargs = {"data_dir": args.data_dir, "store": store_path}
        env = gym.make(args.env, **{**kwargs, "store": ":memory:"}).unwrapped
        store = EvalStore(store_path)
        if not restore_start(
            args.pinned, store, env.start_arch.to_string(), env.eval_config.start_key()
        ):
            raise SystemExit(f"no pinned start network for {args.env} in {args.pinned}/start")
        store.close()
        cases = {
            "no_data": measure(args.env, kwargs, args.workers, reset=False, prepared=True),
            "each_loads": measure(args.env, kwargs, args.workers, reset=True, prepared=False),
        }
        # As the runner does before its workers start (it trains or loads the start network
        # here): the main process prepares the dataset once.
        os.environ["EAS_PREPARED"] = "1"
        gym.make(args.env, **kwargs).unwrapped.scorer.setup()
        cases["prepared"] = measure(args.env, kwargs, args.workers, reset=True, prepared=True)
    each, shared = cases["each_loads"]["pss_sum_mb"], cases["prepared"]["pss_sum_mb"]
    print(
        json.dumps(
            {
                "benchmark": "worker_memory",
                "env": args.env,
                "workers": args.workers,
                "cases": cases,
                "pss_ratio_prepared_to_each_loads": round(shared / each, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
