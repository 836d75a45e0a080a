"""The GPU suite: one prepared device run, eight parts, each in its own process and time limit.

    python benchmarks/gpu_bundle.py               # here, once: .device_bundle/ (wheels + data)
    bash benchmarks/gpu_suite.sh OUT              # on the device machine (RESULTS.md)
    bash benchmarks/gpu_suite.sh --dry-run OUT    # every part at tiny size on the CPU (tests)

The parts (:mod:`gpu_parts`), in order: ``env``, ``correctness``, ``throughput``,
``paper_child``, ``workers``, ``search``, ``child_profile``, ``autotune``; ``--parts`` picks
some. Each runs as a subprocess in its own process group
under ``min(its limit, budget left)`` seconds; at its limit the whole group is killed, and the
rows it wrote so far are kept. Everything goes into ``OUT/results.json`` (rewritten after
each part, so even a killed run leaves what it measured), with ``OUT/gpu_suite.png`` (trainer
step times, workers' images/s) and ``OUT/search.png``; the shell wrapper adds
``OUT/gpu_suite.log``: four files, within the device tool's eight.

Data: ``.device_bundle/cifar10_subset.npz`` (``gpu_bundle.py``: 10,000 CIFAR-10 training
images, 5,000 of them split off for validation, and 1,000 test images), unpacked once into a
scratch folder so that no process pays the LZMA decompression again. Without the bundle the
parts fall back to the synthetic set at the same sizes, and ``results.json`` warns. The dry run
writes a tiny synthetic ``.npz`` (8x8 images), so it goes through the same file path.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import gpu_bundle  # noqa: E402

PARTS = (
    "env",
    "correctness",
    "throughput",
    "paper_child",
    "workers",
    "search",
    "child_profile",
    "autotune",
)
BUDGET = 370.0
"""Seconds for all parts: with start-up and cleanup the run ends within 6.5 minutes."""
MIN_PART_SECONDS = 8.0
"""A part is skipped when less than this is left of the budget."""
GRACE = 3.0
"""Seconds between SIGTERM and SIGKILL for a part at its limit."""

FULL: dict[str, dict[str, Any]] = {  # 520 s of limits; BUDGET cuts the last parts short
    "env": {"limit": 20},
    "correctness": {"limit": 35, "train_steps": 150, "probe": 256, "aug_batches": 20},
    "throughput": {
        "limit": 55,
        "nets": ["start", "grown12", "grown20"],
        "warmup_steps": 30,
        "steps": 200,
        "repeats": 2,
    },
    "paper_child": {"limit": 60, "epochs": 20.0, "probe_steps": 100},
    "workers": {"limit": 70, "counts": [1, 4, 8], "seconds": 12.0, "chunk_epochs": 0.25},
    "search": {
        "limit": 90,
        "nets": [10, 20],  # one REINFORCE update of 10, then a second if time is left
        "batch": 10,
        "epochs": 1.0,
        "start_epochs": 3.0,
        "asynchronous": True,
    },
    "child_profile": {"limit": 40, "steps": 9, "epochs": 1.0, "start_epochs": 3.0},
    "autotune": {"limit": 150, "nets": 3, "steps": 78},
}
DRY: dict[str, dict[str, Any]] = {
    "env": {"limit": 30},
    "correctness": {"limit": 40, "train_steps": 3, "probe": 32, "aug_batches": 3},
    "throughput": {
        "limit": 40,
        "nets": ["start", "grown12", "grown20"],
        "warmup_steps": 1,
        "steps": 2,
        "repeats": 1,
    },
    "paper_child": {"limit": 40, "epochs": 20.0, "probe_steps": 2},
    "workers": {"limit": 60, "counts": [1, 2], "seconds": 1.0, "chunk_epochs": 1.0},
    "search": {
        "limit": 60,
        "nets": [2],
        "batch": 2,
        "epochs": 0.2,
        "start_epochs": 0.2,
        "schedule": "WD",  # one wider and one deeper step (the paper's: WWWWDDDDD)
        "asynchronous": False,
    },
    "child_profile": {
        "limit": 40,
        "steps": 2,
        "epochs": 0.2,
        "start_epochs": 0.2,
        "schedule": "WD",
    },
    "autotune": {"limit": 60, "nets": 1, "steps": 2},
}
DRY_DATA = {"train": 320, "val": 80, "test": 80, "image_size": 8}
SYNTHETIC_WARNING = "no CIFAR-10 subset could be read: synthetic data; accuracies mean nothing"


# ---- data -----------------------------------------------------------------------------------


def prepare_data(dry_run: bool, bundle: Path, scratch: Path) -> tuple[dict, dict]:
    """The dataset the parts load (``load_dataset`` arguments) and what to report about it."""
    npz = scratch / gpu_bundle.NPZ_NAME
    if dry_run:
        gpu_bundle.write_npz(npz, tiny_dataset(**DRY_DATA))
        info = {"kind": "synthetic npz (dry run)", "file": str(npz)}
        return {"dataset": str(npz), "sizes": {"val_size": DRY_DATA["val"]}}, info
    source = bundle / gpu_bundle.NPZ_NAME
    start = time.perf_counter()
    try:
        with np.load(source) as arrays:  # LZMA: unpack once, not in every process
            np.savez(npz, **{k: arrays[k] for k in arrays.files})
    except Exception as e:  # no bundle (or no lzma): the synthetic set, at the same sizes
        sizes = {
            "train_size": gpu_bundle.TRAIN_IMAGES - gpu_bundle.VAL_IMAGES,
            "val_size": gpu_bundle.VAL_IMAGES,
            "test_size": gpu_bundle.TEST_IMAGES,
        }
        warning = f"{SYNTHETIC_WARNING} ({type(e).__name__}: {e})"
        return {"dataset": "synthetic", "sizes": sizes}, {"kind": "synthetic", "warning": warning}
    manifest = bundle / "manifest.json"
    info = {
        "kind": "cifar10 subset",
        "file": str(source),
        "unpack_seconds": round(time.perf_counter() - start, 2),
        "manifest": json.loads(manifest.read_text()) if manifest.exists() else None,
    }
    return {"dataset": str(npz), "sizes": {"val_size": gpu_bundle.VAL_IMAGES}}, info


def tiny_dataset(train: int, val: int, test: int, image_size: int) -> dict[str, np.ndarray]:
    """Keras-layout arrays of a learnable toy set (a colour per class, plus noise).

    numpy alone: the dry run's driver need not import torch. `val` is drawn from `train`.
    """
    del val  # the suite's val_size splits it off x_train
    rng = np.random.default_rng(0)
    colours = rng.uniform(40, 215, size=(10, 3))
    arrays = {}
    for part, n in (("train", train), ("test", test)):
        labels = np.arange(n) % 10
        noise = rng.normal(0, 30, size=(n, image_size, image_size, 3))
        images = colours[labels][:, None, None, :] + noise
        arrays[f"x_{part}"] = images.clip(0, 255).astype(np.uint8)
        arrays[f"y_{part}"] = labels.astype(np.uint8).reshape(-1, 1)
    return arrays


# ---- running one part ---------------------------------------------------------------------


def _kill_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _children_cpu() -> float:
    """CPU seconds of this process's finished children (the parts and their workers)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_part(argv: list[str], rows_path: Path, limit: float) -> dict[str, Any]:
    """Run `argv` in a new process group for at most `limit` seconds; its status and rows.

    At the limit the group (the part and any worker processes it started) gets SIGTERM, then
    SIGKILL after :data:`GRACE` seconds; leftovers of a part that ended are killed too. The
    rows the part appended to `rows_path` are kept whatever happened.
    """
    start, cpu = time.perf_counter(), _children_cpu()
    proc = subprocess.Popen(argv, start_new_session=True)
    timed_out = False
    try:
        proc.wait(timeout=limit)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_group(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=GRACE)
        except subprocess.TimeoutExpired:
            _kill_group(proc.pid, signal.SIGKILL)
            proc.wait()
    finally:
        _kill_group(proc.pid, signal.SIGKILL)
    rows = []
    if rows_path.exists():
        for line in rows_path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut off by the kill
                rows.append({"unreadable": line[:200]})
    fatal = [r["fatal"] for r in rows if "fatal" in r]
    if timed_out:
        status = "timeout"
    elif proc.returncode != 0 or fatal:
        status = "error"
    else:
        status = "ok"
    return {
        "status": status,
        "limit_s": round(limit, 1),
        "seconds": round(time.perf_counter() - start, 1),
        "cpu_seconds": round(_children_cpu() - cpu, 1),
        "returncode": proc.returncode,
        "error": fatal[-1] if fatal else None,
        "failed_checks": sum("error" in r for r in rows),
        "rows": [r for r in rows if "fatal" not in r],
    }


