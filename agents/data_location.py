"""Where a run's dataset lives: recorded in its ``config.json``, read again by ``eas-gym train``.

A search finds CIFAR-10 through ``--data-dir`` or ``$EAS_DATA_DIR``; its run folder records the
folder it read (``data_location``, an absolute path), so ``eas-gym train RUN`` finds the data
without either. The path may change between runs of one folder, as ``out`` and ``store`` may:
a resume compares the search's settings, not where the files are.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import gymnasium as gym

import eas_gym  # noqa: F401  (registers the EAS-* ids)
from eas_gym.data import DATASETS, DatasetNotFoundError, check_dataset, default_data_dir
from eas_gym.eval_config import WEIGHTLESS_EVALUATORS

__all__ = ["DATA_LOCATION", "check_recorded_data", "data_location", "recorded_data_location"]

DATA_LOCATION = "data_location"
"""The ``config.json`` key of the folder the search read its dataset from."""

_FILE_DATASETS = tuple(name for name in DATASETS if name != "synthetic")


def data_location(env_id: str, env_kwargs: Mapping[str, Any]) -> str | None:
    """The absolute folder env `env_id` reads its built-in dataset's files from.

    Args:
        env_id: A registered env id.
        env_kwargs: The run's arguments over the registered ones.

    Returns:
        The folder (``data_dir``, else :func:`eas_gym.data.default_data_dir`, resolved now), or
        None when the env reads no files: an unregistered id, a weightless evaluator, the
        synthetic set or your own dataset (known by its contents: ``dataset_identity``).
    """
    if env_id not in gym.registry:
        return None
    kwargs = {**gym.spec(env_id).kwargs, **env_kwargs}
    if kwargs.get("evaluator", "train") in WEIGHTLESS_EVALUATORS:
        return None
    if kwargs.get("dataset", "cifar10") not in _FILE_DATASETS:
        return None
    folder = kwargs.get("data_dir") or default_data_dir()
    return str(Path(folder).expanduser().resolve())


def recorded_data_location(run: str | Path) -> str | None:
    """The data folder recorded in run folder `run`'s ``config.json``, if any."""
    path = Path(run) / "config.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text()).get(DATA_LOCATION)


def check_recorded_data(run: str | Path, dataset: str, folder: str) -> None:
    """Raise a one-line error when `folder`, recorded in `run`, no longer holds `dataset`.

    Raises:
        DatasetNotFoundError: Naming the recorded folder and how to point elsewhere.
    """
    try:
        check_dataset(dataset, folder, download=False)
    except DatasetNotFoundError as e:
        raise DatasetNotFoundError(
            f"{dataset} is no longer in {folder}, the data folder recorded in "
            f"{Path(run) / 'config.json'} by its search; if the data moved, point --data-dir "
            "(or EAS_DATA_DIR) at its new folder, or pass --download"
        ) from e
