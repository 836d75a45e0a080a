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
import importlib
import io
import json
import os
import shutil
import sqlite3
import tempfile
import time
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from eas_gym.net import StateDict
from eas_gym.store_types import BY_NET, Evaluation, Store

__all__ = [
    "BY_NET",
    "SCHEMA_VERSION",
    "SERVICE_PREFIX",
    "Evaluation",
    "EvalStore",
    "Store",
    "StoreError",
    "config_key",
    "default_store_path",
    "open_store",
    "write_atomically",
]

SCHEMA_VERSION = 3
"""The store's layout (``PRAGMA user_version``). 0: eas_gym 0.1.0, one row per (net, config);
2: a ``lineage`` column, one row per (net, config, lineage); 3: a ``start_digest`` column, one
row per (net, config, lineage, start weights). Older stores are migrated on open: their rows
keep ``lineage = ''`` (0: the paper's net-string cache, see :data:`BY_NET`) and
``start_digest = ''`` (their start network's weights are unknown)."""

CHILD_LOCK_FILES = 64
"""Lock files shared by the per-child locks (see :meth:`EvalStore.lock`)."""

SERVICE_PREFIX = "ray-store:"
"""A store address starting with this names a store service actor (:mod:`eas_gym.ray_store`)."""

# The service's client, found by name as gymnasium finds an env by its entry point: it builds on
# this module (the service owns an EvalStore), so this module must not import it.
_SERVICE_CLIENT = "eas_gym.ray_store:RemoteStore"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS evaluations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    net TEXT NOT NULL,
    config_key TEXT NOT NULL,
    lineage TEXT NOT NULL DEFAULT '',
    start_digest TEXT NOT NULL DEFAULT '',
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
    UNIQUE (net, config_key, lineage, start_digest)
);
"""
_COLUMNS_V0 = (
    "id, net, config_key, parent, transforms, accuracy, loss, params, flops, seconds, config, "
    "seed, diverged, oom, weights, created"
)
_COLUMNS_V2 = _COLUMNS_V0 + ", lineage"


class StoreError(ValueError):
    """A store, or a file it points to, is damaged, foreign or unreachable (the message says)."""


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
        self._open(path)

    def _open(self, path: str | os.PathLike[str]) -> None:
        if not isinstance(path, str | os.PathLike) or not str(path):
            raise TypeError(f"Expected `store` to be a path or ':memory:', actually: {path!r}")
        self.path = str(path)
        if self.path == ":memory:":
            self.root = Path(tempfile.mkdtemp(prefix="eas_gym_store_"))
        else:
            file = Path(self.path).expanduser()
            if file.is_dir():
                raise StoreError(
                    f"store {self.path} is a folder; pass a file path such as "
                    f"{file / 'store.sqlite'}"
                )
            self.root = file.resolve().parent
            try:
                self.root.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise StoreError(f"cannot create the store's folder {self.root}: {e}") from e
        was_empty = self.path != ":memory:" and _is_empty_file(self.path)
        try:
            self._conn = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
            self._conn.row_factory = sqlite3.Row
            # Switching a new database to WAL fails at once ("database is locked") rather than
            # waiting when another process opens it at the same moment: one process at a time.
            with self.lock(f"open-{self.path}"):
                # Checked again under the lock: another process opening a new store at the same
                # moment leaves an empty file for an instant, which is no damage.
                if was_empty and _is_empty_file(self.path):
                    warnings.warn(
                        f"store {self.path} is an empty file: starting a new store there",
                        stacklevel=2,
                    )
                if self.path != ":memory:":
                    self._conn.execute("PRAGMA journal_mode=WAL")
                self._migrate()
        except sqlite3.DatabaseError as e:
            raise StoreError(f"store {self.path} cannot be opened as an eas_gym store: {e}") from e

    def _migrate(self) -> None:
        """Create the tables, or bring a store written by an older release to this layout."""
        version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"store {self.path} has layout {version}, newer than this eas_gym's "
                f"{SCHEMA_VERSION}: upgrade eas_gym"
            )
        tables = {r[0] for r in self._conn.execute("SELECT name FROM sqlite_master")}
        if "evaluations" in tables and version < 3:
            # 0.1.0 had UNIQUE (net, config_key) and no lineage, layout 2 no start digest:
            # rebuild the table with the new key, keeping every row.
            columns = _COLUMNS_V0 if version < 2 else _COLUMNS_V2
            self._conn.executescript(
                "BEGIN; ALTER TABLE evaluations RENAME TO evaluations_old;"
                + _SCHEMA
                + f"INSERT INTO evaluations ({columns}) "
                f"SELECT {columns} FROM evaluations_old; DROP TABLE evaluations_old; COMMIT;"
            )
        else:
            self._conn.executescript(_SCHEMA)
        self._conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def get(
        self, net: str, key: str, lineage: str = BY_NET, start_digest: str = ""
    ) -> Evaluation | None:
        """The stored evaluation of `net` under `key`, `lineage` and `start_digest`, or None.

        `lineage` :data:`BY_NET` finds the net-string cache row (the paper's cache);
        `start_digest` ``""`` a start network's row, or one written before layout 3. Rows of a
        network that ran out of memory don't count.
        """
        row = self._conn.execute(
            "SELECT * FROM evaluations WHERE net = ? AND config_key = ? AND lineage = ? "
            "AND start_digest = ? AND oom = 0",
            (net, key, lineage, start_digest),
        ).fetchone()
        return None if row is None else _from_row(row)

    def with_weights(self, net: str, key: str, start_digest: str = "") -> Evaluation | None:
        """The newest evaluation of `net` under `key` and `start_digest` with kept weights."""
        row = self._conn.execute(
            "SELECT * FROM evaluations WHERE net = ? AND config_key = ? AND start_digest = ? "
            "AND oom = 0 AND weights IS NOT NULL ORDER BY id DESC LIMIT 1",
            (net, key, start_digest),
        ).fetchone()
        return None if row is None else _from_row(row)

    @contextlib.contextmanager
    def _writing(self, what: str) -> Iterator[None]:
        """Turn a failed write (read-only file or folder, full disk) into a StoreError."""
        try:
            yield
        except (sqlite3.OperationalError, OSError) as e:
            raise StoreError(
                f"store {self.path} cannot save {what}: {e} (is the store or its folder "
                f"{self.root} read-only, or the disk full?)"
            ) from e

    def put(self, evaluation: Evaluation) -> None:
        """Record `evaluation`; an existing row of the same key is kept unless it is OOM's.

        The key: (net, config key, lineage, start digest).
        """
        record = asdict(evaluation)
        record["transforms"] = json.dumps(record["transforms"])
        record["config"] = json.dumps(record["config"], sort_keys=True, default=str)
        record["created"] = time.time()
        columns = ", ".join(record)
        marks = ", ".join("?" for _ in record)
        updates = ", ".join(f"{c} = excluded.{c}" for c in record)
        # First writer wins, except that a real result replaces an out-of-memory one.
        with self._writing(f"the evaluation of {evaluation.net}"):
            self._conn.execute(
                f"INSERT INTO evaluations ({columns}) VALUES ({marks}) "
                f"ON CONFLICT (net, config_key, lineage, start_digest) "
                f"DO UPDATE SET {updates} WHERE evaluations.oom = 1",
                tuple(record.values()),
            )

    def set_weights(self, evaluation: Evaluation, weights: str) -> None:
        """Point `evaluation`'s row at new weights, with `evaluation`'s accuracy for them.

        For a network whose weights file was lost and that was trained again.
        """
        with self._writing(f"the weights of {evaluation.net}"):
            self._conn.execute(
                "UPDATE evaluations SET weights = ?, accuracy = ? WHERE net = ? "
                "AND config_key = ? AND lineage = ?",
                (
                    weights,
                    evaluation.accuracy,
                    evaluation.net,
                    evaluation.config_key,
                    evaluation.lineage,
                ),
            )

    def all(self, key: str | None = None) -> list[Evaluation]:
        """Every stored evaluation (under `key` if given), oldest first."""
        where, args = ("", ()) if key is None else (" WHERE config_key = ?", (key,))
        query = f"SELECT * FROM evaluations{where} ORDER BY id"
        return [_from_row(r) for r in self._conn.execute(query, args)]

    def __len__(self) -> int:
        return self._conn.execute("SELECT COUNT(*) FROM evaluations").fetchone()[0]

    # ---- weights -------------------------------------------------------------------------

    def save_weights(self, net: str, key: str, state: StateDict) -> str:
        """Write `state` atomically; returns its path relative to the store's folder.

        The file is named by the SHA-256 of its bytes, which :meth:`load_weights` checks.
        """
        buffer = io.BytesIO()
        torch.save({k: v.detach().cpu() for k, v in state.items()}, buffer)
        data = buffer.getvalue()
        name = f"weights/sha256-{hashlib.sha256(data).hexdigest()[:40]}.pt"
        target = self.root / name
        with self._writing(f"the weights of {net}"):
            write_atomically(target, data)
        return name

    def load_weights(self, evaluation: Evaluation) -> StateDict | None:
        """The saved weights of `evaluation` (on CPU); None if none were kept or the file is gone.

        Raises:
            StoreError: The path leaves the store's folder, the file does not match its
                checksum, or it is not a weights file this project wrote.
        """
        if evaluation.weights is None:
            return None
        path = (self.root / evaluation.weights).resolve()
        if not path.is_relative_to(self.root.resolve()) or Path(evaluation.weights).is_absolute():
            raise StoreError(
                f"store {self.path}: weights path {evaluation.weights!r} of {evaluation.net} "
                "leads outside the store's folder; refused"
            )
        if not path.exists():
            warnings.warn(
                f"store {self.path}: the weights file {evaluation.weights} of {evaluation.net} "
                "is missing",
                stacklevel=2,
            )
            return None
        data = path.read_bytes()
        expected = _checksum_of(evaluation.weights)
        if expected is not None and not hashlib.sha256(data).hexdigest().startswith(expected):
            raise StoreError(f"weights file {path} does not match its checksum: it was altered")
        try:
            return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except Exception as e:  # torch raises several kinds on a damaged or foreign file
            raise StoreError(f"weights file {path} cannot be read as weights: {e}") from e

    @contextlib.contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """An exclusive inter-process lock (POSIX ``flock``; a no-op where that is missing).

        Lock files live in ``locks/`` beside the database. Names starting ``child-`` (one per
        evaluated child, never held two at a time) share :data:`CHILD_LOCK_FILES` files, so
        the folder stays small; two children in one file only wait for each other.
        """
        try:
            import fcntl
        except ImportError:  # Windows: single-process use only
            yield
            return
        digest = config_key({"lock": name})
        if name.startswith("child-"):
            digest = f"child-{int(digest, 16) % CHILD_LOCK_FILES}"
        path = self.root / "locks" / f"{digest}.lock"
        with self._writing(f"the lock {name!r}"):
            path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(path, "w")  # noqa: SIM115  (closed below, after the lock's body)
        with handle:
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
        self._open(state["path"])


def write_atomically(target: Path, data: bytes) -> None:
    """Write `data` to `target` through a temp file and a rename: all of it or nothing.

    Creates `target`'s folder; raises OSError as the file system does.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, target)
    except OSError:
        Path(tmp).unlink(missing_ok=True)  # no half-written file left behind
        raise


def _checksum_of(name: str) -> str | None:
    """The SHA-256 prefix in a weights file name (None for 0.1.0's unchecked names)."""
    stem = Path(name).stem
    return stem.removeprefix("sha256-") if stem.startswith("sha256-") else None


def _from_row(row: sqlite3.Row) -> Evaluation:
    values = dict(row)
    values.pop("id")
    values.pop("created")
    values["transforms"] = json.loads(values["transforms"])
    values["config"] = json.loads(values["config"])
    values["diverged"] = bool(values["diverged"])
    values["oom"] = bool(values["oom"])
    return Evaluation(**values)


def _is_empty_file(path: str) -> bool:
    file = Path(path).expanduser()
    return file.is_file() and file.stat().st_size == 0


def open_store(path: str | os.PathLike[str]) -> Store:
    """The store at `path`: a file or ``":memory:"``, or a Ray store service.

    ``"ray-store:<name>"`` (:data:`SERVICE_PREFIX`) gives a :class:`~eas_gym.ray_store.RemoteStore`
    served by that Ray actor (multi-node searches); anything else an :class:`EvalStore`.
    """
    path = str(path)
    if path.startswith(SERVICE_PREFIX):
        module, _, name = _SERVICE_CLIENT.partition(":")
        return getattr(importlib.import_module(module), name)(path)
    return EvalStore(path)
