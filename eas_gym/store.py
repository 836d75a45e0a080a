"""The evaluation store: every evaluated child in SQLite, weights on disk, shared by processes.

A child is identified by its net string and a *configuration key* (a hash of everything else
that decides its accuracy: dataset, split sizes, image size, training configuration, start
network). A child whose ``(net, config_key)`` is already stored is not trained again, as in the
paper. Several processes (a vector env of 10, Ray workers) can read and write one store: SQLite
runs in WAL mode with a busy timeout, inserts are idempotent, weight files are written
atomically, and :meth:`EvalStore.lock` serialises work that must happen once (training the start
network).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from eas_gym.net import StateDict

__all__ = ["Evaluation", "EvalStore", "config_key", "default_store_path", "open_store"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS evaluations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    net TEXT NOT NULL,
    config_key TEXT NOT NULL,
    parent TEXT,
    transforms TEXT NOT NULL DEFAULT '[]',
    accuracy REAL NOT NULL,
    loss REAL,
    params INTEGER,
    flops INTEGER,
    seconds REAL,
    config TEXT NOT NULL DEFAULT '{}',
    seed INTEGER,
    diverged INTEGER NOT NULL DEFAULT 0,
    oom INTEGER NOT NULL DEFAULT 0,
    weights TEXT,
    created REAL NOT NULL,
    UNIQUE (net, config_key)
);
"""


def default_store_path() -> Path:
    """``$EAS_CACHE_DIR/store.sqlite``, else ``$XDG_CACHE_HOME/eas_gym/store.sqlite``."""
    if env := os.environ.get("EAS_CACHE_DIR"):
        return Path(env).expanduser() / "store.sqlite"
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "eas_gym" / "store.sqlite"


