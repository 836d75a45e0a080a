"""Write some of CIFAR-10's classes as a torchvision ImageFolder of PNGs: a stand-in for your data.

    python benchmarks/cifar_image_folder.py --data-dir ../shared/data --out ../cifar-animals \
        [--classes bird,cat,deer,dog,frog,horse]

eas_gym reads such a folder as a dataset of its own (``--set dataset=FOLDER``,
:mod:`eas_gym.own_data`), so the probe of RESULTS.md ("A probe of your own dataset") can be
rerun on a dataset that is not one of the built-in names. ``train/CLASS/NNNNN.png`` holds the
chosen classes' training images, ``test/CLASS/NNNNN.png`` their test images (NNNNN: the index
in CIFAR-10's files). Prints one JSON line: images written per part and the folder's identity.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from PIL import Image
from torchvision import datasets

from eas_gym.data import dataset_identity

ANIMALS = "bird,cat,deer,dog,frog,horse"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, help="folder holding cifar-10-batches-py/")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--classes", default=ANIMALS, help=f"comma-separated (default {ANIMALS})")
    args = parser.parse_args()
    wanted = [c.strip() for c in args.classes.split(",") if c.strip()]
    written = {}
    for part, train in (("train", True), ("test", False)):
        data = datasets.CIFAR10(args.data_dir, train=train)
        unknown = sorted(set(wanted) - set(data.classes))
        if unknown:
            parser.error(f"--classes: {unknown} are not CIFAR-10 classes ({data.classes})")
        written[part] = 0
        for index, (pixels, label) in enumerate(zip(data.data, data.targets, strict=True)):
            name = data.classes[label]
            if name in wanted:
                folder = args.out / part / name
                folder.mkdir(parents=True, exist_ok=True)
                Image.fromarray(pixels).save(folder / f"{index:05d}.png")
                written[part] += 1
    identity = dataset_identity(str(args.out))
    print(json.dumps({"out": str(args.out), "images": written, "identity": identity}))


if __name__ == "__main__":
    main()
