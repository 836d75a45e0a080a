"""Test accuracy of each run's best-by-validation network, for a comparison's tables.

From the store's fine-tuned weights when they were kept. Otherwise, where the record holds its
episode's actions (records from 2026-12-04 on), the network is *trained again from its
lineage*: the episode is replayed from its reset seed on the same start network, which gives the
same child and the same fine-tune, checked by its net string and its validation accuracy (to
the last bit) against the record. A network whose retrained validation accuracy differs from the
record's (another start network, CPU or thread count; on a GPU, whose fine-tunes are not
bit-reproducible, every retrain) gets no test accuracy, with a warning: its test accuracy
would belong to another network than the one selected.

Results are cached per network in the comparison's ``test_accuracy.json``.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from agents.run_folder import episode_seed
from eas_gym.env import EASEnv

__all__ = ["retrain_test_accuracy", "best_test_accuracies", "why_not_repeated"]

_CACHE = "test_accuracy.json"


def best_test_accuracies(
    env: EASEnv,
    runs: dict[str, list[dict[str, Any]]],
    root: Path,
    *,
    env_id: str,
    env_kwargs: dict[str, Any],
    batch: int,
) -> dict[str, float]:
    """``{"NET|LINEAGE": test accuracy}`` of every run's best-by-validation network.

    Args:
        env: An env of the comparison, on its store (for the stored weights).
        runs: Per agent label, its runs (``seed`` and ``children``).
        root: The comparison folder (holds the cache).
        env_id: The runs' env id, to train a network again from its lineage.
        env_kwargs: Its arguments, with the comparison's store (whose start network is the
            runs').
        batch: Networks per update (with the seed, each episode's reset seed).
    """
    path = root / _CACHE
    cache = json.loads(path.read_text()) if path.exists() else {}
    for rs in runs.values():
        for r in rs:
            best = max(r["children"], key=lambda c: c["accuracy"])
            key = f"{env.config_key}|{best['net']}|{best.get('lineage')}"
            if cache.get(key) is not None:
                continue
            arch = env.family.parse(best["net"], env.start_arch.num_classes)
            found = env.scorer.test_accuracy(arch, best.get("lineage"))
            if found is None and best.get("actions"):
                reset_seed = episode_seed(r["seed"], best["update"], batch) + best["env"]
                found = retrain_test_accuracy(env_id, env_kwargs, best, reset_seed)
            cache[key] = found
            path.write_text(json.dumps(cache, indent=1, sort_keys=True) + "\n")
    return {k.split("|", 1)[1]: v for k, v in cache.items() if k.startswith(env.config_key)}


def retrain_test_accuracy(
    env_id: str, env_kwargs: dict[str, Any], record: dict[str, Any], reset_seed: int
) -> float | None:
    """Train `record`'s network again from its lineage; its test accuracy, or None.

    Replays the record's actions from ``reset(seed=reset_seed)`` with ``cache=False`` (nothing
    read from or written to the store; the start network is the store's), on one torch thread
    as a search's children train (worker processes of one thread each). None, with a warning,
    when the replay does not give the record's network and validation accuracy.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the arithmetic of the search's fine-tunes
    made = gym.make(env_id, **{**env_kwargs, "cache": False})
    try:
        env = made.unwrapped
        if not isinstance(env, EASEnv):
            raise TypeError(f"`env_id` {env_id!r} is not an EASEnv id")
        _, info = env.reset(seed=reset_seed)
        for action in record["actions"]:
            _, _, _, _, info = env.step(np.asarray(action, dtype=np.int64))
        got, wanted = (info["net"], info["accuracy"]), (record["net"], record["accuracy"])
        if got != wanted:
            warnings.warn(
                f"training {record['net']} again from its lineage gave {got[0]} at validation "
                f"accuracy {got[1]}, not the record's {wanted[1]}: {why_not_repeated(env.device)}"
                "; its test accuracy is left out",
                stacklevel=2,
            )
            return None
        arch, state = env.network()
        return env.scorer.test_accuracy_of(arch, state)
    finally:
        made.close()
        torch.set_num_threads(threads)


def why_not_repeated(device: torch.device) -> str:
    """Why a fine-tune trained again on `device` may not repeat its record, for the warning.

    >>> why_not_repeated(torch.device("cuda")).startswith("a GPU")
    True
    """
    if device.type == "cuda":  # atomic adds in cuDNN's and pooling's backward (see EASEnv)
        return (
            "a GPU does not repeat a fine-tune to the bit; keep the search's weights "
            "(keep_weights, the default) for a test column there"
        )
    return "another start network, CPU or thread count"
