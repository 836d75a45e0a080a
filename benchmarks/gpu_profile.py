"""The GPU suite's profile part: where one env's step time goes on the device.

The search part's children each took about 5 s of wall time on an H200 for a 1-epoch
fine-tune that the trainer alone does in well under a second. This part runs one
``EAS-CIFAR10-v0`` env in its own process (no other process shares the device), times its
reset and each step, splits each step into the fine-tune (``step_provenance``) and the rest
(the transform, the preservation check, the store), and profiles the steps with cProfile.
"""

from __future__ import annotations

import cProfile
import pstats
import time
from pathlib import Path
from typing import Any

import torch
from gpu_common import Rows

TOP_FUNCTIONS = 25


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def part_child_profile(cfg: dict[str, Any], rows: Rows) -> None:
    import gymnasium as gym

    import eas_gym  # noqa: F401  (registers the ids)

    sizes, device = cfg["sizes"], cfg["device"]
    env_sizes = {k: v for k, v in cfg["data"]["sizes"].items() if k != "test_size"}
    kwargs: dict[str, Any] = {"dataset": cfg["data"]["dataset"], **env_sizes, "device": device}
    kwargs.update(epochs=sizes["epochs"], start_epochs=sizes["start_epochs"])
    kwargs["store"] = str(Path(cfg["scratch"]) / "profile.sqlite")
    if "schedule" in sizes:
        kwargs["schedule"] = sizes["schedule"]
    rows.add(kind="plan", env="EAS-CIFAR10-v0", env_kwargs=kwargs, steps=sizes["steps"])
    begin = time.perf_counter()
    env = gym.make("EAS-CIFAR10-v0", **kwargs)
    made = time.perf_counter() - begin
    begin = time.perf_counter()
    _obs, info = env.reset(seed=0)
    env.action_space.seed(0)
    _sync(device)
    rows.add(kind="reset", make_seconds=made, seconds=time.perf_counter() - begin)
    profiler = cProfile.Profile()
    steps: list[dict[str, Any]] = []
    for index in range(sizes["steps"]):
        if steps and time.time() + 2 * max(s["seconds"] for s in steps) > cfg["deadline"]:
            rows.add(kind="step", index=index, skipped="time limit")
            break
        action = env.action_space.sample(mask=info["action_mask"])
        begin, cpu = time.perf_counter(), time.process_time()
        profiler.enable()
        _obs, _reward, terminated, truncated, info = env.step(action)
        _sync(device)
        profiler.disable()
        seconds = time.perf_counter() - begin
        provenance = env.unwrapped.step_provenance
        steps.append(
            {
                "kind": "step",
                "index": index,
                "net": info["net"],
                "accuracy": info["accuracy"],
                "seconds": seconds,
                "cpu_seconds": time.process_time() - cpu,
                "train_seconds": provenance["train_seconds"],
                "other_seconds": seconds - provenance["train_seconds"],
                "cache_hit": provenance["cache_hit"],
            }
        )
        rows.add(**steps[-1])
        if terminated or truncated:
            _obs, info = env.reset()
    env.close()
    if steps:
        total = sum(s["seconds"] for s in steps)
        rows.add(
            kind="summary",
            steps=len(steps),
            mean_step_seconds=total / len(steps),
            train_share=sum(s["train_seconds"] for s in steps) / total,
            cpu_per_wall=sum(s["cpu_seconds"] for s in steps) / total,
        )
    stats = pstats.Stats(profiler)
    ranked = sorted(stats.stats.items(), key=lambda item: item[1][3], reverse=True)  # type: ignore[attr-defined]
    for (path, line, name), (_cc, calls, own, cumulative, _callers) in ranked[:TOP_FUNCTIONS]:
        where = f"{Path(path).parent.name}/{Path(path).name}:{line}" if line else path
        rows.add(
            kind="profile", function=name, where=where, calls=calls, own=own, cumulative=cumulative
        )
