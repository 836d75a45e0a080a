"""EAS-Bench's data set: every real ``EAS-CIFAR10-CPU-v2`` training in ``benchmarks/data``.

Read by ``benchmarks/bench_fit.py``. Sources, each record one fine-tune of one child:

* ``cpu_v2_study/AGENT/seed-*/children.jsonl`` (and ``children.partial.jsonl``, an earlier run
  of the same seed) and ``recheck.jsonl`` (fresh fine-tunes of the final policy's networks);
  the start network's accuracy is the run's ``summary.json``'s (seeds 0 and 1 grew from start
  networks of 35.815% and 35.445%, seeds 2-4 from the pinned 36.125% one), except random
  search seed 1's partial records, which grew from the first store's 35.815% network (RESULTS.md).
* ``cpu_v2_long/AGENT/seed-*/children.jsonl`` and ``recheck.jsonl``: records carry their own
  ``start_accuracy``.
* ``preset_probe/NAME.jsonl`` whose ``NAME.json`` settings equal ``-v2``'s (checked against the
  registered kwargs, :func:`probe_matches_v2`): only ``c4-e17-v20k`` today. Its ``retrain``
  records are fresh fine-tunes of random-search episodes.

Kept: every training. Dropped: cache hits (the store served an earlier training) and records
equal to another in start network, lineage, net and accuracy (the same computation run again
bit for bit, e.g. a resumed run that reproduced its earlier records, or the long study's runs
that repeat a 60-network study run on the same start network).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parent / "data"
V2_ID = "EAS-CIFAR10-CPU-v2"
RANDOM_AGENTS = ("random", "probe:random")
PINNED_START = json.loads((DATA / "cpu_v2_study" / "start" / "evaluation.json").read_text())[
    "accuracy"
]
"""The pinned start network's accuracy (36.125%): what a bench query assumes by default."""
PARTIAL_STARTS = {("cpu_v2_study", "random", "seed-1"): 0.35815}
"""Partial records whose run's summary names another start network (RESULTS.md, the study)."""


@dataclass(frozen=True)
class Training:
    """One fine-tune of one child on ``-v2``.

    Args:
        net: Net string.
        accuracy: Validation accuracy in [0, 1].
        start_accuracy: The start network's validation accuracy.
        agent: ``random``, ``evolution``, ``reinforce``, ... or ``probe:POLICY``.
        source: Where it came from: ``STUDY/AGENT/seed-N/FILE`` or ``preset_probe/NAME``.
        kind: ``child`` (a search's child), ``recheck`` or ``retrain`` (fresh fine-tunes).
        lineage: The store's lineage key, when recorded.
    """

    net: str
    accuracy: float
    start_accuracy: float
    agent: str
    source: str
    kind: str
    lineage: str | None = None


def probe_matches_v2(probe: dict[str, Any]) -> bool:
    """Whether a preset probe's env id plus overrides equal ``-v2``'s registered settings."""
    import gymnasium as gym

    import eas_gym  # noqa: F401  (registers the EAS-* ids)

    def settings(env_id: str, overrides: dict[str, Any]) -> dict[str, Any]:
        kwargs = {**gym.spec(env_id).kwargs, **overrides}
        kwargs.pop("data_dir", None)  # where the data lives, not what it is
        return kwargs

    try:
        return settings(probe["env"], probe.get("overrides", {})) == settings(V2_ID, {})
    except gym.error.Error:
        return False


def load_trainings(data: Path = DATA) -> tuple[list[Training], dict[str, Any]]:
    """Every distinct ``-v2`` training under `data`, and how many records each rule dropped."""
    raw: list[Training] = []
    dropped = {"cache_hits": 0, "same_computation": 0}
    for study in ("cpu_v2_study", "cpu_v2_long"):
        runs = (data / study).glob("*/seed-*/*.jsonl")
        for path in sorted(p for p in runs if p.name.startswith(("children", "recheck"))):
            agent, seed = path.parent.parent.name, path.parent.name
            run_start = _summary_start(path.parent)
            if path.name.endswith(".partial.jsonl"):
                run_start = PARTIAL_STARTS.get((study, agent, seed), run_start)
            kind = "recheck" if path.name.startswith("recheck") else "child"
            for record in _read_jsonl(path):
                if record.get("cache_hit"):
                    dropped["cache_hits"] += 1
                    continue
                start = record.get("start_accuracy", run_start)
                if start is None:
                    raise ValueError(f"{path}: no start accuracy in the record or summary.json")
                raw.append(
                    Training(
                        net=record["net"],
                        accuracy=float(record["accuracy"]),
                        start_accuracy=float(start),
                        agent=agent,
                        source=f"{study}/{agent}/{seed}/{path.name}",
                        kind=kind,
                        lineage=record.get("lineage"),
                    )
                )
    probes = []
    for summary in sorted((data / "preset_probe").glob("*.json")):
        if not probe_matches_v2(json.loads(summary.read_text())):
            continue
        probes.append(summary.stem)
        for record in _read_jsonl(summary.with_suffix(".jsonl")):
            if record.get("cache_hit"):
                dropped["cache_hits"] += 1
                continue
            retrain = record["kind"] == "retrain"
            raw.append(
                Training(
                    net=record["net"],
                    accuracy=float(record["accuracy"]),
                    start_accuracy=float(record["start_accuracy"]),
                    agent="probe:random" if retrain else f"probe:{record['policy']}",
                    source=f"preset_probe/{summary.stem}",
                    kind="retrain" if retrain else "child",
                )
            )
    seen: set[tuple[Any, ...]] = set()
    trainings = []
    for t in raw:
        key = (t.start_accuracy, t.lineage, t.net, t.accuracy)
        if t.lineage is not None and key in seen:
            dropped["same_computation"] += 1
            continue
        seen.add(key)
        trainings.append(t)
    return trainings, {"probes_matching_v2": probes, "dropped": dropped}


def counts(trainings: list[Training]) -> dict[str, Any]:
    """Trainings and distinct nets, in all and by agent, kind and start network."""

    def tally(key: str) -> dict[str, dict[str, int]]:
        groups: dict[str, list[Training]] = {}
        for t in trainings:
            groups.setdefault(str(getattr(t, key)), []).append(t)
        return {
            k: {"trainings": len(v), "nets": len({t.net for t in v})}
            for k, v in sorted(groups.items())
        }

    per_net: dict[str, int] = {}
    for t in trainings:
        per_net[t.net] = per_net.get(t.net, 0) + 1
    return {
        "trainings": len(trainings),
        "nets": len(per_net),
        "nets_trained_twice_or_more": sum(n >= 2 for n in per_net.values()),
        "by_agent": tally("agent"),
        "by_kind": tally("kind"),
        "by_start_accuracy": tally("start_accuracy"),
    }


def _summary_start(run: Path) -> float | None:
    summary = run / "summary.json"
    if not summary.exists():
        return None
    return json.loads(summary.read_text()).get("start_accuracy")


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    lines = path.read_text().splitlines()
    records = []
    for i, line in enumerate(lines):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if i < len(lines) - 1:  # only a run still writing may leave a torn last line
                raise
    return records
