"""The paper's final training of a found network: all training images, test accuracy."""

from __future__ import annotations

import json
import math
import os
import time
import warnings
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch
from tqdm.auto import tqdm

import eas_gym  # noqa: F401  (registers the EAS-* ids)
from agents.data_location import check_recorded_data, recorded_data_location
from eas_gym.data import dataset_classes, dataset_identity, load_dataset
from eas_gym.export import load_arch, load_state, save_model
from eas_gym.family import AnyArch, build_model, parse_net
from eas_gym.own_data import is_own_dataset
from eas_gym.splits import resolve_device
from eas_gym.train import TrainConfig, fine_tune

__all__ = ["final_train", "resolve_target"]


def resolve_target(target: str) -> tuple[AnyArch | None, Path | None, dict[str, Any]]:
    """(architecture or None, weights folder, the run's env arguments) of a CLI target.

    `target` is a run folder (its ``best/``), a folder saved by ``save_model``, or a net string
    (then the architecture is parsed later, once the dataset's classes are known).
    """
    path = Path(target)
    looks_like_path = os.sep in target or target.startswith(".") or path.exists()
    if looks_like_path and not path.exists():
        raise FileNotFoundError(f"{target}: no such run folder or saved model folder")
    if (path / "best" / "arch.json").exists():
        config = json.loads((path / "config.json").read_text())
        env_kwargs = {**gym.spec(config["env_id"]).kwargs, **config["env_kwargs"]}
        return load_arch(path / "best"), path / "best", env_kwargs
    if (path / "arch.json").exists():
        run = path.parent
        if path.name == "best" and (run / "config.json").exists():  # RUN/best: the run's data
            _, _, env_kwargs = resolve_target(str(run))
            return load_arch(path), path, env_kwargs
        record = json.loads((path / "arch.json").read_text())
        recorded = record.get("env_id")
        env_kwargs = dict(gym.spec(recorded).kwargs) if recorded in gym.registry else {}
        inputs = record.get("inputs") or {}  # what it was trained on, where best/ says
        if inputs.get("name"):
            env_kwargs["dataset"] = inputs["name"]
        env_kwargs.update({k: inputs[k] for k in ("image_size", "val_size") if k in inputs})
        return load_arch(path), path, env_kwargs  # its env's data, as its record says
    if path.exists():
        raise FileNotFoundError(f"{target} is neither a run folder nor a saved model folder")
    return None, None, {}


def _run_folder(target: str, folder: Path | None) -> Path | None:
    """The run folder of a target that is one or is its ``best/``, else None."""
    if (Path(target) / "config.json").exists():
        return Path(target)
    if folder is not None and folder.name == "best" and (folder.parent / "config.json").exists():
        return folder.parent
    return None


def _warn_if_the_data_changed(config: Path, dataset: str) -> None:
    """Warn when a run searched your own dataset and the file now holds other data."""
    recorded = json.loads(config.read_text()).get("dataset_identity") if config.is_file() else None
    if recorded is not None and is_own_dataset(dataset) and dataset_identity(dataset) != recorded:
        warnings.warn(
            f"{dataset} is not the data the run searched ({recorded}); its contents changed "
            f"(now {dataset_identity(dataset)})",
            stacklevel=3,
        )


def final_train(
    target: str,
    *,
    epochs: float = 300.0,
    lr: float = 0.1,
    scratch: bool = False,
    dataset: str | None = None,
    image_size: int | None = None,
    train_size: int | None = None,
    device: str = "auto",
    data_dir: str | None = None,
    out: str | None = None,
    seed: int = 0,
    augment: bool | None = None,
    download: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    """Train a found network on every training image (train + validation) and test it.

    Paper defaults: 300 epochs, lr 0.1 cosine, batch 64. A run's network starts from its
    inherited weights unless `scratch`; dataset, image size and augmentation default to the
    run's (augmentation on for a net string). The data folder is `data_dir`, else the run's
    ``--data-dir``, else ``$EAS_DATA_DIR``, else the folder the run's search read (recorded in
    its ``config.json``), else the default cache. The trained network is saved to `out`
    (default: ``RUN/final`` for a run folder, ``FOLDER-final`` beside a saved model,
    ``runs/final`` for a net string).

    Returns:
        A record with the net string, parameters, test accuracy, epochs, seconds and where
        the network was saved.
    """
    resolve_device(device)  # a ValueError for a bad name before any data is read
    if not epochs > 0:
        raise ValueError(f"Expected `epochs` > 0, actually: {epochs!r}")
    for name, value in (("image_size", image_size), ("train_size", train_size)):
        if value is not None and (isinstance(value, bool) or value < 1):
            raise ValueError(f"Expected `{name}` >= 1 or None (the run's), actually: {value!r}")
    arch, folder, run_env = resolve_target(target)
    if out is not None and folder is not None and Path(out).resolve() == folder.resolve():
        raise ValueError(f"`out` {out} is the network's own folder: choose another, or omit it")
    run = _run_folder(target, folder)  # RUN for RUN and RUN/best; None for anything else
    dataset = dataset or run_env.get("dataset", "cifar10")
    image_size = image_size or run_env.get("image_size")
    data_dir = data_dir or run_env.get("data_dir")
    if data_dir is None and not os.environ.get("EAS_DATA_DIR") and run is not None:
        data_dir = recorded_data_location(str(run))  # where the search read it
        if data_dir is not None and not download and dataset == run_env.get("dataset", "cifar10"):
            check_recorded_data(str(run), dataset, data_dir)  # one line if the data moved
    num_classes = dataset_classes(dataset)  # a ValueError for an unknown name or path
    if run is not None:
        _warn_if_the_data_changed(run / "config.json", dataset)
    if arch is None:
        arch = parse_net(target, num_classes=num_classes)
    state = None if scratch or folder is None else load_state(folder)
    data = load_dataset(
        dataset,
        data_dir=data_dir,
        train_size=train_size,
        image_size=image_size,
        # a final training trains on train + val: without a run to follow, your own file's
        # images all train (the paper's 5,000-image split may not fit a small file)
        val_size=run_env.get("val_size", 0 if is_own_dataset(dataset) else None),
        download=download,
    )
    net = build_model(arch, state, generator=torch.Generator().manual_seed(seed))
    if augment is None:
        augment = run_env.get("augment", True)
    config = TrainConfig(
        epochs=epochs, lr=lr, augment=augment, train_split="train+val", eval_split="test"
    )
    start = time.perf_counter()
    bar = tqdm(total=math.ceil(epochs), unit="epoch", disable=not progress, desc=str(arch))

    def on_epoch(epoch: int, loss: float) -> None:
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.3f}")

    result = fine_tune(
        net,
        data,
        config,
        generator=torch.Generator().manual_seed(seed),
        device=device,
        on_epoch=on_epoch,
    )
    bar.close()
    record = {
        "net": arch.to_string(),
        "params": arch.num_params(),
        "dataset": dataset,
        "image_size": data.image_shape[-1],
        "normalize": {"mean": list(data.mean), "std": list(data.std)},  # of its inputs
        "train_images": len(data.train) + len(data.val),
        "epochs": epochs,
        "augment": augment,
        "inherited_weights": state is not None,
        "test_accuracy": result.eval_accuracy,
        "diverged": result.diverged,
        "seconds": round(time.perf_counter() - start, 2),
    }
    if out is None:
        if run is not None:
            out = str(run / "final")
        elif folder is not None:
            out = str(folder.with_name(folder.name + "-final"))
        else:
            out = "runs/final"
    record["saved_to"] = out
    save_model(out, arch, net.state_dict(), record)
    return record