def config_key(config: Mapping[str, Any]) -> str:
    """A short stable hash of a JSON-able configuration."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Evaluation:
    """One evaluated child.

    Args:
        net: Net string (``Arch.to_string()``).
        config_key: See :func:`config_key`.
        accuracy: Validation accuracy in [0, 1].
        loss: Validation loss.
        params: Trainable parameters.
        flops: Multiply-adds per image.
        seconds: Wall time of its fine-tune and evaluation.
        parent: The parent's net string.
        transforms: The transforms that made it from the parent, as JSON-able records.
        config: The full configuration (for people; the key is what matches).
        seed: The seed of its training.
        diverged: Training stopped on a non-finite loss.
        oom: Training ran out of device memory (not served as a cache hit).
        weights: Path of its saved weights, relative to the store's folder, if kept.
    """

    net: str
    config_key: str
    accuracy: float
    loss: float | None = None
    params: int | None = None
    flops: int | None = None
    seconds: float | None = None
    parent: str | None = None
    transforms: list[dict[str, Any]] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    diverged: bool = False
    oom: bool = False
    weights: str | None = None


class EvalStore:
    """SQLite-backed evaluation cache and run record.

    Args:
        path: The database file (its folder also holds ``weights/`` and ``locks/``), or
            ``":memory:"`` for a private, non-persistent store.

    Example:
        >>> store = EvalStore(":memory:")
        >>> store.put(Evaluation("C4-3 GAP", "k", 0.5))
        >>> store.get("C4-3 GAP", "k").accuracy
        0.5
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = str(path)
        if self.path == ":memory:":
            self.root = Path(tempfile.mkdtemp(prefix="eas_gym_store_"))
        else:
            self.root = Path(self.path).expanduser().resolve().parent
            self.root.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        # Switching a new database to WAL fails at once ("database is locked") rather than
        # waiting when another process opens it at the same moment: one process at a time.
        with self.lock(f"open-{self.path}"):
            if self.path != ":memory:":
                self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.executescript(_SCHEMA)

    def get(self, net: str, key: str) -> Evaluation | None:
        """The stored evaluation of `net` under `key`, or None (OOM results do not count)."""
        row = self._conn.execute(
            "SELECT * FROM evaluations WHERE net = ? AND config_key = ? AND oom = 0", (net, key)
        ).fetchone()
        return None if row is None else _from_row(row)

    def put(self, evaluation: Evaluation) -> None:
        """Record `evaluation`; an existing ``(net, config_key)`` is kept unless it was an OOM."""
        record = asdict(evaluation)
        record["transforms"] = json.dumps(record["transforms"])
        record["config"] = json.dumps(record["config"], sort_keys=True, default=str)
        record["created"] = time.time()
        columns = ", ".join(record)
        marks = ", ".join("?" for _ in record)
        updates = ", ".join(f"{c} = excluded.{c}" for c in record)
        # First writer wins, except that a real result replaces an out-of-memory one.
        self._conn.execute(
            f"INSERT INTO evaluations ({columns}) VALUES ({marks}) ON CONFLICT (net, config_key) "
            f"DO UPDATE SET {updates} WHERE evaluations.oom = 1",
            tuple(record.values()),
        )

    def all(self, key: str | None = None) -> list[Evaluation]:
        """Every stored evaluation (under `key` if given), oldest first."""
        query, args = "SELECT * FROM evaluations", ()
        if key is not None:
            query, args = query + " WHERE config_key = ?", (key,)
        return [_from_row(r) for r in self._conn.execute(query + " ORDER BY id", args)]

    def __len__(self) -> int:
        return self._conn.execute("SELECT COUNT(*) FROM evaluations").fetchone()[0]

    # ---- weights -------------------------------------------------------------------------

    def save_weights(self, net: str, key: str, state: StateDict) -> str:
        """Write `state` atomically; returns its path relative to the store's folder."""
        # One file per write: if two writers ever race, each row points at its own weights.
        name = f"weights/{config_key({'net': net, 'key': key})}-{uuid.uuid4().hex[:8]}.pt"
        target = self.root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
        os.close(fd)
        torch.save({k: v.detach().cpu() for k, v in state.items()}, tmp)
        os.replace(tmp, target)
        return name

    def load_weights(self, evaluation: Evaluation) -> StateDict | None:
        """The saved weights of `evaluation` (on CPU), or None if none were kept."""
        if evaluation.weights is None or not (self.root / evaluation.weights).exists():
            return None
        return torch.load(self.root / evaluation.weights, map_location="cpu", weights_only=True)

    @contextlib.contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """An exclusive inter-process lock (POSIX ``flock``; a no-op where that is missing)."""
        try:
            import fcntl
        except ImportError:  # Windows: single-process use only
            yield
            return
        path = self.root / "locks" / f"{config_key({'lock': name})}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def close(self) -> None:
        """Close the database connection (and delete a ``":memory:"`` store's weight folder)."""
        self._conn.close()
        if self.path == ":memory:":
            shutil.rmtree(self.root, ignore_errors=True)

    def __getstate__(self) -> dict[str, str]:
        return {"path": self.path}

    def __setstate__(self, state: dict[str, str]) -> None:
        self.__init__(state["path"])


def _from_row(row: sqlite3.Row) -> Evaluation:
    values = dict(row)
    values.pop("id")
    values.pop("created")
    values["transforms"] = json.loads(values["transforms"])
    values["config"] = json.loads(values["config"])
    values["diverged"] = bool(values["diverged"])
    values["oom"] = bool(values["oom"])
    return Evaluation(**values)


def open_store(path: str | os.PathLike[str]) -> Any:
    """The store at `path`: a file or ``":memory:"``, or a Ray store service.

    ``"ray-store:<name>"`` gives a :class:`~eas_gym.ray_store.RemoteStore` served by that Ray
    actor (multi-node searches); anything else an :class:`EvalStore`.
    """
    path = str(path)
    if path.startswith("ray-store:"):
        from eas_gym.ray_store import RemoteStore

        return RemoteStore(path)
    return EvalStore(path)
