"""Extending a run kept without its checkpoint: its earlier networks are replayed, not retrained.

Study data in a repository keeps an unfinished run's records but not its checkpoint (the
agent's state, local to one machine). :func:`agents.run_folder.set_aside_unfinished` renames
the records ``children.partial.jsonl`` and the run starts again from its seed. With the same
seed, start network and agent, it reaches the same networks by the same lineages, and a
lineage decides a child's accuracy (the env's ``cache_by="lineage"``). So before the run
starts, :func:`seed_store` writes the earlier records into the run's store as evaluations:
the rerun finds them there and trains only what comes after them. :meth:`Replay.restore` then
gives each reproduced record back its original provenance (not a cache hit, its fine-tune's
seconds), so the records read as if the run had never stopped.

Only records whose start network has the current start's weights digest are written: a
different start network (trained again elsewhere) would make the lineages lie.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from agents.run_folder import read_jsonl

if TYPE_CHECKING:
    from eas_gym.env import EASEnv

__all__ = ["PARTIAL", "Replay", "load_replay", "seed_store"]

PARTIAL = "children.partial.jsonl"
"""An unfinished run's earlier records, set aside by ``set_aside_unfinished``."""

_PROVENANCE = ("cache_hit", "train_seconds", "cpu_seconds")
_IDENTITY = ("net", "lineage", "accuracy", "params", "flops", "actions")


@dataclass
class Replay:
    """The earlier records of a run that starts again, and how many the rerun reproduced."""

    records: list[dict[str, Any]]
    source: Path
    replayed: int = 0
    diverged_at: int | None = None

    def restore(self, batch: list[dict[str, Any]], position: int) -> list[dict[str, Any]]:
        """`batch` (records from `position` on), each reproduced one with its first provenance.

        A record is reproduced when its network, lineage, accuracy, size and actions equal the
        earlier record at its position; from the first that does not, records are new.
        """
        restored = []
        for offset, record in enumerate(batch):
            index = position + offset
            earlier = self.records[index] if index < len(self.records) else None
            same = (
                self.diverged_at is None
                and earlier is not None
                and all(record.get(k) == earlier.get(k) for k in _IDENTITY)
            )
            if same:
                assert earlier is not None
                record = {**record, **{k: earlier[k] for k in _PROVENANCE if k in earlier}}
                self.replayed += 1
            elif earlier is not None and self.diverged_at is None:
                self.diverged_at = index
            restored.append(record)
        return restored


def load_replay(out: Path) -> Replay | None:
    """The run folder's set-aside records (``children.partial.jsonl``), or None if it has none."""
    source = out / PARTIAL
    records = read_jsonl(source)
    return Replay(records, source) if records else None


def seed_store(
    replay: Replay, env_id: str, env_kwargs: Mapping[str, Any], *, check_start: bool = True
) -> int:
    """Write `replay`'s records into the store of `env_kwargs` as evaluations; how many.

    The env is made here (and its start network trained or loaded, as the run would) to get
    its configuration key and its start's weights digest. Records grown from another start
    network, or without a lineage, are skipped; an env that does not cache (``cache=False``)
    or has a weightless evaluator gets nothing (its runs do not train, or read no store).
    """
    import gymnasium as gym

    from eas_gym.net2net import state_digest
    from eas_gym.store import Evaluation, open_store

    env = gym.make(env_id, **dict(env_kwargs))
    try:
        eas = cast("EASEnv", env.unwrapped)  # every EAS-* id's entry point
        scorer = eas.scorer
        if eas.weightless or not scorer.cache or scorer.cache_by != "lineage":
            return 0
        digest = state_digest(scorer.start()[0]) if check_start else None
        key = eas.config_key
    finally:
        env.close()
    usable = [
        r
        for r in replay.records
        if r.get("lineage")
        and r.get("start_digest")
        and (digest is None or r["start_digest"] == digest)
    ]
    if len(usable) < len(replay.records):
        warnings.warn(
            f"{replay.source}: {len(replay.records) - len(usable)} of {len(replay.records)} "
            "records have no lineage or grew from another start network; they will be trained "
            "again",
            stacklevel=2,
        )
    store = open_store(env_kwargs["store"])
    try:
        for record in usable:
            store.put(
                Evaluation(
                    net=record["net"],
                    config_key=key,
                    accuracy=float(record["accuracy"]),
                    params=record.get("params"),
                    flops=record.get("flops"),
                    seconds=record.get("train_seconds"),
                    config={"replayed_from": str(replay.source)},
                    lineage=record["lineage"],
                    start_digest=record["start_digest"],
                )
            )
    finally:
        store.close()
    return len(usable)
