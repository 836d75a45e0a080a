"""What the GPU suite's parts share: rows written as they go, seeds, data, timing, TF32."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from eas_gym.data import DataBundle, load_dataset  # noqa: E402


class Rows:
    """Appends one JSON line per row to `path`, on disk at once, and echoes it to the log."""

    def __init__(self, path: str) -> None:
        self.path = path

    def add(self, **row: Any) -> None:
        """Write `row` (JSON-able values; others as ``str``)."""
        line = json.dumps(row, default=str)
        with open(self.path, "a") as handle:
            handle.write(line + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        print(f"  {line[:400]}", flush=True)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def load_data(spec: dict[str, Any], device: torch.device | str) -> DataBundle:
    return load_dataset(spec["dataset"], **spec["sizes"], device=device)


def epochs_for(steps: int, data: DataBundle, batch_size: int = 64) -> float:
    """The `epochs` that give exactly `steps` SGD steps on `data.train`."""
    return steps / max(1, len(data.train) // batch_size)


def timed(device: torch.device, fn: Callable[[], Any]) -> tuple[Any, float]:
    """``fn()`` and its seconds: CUDA events on a GPU, the wall clock elsewhere."""
    if device.type != "cuda":
        start = time.perf_counter()
        return fn(), time.perf_counter() - start
    begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    begin.record()
    result = fn()
    end.record()
    end.synchronize()
    return result, begin.elapsed_time(end) / 1000


@contextmanager
def tf32(enabled: bool) -> Iterator[None]:
    """TF32 for float32 convolutions and matmuls on or off inside (torch >= 2.9's flags)."""
    conv, matmul = torch.backends.cudnn.conv, torch.backends.cuda.matmul
    saved = conv.fp32_precision, matmul.fp32_precision
    conv.fp32_precision = matmul.fp32_precision = "tf32" if enabled else "ieee"
    try:
        yield
    finally:
        conv.fp32_precision, matmul.fp32_precision = saved
