"""A comparison's start network, pinned beside its runs so a fresh clone resumes on it.

Every child of a study grows from one trained start network, and that network cannot be trained
back: the same code and seed gave 35.45%, 35.82%, 36.12% and 36.40% on CPUs and thread counts of
their own. Study data kept in a repository holds records, not the store, so a clone elsewhere
would train a start of its own and its new seeds would grow from another network than the old
ones. So a comparison folder keeps a copy of its start network in ``start/``: the store's row as
``evaluation.json`` and its weights (a few KB, named by their SHA-256) beside it.

:func:`pin_start` writes that copy once (the first pin stays); :func:`restore_start` puts it into
a store that lacks the start network, before anything trains it.
"""

from __future__ import annotations

import hashlib
import io
import json
import warnings
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import torch

from eas_gym.store import EvalStore, Evaluation, StoreError, write_atomically

__all__ = ["PIN_FOLDER", "pin_start", "restore_start"]

PIN_FOLDER = "start"
"""The folder of a comparison that holds its pinned start network."""

_RECORD = "evaluation.json"


def pin_start(root: Path, store: EvalStore, net: str, key: str) -> Path | None:
    """Copy the store's start network `net` (under start key `key`) into ``root/start/``.

    Does nothing, and returns None, if a pin is already there (the first one stays) or the
    store does not hold that network with its weights file. Returns the record's path.
    """
    folder = Path(root) / PIN_FOLDER
    if (folder / _RECORD).exists():
        pinned = json.loads((folder / _RECORD).read_text())
        if (pinned.get("net"), pinned.get("config_key")) != (net, key):
            warnings.warn(
                f"{folder / _RECORD} pins {pinned.get('net')!r} under key "
                f"{pinned.get('config_key')!r}, not this comparison's start {net!r} under "
                f"{key!r}; it stays, and this start is not pinned",
                stacklevel=2,
            )
        return None
    with store.lock(f"start-{key}"):  # the lock the scorer trains a start network under
        found = store.get(net, key)
        if found is None or found.weights is None or not (store.root / found.weights).is_file():
            return None
        name = Path(found.weights).name
        write_atomically(folder / name, (store.root / found.weights).read_bytes())
        record = {**asdict(found), "weights": name}  # the record last: its presence marks a pin
        write_atomically(folder / _RECORD, (json.dumps(record, indent=2) + "\n").encode())
    return folder / _RECORD


def restore_start(root: Path, store: EvalStore, net: str, key: str) -> bool:
    """Put the start network pinned in ``root/start/`` into `store`, if the store lacks it.

    Returns whether the store was given the pin. Warns and leaves the store alone if the pin is
    of another network or configuration, or if the store trained a start of its own (at another
    accuracy). A store row whose weights file is gone is pointed at the pinned weights.

    Raises:
        StoreError: The pinned weights are missing, altered (their SHA-256 does not match
            their name) or not a weights file.
    """
    path = Path(root) / PIN_FOLDER / _RECORD
    if not path.exists():
        return False
    record = json.loads(path.read_text())
    if (record.get("net"), record.get("config_key")) != (net, key):
        warnings.warn(
            f"{path} pins {record.get('net')!r} under key {record.get('config_key')!r}, not this "
            f"comparison's start {net!r} under {key!r}: not used",
            stacklevel=2,
        )
        return False
    with store.lock(f"start-{key}"):  # the lock the scorer trains a start network under
        return _restore_locked(path, record, store, net, key)


def _restore_locked(
    path: Path, record: dict[str, Any], store: EvalStore, net: str, key: str
) -> bool:
    found = store.get(net, key)
    kept = found is not None and found.weights and (store.root / found.weights).is_file()
    if found is not None and found.accuracy != record["accuracy"]:
        fate = (
            "the runs to come grow from the store's"
            if kept
            else "its weights file is gone, so the runs to come train one again under its name"
        )
        warnings.warn(
            f"the store {store.path} holds a start network of its own at "
            f"{100 * found.accuracy:.3f}%, not the one pinned in {path} at "
            f"{100 * record['accuracy']:.3f}%: {fate}",
            stacklevel=3,
        )
        return False
    if kept:
        return False  # the store has it already
    name = _checked_weights(path.parent / record["weights"])
    write_atomically(store.root / "weights" / name, (path.parent / record["weights"]).read_bytes())
    if found is None:
        known = {f.name for f in fields(Evaluation)}
        store.put(
            Evaluation(
                **{k: v for k, v in record.items() if k in known} | {"weights": f"weights/{name}"}
            )
        )
    else:
        store.set_weights(found, f"weights/{name}")
    return True


def _checked_weights(file: Path) -> str:
    """`file`'s name, once its bytes match the SHA-256 in it and load as weights."""
    if not file.is_file():
        raise StoreError(f"the pinned start network's weights {file} are missing")
    data = file.read_bytes()
    expected = file.stem.removeprefix("sha256-")
    if (
        not expected
        or expected == file.stem
        or not hashlib.sha256(data).hexdigest().startswith(expected)
    ):
        raise StoreError(f"the pinned weights {file} do not match the SHA-256 in their name")
    try:
        torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several kinds on a damaged or foreign file
        raise StoreError(f"the pinned weights {file} cannot be read as weights: {e}") from e
    return file.name
