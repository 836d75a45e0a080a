"""The GPU suite's parts; :mod:`gpu_suite` runs each in its own process under its own time limit.

    python benchmarks/gpu_parts.py CONFIG.json     # one part (gpu_suite.py writes the config)

Each part appends its rows to ``config["rows"]`` (a JSON line each, flushed at once), so a part
killed at its limit keeps what it measured. A row with ``"error"`` is a check that raised (the
part goes on); a row with ``"fatal"`` ended the part. The parts, on ``config["device"]``
(``correctness`` in ``gpu_checks.py``, ``workers`` and ``search`` in ``gpu_children.py``):

* ``env``: nvidia-smi, the CPU, memory, versions, the TF32 defaults, the data carried;
* ``correctness``: preservation errors (max ``|logits' - logits|``, eval mode) of eas_gym's
  wider and deeper steps with noise 0, TF32 off and on, and against the same step on the CPU;
  the noisy steps (they run and perturb); augmentation batches from one seed equal on CPU
  and device;
* ``throughput``: the trainer's time per step (CUDA events) for the start net and grown 12-
  and 20-layer nets, bf16 + NHWC against fp32 + NCHW;
* ``paper_child``: one child under the paper's protocol (SEARCH_CONFIG) on the data carried;
  epochs cut to fit the limit if needed (the rows say so);
* ``workers``: 1, 4, 8 processes fine-tuning side by side on one device: aggregate images/s;
* ``search``: a REINFORCE search on ``EAS-CIFAR10-v0`` (``agents.runner.run_search``), one
  update of 10 networks, then a second if time is left;
* ``child_profile`` (``gpu_profile.py``): one env in one process, its reset and an episode's
  steps timed, each split into fine-tune and the rest, and profiled;
* ``autotune`` (``gpu_autotune.py``): fresh nets' first and second fine-tunes in fresh
  processes, cuDNN autotuning on and off, bf16 + NHWC and fp32 + NCHW.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import platform
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import torch
from gpu_autotune import part_autotune
from gpu_checks import part_correctness
from gpu_children import part_search, part_workers
from gpu_common import Rows, epochs_for, gen, load_data, timed
from gpu_profile import part_child_profile

from eas_gym.arch import PAPER_START, Arch
from eas_gym.net import build_net
from eas_gym.train import SEARCH_CONFIG, TrainConfig, evaluate, fine_tune

GROWN_12 = Arch.from_string(
    "C32-3 C32-3 MP C64-3 C64-3 MP C128-3 C128-3 MP C256-3 C256-3 GAP FC384"
)
GROWN_20 = Arch.from_string(  # as benchmarks/trainer_throughput.py's GROWN
    "C32-3 C32-3 C32-3 MP C64-3 C64-3 C64-3 C64-3 MP C128-3 C128-3 C128-3 C128-3 MP "
    "C256-3 C256-3 C256-3 C256-3 GAP FC512 FC512"
)
NETS = {"start": PAPER_START, "grown12": GROWN_12, "grown20": GROWN_20}
VARIANTS = {"bf16+NHWC": (True, True), "fp32+NCHW": (False, False)}  # (amp, channels_last)


def _run(argv: list[str]) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError) as e:
        return f"unavailable: {e}"


# ---- (1) environment facts -----------------------------------------------------------------


def part_env(cfg: dict[str, Any], rows: Rows) -> None:
    import gymnasium
    import numpy

    rows.add(
        kind="nvidia-smi",
        summary=_run(["nvidia-smi"]),
        query=_run(
            [
                "nvidia-smi",
                "--format=csv",
                "--query-gpu=name,driver_version,memory.total,"
                "clocks.max.sm,clocks.max.mem,power.limit,pstate,temperature.gpu",
            ]
        ),
    )
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    models = [line.split(":", 1)[1] for line in cpuinfo.splitlines() if "model name" in line]
    meminfo = Path("/proc/meminfo").read_text().split() if Path("/proc/meminfo").exists() else []
    rows.add(
        kind="host",
        cpu=models[0].strip() if models else platform.processor(),
        cores=os.cpu_count(),
        usable_cores=len(os.sched_getaffinity(0)),
        memory_gib=round(int(meminfo[1]) / 2**20, 1) if meminfo else None,
        kernel=platform.release(),
    )
    rows.add(
        kind="versions",
        python=platform.python_version(),
        torch=torch.__version__,
        cuda=torch.version.cuda,
        cudnn=torch.backends.cudnn.version(),
        numpy=numpy.__version__,
        gymnasium=f"{gymnasium.__version__} ({Path(gymnasium.__file__).parent})",
        commit=_run(["git", "-C", str(Path(__file__).parent), "rev-parse", "HEAD"]) or None,
        tf32_defaults={
            "cudnn.conv": torch.backends.cudnn.conv.fp32_precision,
            "cuda.matmul": torch.backends.cuda.matmul.fp32_precision,
        },
    )
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        rows.add(
            kind="device",
            name=props.name,
            capability=f"{props.major}.{props.minor}",
            multiprocessors=props.multi_processor_count,
            memory_gib=round(props.total_memory / 2**30, 1),
            bf16=torch.cuda.is_bf16_supported(),
        )
    data = load_data(cfg["data"], "cpu")
    rows.add(
        kind="data",
        about=cfg["data_info"],
        train=len(data.train),
        val=len(data.val),
        test=len(data.test),
        image_shape=data.image_shape,
    )


# ---- (3) trainer throughput ----------------------------------------------------------------


def part_throughput(cfg: dict[str, Any], rows: Rows) -> None:
    device, sizes = torch.device(cfg["device"]), cfg["sizes"]
    data = load_data(cfg["data"], device)
    for name in sizes["nets"]:
        arch = NETS[name]
        times: dict[str, list[float]] = {v: [] for v in VARIANTS}
        for _ in range(sizes["repeats"]):  # interleaved: drifting clocks hit both variants
            for variant, (amp, channels_last) in VARIANTS.items():
                net = build_net(arch, generator=gen(0), device=device)
                warm = TrainConfig(
                    epochs=epochs_for(sizes["warmup_steps"], data),
                    eval_split=None,
                    amp=amp,
                    channels_last=channels_last,
                )
                fine_tune(net, data, warm, generator=gen(1), device=device)  # cuDNN plans
                config = dataclasses.replace(warm, epochs=epochs_for(sizes["steps"], data))
                run = functools.partial(fine_tune, net, data, config, generator=gen(2))
                result, seconds = timed(device, functools.partial(run, device=device))
                times[variant].append(1000 * seconds / result.steps)
        for variant, ms in times.items():
            rows.add(
                net=name,
                arch=arch.to_string(),
                layers=len(arch.layers),
                params=arch.num_params(),
                variant=variant,
                batch_size=64,
                steps=sizes["steps"],
                ms_per_step=min(ms),
                repeats_ms=ms,
                images_per_second=round(64_000 / min(ms)),
                tf32_conv=torch.backends.cudnn.conv.fp32_precision,
            )


# ---- (4) one paper-protocol child ----------------------------------------------------------


def part_paper_child(cfg: dict[str, Any], rows: Rows) -> None:
    device, sizes = torch.device(cfg["device"]), cfg["sizes"]
    data = load_data(cfg["data"], device)
    per_epoch = max(1, len(data.train) // SEARCH_CONFIG.batch_size)
    # Time a few steps on a throwaway net (after a warm-up), then fit the epochs to the limit.
    trial = build_net(PAPER_START, generator=gen(0), device=device)
    probe = dataclasses.replace(
        SEARCH_CONFIG, epochs=epochs_for(sizes["probe_steps"], data), eval_split=None
    )
    fine_tune(trial, data, probe, generator=gen(1), device=device)
    result, seconds = timed(
        device, lambda: fine_tune(trial, data, probe, generator=gen(2), device=device)
    )
    step_s = seconds / result.steps
    _, eval_s = timed(device, lambda: evaluate(trial, data.val, mean=data.mean, std=data.std))
    left = cfg["deadline"] - time.time() - 3 * eval_s - 5
    epochs = float(min(sizes["epochs"], max(1, math.floor(left / (step_s * per_epoch)))))
    rows.add(
        kind="plan",
        ms_per_step=1000 * step_s,
        steps_per_epoch=per_epoch,
        epochs=epochs,
        paper_epochs=SEARCH_CONFIG.epochs,
        epochs_cut=epochs < SEARCH_CONFIG.epochs,
        why=None if epochs >= SEARCH_CONFIG.epochs else "cut to fit the part's limit",
    )

    net = build_net(PAPER_START, generator=gen(0), device=device)
    config = dataclasses.replace(SEARCH_CONFIG, epochs=epochs)
    start = time.perf_counter()

    def on_epoch(epoch: int, loss: float) -> None:
        rows.add(kind="epoch", epoch=epoch, loss=loss, seconds=time.perf_counter() - start)

    result = fine_tune(net, data, config, generator=gen(0), device=device, on_epoch=on_epoch)
    test = evaluate(net, data.test, mean=data.mean, std=data.std)[0] if len(data.test) else None
    rows.add(
        kind="result",
        net=PAPER_START.to_string(),
        config=config.to_dict(),
        train_images=len(data.train),
        val_images=len(data.val),
        test_images=len(data.test),
        val_accuracy=result.eval_accuracy,
        test_accuracy=test,
        seconds=result.seconds,
        images_per_second=round(result.images_per_second),
        steps=result.steps,
        diverged=result.diverged,
        oom=result.oom,
    )


PARTS = {
    "env": part_env,
    "correctness": part_correctness,
    "throughput": part_throughput,
    "paper_child": part_paper_child,
    "workers": part_workers,
    "search": part_search,
    "child_profile": part_child_profile,
    "autotune": part_autotune,
}


def main(config_path: str) -> int:
    cfg = json.loads(Path(config_path).read_text())
    rows = Rows(cfg["rows"])
    torch.manual_seed(0)
    try:
        PARTS[cfg["part"]](cfg, rows)
    except Exception as e:  # the driver reads this row: the part's error, in one line
        traceback.print_exc()
        rows.add(fatal=f"{type(e).__name__}: {e}"[:1000])
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
