"""Fine-tune and evaluate a child network, fast, on CPU or CUDA.

Generic over the model: any ``nn.Module`` mapping ``(B, C, H, W)`` images to logits. The data
stay on the training device as uint8 tensors (:mod:`eas_gym.data`); shuffling, augmentation
and normalisation are batched tensor ops seeded by an explicit ``torch.Generator``. What to
train for (:class:`TrainConfig`, the presets, the schedule) lives in :mod:`eas_gym.train_config`
and is re-exported here.

Faults are results, not exceptions, so a search can go on: a non-finite loss stops training
with ``diverged=True``; running out of GPU memory frees the cache and reports ``oom=True``.

Example:
    >>> import torch
    >>> from eas_gym.arch import SMALL_START
    >>> from eas_gym.data import load_dataset
    >>> from eas_gym.net import build_net
    >>> data = load_dataset("synthetic", train_size=200, val_size=100, image_size=16)
    >>> net = build_net(SMALL_START, generator=torch.Generator().manual_seed(0))
    >>> config = TrainConfig(epochs=0.5)
    >>> result = fine_tune(net, data, config, generator=torch.Generator().manual_seed(0))
    >>> result.steps, result.diverged, 0.0 <= result.eval_accuracy <= 1.0
    (2, False, True)
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from eas_gym.batches import iterate_batches
from eas_gym.splits import DataBundle, Split, resolve_device
from eas_gym.train_config import (
    FINAL_CONFIG,
    SCRATCH_CONFIG,
    SEARCH_CONFIG,
    TrainConfig,
    learning_rate,
)

__all__ = [
    "FINAL_CONFIG",
    "SCRATCH_CONFIG",
    "SEARCH_CONFIG",
    "TrainConfig",
    "TrainResult",
    "evaluate",
    "fine_tune",
    "is_out_of_memory",
    "resolve_device",
]

# Smallest width of the full-resolution convs from which channels_last pays off on CPU.
_CPU_CHANNELS_LAST_MIN_FILTERS = 16


@dataclass(frozen=True)
class TrainResult:
    """What a call to :func:`fine_tune` measured.

    Args:
        eval_accuracy: Top-1 accuracy on `eval_split`; None when not evaluated (no split, an
            empty split, divergence or OOM).
        eval_loss: Mean cross-entropy on `eval_split`, or None.
        eval_split: The split evaluated (``"val"``, ``"test"``) or None.
        train_loss: Mean training loss over the last epoch (the steps trained of it).
        epochs: Epochs trained (steps / steps per epoch).
        steps: SGD steps taken.
        seconds: Wall time of the whole call, evaluation included.
        cpu_seconds: CPU time of this process over the call (all its threads), evaluation
            included: unlike `seconds`, it does not grow when other processes share the cores.
        images_per_second: Training throughput (training steps only).
        diverged: A non-finite loss stopped training.
        oom: The device ran out of memory; training stopped.
        device: The device trained on, e.g. ``"cpu"``, ``"cuda:0"``.
    """

    eval_accuracy: float | None
    eval_loss: float | None
    eval_split: str | None
    train_loss: float | None
    epochs: float
    steps: int
    seconds: float
    images_per_second: float
    diverged: bool = False
    oom: bool = False
    device: str = "cpu"
    cpu_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Neither diverged nor out of memory."""
        return not (self.diverged or self.oom)

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-able dict."""
        return dataclasses.asdict(self)


def fine_tune(
    net: nn.Module,
    data: DataBundle,
    config: TrainConfig,
    *,
    generator: torch.Generator,
    device: torch.device | str = "auto",
    on_epoch: Callable[[int, float], None] | None = None,
) -> TrainResult:
    """Train `net` in place with SGD on `data`, then evaluate it on ``config.eval_split``.

    BatchNorm is in train mode while training and in eval mode while evaluating; the module's
    previous mode is restored afterwards. The module is moved to `device` and stays there.
    Deterministic on CPU for a fixed `generator` seed and initial weights.

    cuDNN autotuning (``torch.backends.cudnn.benchmark``) is left as the caller set it, off
    unless turned on: every child of a search has new layer shapes, and on an H200 tuning
    them cost 2.4-10.4 s per child against 0.4-0.6 s for a 1-epoch fine-tune, with no faster
    steps after (benchmarks/RESULTS.md, "The GPU suite").

    Args:
        net: Maps normalised ``(B, C, H, W)`` images to logits.
        data: The splits and normalisation; moved to `device` if they live elsewhere.
        config: Optimiser, schedule, augmentation and evaluation settings.
        generator: A CPU generator for the batch order and augmentation.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda:1"``...
        on_epoch: Called after each epoch with the epochs done and the epoch's mean loss
            (progress display; it costs one host sync per epoch).

    Returns:
        The result; divergence and OOM are reported in it, not raised.
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"Expected `config` to be a TrainConfig, got {type(config).__name__}")
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"Expected `generator` to be a torch.Generator, got {generator!r}")
    start, cpu_start = time.perf_counter(), time.process_time()
    device = resolve_device(device)
    train = data.train if config.train_split == "train" else _concat(data.train, data.val)
    eval_split = getattr(data, config.eval_split) if config.eval_split else None
    amp = bool(config.amp)
    progress = _Progress()
    accuracy = eval_loss = None
    was_training, oom = net.training, False
    channels_last = False
    try:
        tensors = [*net.parameters(), *net.buffers()]
        if not all(_is_on(t, device) for t in tensors):
            net.to(device)
        elif tensors:  # "cuda" leaves a net on cuda:1 there: its data must follow it
            device = tensors[0].device
        channels_last = _use_channels_last(config.channels_last, net, device)
        if channels_last:
            net.to(memory_format=torch.channels_last)
        _train(
            net, train.to(device), data, config, generator, progress, amp, channels_last, on_epoch
        )
        if eval_split is not None and len(eval_split) and not progress.diverged:
            accuracy, eval_loss = evaluate(
                net,
                eval_split.to(device),
                mean=data.mean,
                std=data.std,
                batch_size=config.eval_batch_size,
                amp=amp,
            )
    except RuntimeError as e:  # torch.OutOfMemoryError, or cuDNN's allocation failures
        if not is_out_of_memory(e):
            raise
        oom = True  # the handler's frames hold tensors: free the cache after it
    finally:
        if channels_last:
            net.to(memory_format=torch.contiguous_format)
        net.train(was_training)
    if oom:
        _release_memory(device)
        accuracy = eval_loss = None
    diverged = progress.diverged or (eval_loss is not None and not math.isfinite(eval_loss))
    return TrainResult(
        eval_accuracy=None if diverged else accuracy,
        eval_loss=None if diverged else eval_loss,
        eval_split=config.eval_split,
        train_loss=progress.loss,
        epochs=progress.steps / _steps_per_epoch(len(train), config.batch_size),
        steps=progress.steps,
        seconds=time.perf_counter() - start,
        images_per_second=progress.images / max(progress.seconds, 1e-9),
        diverged=diverged,
        oom=oom,
        device=str(device),
        cpu_seconds=time.process_time() - cpu_start,
    )


