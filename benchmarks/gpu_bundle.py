"""Build the device bundle: the wheels and the CIFAR-10 subset that the GPU suite carries.

    python benchmarks/gpu_bundle.py        # writes .device_bundle/ (ignored by git), ~25 MiB

The device machine has torch but not gymnasium, no network, and takes only the repository's
working tree (at most 64 MiB, tracked files and carried ignored folders together). This writes
the folder that the device run carries (``carry: [".device_bundle"]``):

* ``whl/``: gymnasium and farama-notifications as pure-Python wheels (``pip download``, the
  versions installed here); gymnasium's other needs (numpy, cloudpickle, typing-extensions)
  are in the device image, and the script checks that the wheel asks for nothing else;
* ``cifar10_subset.npz``: a class-balanced CIFAR-10 subset in Keras's layout (``x_train``
  ``(N, 32, 32, 3)`` uint8, ``y_train`` ``(N, 1)``, ``x_test``, ``y_test``), drawn with
  eas_gym's own split (seed 88) from torchvision's ``cifar-10-batches-py/``. On 2026-12-04
  10,000 training images (the suite splits 5,000 of them off for validation, leaving 5,000 to train
  on) and 1,000 test images: 11,000 images are 34 MB raw. CIFAR compresses poorly (zlib: 92%
  of raw), so the arrays are stored with LZMA (76%), which ``numpy.load`` reads like any
  ``.npz``: about 24.5 MiB. With the repository (35.6 MiB on 2026-12-04, most of it study
  records) about 60.5 MiB travel, under the tool's 64 MiB. By default the script takes as many
  training images as fit (:func:`fitting_train_images`, 3 MiB left free), and refuses a
  bundle that would not travel;
* ``manifest.json``: what was written, the sizes, the file's SHA-256 and the repo's commit.

Images are drawn per class in eas_gym's fixed order, so a smaller ``--train`` is a subset of a
larger one. Nothing here needs a GPU.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / ".device_bundle"
NPZ_NAME = "cifar10_subset.npz"
TRAIN_IMAGES = 10000
"""Training images carried; the suite takes VAL_IMAGES of them for validation."""
VAL_IMAGES = 5000
TEST_IMAGES = 1000
WHEELS = ("gymnasium", "farama-notifications")
"""Carried as wheels: the device image lacks them."""
IN_IMAGE = ("numpy", "cloudpickle", "typing-extensions")
"""gymnasium's other needs, already in the device image (its KINDS.md package list)."""
LIMIT_MIB = 64
MARGIN_MIB = 3.0
"""Left free under LIMIT_MIB: the records grow while a session runs."""
MIB_PER_IMAGE = 24.46 / 11000
"""LZMA-compressed CIFAR-10 per image (11,000 images were 24.46 MiB on 2026-12-04)."""
WHEELS_MIB = 0.5
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """``numpy.savez`` with LZMA-compressed members and fixed timestamps (same bytes each time).

    ``numpy.load`` reads any compression that ``zipfile`` does, LZMA included.
    """
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_LZMA) as archive:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_LZMA
            with archive.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.ascontiguousarray(array))


def keras_arrays(data_dir: Path, train: int, test: int) -> dict[str, np.ndarray]:
    """A class-balanced subset of CIFAR-10 as Keras's ``load_data`` gives it (uint8, NHWC)."""
    sys.path.insert(0, str(REPO))
    from eas_gym.data import load_dataset

    data = load_dataset("cifar10", data_dir=data_dir, train_size=train, val_size=0, test_size=test)

    def keras(split) -> tuple[np.ndarray, np.ndarray]:
        images = split.images.permute(0, 2, 3, 1).contiguous().numpy()  # (N, 32, 32, 3)
        return images, split.labels.numpy().astype(np.uint8).reshape(-1, 1)

    (x_train, y_train), (x_test, y_test) = keras(data.train), keras(data.test)
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


def download_wheels(folder: Path) -> list[str]:
    """The installed versions of WHEELS as py3 wheels for CPython 3.12 on x86-64 Linux."""
    shutil.rmtree(folder, ignore_errors=True)  # one version of each: two stop the install
    folder.mkdir(parents=True)
    pins = [f"{name}=={importlib.metadata.version(name)}" for name in WHEELS]
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
        + ["--python-version", "3.12", "--implementation", "cp", *platforms]
        + ["-d", str(folder), "-q", *pins],
        check=True,
    )
    wheels = sorted(p.name for p in folder.glob("*.whl"))
    check_requirements(folder)
    return wheels


