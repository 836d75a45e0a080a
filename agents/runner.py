"""Run a search into a run folder that survives interruption, and compare searches.

A run folder holds:

* ``config.json``: the search's arguments (a rerun must match them, except ``nets``);
* ``children.jsonl``: one line per sampled network (the final network of each episode);
* ``checkpoint.pt`` (protocol agents) or ``sb3_model.zip`` (SB3 agents): the agent's state;
* ``store.sqlite`` and ``weights/``: the evaluation store (unless ``store`` points elsewhere);
* ``best/``: the best network (``eas_gym.load_model(run / "best")``), and ``search.png``.

Protocol agents (:class:`agents.base.Agent`) checkpoint after every update of ``batch``
networks, and each update's environments are seeded from ``(seed, update)``. Rerunning an
interrupted search restores the agent and repeats the unfinished update; its children are found
in the store (not trained again), so the result equals that of an uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import math
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

import eas_gym  # noqa: F401  (registers the EAS-* ids)
from agents.base import Agent
from eas_gym.export import save_model
from eas_gym.family import parse_net
from eas_gym.store import EvalStore
from eas_gym.vector import make_vector_env

__all__ = ["AGENTS", "SearchArgs", "run_search", "read_children", "load_agent_class"]

AGENTS = {
    "reinforce": "agents.reinforce:Reinforce",
    "random": "agents.random_search:RandomSearch",
}
"""Built-in protocol agents; SB3 algorithms (``ppo``, ``a2c``, ``maskable-ppo``) run apart."""

_SB3 = ("ppo", "a2c", "maskable-ppo")
_RESUMABLE_FIELDS_IGNORED = ("nets", "progress", "executor", "ray_address", "store_service")
_EXECUTORS = ("local", "ray")


@dataclass
class SearchArgs:
    """Arguments of one search."""

    env_id: str = "EAS-CIFAR10-CPU-v0"
    """A registered env id."""
    agent: str = "reinforce"
    """reinforce, random, ppo, a2c, maskable-ppo, or ``module:Class`` (see agents.base)."""
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
    asynchronous: bool = False
    """One process per environment (worth it on GPUs; on a small CPU, sync is faster)."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Passed to ``gym.make`` (device, data_dir, epochs, ...)."""
    progress: bool = True
    """Show a progress bar."""

    # ---- where children are evaluated (does not change the results) ----
    executor: str = "local"
    """local (a gymnasium vector env here) or ray (one Ray actor per environment)."""
    ray_address: str | None = None
    """Ray cluster address for ``executor="ray"``; None: the running one, else a local one."""
    store_service: bool | None = None
    """``executor="ray"``: serve the store from one actor; None: on multi-node clusters."""


def load_agent_class(spec: str) -> type:
    """The class named by a built-in name or ``module:Class``; ValueError if it cannot load."""
    target = AGENTS.get(spec, spec)
    if ":" not in target:
        raise ValueError(
            f"unknown agent {spec!r}; expected one of {(*AGENTS, *_SB3)} or 'module:Class'"
        )
    module_name, _, class_name = target.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"cannot load agent {spec!r}: {e}") from e
    missing = [
        m
        for m in ("act", "observe", "update", "state_dict", "load_state_dict")
        if not callable(getattr(cls, m, None))
    ]
    if missing:
        raise ValueError(f"agent {spec!r} does not implement {missing} (see agents.base.Agent)")
    return cls


