"""The run folder: its settings, its checkpoint and its child records, written so nothing is lost.

A run folder holds:

* ``config.json``: the search's settings; a rerun must match them, except the budget, the
  executor, progress and where things live (``out``, ``store``, the data folder);
* ``checkpoint.pt``: the agent's state *and every child record so far* (the exact text of
  ``children.jsonl``, extended update by update: see :func:`records_text`), written atomically
  (temp file + rename) after each update and read with ``torch.load(weights_only=True)``, so a
  file from elsewhere cannot run code;
* ``children.jsonl``: one line per sampled network, a readable copy of the checkpoint's records,
  appended after each update and rewritten atomically from the checkpoint at every start (a
  damaged or truncated copy is repaired from it, with a warning naming the file and line);
* ``recheck.jsonl``: the honest re-evaluation's records, if one was run (same scheme, with
  ``recheck.pt``);
* ``run.lock``: held by the process writing the folder (:func:`hold_run_folder`), so a second
  search or recheck of the same folder stops with an error instead of interleaving its writes.

Study data kept in a repository (``benchmarks/data/``) holds the records without the ``.pt``
files (agent weights): a finished search or recheck is then read from its ``.jsonl`` alone
(:func:`finished_records`); only extending it needs the checkpoint. A comparison that meets an
unfinished run kept that way starts it again from its seed (:func:`set_aside_unfinished`), on
the start network pinned in the comparison's ``start/`` (:mod:`agents.pinned_start`), and its
earlier networks are served from their records instead of being trained again
(:mod:`agents.replay`).
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import tempfile
import threading
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agents.base import Agent
from agents.data_location import DATA_LOCATION, data_location

__all__ = [
    "CHILD_FIELDS",
    "RECHECK_UPDATE_OFFSET",
    "child_record",
    "episode_seed",
    "finished_records",
    "check_config",
    "hold_run_folder",
    "checkpoint_children",
    "load_checkpoint",
    "plain_data",
    "read_children",
    "read_jsonl",
    "record_device_key",
    "records_text",
    "repair_jsonl",
    "restore_search",
    "save_checkpoint",
    "save_recheck",
    "set_aside_unfinished",
    "write_jsonl",
]

_CHECKPOINTS = ("checkpoint.pt", "sb3_state.pt")  # a protocol agent's, an SB3 model's

CHILD_FIELDS = (
    "update",
    "env",
    "net",
    "accuracy",
    "params",
    "flops",
    "return",
    "cache_hit",
    "train_seconds",
    "lineage",
    "cpu_seconds",
    "start_accuracy",
    "start_digest",
    "actions",
    "illegal_actions",
)
"""The keys of a child record (one line of ``children.jsonl``).