def check_requirements(folder: Path) -> None:
    """Refuse wheels that need a package neither carried nor in the device image."""
    known = {n.replace("_", "-").lower() for n in (*WHEELS, *IN_IMAGE)}
    for wheel in folder.glob("*.whl"):
        with zipfile.ZipFile(wheel) as archive:
            name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
            metadata = archive.read(name).decode()
        for line in metadata.splitlines():
            if not line.startswith("Requires-Dist:") or "extra ==" in line:
                continue
            need = line.split(":", 1)[1].strip()
            project = re.match(r"[A-Za-z0-9._-]+", need)[0].replace("_", "-").lower()
            if project not in known:
                raise SystemExit(f"{wheel.name} needs {need!r}: carry it too (or add to IN_IMAGE)")


def fitting_train_images(repo_mib: float, test: int = TEST_IMAGES) -> int:
    """The most training images (a multiple of 1,000) that travel with the tree under the limit.

    >>> fitting_train_images(35.6)
    10000

    Raises:
        SystemExit: If fewer than VAL_IMAGES + 1,000 would fit: the tree must shrink first.
    """
    room = LIMIT_MIB - MARGIN_MIB - WHEELS_MIB - repo_mib
    train = int(room / MIB_PER_IMAGE - test) // 1000 * 1000
    if train < VAL_IMAGES + 1000:
        raise SystemExit(
            f"the working tree is {repo_mib:.1f} MiB: only {max(train, 0)} training images would "
            f"fit under the device tool's {LIMIT_MIB} MiB, fewer than the {VAL_IMAGES + 1000} "
            "the suite needs; keep fewer records in the tree, or pass --train"
        )
    return train


def tree_bytes() -> int:
    """Bytes of what the device tool sends without the bundle: tracked + untracked-not-ignored."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    paths = [REPO / p.decode() for p in listed if p]
    return sum(p.stat().st_size for p in paths if p.is_file())


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=BUNDLE)
    parser.add_argument(
        "--train",
        type=int,
        default=None,
        help="training images (default: the most that fit beside the working tree)",
    )
    parser.add_argument("--test", type=int, default=TEST_IMAGES, help="test images")
    parser.add_argument("--no-wheels", action="store_true", help="the data only")
    args = parser.parse_args(argv)

    if args.train is None:
        args.train = fitting_train_images(tree_bytes() / 2**20, args.test)
    args.out.mkdir(parents=True, exist_ok=True)
    wheels = [] if args.no_wheels else download_wheels(args.out / "whl")
    arrays = keras_arrays(args.data_dir, args.train, args.test)
    npz = args.out / NPZ_NAME
    write_npz(npz, arrays)
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    bundle_bytes = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    manifest = {
        "npz": NPZ_NAME,
        "source": str(args.data_dir / "cifar-10-batches-py"),
        "train_images": len(arrays["x_train"]),
        "val_images": VAL_IMAGES,
        "test_images": len(arrays["x_test"]),
        "per_class_train": np.bincount(arrays["y_train"].ravel()).tolist(),
        "compression": "zip LZMA (numpy.load reads it)",
        "npz_mib": round(npz.stat().st_size / 2**20, 2),
        "npz_sha256": sha256(npz),
        "wheels": wheels,
        "bundle_mib": round(bundle_bytes / 2**20, 2),
        "repo_mib": round(tree_bytes() / 2**20, 2),
        "commit": commit or None,
    }
    manifest["total_mib"] = round(manifest["bundle_mib"] + manifest["repo_mib"], 2)
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(json.dumps(manifest, indent=2))
    if manifest["total_mib"] > LIMIT_MIB:
        raise SystemExit(f"{manifest['total_mib']} MiB would travel: over {LIMIT_MIB} MiB")
    if manifest["total_mib"] > LIMIT_MIB - MARGIN_MIB:
        print(f"warning: {manifest['total_mib']} MiB would travel, near the {LIMIT_MIB} MiB limit")
    return manifest


if __name__ == "__main__":
    main()
