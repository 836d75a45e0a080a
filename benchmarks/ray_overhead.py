"""Wall time of one short search with the local executor and with the Ray executor.

    OMP_NUM_THREADS=1 python benchmarks/ray_overhead.py [--env EAS-Surrogate-v0] [--nets 20]

Runs the same search (agent, seed and settings; a fresh store each time) with
``executor="local"`` (the in-process vector env, before Ray is started, as a user without Ray
runs it) and then, on a local Ray instance (its start-up reported apart, not counted), with
``executor="ray"`` (one actor per environment). The Ray time includes starting the actors (a
worker process per environment), which is also timed alone. Each time is the minimum over
``--repeats`` runs. On the surrogate env children cost little to evaluate, so with
``--batch 1`` the difference is Ray's overhead. Prints one JSON line: the ratio, the overhead
per child (one episode of ``len(schedule)`` steps), and the time per step of each executor
(Ray's without the actors' start-up).

It also times the store service that multi-node clusters use (:mod:`eas_gym.ray_store`): the
store work of one trained child (lock, lookup, insert, as ``ChildScorer`` does) against the
SQLite file directly and through the service actor, ``--store-cycles`` times each.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import gymnasium as gym

import eas_gym  # noqa: F401
from agents.runner import SearchArgs, run_search
from eas_gym.ray_store import start_store_service
from eas_gym.store import EvalStore, Evaluation, open_store


def timed_search(args: argparse.Namespace, executor: str, out: str) -> tuple[float, list]:
    search = SearchArgs(
        env_id=args.env,
        agent=args.agent,
        nets=args.nets,
        batch=args.batch,
        seed=args.seed,
        out=out,
        progress=False,
        executor=executor,
    )
    start = time.perf_counter()
    children = run_search(search)
    return time.perf_counter() - start, children


def store_ms_per_child(store, cycles: int) -> float:
    """Milliseconds of one child's store work: lock, lookup, insert (a fresh net each time)."""
    start = time.perf_counter()
    for i in range(cycles):
        net = f"C{i + 1}-3 GAP FC8"
        with store.lock(f"child-{net}"):
            store.get(net, "key")
            store.put(Evaluation(net, "key", 0.5))
    return 1000 * (time.perf_counter() - start) / cycles


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="EAS-Surrogate-v0")
    parser.add_argument("--agent", default="reinforce")
    parser.add_argument("--nets", type=int, default=20)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--cpus", type=int, default=os.cpu_count())
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--store-cycles", type=int, default=200)
    args = parser.parse_args()

    seconds: dict[str, float] = {}
    children: dict[str, list] = {}
    with tempfile.TemporaryDirectory() as tmp:
        runs = [timed_search(args, "local", f"{tmp}/local{i}") for i in range(args.repeats)]
        seconds["local"], children["local"] = min(runs, key=lambda r: r[0])

        import ray

        from eas_gym.ray_vector import RayVectorEnv

        start = time.perf_counter()
        ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
        init_seconds = time.perf_counter() - start
        startup = []
        for i in range(args.repeats):  # the actors alone: create, reset once, close
            start = time.perf_counter()
            envs = RayVectorEnv(args.env, args.batch, store=f"{tmp}/startup{i}.sqlite")
            envs.reset(seed=args.seed)
            envs.close()
            startup.append(time.perf_counter() - start)
        runs = [timed_search(args, "ray", f"{tmp}/ray{i}") for i in range(args.repeats)]
        seconds["ray"], children["ray"] = min(runs, key=lambda r: r[0])
        file_ms = store_ms_per_child(EvalStore(f"{tmp}/file.sqlite"), args.store_cycles)
        actor, address = start_store_service(f"{tmp}/service.sqlite")
        service_ms = store_ms_per_child(open_store(address), args.store_cycles)
        ray.kill(actor)
        ray.shutdown()
    steps = args.nets * len(gym.make(args.env, store=":memory:").unwrapped.schedule)
    extra = seconds["ray"] - seconds["local"]
    key = ("net", "accuracy", "return")
    same = [[c[k] for k in key] for c in children["ray"]] == [
        [c[k] for k in key] for c in children["local"]
    ]
    print(
        json.dumps(
            {
                "benchmark": "ray_overhead",
                "env": args.env,
                "agent": args.agent,
                "nets": args.nets,
                "batch": args.batch,
                "steps": steps,
                "cpus": args.cpus,
                "repeats": args.repeats,
                "ray_version": ray.__version__,
                "ray_init_seconds": round(init_seconds, 2),
                "actor_startup_seconds": round(min(startup), 2),
                "local_seconds": round(seconds["local"], 2),
                "ray_seconds": round(seconds["ray"], 2),
                "ratio": round(seconds["ray"] / seconds["local"], 3),
                "overhead_ms_per_child": round(1000 * extra / args.nets, 1),
                "local_ms_per_step": round(1000 * seconds["local"] / steps, 1),
                "ray_ms_per_step_after_startup": round(
                    1000 * (seconds["ray"] - min(startup)) / steps, 1
                ),
                "same_children": same,
                "store_ms_per_child_file": round(file_ms, 2),
                "store_ms_per_child_service": round(service_ms, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