Records written before 2026-12-04 lack ``cpu_seconds`` to ``actions``: the process CPU seconds
of the episode's fine-tunes (``train_seconds`` is wall time, which grows under contention), the
start network's accuracy and weights digest (:func:`eas_gym.net2net.state_digest`), and the
episode's actions, one list of ints per step: with the net string, what a surrogate is fitted
on. Records written before 2026-12-05 also lack ``illegal_actions``, the episode's steps whose
action the masks forbid (``info["illegal_action"]``): read it as
``record.get("illegal_actions", 0)``.
"""

RECHECK_UPDATE_OFFSET = 1_000_000
"""Recheck batch ``j`` asks :func:`episode_seed` for update ``RECHECK_UPDATE_OFFSET + j``."""

# Run seed s owns the episode seeds s * _SEED_STRIDE .. (s + 1) * _SEED_STRIDE - 1; the top
# _RECHECK_ROOM of them are its recheck's (:func:`episode_seed`).
_SEED_STRIDE = 1_000_003
_RECHECK_ROOM = 100_000

# Settings that may change between runs of one folder: the budget, how and where it runs.
_MAY_CHANGE = (
    "nets",
    "device_key",  # a search may resume on another kind of machine (its rows key apart)
    "progress",
    "tensorboard",
    "threads",
    "workers",
    "asynchronous",
    "executor",
    "ray_address",
    "store_service",
    "out",
    "store",
    "data_location",
)
_PATH_ENV_KWARGS = ("data_dir", "download", "store")


def episode_seed(seed: int, update: int, batch: int) -> int:
    """The reset seed of update `update`'s environments (env ``i`` gets ``seed + i``).

    Run seed ``s`` owns the block of episode seeds ``[s * 1_000_003, (s + 1) * 1_000_003)``.
    Its search counts up from the bottom (update ``u``: ``s * 1_000_003 + u * batch``, as
    ever); its recheck (update ``RECHECK_UPDATE_OFFSET + j``) counts down from the top, so
    batch ``j`` gets the ``batch`` seeds below ``(s + 1) * 1_000_003 - j * batch``. No recheck
    episode shares a seed with any search episode, of its own run seed or of any other, while
    a run's search has at most 900,003 networks (the recheck may have 100,000 episodes).

    Rechecks run before this scheme (2026-12-04) were seeded
    ``s * 1_000_003 + (1_000_000 + j) * batch``, which equals seed ``s + batch``'s search
    update ``j - 3``: from batch 3 on they replayed another run seed's search episodes. Their
    records still count as finished (:func:`finished_records` counts records, not seeds).

    >>> episode_seed(0, 2, 10), episode_seed(0, RECHECK_UPDATE_OFFSET, 10)
    (20, 999993)

    Raises:
        ValueError: A recheck past its 100,000 episodes.
    """
    if update < RECHECK_UPDATE_OFFSET:
        return seed * _SEED_STRIDE + update * batch
    episodes = (update - RECHECK_UPDATE_OFFSET + 1) * batch
    if episodes > _RECHECK_ROOM:
        raise ValueError(
            f"Expected a recheck of at most {_RECHECK_ROOM} episodes, actually: {episodes}"
        )
    return (seed + 1) * _SEED_STRIDE - episodes


def child_record(
    update: int,
    env: int,
    info: Mapping[str, Any],
    episode_return: float,
    provenance: Mapping[str, Any],
    actions: Sequence[Sequence[int]] = (),
    illegal_actions: int = 0,
) -> dict[str, Any]:
    """The record of one finished episode's network.

    Args:
        update: The agent update the episode belongs to.
        env: The environment's index in the batch.
        info: The episode's final step's ``info``.
        episode_return: The sum of its rewards.
        provenance: The env's ``last_episode_provenance`` (cache hits, training seconds, start).
        actions: The episode's actions, one sequence of ints per step.
        illegal_actions: The episode's steps with an illegal action (``info["illegal_action"]``).
    """
    digest, start = provenance.get("start_digest"), provenance.get("start_accuracy")
    return {
        "update": int(update),
        "env": int(env),
        "net": str(info["net"]),
        "accuracy": float(info["accuracy"]),
        "params": int(info["params"]),
        "flops": int(info["flops"]),
        "return": float(episode_return),
        "cache_hit": bool(provenance["cache_hits"]),
        "train_seconds": float(provenance["train_seconds"]),
        "lineage": None if info["lineage"] is None else str(info["lineage"]),
        "cpu_seconds": float(provenance.get("cpu_seconds", 0.0)),
        "start_accuracy": None if start is None else float(start),
        "start_digest": None if digest is None else str(digest),
        "actions": [[int(a) for a in step] for step in actions],
        "illegal_actions": int(illegal_actions),
    }


def read_as_recorded(env: Any, config: Mapping[str, Any]) -> None:
    """Key `env`'s store lookups as the run of `config` (its ``config.json``) wrote them.

    A run's ``device_key`` records the numerics its children were trained and stored under
    (``"cpu"``, ``"cuda-fp32"``); an env made from its settings on another kind of machine
    resolves ``device="auto"`` to this machine's and would look under another key. Nothing
    changes when they agree or the run predates the record. `env` is an unwrapped
    :class:`~eas_gym.env.EASEnv` before its first reset.
    """
    recorded = config.get("device_key")
    if recorded is not None and recorded != env.eval_config.device_type and not env.weightless:
        env.read_store_as(recorded)


def check_config(out: Path, record: dict[str, Any]) -> None:
    """Refuse a run folder that holds a search with other settings; else (re)write config.json.

    A folder whose search never finished an update (no checkpoint, no record) takes the new
    settings: its first start failed, and the corrected command must not need a new folder.

    A search's record (one with an ``env_id``) is written with the data folder its env reads
    (:func:`agents.data_location.data_location`), which may change between runs.
    """
    if "env_id" in record:
        where = data_location(record["env_id"], record.get("env_kwargs") or {})
        record = {**record, DATA_LOCATION: where}
    path = out / "config.json"
    if path.exists():
        try:
            saved = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"{path} is damaged ({e}); remove it or use another --out") from e
        diff = sorted(
            k for k in set(saved) | set(record) if _comparable(saved, k) != _comparable(record, k)
        )
        if diff and _holds_a_search(out):
            changes = "; ".join(
                f"{k}: {_comparable(saved, k)!r} there, {_comparable(record, k)!r} now"
                for k in diff
            )
            raise ValueError(
                f"run folder {out} holds a search with other settings ({changes}); "
                "use another --out or the same settings"
            )
        # else a start that failed before its first update (a bad dataset, say): nothing to keep
        record = _keep_device_key(out, saved, record)
    out.mkdir(parents=True, exist_ok=True)
    _atomic_write_text(path, json.dumps(record, indent=2, sort_keys=True) + "\n")


def _keep_device_key(out: Path, saved: Mapping[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    """A search's folder keeps the device key its first children were stored under.

    Reading a finished run back on another kind of machine must not relabel it. (A search
    resumed there stores its new children under this machine's key: one run, two keys.) A
    search that predates the record stays without one: the reader's key would be a guess.
    """
    if not _holds_a_search(out):
        return record
    before = saved.get("device_key")
    if before is None:
        return {k: v for k, v in record.items() if k != "device_key"}
    return {**record, "device_key": before}


def record_device_key(out: Path, keys: Iterable[str]) -> None:
    """Record in ``config.json`` the device key the search's envs were built with.

    :func:`check_config` records the key of this process's device, but the envs that train
    may live elsewhere: Ray actors on GPU nodes behind a head without one (or CPU actors
    beside a GPU head). Before the search's first children, their own key replaces the guess,
    so a reader looks the rows up where they were stored. Once the folder holds a search its
    key stays (as in :func:`check_config`). Envs built with different keys (a mixed cluster)
    leave the record as it is, with a warning.
    """
    found = sorted(set(keys))
    path = out / "config.json"
    if not found or _holds_a_search(out) or not path.exists():
        return
    if len(found) > 1:
        warnings.warn(
            f"{out}: its environments train under different device keys {found}; config.json "
            "records one, so reading the run back finds only that key's children",
            RuntimeWarning,
            stacklevel=2,
        )
        return
    config = json.loads(path.read_text())
    if config.get("device_key") != found[0]:
        config["device_key"] = found[0]
        _atomic_write_text(path, json.dumps(config, indent=2, sort_keys=True) + "\n")


def _holds_a_search(out: Path) -> bool:
    """Whether `out` holds a checkpoint or any record: a search that settings must match."""
    if any((out / name).exists() for name in (*_CHECKPOINTS, "recheck.pt")):
        return True
    # *.partial.jsonl: records set aside to be replayed (set_aside_unfinished) are a search too
    names = ("children", "recheck", "children.partial", "recheck.partial")
    records = (out / f"{name}.jsonl" for name in names)
    return any(path.exists() and path.read_text(errors="replace").strip() for path in records)


def _comparable(config: Mapping[str, Any], key: str) -> Any:
    if key in _MAY_CHANGE:
        return None
    value = config.get(key)
    if key == "env_kwargs" and isinstance(value, dict):
        # the path to your own dataset may change too: `dataset_identity` compares its contents
        own = "dataset_identity" in config
        return {
            k: v
            for k, v in value.items()
            if k not in _PATH_ENV_KWARGS and not (own and k == "dataset")
        }
    return value


_HELD: set[tuple[Path, int]] = set()
"""(Run folder, resolved; thread) pairs held: :func:`hold_run_folder` is reentrant per thread."""


@contextlib.contextmanager
def hold_run_folder(out: Path) -> Iterator[None]:
    """Hold run folder `out` (creating it) for this process while the block writes there.

    An exclusive POSIX ``flock`` on ``out/run.lock``, released when the block ends or the
    process dies (a no-op where ``fcntl`` is missing). Two processes writing one folder would
    interleave their checkpoints and records; the second one is refused instead, as is a
    second thread. Reentrant within a thread: a comparison holds a run's folder across setting
    its records aside, the search and the recheck, which hold it again.

    Raises:
        ValueError: Another process holds the folder (naming it and, if known, its pid).
    """
    try:
        import fcntl
    except ImportError:  # Windows: one process per folder is up to the user
        yield
        return
    out.mkdir(parents=True, exist_ok=True)
    key = (out.resolve(), threading.get_ident())  # another thread is refused as a process is
    if key in _HELD:  # this thread holds it already (a second flock of it would be refused)
        yield
        return
    with open(out / "run.lock", "a+", encoding="utf-8") as handle:
        unlockable = None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip()
            by = f"process {holder}" if holder.isdigit() else "another process"
            raise ValueError(
                f"run folder {out} is in use by {by}; wait for it to finish or use another "
                "--out (two runs writing one folder would mix their records)"
            ) from None
        except OSError as e:  # a file system without locks (some network mounts): go on
            unlockable = e.strerror
        if unlockable is not None:  # outside the handler: the block's errors stand alone
            warnings.warn(
                f"run folder {out} cannot be locked ({unlockable}); make sure no other "
                "process writes it",
                stacklevel=3,
            )
        _HELD.add(key)  # unlocked too: the nested holds neither retry nor warn again
        try:
            if unlockable is None:
                handle.truncate(0)
                handle.write(f"{os.getpid()}\n")
                handle.flush()
            yield
        finally:
            _HELD.discard(key)
            if unlockable is None:
                fcntl.flock(handle, fcntl.LOCK_UN)


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    """Write `state` atomically; it must hold only tensors, numbers, strings, lists and dicts."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    try:
        torch.save(plain_data(state), tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def load_checkpoint(path: Path) -> dict[str, Any] | None:
    """The checkpoint at `path`, or None if there is none; never unpickles code.

    Raises:
        ValueError: The file is damaged or holds anything but plain data (e.g. a pickle payload).
    """
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:  # torch's message advises weights_only=False: never
        raise ValueError(
            f"{path} holds objects other than tensors and plain data, so it was not loaded "
            "(it could run code); remove it to start that search again"
        ) from e
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(
            f"{path} is damaged or not a checkpoint this project wrote ({first}); "
            "remove it to start that search again"
        ) from e
    if not isinstance(state, dict):
        raise ValueError(f"{path} is not a checkpoint this project wrote (not a dict)")
    return state


def plain_data(value: Any) -> Any:
    """Numpy scalars and arrays as Python values, so ``weights_only`` loading accepts them."""
    if isinstance(value, dict):
        return {k: plain_data(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(plain_data(v) for v in value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def save_recheck(
    out: Path, records: list[dict[str, Any]], batches: int, episodes: int, **state: Any
) -> None:
    """Save a recheck's first `batches` batches to ``recheck.pt`` (with `state`) and its .jsonl."""
    save_checkpoint(
        {**state, "batches": batches, "records": records, "episodes": episodes}, out / "recheck.pt"
    )
    write_jsonl(out / "recheck.jsonl", records)


def write_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> None:
    """Replace `path` with one JSON line per record, atomically."""
    _atomic_write_text(path, records_text(records))


def _atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def read_jsonl(path: Path, *, live: bool = False) -> list[dict[str, Any]]:
    """Every record of a JSON-lines file; ValueError naming the file and line if one is damaged.

    `live`: the file may be in the middle of an append by a running search, so an unterminated
    last line that does not parse is left out rather than called damage.
    """
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8", errors="replace").split("\n")
    if live and lines[-1].strip():  # text after the last newline: maybe half written
        try:
            json.loads(lines[-1])
        except json.JSONDecodeError:
            lines.pop()
    return _parse_jsonl(lines, str(path))


def _parse_jsonl(lines: Iterable[str], source: str) -> list[dict[str, Any]]:
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{source}, line {number}: damaged record ({e.msg})") from e
        if not isinstance(record, dict):
            raise ValueError(f"{source}, line {number}: not a record")
        records.append(record)
    return records


def read_children(run: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The sampled networks of a run folder, in order (from its checkpoint when it has one)."""
    folder = Path(run)
    for name in ("checkpoint.pt", "sb3_state.pt"):
        state = load_checkpoint(folder / name)
        children = None if state is None else checkpoint_children(state, folder / name)
        if children is not None:
            return children
    return read_jsonl(folder / "children.jsonl")


def records_text(records: Iterable[dict[str, Any]]) -> str:
    """The JSON-lines text of `records`: what ``children.jsonl`` and the checkpoint hold.

    A checkpoint keeps this text rather than the record dicts, extended by each update's own
    records: pickling every record again at every update made saving quadratic in the run's
    length, most of a 300-network search's time on EAS-Bench (``benchmarks/RESULTS.md``).
    """
    return "".join(json.dumps(r) + "\n" for r in records)


def checkpoint_children(state: Mapping[str, Any], path: Path) -> list[dict[str, Any]] | None:
    """The child records a checkpoint holds (None if it holds none), parsed from its text.

    Checkpoints written before 2026-12-05 hold the records as a list (``"children"``).

    Raises:
        ValueError: The text is damaged (naming `path` and the record's line).
    """
    if "children_jsonl" in state:
        text = str(state["children_jsonl"])
        return _parse_jsonl(text.split("\n"), f"{path} (its records)")
    if "children" in state:
        return list(state["children"])
    return None


def repair_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    """Make `path` hold exactly `records` (the checkpoint's), warning if it held something else."""
    canonical = records_text(records)
    if path.exists():
        on_disk = path.read_text(encoding="utf-8", errors="replace")
        if on_disk == canonical:
            return
        try:
            current = _parse_jsonl(on_disk.split("\n"), str(path))  # as a file reads its lines
            # Whole records past the checkpoint's (an update whose checkpoint was lost) are
            # dropped without a fuss: that update runs again.
            damaged = current[: len(records)] != records
            problem = f"held {len(current)} of {len(records)} records" if damaged else None
        except ValueError as e:
            problem = str(e)
        if problem is not None:
            warnings.warn(f"{path}: {problem}; rewritten from the checkpoint", stacklevel=3)
    _atomic_write_text(path, canonical)  # also mends a cut final newline, before anything appends


def finished_records(path: Path, needed: int) -> list[dict[str, Any]] | None:
    """The records of a finished run kept without its checkpoint; None if there are none.

    Args:
        path: ``children.jsonl`` or ``recheck.jsonl``.
        needed: How many records the run must hold to count as finished.

    Raises:
        ValueError: The file holds fewer records than `needed`: without the checkpoint (the
            agent's state) such a run can be neither resumed nor extended.
    """
    records = read_jsonl(path)
    if not records:
        return None
    if len(records) < needed:
        raise ValueError(
            f"{path} holds {len(records)} records, fewer than the {needed} asked for, and its "
            "checkpoint (.pt) is missing: the run cannot go on without the agent's state; "
            "ask for at most that many, restore the checkpoint, or use another --out"
        )
    return records


def set_aside_unfinished(out: Path, nets: int, recheck: int) -> list[dict[str, Any]] | None:
    """Make a run kept without its checkpoints (study data) start again from its seed.

    A search with fewer than `nets` records, or a finished one whose recheck has fewer than
    `recheck` records (the recheck needs the final agent), cannot go on without the agent's
    state. Its ``.jsonl`` files are renamed ``*.partial.jsonl`` (nothing is deleted) and the
    run's earlier child records are returned, so the caller can check that the new run
    reproduces them. Returns None when the run can go on as it is.
    """
    if any((out / name).exists() for name in _CHECKPOINTS):
        return None
    children = read_jsonl(out / "children.jsonl")
    rechecked = read_jsonl(out / "recheck.jsonl")
    search_unfinished = 0 < len(children) < nets
    recheck_unfinished = recheck > len(rechecked) and not (out / "recheck.pt").exists()
    if not (search_unfinished or (children and recheck_unfinished)):
        return None
    for name in ("children", "recheck"):
        if (out / f"{name}.jsonl").exists():
            os.replace(out / f"{name}.jsonl", out / f"{name}.partial.jsonl")
    return children


def restore_search(
    agent: Agent, out: Path, batch: int, num_updates: int
) -> tuple[int, list[dict[str, Any]]]:
    """(updates done, child records) of a protocol agent's search; `agent` gets its state.

    From the checkpoint, and children.jsonl is made to match its records.

    Without a checkpoint, a finished run's records (study data kept without ``.pt`` files)
    are read from children.jsonl.
    """
    state = load_checkpoint(out / "checkpoint.pt")
    if state is None:
        kept = finished_records(out / "children.jsonl", num_updates * batch)
        if kept is not None:
            return len(kept) // batch, kept
        children: list[dict[str, Any]] = []
        done = 0
    else:
        agent.load_state_dict(state["agent"])
        done = state["update"]
        held = checkpoint_children(state, out / "checkpoint.pt")
        if held is not None:
            children = held
        else:  # a run folder from before checkpoints held the records
            children = [c for c in read_jsonl(out / "children.jsonl") if c["update"] < done]
            if len(children) != done * batch:
                raise ValueError(
                    f"{out / 'children.jsonl'} holds {len(children)} records of the {done * batch} "
                    "its checkpoint has finished; it cannot be repaired (this folder predates "
                    "records in checkpoints): restore it or start again"
                )
    repair_jsonl(out / "children.jsonl", children)
    return done, children
