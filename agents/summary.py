"""What a search leaves for people: ``best/`` (the best network), ``summary.json``, ``search.png``.

Written by :func:`agents.runner.run_search` after every run (also a resumed or extended one),
from the child records and the evaluation store.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from eas_gym.export import save_model
from eas_gym.family import parse_net
from eas_gym.store import BY_NET, EvalStore

if TYPE_CHECKING:
    from eas_gym.env import EASEnv

__all__ = ["export_best", "plot_search", "read_summary"]


def read_summary(run: str | os.PathLike[str]) -> dict[str, Any]:
    """A run folder's ``summary.json`` (networks, best, start network's accuracy), or {}."""
    path = Path(run) / "summary.json"
    return json.loads(path.read_text()) if path.exists() else {}


def export_best(children: list[dict[str, Any]], out: Path, store_path: str) -> float | None:
    """Save the best network to ``best/`` and write ``summary.json``; the start's accuracy.

    `store_path` is the search's store: the best network's weights and the start network's
    accuracy are read from it (a warning if the weights were not kept; the weightless
    evaluators keep none, and ``best/`` then holds the architecture alone).
    """
    if not children:
        return None
    best = max(children, key=lambda c: c["accuracy"])
    config = json.loads((out / "config.json").read_text())
    import gymnasium as gym

    made = gym.make(config["env_id"], **{**config["env_kwargs"], "store": store_path})
    env = cast("EASEnv", made.unwrapped)  # every EAS-* id's entry point
    from agents.run_folder import read_as_recorded

    read_as_recorded(env, config)  # a run from another kind of machine: its rows' key
    arch = parse_net(best["net"], num_classes=env.start_arch.num_classes)
    store = EvalStore(store_path)
    found = store.get(
        best["net"], env.config_key, best.get("lineage") or BY_NET, best.get("start_digest") or ""
    )
    state = None if found is None else store.load_weights(found)
    start = store.get(env.start_arch.to_string(), env.eval_config.start_key())
    store.close()
    env.close()
    # A run already summarised keeps the start it grew from: the store's may be newer (trained
    # again, or a pinned one restored) when a finished run is read back.
    recorded = read_summary(out).get("start_accuracy")
    start_accuracy = recorded if recorded is not None else (start.accuracy if start else None)
    if start_accuracy is None:  # a weightless evaluator stores nothing: the records say it
        start_accuracy = children[0].get("start_accuracy")
    if state is None and not env.weightless:
        warnings.warn(
            f"{out}: the store {store_path} holds no weights of the best network "
            f"{best['net']}; best/ gets its architecture only",
            stacklevel=3,
        )
    meta: dict[str, Any] = {"accuracy": best["accuracy"], "env_id": config["env_id"]}
    if state is not None:  # what its inputs were: load_dataset(**inputs) rebuilds mean and std
        data = env.eval_config
        name = {**gym.spec(config["env_id"]).kwargs, **config["env_kwargs"]}.get("dataset")
        sizes = {k: getattr(data, k) for k in ("train_size", "val_size", "image_size")}
        meta["inputs"] = {"name": name or "cifar10", **sizes}  # your own: its (absolute) path
    try:
        save_model(out / "best", arch, state, meta)
    except ValueError as e:  # weights that do not fit: the search's records still stand
        warnings.warn(f"{out}: best/ gets the architecture only: {e}", stacklevel=3)
        save_model(out / "best", arch, None, meta)
    summary = {
        "nets": len(children),
        "best": {k: best[k] for k in ("net", "accuracy", "params")},
        "start_network": env.start_arch.to_string(),
        "start_accuracy": start_accuracy,
        "train_seconds": sum(c["train_seconds"] for c in children),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return start_accuracy


def plot_search(
    children: list[dict[str, Any]], path: Path, title: str, start_accuracy: float | None
) -> None:
    """``search.png``: each sampled network's accuracy, the best so far and a moving average."""
    if not children:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    acc = np.array([c["accuracy"] for c in children])
    x = np.arange(1, len(acc) + 1)
    fig, ax = plt.subplots(figsize=(6.5, 4))
    ax.scatter(x, acc, s=8, alpha=0.5, label="sampled network")
    ax.plot(x, np.maximum.accumulate(acc), color="tab:red", label="best so far")
    window = min(10, len(acc))
    moving = np.convolve(acc, np.ones(window) / window, mode="valid")
    ax.plot(x[window - 1 :], moving, color="tab:green", label=f"moving average ({window})")
    if start_accuracy is not None:
        ax.axhline(start_accuracy, color="grey", ls="--", lw=1, label="start network")
    ax.set_xlabel("networks sampled")
    ax.set_ylabel("validation accuracy")
    locator = ax.xaxis.get_major_locator()
    if isinstance(locator, MaxNLocator):  # matplotlib's default, an AutoLocator
        locator.set_params(integer=True)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.legend(loc="lower center", ncol=4, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(path, dpi=100)
    plt.close(fig)
