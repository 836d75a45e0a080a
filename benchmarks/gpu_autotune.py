"""The GPU suite's autotune part: what a search's new shapes cost, in fresh processes.

A search makes new layer shapes with every child, and cuDNN caches its per-shape work (plans,
and the autotuning that ``torch.backends.cudnn.benchmark`` asks for) only within a process.
So the cost that matters is a *fresh* net's first fine-tune in a process that has never seen
its shapes. Each setting (autotune on or off, bf16 + channels_last or fp32 + NCHW) runs in its
own spawned process on the same random grown nets. For each net it times the first fine-tune
(new shapes) and a second, identical one (shapes cached): their difference is what the new
shapes cost. Settings run one after another, so no two share the device.
"""

from __future__ import annotations

import multiprocessing as mp
import queue
import random
import time
from typing import Any

import torch
from gpu_common import Rows, epochs_for, gen, load_data

SETTINGS = {  # name: (autotune, amp, channels_last)
    "autotune+bf16+NHWC": (True, True, True),  # the trainer's CUDA defaults until 2026-12
    "no-autotune+bf16+NHWC": (False, True, True),
    "autotune+fp32+NCHW": (True, False, False),
    "no-autotune+fp32+NCHW": (False, False, False),  # the defaults since
}


def random_net(seed: int) -> str:
    """A grown-looking plain CNN string with odd widths, so no two nets share a conv shape."""
    rng = random.Random(seed)
    blocks, width = [], rng.randrange(17, 40)
    for _ in range(4):
        convs = []
        for _ in range(rng.randint(1, 3)):
            convs.append(f"C{width}-{rng.choice((1, 3, 3, 5))}")
            width += rng.randrange(1, 24)
        blocks.append(" ".join(convs))
        width = int(width * rng.uniform(1.3, 1.8))
    return " MP ".join(blocks) + f" GAP FC{rng.randrange(200, 700)}"


def _setting_worker(cfg: dict[str, Any], setting: str, results: Any) -> None:
    """Time each net's first and second fine-tune under `setting`; one message per net."""
    from eas_gym.arch import Arch
    from eas_gym.net import build_net
    from eas_gym.train import TrainConfig, fine_tune

    autotune, amp, channels_last = SETTINGS[setting]
    torch.backends.cudnn.benchmark = autotune  # fine_tune leaves it as set (off by default)
    device = torch.device(cfg["device"])
    data = load_data(cfg["data"], device)
    sizes = cfg["sizes"]
    config = TrainConfig(
        epochs=epochs_for(sizes["steps"], data), amp=amp, channels_last=channels_last
    )
    # the context, the library handles and every Python path, on shapes no net below has
    warm = build_net(Arch.from_string("C7-7 MP C9-3 GAP FC11"), generator=gen(0), device=device)
    fine_tune(warm, data, config, generator=gen(0), device=device)
    for seed in range(sizes["nets"]):
        arch = Arch.from_string(random_net(seed))
        net = build_net(arch, generator=gen(seed), device=device)
        seconds = []
        for _ in range(2):
            begin, cpu = time.perf_counter(), time.process_time()
            result = fine_tune(net, data, config, generator=gen(1), device=device)
            seconds.append((time.perf_counter() - begin, time.process_time() - cpu))
        results.put(
            {
                "setting": setting,
                "net": arch.to_string(),
                "params": arch.num_params(),
                "steps": result.steps,
                "first_seconds": seconds[0][0],
                "second_seconds": seconds[1][0],
                "new_shape_seconds": seconds[0][0] - seconds[1][0],
                "first_cpu_seconds": seconds[0][1],
                "val_accuracy": result.eval_accuracy,
            }
        )
    results.put(None)


def part_autotune(cfg: dict[str, Any], rows: Rows) -> None:
    context = mp.get_context("spawn")  # CUDA cannot be forked
    totals: dict[str, list[float]] = {}
    for setting in SETTINGS:
        results = context.Queue()
        proc = context.Process(target=_setting_worker, args=(cfg, setting, results), daemon=True)
        began = time.perf_counter()
        proc.start()
        while True:
            try:
                row = results.get(timeout=1.0)
            except queue.Empty:
                if proc.exitcode is not None:
                    raise RuntimeError(f"{setting}: worker exit {proc.exitcode}") from None
                if time.time() > cfg["deadline"]:
                    raise TimeoutError(f"{setting}: the part's limit came first") from None
                continue
            if row is None:
                break
            rows.add(**row)
            totals.setdefault(setting, []).append(row["first_seconds"])
        proc.join(timeout=10)
        rows.add(
            kind="setting",
            setting=setting,
            process_seconds=time.perf_counter() - began,
            mean_first_seconds=sum(totals[setting]) / len(totals[setting]),
        )