def read_children(run: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The sampled networks of a run folder, in order."""
    path = Path(run) / "children.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run_search(args: SearchArgs) -> list[dict[str, Any]]:
    """Run (or resume, or extend) a search; returns every sampled network's record."""
    if args.nets < 1 or args.batch < 1:
        raise ValueError(f"`nets` and `batch` must be >= 1, got {args.nets} and {args.batch}")
    if args.agent not in _SB3:
        load_agent_class(args.agent)  # fail before creating the run folder
    _check_executor(args)
    out = Path(args.out)
    _check_config(out, args)
    store = args.store or str(out / "store.sqlite")
    env_kwargs = {"store": store, "keep_weights": True, **args.env_kwargs}
    if args.agent in _SB3:
        from agents.sb3_runner import run_sb3

        children = run_sb3(args, out, env_kwargs)
    else:
        children = _run_protocol(args, out, env_kwargs)
    _export_best(children, out, store)
    _plot(children, out / "search.png", title=f"{args.agent} on {args.env_id}")
    return children


def _check_executor(args: SearchArgs) -> None:
    if args.executor not in _EXECUTORS:
        raise ValueError(f"Expected `executor` in {_EXECUTORS}, actually: {args.executor!r}")
    if args.executor != "ray":
        if args.ray_address is not None:
            raise ValueError("`ray_address` needs `executor='ray'` (--executor ray)")
        if args.store_service:
            raise ValueError("`store_service` needs `executor='ray'` (--executor ray)")
        return
    if args.agent in _SB3:
        raise ValueError(
            f"SB3 agents ({args.agent}) evaluate children locally; "
            "use --executor local, or a protocol agent (reinforce, random, module:Class) on Ray"
        )
    from eas_gym.ray_vector import import_ray

    try:
        import_ray()
    except ImportError as e:
        raise ValueError(str(e)) from e


def _make_envs(args: SearchArgs, out: Path, env_kwargs: dict[str, Any]):
    """The local vector env, or one Ray actor per environment (recoveries: ray_failures.jsonl)."""
    if args.executor == "ray":
        from eas_gym.ray_vector import RayVectorEnv

        return RayVectorEnv(
            args.env_id,
            args.batch,
            address=args.ray_address,
            store_service=args.store_service,
            failure_log=out / "ray_failures.jsonl",
            **env_kwargs,
        )
    return make_vector_env(args.env_id, args.batch, asynchronous=args.asynchronous, **env_kwargs)


def _check_config(out: Path, args: SearchArgs) -> None:
    record = {
        k: v for k, v in dataclasses.asdict(args).items() if k not in _RESUMABLE_FIELDS_IGNORED
    }
    path = out / "config.json"
    if path.exists():
        saved = json.loads(path.read_text())
        diff = sorted(k for k in set(saved) | set(record) if saved.get(k) != record.get(k))
        if diff:
            raise ValueError(
                f"run folder {out} holds a search with other settings ({', '.join(diff)}); "
                "use another --out or the same settings"
            )
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")


def _run_protocol(args: SearchArgs, out: Path, env_kwargs: dict[str, Any]) -> list[dict[str, Any]]:
    num_updates = math.ceil(args.nets / args.batch)
    envs = _make_envs(args, out, env_kwargs)
    agent: Agent = load_agent_class(args.agent)(
        envs.single_observation_space, envs.single_action_space, seed=args.seed
    )
    checkpoint = out / "checkpoint.pt"
    done = 0
    if checkpoint.exists():
        saved = torch.load(checkpoint, weights_only=False)
        agent.load_state_dict(saved["agent"])
        done = saved["update"]
    # Children of an update that did not finish are dropped and that update is run again.
    children = [c for c in read_children(out) if c["update"] < done]
    _write_lines(out / "children.jsonl", children)
    bar = tqdm(
        total=num_updates * args.batch,
        initial=len(children),
        unit="net",
        disable=not args.progress,
        dynamic_ncols=True,
    )
    start, initial = time.perf_counter(), len(children)
    try:
        with open(out / "children.jsonl", "a") as log:
            for update in range(done, num_updates):
                batch = _run_batch(envs, agent, args, update)
                metrics = agent.update()
                for record in batch:
                    log.write(json.dumps(record) + "\n")
                log.flush()
                children += batch
                _atomic_save(
                    {"agent": agent.state_dict(), "update": update + 1, "metrics": metrics},
                    checkpoint,
                )
                bar.update(len(batch))
                elapsed = (time.perf_counter() - start) / 60
                bar.set_postfix(
                    best=f"{max(c['accuracy'] for c in children):.4f}",
                    nets_per_min=f"{(len(children) - initial) / max(elapsed, 1e-9):.1f}",
                )
    finally:
        bar.close()
        envs.close()
    return children


def _run_batch(envs, agent: Agent, args: SearchArgs, update: int) -> list[dict[str, Any]]:
    """One episode in every environment; returns the final networks' records."""
    obs, infos = envs.reset(seed=args.seed * 1_000_003 + update * args.batch)
    returns = np.zeros(args.batch)
    seconds = np.zeros(args.batch)
    terminated = np.zeros(args.batch, dtype=bool)
    while not terminated.all():
        masks = np.stack([np.concatenate(m) for m in infos["action_mask"]]).astype(bool)
        actions = agent.act(obs, masks)
        obs, rewards, terminated, truncated, infos = envs.step(actions)
        agent.observe(rewards, terminated)
        returns += rewards
        seconds += infos["train_seconds"]
    return [
        {
            "update": update,
            "env": i,
            "net": str(infos["net"][i]),
            "accuracy": float(infos["accuracy"][i]),
            "params": int(infos["params"][i]),
            "flops": int(infos["flops"][i]),
            "return": float(returns[i]),
            "cache_hit": bool(infos["cache_hit"][i]),
            "train_seconds": float(seconds[i]),
        }
        for i in range(args.batch)
    ]


def _write_lines(path: Path, records: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def _atomic_save(obj: Any, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _export_best(children: list[dict[str, Any]], out: Path, store_path: str) -> None:
    if not children:
        return
    best = max(children, key=lambda c: c["accuracy"])
    config = json.loads((out / "config.json").read_text())
    import gymnasium as gym

    env = gym.make(config["env_id"], **{**config["env_kwargs"], "store": store_path})
    arch = parse_net(best["net"], num_classes=env.unwrapped.start_arch.num_classes)
    store = EvalStore(store_path)
    found = store.get(best["net"], env.unwrapped.config_key)
    state = None if found is None else store.load_weights(found)
    store.close()
    env.close()
    save_model(
        out / "best", arch, state, {"accuracy": best["accuracy"], "env_id": config["env_id"]}
    )


def _plot(children: list[dict[str, Any]], path: Path, title: str) -> None:
    if not children:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    acc = np.array([c["accuracy"] for c in children])
    x = np.arange(1, len(acc) + 1)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.scatter(x, acc, s=8, alpha=0.5, label="sampled network")
    ax.plot(x, np.maximum.accumulate(acc), color="tab:red", label="best so far")
    window = min(10, len(acc))
    moving = np.convolve(acc, np.ones(window) / window, mode="valid")
    ax.plot(x[window - 1 :], moving, color="tab:green", label=f"moving average ({window})")
    ax.set_xlabel("networks sampled")
    ax.set_ylabel("validation accuracy")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
