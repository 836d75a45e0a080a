"""Training throughput: eas_gym's trainer against a bare PyTorch loop and the usual pipeline.

Same model, data, batch size and optimiser for all three:

(a) ``eas_gym.train.fine_tune``: uint8 split in memory, batched crop + flip + normalise;
(b) a minimal hand-written loop over pre-normalised float tensors, no augmentation;
(c) the conventional pipeline: ``torchvision.datasets.CIFAR10`` with
    ``RandomCrop(32, padding=4)``, ``RandomHorizontalFlip``, ``ToTensor``, ``Normalize`` and a
    ``DataLoader(num_workers=2)``.

Each variant runs ``--warmup`` batches, then ``--batches`` timed batches, ``--repeats`` times
interleaved; the best repeat counts (other processes only ever slow a run down). On CPU the
trainer's channels_last choice is also measured both ways (``trainer_nchw``, ``trainer_nhwc``).
Prints one JSON line and writes a bar plot to ``--out``.

    python benchmarks/trainer_throughput.py --device cpu
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from eas_gym.arch import PAPER_START, SMALL_START, Arch
from eas_gym.data import DataBundle, DatasetNotFoundError, load_dataset, resolve_device
from eas_gym.net import build_net
from eas_gym.train import TrainConfig, fine_tune

# A paper-scale grown network: 20 layers, widths from the paper's lists.
GROWN = Arch.from_string(
    "C32-3 C32-3 C32-3 MP C64-3 C64-3 C64-3 C64-3 MP C128-3 C128-3 C128-3 C128-3 MP "
    "C256-3 C256-3 C256-3 C256-3 GAP FC512 FC512"
)
NETS = {"small": SMALL_START, "paper": PAPER_START, "grown": GROWN}
REPO = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    p.add_argument("--batches", type=int, default=150, help="timed batches per variant")
    p.add_argument("--warmup", type=int, default=10, help="untimed batches before timing")
    p.add_argument("--repeats", type=int, default=3, help="interleaved repeats; best counts")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--nets", default="small,paper", help="comma-separated: small, paper, grown")
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers for (c)")
    p.add_argument(
        "--data-dir",
        default=None,
        help="folder with cifar-10-batches-py/ (default: $EAS_DATA_DIR, else ../shared/data)",
    )
    p.add_argument("--synthetic", action="store_true", help="use synthetic data even if real")
    p.add_argument("--train-size", type=int, default=None, help="subset (default: all 45,000)")
    p.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).with_name("trainer_throughput.png"),
        help="where to write the bar plot (PNG)",
    )
    return p.parse_args(argv)


# ---- data ----------------------------------------------------------------------------------


def load(args: argparse.Namespace, device: torch.device) -> DataBundle:
    """Real CIFAR-10 when found, else the synthetic set at 32x32 (the JSON says which)."""
    if not args.synthetic:
        candidates = [args.data_dir, os.environ.get("EAS_DATA_DIR"), REPO.parent / "shared/data"]
        for root in filter(None, candidates):
            try:
                return load_dataset(
                    "cifar10", data_dir=root, train_size=args.train_size, device=device
                )
            except DatasetNotFoundError:
                continue
    train_size = args.train_size or 45000
    return load_dataset("synthetic", train_size=train_size, val_size=100, device=device)


class PILDataset(Dataset):
    """Synthetic images as PIL, to run the conventional pipeline when CIFAR-10 is absent."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform) -> None:
        self.images = images.permute(0, 2, 3, 1).numpy()  # (N, H, W, C) as CIFAR10.data
        self.labels = labels.tolist()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        from PIL import Image

        return self.transform(Image.fromarray(self.images[i])), self.labels[i]


def conventional_loader(data: DataBundle, root: str | None, args, device) -> DataLoader:
    from torchvision import datasets, transforms

    transform = transforms.Compose(
        [
            transforms.RandomCrop(32, padding=4),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(data.mean, data.std),
        ]
    )
    if root is not None:
        dataset = datasets.CIFAR10(root, train=True, transform=transform)
    else:
        dataset = PILDataset(data.train.images.cpu(), data.train.labels.cpu(), transform)
    return DataLoader(
        dataset,
        batch_size=args.batch_size,
        shuffle=True,
        num_workers=args.workers,
        drop_last=True,
        pin_memory=device.type == "cuda",
        persistent_workers=args.workers > 0,
        generator=torch.Generator().manual_seed(0),
    )


# ---- the three variants --------------------------------------------------------------------


def make_net(arch: Arch, device: torch.device) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    net = build_net(arch, generator=torch.Generator().manual_seed(0), device=device)
    opt = torch.optim.SGD(net.parameters(), lr=0.02, momentum=0.9, nesterov=True, weight_decay=1e-4)
    return net, opt


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_trainer(
    arch, data, args, device, channels_last: bool | None = None, amp: bool | None = None
) -> float:
    """(a) images/s of fine_tune over exactly `args.batches` steps (after a warm-up call)."""
    steps_per_epoch = len(data.train) // args.batch_size
    net = build_net(arch, generator=torch.Generator().manual_seed(0), device=device)
    result = None
    for steps in (args.warmup, args.batches):
        config = TrainConfig(
            epochs=steps / steps_per_epoch,
            batch_size=args.batch_size,
            eval_split=None,
            channels_last=channels_last,
            amp=amp,
        )
        result = fine_tune(
            net, data, config, generator=torch.Generator().manual_seed(0), device=device
        )
    assert result is not None and result.steps == args.batches and result.ok, result
    return result.images_per_second