# ---- the figure ---------------------------------------------------------------------------


def plot(parts: dict[str, Any], path: Path) -> None:
    """Trainer ms/step per net and variant; aggregate images/s against worker processes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    rows = [r for r in parts.get("throughput", {}).get("rows", []) if "ms_per_step" in r]
    nets = list(dict.fromkeys(r["net"] for r in rows))
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    for j, variant in enumerate(variants):
        ms = {r["net"]: r["ms_per_step"] for r in rows if r["variant"] == variant}
        xs = [i + 0.4 * j for i in range(len(nets))]
        left.bar(xs, [ms.get(n, 0) for n in nets], width=0.4, label=variant)
    left.set_xticks([i + 0.2 for i in range(len(nets))], nets)
    left.set_ylabel("ms per SGD step (batch 64)")
    left.set_title("trainer step time")
    if variants:
        left.legend()
    runs = [r for r in parts.get("workers", {}).get("rows", []) if "images_per_second" in r]
    right.plot([r["processes"] for r in runs], [r["images_per_second"] for r in runs], "o-")
    right.set_xticks([r["processes"] for r in runs])
    right.set_xlabel("processes fine-tuning at once")
    right.set_ylabel("images / s, all processes")
    right.set_title("children side by side on one device")
    devices = [r for r in parts.get("env", {}).get("rows", []) if r.get("kind") == "device"]
    fig.suptitle(f"GPU suite on {devices[0]['name'] if devices else 'the CPU'}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ---- the driver ---------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="where results.json and the PNGs go")
    parser.add_argument("--dry-run", action="store_true", help="tiny sizes on the CPU")
    parser.add_argument("--budget", type=float, default=BUDGET, help="seconds for all parts")
    parser.add_argument("--parts", default=",".join(PARTS), help="comma-separated subset")
    parser.add_argument("--bundle", type=Path, default=REPO / ".device_bundle")
    parser.add_argument(
        "--device", default=None, help="cuda (default), or cpu: full sizes on a CPU, to check"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    began = time.time()
    deadline = began + args.budget
    device = args.device or ("cpu" if args.dry_run else "cuda")
    if device.startswith("cuda"):
        import torch  # not for the dry run: every part imports it, the driver need not

        if not torch.cuda.is_available():
            print("gpu_suite: no CUDA device (use --dry-run to check the script on CPU)")
            return 2
    sizes = DRY if args.dry_run else FULL
    args.out.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="gpu_suite_"))
    results: dict[str, Any] = {"suite": {"dry_run": args.dry_run, "budget_s": args.budget}}
    results["suite"]["device"] = device
    results["parts"] = {}
    try:
        data, info = prepare_data(args.dry_run, args.bundle, scratch)
        results["suite"].update(data=info, started=time.strftime("%Y-%m-%d %H:%M:%S %Z"))
        print(f"gpu_suite: data {info['kind']}; budget {args.budget:.0f} s", flush=True)
        for name in args.parts.split(","):
            left = deadline - time.time()
            limit = min(sizes[name]["limit"], left)
            if limit < MIN_PART_SECONDS:
                results["parts"][name] = {"status": "skipped", "why": "budget spent", "rows": []}
                print(f"gpu_suite: {name} skipped ({left:.0f} s left)", flush=True)
                continue
            config = {
                "part": name,
                "device": device,
                "dry_run": args.dry_run,
                "data": data,
                "data_info": info,
                "sizes": sizes[name],
                "deadline": time.time() + limit,
                "rows": str(scratch / f"{name}.jsonl"),
                "out": str(args.out),
                "scratch": str(scratch),
            }
            config_path = scratch / f"{name}.json"
            config_path.write_text(json.dumps(config))
            print(f"gpu_suite: {name} (limit {limit:.0f} s)", flush=True)
            argv_part = [sys.executable, str(HERE / "gpu_parts.py"), str(config_path)]
            report = run_part(argv_part, Path(config["rows"]), limit)
            results["parts"][name] = report
            print(f"gpu_suite: {name} {report['status']} in {report['seconds']} s", flush=True)
            _write(results, args.out, began)
        try:
            plot(results["parts"], args.out / "gpu_suite.png")
        except Exception as e:  # the figure is a convenience; the JSON holds the numbers
            results["suite"]["plot_error"] = repr(e)
    finally:
        _write(results, args.out, began)
        shutil.rmtree(scratch, ignore_errors=True)
    bad = [n for n, p in results["parts"].items() if p["status"] != "ok"]
    print(f"gpu_suite: done in {time.time() - began:.0f} s; not ok: {bad or 'none'}", flush=True)
    return 1 if bad else 0


def _write(results: dict[str, Any], out: Path, began: float) -> None:
    results["suite"]["seconds"] = round(time.time() - began, 1)
    tmp = out / "results.json.tmp"
    tmp.write_text(json.dumps(results, indent=1, default=str) + "\n")
    tmp.replace(out / "results.json")


if __name__ == "__main__":
    sys.exit(main())
