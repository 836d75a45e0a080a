"""Every update's metrics: ``OUT/metrics.jsonl`` and, on request, TensorBoard event files.

One line per agent update, written after the update's checkpoint (as ``children.jsonl``), with
cleanrl's key habit: the agent's own metrics as :meth:`agents.base.Agent.update` returns them
(``losses/...``, ``charts/...``), and per update

* ``charts/batch_mean_acc``, ``charts/batch_best_acc``: the batch's validation accuracies;
* ``charts/batch_mean_params``: the batch's mean parameter count;
* ``search/best_acc``: the best accuracy of the search so far;
* ``charts/update_wall_seconds``, ``charts/update_cpu_seconds``: the update's wall time and this
  process's CPU time; ``charts/train_cpu_seconds``: the CPU seconds of the batch's fine-tunes
  (worker processes too, from the child records); ``charts/agent_cpu_seconds``: the CPU seconds
  spent in the agent's own code (``act``, ``observe``, its hooks and ``update``,
  :class:`AgentClock`).

Each line also holds ``update`` (0-based) and ``nets`` (networks so far: the TensorBoard step,
as cleanrl's ``global_step``). The checkpoint keeps the last line, so at a resume the file is
made to hold exactly one line per finished update (an unfinished update's line dropped, a line
lost to a stop between checkpoint and write restored). With ``--tensorboard`` the same values go
to ``OUT/tensorboard/`` (``tensorboard --logdir OUT``), purged past the checkpoint at a resume.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from agents.run_folder import write_jsonl

__all__ = [
    "METRICS_FILE",
    "TENSORBOARD_DIR",
    "AgentClock",
    "MetricsLog",
    "agent_cpu_seconds",
    "check_tensorboard",
    "update_metrics",
]

METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"


def check_tensorboard() -> None:
    """Raise ValueError (one line naming the extra) if TensorBoard's writer cannot be imported."""
    try:
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError as e:
        raise ValueError(
            "--tensorboard needs the tensorboard package: pip install 'eas-gym[tb]'"
        ) from e


class AgentClock:
    """Process CPU seconds spent in the agent's own code, summed until :meth:`lap`.

    Timed with ``time.process_time`` around the agent's calls only: the children's training
    (inside ``envs.step``) falls outside, in this process or in workers.
    """

    def __init__(self) -> None:
        self.seconds = 0.0

    @contextlib.contextmanager
    def timing(self) -> Iterator[None]:
        """Count the block's CPU time."""
        start = time.process_time()
        try:
            yield
        finally:
            self.seconds += time.process_time() - start

    def lap(self) -> float:
        """The seconds counted since the last lap; starts again from zero."""
        seconds, self.seconds = self.seconds, 0.0
        return seconds


def agent_cpu_seconds(out: Path) -> float | None:
    """The agent's CPU seconds over a run's updates (``metrics.jsonl``); None if not logged."""
    path = out / METRICS_FILE
    if not path.exists():
        return None
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    values = [line.get("charts/agent_cpu_seconds") for line in lines]
    if not values or any(v is None for v in values):
        return None  # a run logged before the agent's time was
    return float(sum(values))


def update_metrics(
    update: int,
    batch: list[dict[str, Any]],
    children: list[dict[str, Any]],
    agent_metrics: dict[str, float],
    wall_seconds: float,
    cpu_seconds: float,
    agent_seconds: float | None = None,
) -> dict[str, Any]:
    """The metrics line of one update.

    Args:
        update: The update's index (0-based).
        batch: The update's child records.
        children: Every child record so far, `batch` included.
        agent_metrics: What the agent's ``update()`` returned.
        wall_seconds: The update's wall time.
        cpu_seconds: This process's CPU time during the update.
        agent_seconds: CPU time in the agent's own code (:class:`AgentClock`); None: not timed.
    """
    accuracies = [float(c["accuracy"]) for c in batch]
    timed = {} if agent_seconds is None else {"charts/agent_cpu_seconds": float(agent_seconds)}
    return {
        "update": int(update),
        "nets": len(children),
        **{str(k): float(v) for k, v in agent_metrics.items()},
        "charts/batch_mean_acc": sum(accuracies) / len(accuracies),
        "charts/batch_best_acc": max(accuracies),
        "charts/batch_mean_params": sum(float(c["params"]) for c in batch) / len(batch),
        "search/best_acc": max(float(c["accuracy"]) for c in children),
        "charts/update_wall_seconds": float(wall_seconds),
        "charts/update_cpu_seconds": float(cpu_seconds),
        "charts/train_cpu_seconds": sum(float(c.get("cpu_seconds", 0.0)) for c in batch),
        **timed,
    }


class MetricsLog:
    """Appends each update's metrics to ``metrics.jsonl`` (and TensorBoard, if asked)."""

    def __init__(
        self, out: Path, done: int, last: dict[str, Any] | None, *, tensorboard: bool = False
    ) -> None:
        """Open the log of a search that has finished `done` updates.

        Args:
            out: The run folder.
            done: Updates finished (checkpointed).
            last: The checkpoint's copy of update ``done - 1``'s line, if it has one.
            tensorboard: Also write TensorBoard event files to ``out/tensorboard``.
        """
        self.path = out / METRICS_FILE
        self._repair(done, last)
        self.writer = None
        self.clock = time.perf_counter(), time.process_time()
        if tensorboard:
            check_tensorboard()
            from torch.utils.tensorboard import SummaryWriter

            purge = None if last is None else int(last["nets"]) + 1
            self.writer = SummaryWriter(str(out / TENSORBOARD_DIR), purge_step=purge)

    def lap(self) -> tuple[float, float]:
        """(wall, CPU) seconds since the log was opened or the last lap; restarts the clock."""
        wall, cpu = time.perf_counter(), time.process_time()
        elapsed = wall - self.clock[0], cpu - self.clock[1]
        self.clock = wall, cpu
        return elapsed

    def write(self, line: dict[str, Any]) -> None:
        """Append one update's line (call it after the update's checkpoint)."""
        with open(self.path, "a") as log:
            log.write(json.dumps(line) + "\n")
        if self.writer is not None:
            step = int(line["nets"])
            for key, value in line.items():
                if key not in ("update", "nets") and math.isfinite(value):
                    self.writer.add_scalar(key, value, step)
            self.writer.flush()

    def close(self) -> None:
        """Close the TensorBoard writer, if any."""
        if self.writer is not None:
            self.writer.close()

    def _repair(self, done: int, last: dict[str, Any] | None) -> None:
        """Keep one line per finished update: drop later and damaged ones, restore the last."""
        lines: dict[int, dict[str, Any]] = {}
        damaged = False
        if self.path.exists():
            for text in self.path.read_text(errors="replace").splitlines():
                try:
                    line = json.loads(text)
                    lines.setdefault(int(line["update"]), line)
                except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                    damaged = damaged or bool(text.strip())
        if last is not None:
            lines[int(last["update"])] = last
        kept = [lines[u] for u in sorted(lines) if u < done]
        if damaged:
            warnings.warn(f"{self.path}: damaged lines dropped", stacklevel=3)
        canonical = "".join(json.dumps(r) + "\n" for r in kept)
        if self.path.exists() and self.path.read_text(errors="replace") == canonical:
            return
        if kept or self.path.exists():
            write_jsonl(self.path, kept)
