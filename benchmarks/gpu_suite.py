"""The GPU path measured in one prepared run: device, throughput, a paper child, workers, a search.

    bash benchmarks/gpu_suite.sh [OUT]            # on a CUDA machine, <= 8 minutes on one H200
    bash benchmarks/gpu_suite.sh --dry-run OUT    # the same code on CPU with tiny sizes (tests)

Parts, each writing ``OUT/<part>.json`` (the shell wrapper also writes ``OUT/gpu_suite.log``):

a. ``env``: device name, torch / CUDA / cuDNN versions, bf16 support, memory, CPU cores;
b. ``throughput``: ``benchmarks/trainer_throughput.py`` on the device for the small start net,
   the paper start net and a paper-scale grown net (20 layers): eas_gym's trainer against the
   bare loop and the DataLoader pipeline, and the trainer in fp32 / bf16 x NCHW / NHWC (is the
   default, bf16 autocast + channels_last on CUDA, the faster one?);
c. ``paper_child``: one child under the paper's protocol (paper start net, 20 epochs, 45k/5k,
   batch 64, lr 0.02 cosine, crop + flip): seconds and validation / test accuracy;
d. ``workers``: children per hour on one GPU with 1, 4 and 8 worker processes side by side
   (``make_vector_env``, random search, sparse reward), on the CPU preset's data
   (``EAS-CIFAR10-CPU-v2`` at 16x16, on CUDA) and on the paper protocol with 1-epoch fine-tunes;
e. ``search``: a short real REINFORCE search on ``EAS-CIFAR10-v0`` scaled to the minutes left.

Data: CIFAR-10 in torchvision's layout from ``$EAS_DATA_DIR``, ``../shared/data`` or the
repository's ignored ``.data/`` folder (copy ``cifar-10-batches-py/`` there and carry it to
the device machine). Without it every part runs on the synthetic set, and each JSON says so in
``"data"`` and in a ``"warning"``. A time budget (``--budget``) is shared by the parts; each
stops at its share and records what it measured.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import eas_gym  # noqa: E402,F401  (registers the EAS-* ids)
from eas_gym.data import DatasetNotFoundError, load_dataset  # noqa: E402

SYNTHETIC_WARNING = "no CIFAR-10 found: synthetic data, the accuracies mean nothing"

FULL = {
    "device": "cuda",
    "throughput": ["--batches", "300", "--warmup", "20", "--repeats", "2", "--workers", "4"],
    "throughput_nets": "small,paper,grown",
    "child_epochs": 20.0,
    "child_sizes": {"train_size": None, "val_size": None, "image_size": None},
    "worker_counts": (1, 4, 8),
    "worker_seconds": 45.0,
    "workers_envs": {
        "cpu-preset": ("EAS-CIFAR10-CPU-v2", {}),
        "paper-1-epoch": ("EAS-CIFAR10-v0", {"epochs": 1.0, "start_epochs": 2.0}),
    },
    "search": {"nets": 20, "batch": 10, "epochs": 2.0, "start_epochs": 10.0},
}
DRY = {
    "device": "cpu",
    "throughput": ["--batches", "3", "--warmup", "1", "--repeats", "1", "--workers", "0"],
    "throughput_nets": "small",
    "child_epochs": 0.2,
    "child_sizes": {"train_size": 500, "val_size": 250, "image_size": 16},
    "worker_counts": (1, 2),
    "worker_seconds": 2.0,
    "workers_envs": {
        "cpu-preset": ("EAS-CIFAR10-CPU-v2", {"epochs": 0.2, "start_epochs": 0.2}),
    },
    "search": {"nets": 2, "batch": 2, "epochs": 0.2, "start_epochs": 0.2},
}
DRY_DATA = {"train_size": 500, "val_size": 250, "image_size": 16}


def find_data() -> str | None:
    """The first folder holding ``cifar-10-batches-py/``: $EAS_DATA_DIR, ../shared/data, .data."""
    for root in (os.environ.get("EAS_DATA_DIR"), REPO.parent / "shared/data", REPO / ".data"):
        if root and Path(root, "cifar-10-batches-py", "data_batch_1").exists():
            return str(Path(root).resolve())
    return None


def data_kwargs(data_dir: str | None, dry: bool) -> dict[str, Any]:
    """Env arguments that point an id at the data found (or at the synthetic set)."""
    kwargs: dict[str, Any] = {} if data_dir is None else {"data_dir": data_dir}
    if data_dir is None:
        kwargs["dataset"] = "synthetic"
    if dry:
        kwargs.update(DRY_DATA)
    return kwargs


# ---- the parts ------------------------------------------------------------------------------


def part_env(cfg, data_dir, dry) -> dict[str, Any]:
    cuda = torch.cuda.is_available()
    report: dict[str, Any] = {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
    }
    if cuda:
        props = torch.cuda.get_device_properties(0)
        report.update(
            bf16=torch.cuda.is_bf16_supported(),
            memory_gib=round(props.total_memory / 2**30, 1),
            capability=f"{props.major}.{props.minor}",
            multiprocessors=props.multi_processor_count,
        )
    return report


def part_throughput(cfg, data_dir, dry, out: Path) -> dict[str, Any]:
    sys.path.insert(0, str(REPO / "benchmarks"))
    import trainer_throughput

    argv = ["--device", cfg["device"], "--nets", cfg["throughput_nets"], *cfg["throughput"]]
    argv += ["--out", str(out / "throughput.png")]
    if data_dir:
        argv += ["--data-dir", data_dir]
    else:
        argv += ["--synthetic"]
    if dry:
        argv += ["--train-size", "500", "--batch-size", "16"]
    return trainer_throughput.main(trainer_throughput.parse_args(argv))


def part_paper_child(cfg, data_dir, dry) -> dict[str, Any]:
    from eas_gym.arch import PAPER_START
    from eas_gym.net import build_net
    from eas_gym.train import SEARCH_CONFIG, TrainConfig, evaluate, fine_tune

    start = time.perf_counter()
    sizes = cfg["child_sizes"]
    try:
        if data_dir is None:
            raise DatasetNotFoundError("no data folder")
        data = load_dataset("cifar10", data_dir=data_dir, device=cfg["device"], **sizes)
    except DatasetNotFoundError:
        full = {"train_size": 45000, "val_size": 5000, "test_size": 10000}
        data = load_dataset("synthetic", device=cfg["device"], **{**full, **sizes})
    load_seconds = time.perf_counter() - start
    config = TrainConfig(**{**SEARCH_CONFIG.to_dict(), "epochs": cfg["child_epochs"]})
    net = build_net(PAPER_START, generator=torch.Generator().manual_seed(0), device=cfg["device"])
    result = fine_tune(net, data, config, generator=torch.Generator().manual_seed(0))
    test_accuracy, _ = evaluate(net, data.test, mean=data.mean, std=data.std)
    return {
        "net": PAPER_START.to_string(),
        "config": config.to_dict(),
        "train_images": len(data.train),
        "val_images": len(data.val),
        "val_accuracy": result.eval_accuracy,
        "test_accuracy": test_accuracy,
        "seconds": round(result.seconds, 2),
        "load_seconds": round(load_seconds, 2),
        "images_per_second": round(result.images_per_second),
        "steps": result.steps,
        "diverged": result.diverged,
        "oom": result.oom,
    }


def _children_per_hour(env_id, kwargs, workers, seconds, device, root: Path) -> dict[str, Any]:
    """Random-search batches of `workers` children for about `seconds`; children per hour."""
    from agents.random_search import RandomSearch
    from agents.runner import _run_batch, episode_seed
    from eas_gym.vector import make_vector_env

    store = str(root / "store.sqlite")  # holds the trained start network (see part_workers)
    envs = make_vector_env(env_id, workers, asynchronous=True, device=device, store=store, **kwargs)
    agent = RandomSearch(envs.single_observation_space, envs.single_action_space, seed=workers)
    try:
        envs.reset(seed=0)  # start the processes and put the data on the device: not timed
        start, children, update = time.perf_counter(), [], 0
        while time.perf_counter() - start < seconds or not children:
            children += _run_batch(envs, agent, episode_seed(workers, update, workers), update)
            update += 1
        elapsed = time.perf_counter() - start
    finally:
        envs.close()
    trained = [c for c in children if not c["cache_hit"]]
    return {
        "workers": workers,
        "children": len(children),
        "trained": len(trained),
        "seconds": round(elapsed, 2),
        "children_per_hour": round(3600 * len(children) / elapsed, 1),
        "mean_child_train_seconds": round(
            sum(c["train_seconds"] for c in trained) / max(len(trained), 1), 2
        ),
    }


def part_workers(cfg, data_dir, dry, deadline: float) -> dict[str, Any]:
    import gymnasium as gym

    report: dict[str, Any] = {}
    for label, (env_id, overrides) in cfg["workers_envs"].items():
        kwargs = {**data_kwargs(data_dir, dry), **overrides}
        root = Path(tempfile.mkdtemp(prefix=f"eas_gpu_{label}_"))
        try:
            warm = gym.make(
                env_id, device=cfg["device"], store=str(root / "store.sqlite"), **kwargs
            )
            warm.reset(seed=0)  # trains the start network once, before any timing
            warm.close()
            rows = []
            for workers in cfg["worker_counts"]:
                if time.time() > deadline:
                    rows.append({"workers": workers, "skipped": "time budget spent"})
                    continue
                rows.append(
                    _children_per_hour(
                        env_id, kwargs, workers, cfg["worker_seconds"], cfg["device"], root
                    )
                )
            report[label] = {"env": env_id, "overrides": kwargs, "runs": rows}
        finally:
            shutil.rmtree(root, ignore_errors=True)
    return report


def part_search(cfg, data_dir, dry, out: Path) -> dict[str, Any]:
    from agents.runner import SearchArgs, run_search

    sizes = cfg["search"]
    kwargs = {
        **data_kwargs(data_dir, dry),
        "device": cfg["device"],
        "epochs": sizes["epochs"],
        "start_epochs": sizes["start_epochs"],
    }
    run = Path(tempfile.mkdtemp(prefix="eas_gpu_search_"))
    start = time.perf_counter()
    children = run_search(
        SearchArgs(
            env_id="EAS-CIFAR10-v0",
            agent="reinforce",
            nets=sizes["nets"],
            batch=sizes["batch"],
            out=str(run),
            asynchronous=not dry,
            env_kwargs=kwargs,
            progress=False,
        )
    )
    best = max(children, key=lambda c: c["accuracy"])
    shutil.copyfile(run / "search.png", out / "search.png")
    shutil.rmtree(run, ignore_errors=True)
    return {
        "env": "EAS-CIFAR10-v0",
        "overrides": kwargs,
        "nets": len(children),
        "seconds": round(time.perf_counter() - start, 1),
        "best": {k: best[k] for k in ("net", "accuracy", "params")},
        "mean_accuracy": round(sum(c["accuracy"] for c in children) / len(children), 4),
    }


# ---- the driver -----------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="where the JSON files go")
    parser.add_argument("--dry-run", action="store_true", help="tiny sizes on the CPU")
    parser.add_argument("--budget", type=float, default=480.0, help="seconds for all parts")
    parser.add_argument("--parts", default="env,throughput,paper_child,workers,search")
    args = parser.parse_args()

    cfg = DRY if args.dry_run else FULL
    if not args.dry_run and not torch.cuda.is_available():
        print("gpu_suite: no CUDA device (use --dry-run to check the script on CPU)")
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    data_dir = None if args.dry_run else find_data()
    deadline = time.time() + args.budget
    print(f"gpu_suite: data {data_dir or 'synthetic'}; budget {args.budget:.0f} s", flush=True)
    parts = {
        "env": lambda: part_env(cfg, data_dir, args.dry_run),
        "throughput": lambda: part_throughput(cfg, data_dir, args.dry_run, args.out),
        "paper_child": lambda: part_paper_child(cfg, data_dir, args.dry_run),
        "workers": lambda: part_workers(cfg, data_dir, args.dry_run, deadline),
        "search": lambda: part_search(cfg, data_dir, args.dry_run, args.out),
    }
    failed = 0
    for name in args.parts.split(","):
        started = time.perf_counter()
        report: dict[str, Any] = {"part": name, "dry_run": args.dry_run}
        report["data"] = "cifar10" if data_dir else "synthetic"
        if data_dir is None and not args.dry_run:
            report["warning"] = SYNTHETIC_WARNING
        if time.time() > deadline:
            report["skipped"] = "time budget spent"
        else:
            try:
                report.update(parts[name]())
            except Exception as e:  # one part's failure must not lose the others' figures
                failed += 1
                report["error"] = f"{type(e).__name__}: {e}"
                traceback.print_exc()
        report["part_seconds"] = round(time.perf_counter() - started, 1)
        (args.out / f"{name}.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
        print(f"gpu_suite: {name} done in {report['part_seconds']} s", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