@torch.no_grad()
def evaluate(
    net: nn.Module,
    split: Split,
    *,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    batch_size: int | None = None,
    amp: bool | None = None,
) -> tuple[float, float]:
    """Top-1 accuracy and mean cross-entropy of `net` on `split`, BatchNorm in eval mode.

    Runs on the module's device (the split is moved there batch by batch if it lives
    elsewhere) and restores the module's previous train/eval mode. When the device runs out
    of memory, the evaluation starts again at half the batch size (BatchNorm in eval mode
    makes the result independent of it), down to one image before the error is raised.

    Args:
        net: Maps normalised images to logits.
        split: Images and labels.
        mean: Per-channel mean used for normalisation (``DataBundle.mean``).
        std: Per-channel std used for normalisation (``DataBundle.std``).
        batch_size: Images per batch; None: 1024 on CPU, 4096 on CUDA.
        amp: bf16 autocast; None or False: off (fp32).

    Returns:
        ``(accuracy, loss)``; the loss is nan or inf if the network's outputs are.
    """
    if len(split) == 0:
        raise ValueError("cannot evaluate on an empty `split`")
    device = next(net.parameters()).device
    if batch_size is None:
        batch_size = 4096 if device.type == "cuda" else 1024
    batch_size = min(batch_size, len(split))  # so that the first halving makes batches smaller
    autocast = _autocast(device, bool(amp))
    was_training = net.training
    net.eval()
    try:
        while True:
            try:
                return _evaluate_batches(net, split, mean, std, batch_size, autocast)
            except RuntimeError as e:
                if not is_out_of_memory(e) or batch_size == 1:
                    raise
            _release_memory(device)  # outside the handler, whose frames hold the batch
            batch_size = max(1, batch_size // 2)
    finally:
        net.train(was_training)


def _evaluate_batches(
    net: nn.Module,
    split: Split,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    batch_size: int,
    autocast: Any,
) -> tuple[float, float]:
    device = next(net.parameters()).device
    correct = torch.zeros((), dtype=torch.int64, device=device)
    total_loss = torch.zeros((), dtype=torch.float64, device=device)
    for x, y in iterate_batches(split, batch_size, mean=mean, std=std):
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with autocast:
            logits = net(x)
        total_loss += F.cross_entropy(logits.float(), y, reduction="sum")
        correct += (logits.argmax(1) == y).sum()
    return correct.item() / len(split), total_loss.item() / len(split)


def is_out_of_memory(error: BaseException) -> bool:
    """Whether `error` says the device ran out of memory.

    cuDNN and cuBLAS report a failed allocation as a plain ``RuntimeError`` (e.g.
    ``CUDNN_STATUS_ALLOC_FAILED``), not as ``torch.OutOfMemoryError``.

    >>> is_out_of_memory(RuntimeError("cuDNN error: CUDNN_STATUS_ALLOC_FAILED"))
    True
    """
    if isinstance(error, torch.OutOfMemoryError):
        return True
    text = str(error)
    return isinstance(error, RuntimeError) and (
        "out of memory" in text.lower() or "ALLOC_FAILED" in text
    )


# ---- the training loop ---------------------------------------------------------------------


@dataclass
class _Progress:
    """Filled in by :func:`_train` as it goes, so an interrupted run still reports its steps."""

    steps: int = 0
    images: int = 0
    seconds: float = 0.0
    loss: float | None = None  # mean over the last epoch's steps so far
    diverged: bool = False


def _train(
    net: nn.Module,
    train: Split,
    data: DataBundle,
    config: TrainConfig,
    generator: torch.Generator,
    progress: _Progress,
    amp: bool,
    channels_last: bool,
    on_epoch: Callable[[int, float], None] | None = None,
) -> None:
    """SGD steps on `train` (on its device), recorded in `progress`."""
    device = train.device
    batch_size = min(config.batch_size, len(train))
    total_steps = round(config.epochs * _steps_per_epoch(len(train), config.batch_size))
    optimizer = torch.optim.SGD(
        net.parameters(),
        lr=config.lr,
        momentum=config.momentum,
        nesterov=config.nesterov and config.momentum > 0,
        weight_decay=config.weight_decay,
        foreach=True,  # one fused update for all tensors; the CPU default loops over them
    )
    autocast = _autocast(device, amp)
    # On CUDA reading the loss forces a sync, so the divergence check runs every few steps.
    check_every = 1 if device.type == "cpu" else 50
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    net.train()
    start = time.perf_counter()
    epoch_loss = torch.zeros((), device=device)  # summed on the device: no sync per step
    epoch = 0
    while progress.steps < total_steps:
        epoch_loss.zero_()
        epoch_steps = 0
        for x, y in _epoch(train, batch_size, data, config.augment, generator):
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(config, progress.steps, total_steps)
            with autocast:
                loss = F.cross_entropy(net(x.contiguous(memory_format=memory_format)), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            epoch_loss += loss.detach().float()
            epoch_steps += 1
            progress.steps += 1
            progress.images += len(y)
            done = progress.steps == total_steps
            if done or progress.steps % check_every == 0:
                progress.loss = epoch_loss.item() / epoch_steps
                progress.seconds = time.perf_counter() - start
                if not math.isfinite(progress.loss):
                    progress.diverged = True
                    return
            if done:
                break
        epoch += 1
        if on_epoch is not None and epoch_steps:
            on_epoch(epoch, epoch_loss.item() / epoch_steps)
        if progress.steps >= total_steps:
            return


def _epoch(
    train: Split, batch_size: int, data: DataBundle, augment: bool, generator: torch.Generator
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    return iterate_batches(
        train,
        batch_size,
        mean=data.mean,
        std=data.std,
        shuffle=True,
        augment=augment,
        drop_last=True,
        generator=generator,
    )


def _steps_per_epoch(num_images: int, batch_size: int) -> int:
    return max(1, num_images // batch_size)


def _concat(a: Split, b: Split) -> Split:
    if len(b) == 0:
        return a
    return Split(torch.cat([a.images, b.images]), torch.cat([a.labels, b.labels]))


def _use_channels_last(option: bool | None, net: nn.Module, device: torch.device) -> bool:
    if option is not None:
        return option
    if device.type != "cpu":  # on an H200, NCHW was as fast or faster for every net measured
        return False
    # On CPU the full-resolution convs dominate; oneDNN's NHWC kernels beat NCHW there only
    # from 16 filters up (benchmarks/RESULTS.md), so look at the convs before the first pool.
    widths = []
    for module in net.modules():
        if isinstance(module, nn.MaxPool2d | nn.AvgPool2d):
            break
        if isinstance(module, nn.Conv2d):
            widths.append(module.out_channels)
    return bool(widths) and min(widths) >= _CPU_CHANNELS_LAST_MIN_FILTERS


def _is_on(tensor: torch.Tensor, device: torch.device) -> bool:
    """Whether `tensor` lives on `device` (``cuda`` without an index: on any GPU)."""
    same_type = tensor.device.type == device.type
    return same_type and (device.index is None or tensor.device.index == device.index)


def _autocast(device: torch.device, enabled: bool) -> Any:
    if not enabled:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def _release_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
