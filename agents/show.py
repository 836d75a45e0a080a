"""Summarise a run folder: settings, top networks, and the best network's lineage."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import networkx as nx

import eas_gym  # noqa: F401  (registers the EAS-* ids)
from agents.run_folder import read_as_recorded
from agents.runner import read_children, read_summary
from eas_gym.env import EASEnv
from eas_gym.store import EvalStore

__all__ = ["describe_run", "lineage_graph"]


def lineage_graph(store: EvalStore, key: str) -> nx.DiGraph:
    """Evaluated networks as a tree: an edge parent -> child carries the transforms between."""
    graph = nx.DiGraph()
    for e in store.all(key):
        graph.add_node(e.net, accuracy=e.accuracy)
        if e.parent is not None:
            graph.add_edge(e.parent, e.net, transforms=e.transforms)
    return graph


def describe_run(run: str, top: int = 5) -> str:
    """A text report of the run folder `run`: settings, the `top` networks, the best's lineage.

    Raises:
        ValueError: `top` < 1.
        FileNotFoundError: `run` is not a run folder (a comparison's folder is named as such).
    """
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise ValueError(f"Expected `top` >= 1, actually: {top!r}")
    folder = Path(run)
    config_path = folder / "config.json"
    if not config_path.exists():
        hint = (
            f"; it holds a comparison: eas-gym compare --report --out {run}"
            if any(Path(run).glob("*/seed-*/config.json"))
            else ""
        )
        raise FileNotFoundError(f"{run} is not a run folder (no config.json){hint}")
    config = json.loads(config_path.read_text())
    children = read_children(folder)
    lines = [f"run {folder}: {config['agent']} on {config['env_id']}, seed {config['seed']}"]
    if not children:
        return "\n".join([*lines, "no networks sampled yet"])
    ranked = sorted(children, key=lambda c: -c["accuracy"])
    hits = sum(c["cache_hit"] for c in children)
    lines.append(f"{len(children)} networks sampled ({hits} from the cache)")
    start = read_summary(folder).get("start_accuracy")
    if start is not None:
        gain = ranked[0]["accuracy"] - start
        lines.append(f"start network {start:.4f}; best {ranked[0]['accuracy']:.4f} ({gain:+.4f})")
    lines.append(f"top {min(top, len(ranked))}:")
    lines += [f"  {c['accuracy']:.4f}  {c['params']:>10,} params  {c['net']}" for c in ranked[:top]]
    store_path = config["store"] or str(folder / "store.sqlite")
    env = gym.make(config["env_id"], **{**config["env_kwargs"], "store": ":memory:"})
    eas = env.unwrapped
    if not isinstance(eas, EASEnv):
        raise TypeError(f"run {folder}: {config['env_id']} is not an EASEnv id")
    read_as_recorded(eas, config)  # a run from another kind of machine: its rows' key
    key, start = eas.config_key, eas.start_arch.to_string()
    env.close()
    if Path(store_path).exists():
        store = EvalStore(store_path)
        graph = lineage_graph(store, key)
        store.close()
        best = ranked[0]["net"]
        if start in graph and best in graph and nx.has_path(graph, start, best):
            lines.append("lineage of the best network:")
            path = nx.shortest_path(graph, start, best)
            lines.append(f"  {path[0]}")
            for parent, child in zip(path, path[1:], strict=False):
                ops = graph.edges[parent, child]["transforms"]
                lines.append(f"  -> {child}   via {_ops(ops)}")
    plot = folder / "search.png"
    if plot.exists():
        lines.append(f"plot: {plot}")
    return "\n".join(lines)


def _ops(transforms: list[dict]) -> str:
    parts = []
    for t in transforms:
        if t["op"] == "wider" and "units" in t:  # DenseNet: growth rates of (block, unit)
            units = ",".join(f"b{u['block']}u{u['unit']}->{u['growth']}" for u in t["units"])
            parts.append(f"wider {units}")
        elif t["op"] == "wider":
            parts.append("wider " + ",".join(f"{k}->{v}" for k, v in t["widths"].items()))
        elif "block" in t:
            parts.append(f"deeper block {t['block']} at {t['position']}")
        else:
            kernel = f" k{t['kernel']}" if t.get("kernel") else ""
            parts.append(f"deeper after {t['layer']}{kernel}")
    return "; ".join(parts) or "(none)"