def run_minimal(arch, data, args, device) -> float:
    """(b) a bare loop over pre-normalised float tensors already on the device.

    Batches are taken with ``index_select``, the fastest way on CPU (``x_all[idx]`` is slower),
    so this loop is a strict upper bound for what the trainer could reach without augmentation.
    """
    mean = torch.tensor(data.mean, device=device).view(1, -1, 1, 1)
    std = torch.tensor(data.std, device=device).view(1, -1, 1, 1)
    x_all = (data.train.images.float() / 255 - mean) / std  # not timed
    y_all = data.train.labels
    perm = torch.randperm(len(y_all), generator=torch.Generator().manual_seed(0)).to(device)
    net, opt = make_net(arch, device)
    net.train()
    b = args.batch_size
    for i in range(args.warmup + args.batches):
        if i == args.warmup:
            sync(device)
            start = time.perf_counter()
        idx = perm[i * b : (i + 1) * b]
        loss = F.cross_entropy(net(x_all.index_select(0, idx)), y_all.index_select(0, idx))
        opt.zero_grad()
        loss.backward()
        opt.step()
    sync(device)
    return args.batches * b / (time.perf_counter() - start)


def run_conventional(arch, loader: DataLoader, args, device) -> float:
    """(c) DataLoader + PIL transforms feeding the same training step."""
    net, opt = make_net(arch, device)
    net.train()
    batches = iter(loader)
    for i in range(args.warmup + args.batches):
        if i == args.warmup:
            sync(device)
            start = time.perf_counter()
        try:
            x, y = next(batches)
        except StopIteration:
            batches = iter(loader)
            x, y = next(batches)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        loss = F.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    sync(device)
    return args.batches * args.batch_size / (time.perf_counter() - start)


# ---- report --------------------------------------------------------------------------------


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(report["nets"])
    fig, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 3.8), squeeze=False)
    labels = {
        "trainer": "(a) eas_gym",
        "minimal": "(b) bare loop",
        "conventional": "(c) DataLoader",
    }
    for ax, name in zip(axes[0], names, strict=True):
        row = report["nets"][name]
        values = [row[k] for k in labels]
        bars = ax.bar(list(labels.values()), values, color=["C0", "C7", "C3"])
        ax.bar_label(bars, fmt="%.0f")
        ax.margins(y=0.12)
        ax.set_title(f"{name}: a/b {row['a_over_b']:.2f}, a/c {row['a_over_c']:.2f}")
        ax.set_ylabel("training images / s")
    fig.suptitle(
        f"Trainer throughput, {report['data']}, batch {report['batch_size']}, {report['device']}"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(args: argparse.Namespace) -> dict:
    device = resolve_device(args.device)
    torch.manual_seed(0)  # the baselines' DataLoader workers and loops; eas_gym uses generators
    data = load(args, device)
    root = None
    if data.name == "cifar10":
        candidates = [args.data_dir, os.environ.get("EAS_DATA_DIR"), REPO.parent / "shared/data"]
        root = str(
            next(r for r in filter(None, candidates) if Path(r, "cifar-10-batches-py").is_dir())
        )
    loader = conventional_loader(data, root, args, device)
    nets = {}
    for name in args.nets.split(","):
        arch = NETS[name]
        best: dict[str, float] = {}
        variants = {
            "trainer": (run_trainer, data, None),
            "minimal": (run_minimal, data, None),
            "conventional": (run_conventional, loader, None),
        }
        if device.type == "cpu":  # is the automatic channels_last choice the faster one?
            variants["trainer_nchw"] = (run_trainer, data, False)
            variants["trainer_nhwc"] = (run_trainer, data, True)
        else:  # and on CUDA, bf16 autocast and channels_last (both off by default since 2026-12)
            for precision, amp in (("fp32", False), ("bf16", True)):
                for layout, channels_last in (("nchw", False), ("nhwc", True)):
                    variants[f"trainer_{precision}_{layout}"] = (
                        run_trainer,
                        data,
                        channels_last,
                        amp,
                    )
        for _ in range(args.repeats):
            for key, (fn, source, *extra) in variants.items():
                extra = [] if extra == [None] else extra
                best[key] = max(best.get(key, 0.0), fn(arch, source, args, device, *extra))
        row = {k: round(v, 1) for k, v in best.items()}
        row["a_over_b"] = round(best["trainer"] / best["minimal"], 3)
        row["a_over_c"] = round(best["trainer"] / best["conventional"], 3)
        nets[name] = row
    report = {
        "benchmark": "trainer_throughput",
        "data": data.name
        if data.name == "cifar10" or args.synthetic
        else "synthetic (no CIFAR-10)",
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "batch_size": args.batch_size,
        "batches": args.batches,
        "repeats": args.repeats,
        "workers": args.workers,
        "nets": nets,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    plot(report, args.out)
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main(parse_args(sys.argv[1:]))
