"""Run an SB3 baseline into a run folder (see :mod:`agents.runner`), saving after each rollout.

A rollout holds one whole episode per environment, so after each rollout the model is saved
with the count of sampled networks. A rerun loads the model and learns for the rest of the
budget. SB3's rollout buffer and RNG are not restored, so a resumed run is close to, not equal
to, an uninterrupted one; children trained before the stop are found in the store.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from stable_baselines3.common.callbacks import BaseCallback

from agents.sb3 import algo_class, make_sb3_model, make_sb3_vec_env

__all__ = ["run_sb3"]


class _RecordChildren(BaseCallback):
    """Appends each finished episode's network to ``children.jsonl``; saves per rollout."""

    def __init__(self, out: Path, children: list[dict[str, Any]], batch: int) -> None:
        super().__init__()
        self.out, self.children, self.batch = out, children, batch
        self.log = open(out / "children.jsonl", "a")  # closed at training end

    def _on_step(self) -> bool:
        for i, (info, done) in enumerate(
            zip(self.locals["infos"], self.locals["dones"], strict=True)
        ):
            if done:
                record = {
                    "update": len(self.children) // self.batch,
                    "env": i,
                    "net": info["net"],
                    "accuracy": float(info["accuracy"]),
                    "params": int(info["params"]),
                    "flops": int(info["flops"]),
                    "return": float(info["episode"]["r"]),
                    "cache_hit": bool(info["cache_hit"]),
                    "train_seconds": float(info["train_seconds"]),
                }
                self.children.append(record)
                self.log.write(json.dumps(record) + "\n")
        self.log.flush()
        return True

    def _on_rollout_start(self) -> None:
        # The previous rollout's update has been applied by now (on_rollout_end comes before it).
        if self.num_timesteps > 0:
            self._save()

    def _on_training_end(self) -> None:
        self._save()
        self.log.close()

    def _save(self) -> None:
        self.model.save(self.out / "sb3_model.zip")
        (self.out / "sb3_state.json").write_text(json.dumps({"nets": len(self.children)}))


def run_sb3(args: Any, out: Path, env_kwargs: dict[str, Any]) -> list[dict[str, Any]]:
    """Train ``args.agent`` (ppo, a2c or maskable-ppo) until ``args.nets`` networks are sampled."""
    from agents.runner import _write_lines, read_children

    venv = make_sb3_vec_env(args.env_id, args.batch, seed=args.seed, env_kwargs=env_kwargs)
    episode_length = len(venv.get_attr("schedule", indices=0)[0])
    total = math.ceil(args.nets / args.batch) * args.batch
    done = 0
    if (out / "sb3_model.zip").exists() and (out / "sb3_state.json").exists():
        model = algo_class(args.agent).load(out / "sb3_model.zip", env=venv)
        done = json.loads((out / "sb3_state.json").read_text())["nets"]
    else:
        model = make_sb3_model(args.agent, venv, seed=args.seed)
    children = read_children(out)[:done]
    _write_lines(out / "children.jsonl", children)
    if done < total:
        callback = _RecordChildren(out, children, args.batch)
        model.learn(
            total_timesteps=(total - done) * episode_length,
            callback=callback,
            reset_num_timesteps=False,
            progress_bar=False,
        )
    venv.close()
    return children
