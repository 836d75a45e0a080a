import os
import pickle
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from eas_gym.data import (
    DATASETS,
    DatasetNotFoundError,
    Split,
    check_dataset,
    default_data_dir,
    iterate_batches,
    load_dataset,
    make_synthetic,
)

# ---- fake torchvision files (as torchvision's own tests: generated into tmp_path) -----------


def _ids_to_images(ids: np.ndarray) -> np.ndarray:
    """(N, 32, 32, 3) uint8 images whose first two bytes encode `ids`, the rest random."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (len(ids), 32, 32, 3), dtype=np.uint8)
    images[:, 0, 0, 0], images[:, 0, 0, 1] = ids % 256, ids // 256
    return images


def _image_ids(split: Split) -> list[int]:
    return (split.images[:, 0, 0, 0].long() + 256 * split.images[:, 1, 0, 0].long()).tolist()


def write_fake_cifar10(root: Path, per_batch: int = 40, num_test: int = 50) -> None:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    ids = np.arange(5 * per_batch + num_test)
    images = _ids_to_images(ids).transpose(0, 3, 1, 2).reshape(len(ids), -1)  # rows as C, H, W
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for i, name in enumerate(names):
        part = slice(i * per_batch, (i + 1) * per_batch if i < 5 else None)
        entry = {"data": images[part], "labels": (ids[part] % 10).tolist()}
        (folder / name).write_bytes(pickle.dumps(entry))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": list("abcdefghij")}))


@pytest.fixture
def fake_cifar10(tmp_path, monkeypatch):
    """A 200 + 50 image CIFAR-10 in torchvision's layout; md5 checks patched out."""
    monkeypatch.setattr("torchvision.datasets.cifar.check_integrity", lambda *a, **k: True)
    write_fake_cifar10(tmp_path)
    return tmp_path


# ---- names, errors, data dirs --------------------------------------------------------------


def test_bad_name_raises_value_error_naming_it():
    with pytest.raises(ValueError, match=r"'mnist'.*does not exist.*cifar10.*synthetic.*\.npz"):
        load_dataset("mnist")
    assert DATASETS == ("cifar10", "cifar100", "svhn", "synthetic")


@pytest.mark.parametrize(
    "kwargs, match",
    [({"train_size": 0}, "`train_size`"), ({"val_size": -1}, "`val_size`"),
     ({"image_size": 0}, "`image_size`"), ({"test_size": -1}, "`test_size`")],
)  # fmt: skip
def test_bad_sizes(kwargs, match):
    with pytest.raises(ValueError, match=match):
        load_dataset("synthetic", **{"train_size": 100, **kwargs})


def test_sizes_larger_than_the_data(fake_cifar10):
    with pytest.raises(ValueError, match="`val_size` 300 needs 30 images of class 0"):
        load_dataset("cifar10", data_dir=fake_cifar10, val_size=300)
    with pytest.raises(ValueError, match="`train_size` 180"):
        load_dataset("cifar10", data_dir=fake_cifar10, val_size=50, train_size=180)


def test_missing_files_error_says_what_where_and_how(tmp_path):
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("cifar10", data_dir=tmp_path)
    assert isinstance(info.value, FileNotFoundError)
    message = str(info.value)
    assert str(tmp_path) in message and "7 of its 7 files missing (e.g. data_batch_1)" in message
    for hint in ("`data_dir`", "--data-dir", "EAS_DATA_DIR", "`download=True`", "--download"):
        assert hint in message
    assert "\n" not in message  # one line for the command line
    with pytest.raises(DatasetNotFoundError, match="cifar-10-batches-py/"):
        check_dataset("cifar10", tmp_path, download=False)
    check_dataset("cifar10", tmp_path, download=True)  # torchvision will fetch it
    check_dataset("synthetic", None, download=False)


def test_svhn_missing_files_named(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="train_32x32.mat"):
        load_dataset("svhn", data_dir=tmp_path)


def test_data_dir_from_env_var(tmp_path, monkeypatch):
    monkeypatch.setenv("EAS_DATA_DIR", str(tmp_path))
    assert default_data_dir() == tmp_path
    with pytest.raises(DatasetNotFoundError, match="EAS_DATA_DIR"):
        load_dataset("cifar100")


def test_default_data_dir_is_a_user_cache(monkeypatch):
    monkeypatch.delenv("EAS_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", "/somewhere/cache")
    assert default_data_dir() == Path("/somewhere/cache/eas_gym/data")


def test_failed_download_is_a_not_found_error(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise URLError("no network")

    monkeypatch.setattr("torchvision.datasets.cifar.download_and_extract_archive", offline)
    with pytest.raises(DatasetNotFoundError, match="no network"):
        load_dataset("cifar10", data_dir=tmp_path, download=True)


# ---- torchvision datasets (fake files) -----------------------------------------------------


def test_cifar10_split_sizes_disjoint_and_deterministic(fake_cifar10):
    data = load_dataset("cifar10", data_dir=fake_cifar10, val_size=50)
    assert (len(data.train), len(data.val), len(data.test)) == (150, 50, 50)
    assert data.train.images.shape == (150, 3, 32, 32) and data.train.images.dtype == torch.uint8
    assert data.num_classes == 10 and data.name == "cifar10"
    train, val = set(_image_ids(data.train)), set(_image_ids(data.val))
    assert not train & val and train | val == set(range(200))
    assert torch.bincount(data.val.labels).tolist() == [5] * 10  # class-balanced
    for split in (data.train, data.val, data.test):  # labels follow their images
        assert [i % 10 for i in _image_ids(split)] == split.labels.tolist()
    again = load_dataset("cifar10", data_dir=fake_cifar10, val_size=50)
    assert _image_ids(again.val) == _image_ids(data.val)
    other = load_dataset("cifar10", data_dir=fake_cifar10, val_size=50, split_seed=1)
    assert set(_image_ids(other.val)) != val


def test_subsets_are_balanced_and_nested(fake_cifar10):
    small = load_dataset("cifar10", data_dir=fake_cifar10, train_size=60, val_size=30, test_size=20)
    large = load_dataset("cifar10", data_dir=fake_cifar10, train_size=100, val_size=30)
    assert (len(small.train), len(small.val), len(small.test)) == (60, 30, 20)
    assert torch.bincount(small.train.labels).tolist() == [6] * 10
    assert torch.bincount(small.test.labels).tolist() == [2] * 10
    assert _image_ids(small.val) == _image_ids(large.val)
    assert set(_image_ids(small.train)) < set(_image_ids(large.train))


def test_pixels_arrive_as_nchw_and_stats_come_from_train(fake_cifar10):
    data = load_dataset("cifar10", data_dir=fake_cifar10, val_size=50)
    images = torch.from_numpy(_ids_to_images(np.arange(250)))  # (N, H, W, C)
    ids = _image_ids(data.train)
    assert torch.equal(data.train.images, images[ids].permute(0, 3, 1, 2))
    x = data.train.images.double() / 255
    assert np.allclose(data.mean, x.mean(dim=(0, 2, 3)).tolist())
    assert np.allclose(data.std, x.std(dim=(0, 2, 3), correction=0).tolist())


def test_image_size_downsamples_with_antialias(fake_cifar10):
    data = load_dataset("cifar10", data_dir=fake_cifar10, val_size=50, image_size=16)
    assert data.image_shape == (3, 16, 16) and data.test.images.shape[-1] == 16
    constant = torch.full((1, 3, 32, 32), 77, dtype=torch.uint8)
    from eas_gym.data import _resize

    assert torch.equal(_resize(constant, 8), torch.full((1, 3, 8, 8), 77, dtype=torch.uint8))


def test_cifar100_layout(tmp_path, monkeypatch):
    monkeypatch.setattr("torchvision.datasets.cifar.check_integrity", lambda *a, **k: True)
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    for name, n in (("train", 300), ("test", 100)):
        images = _ids_to_images(np.arange(n)).transpose(0, 3, 1, 2).reshape(n, -1)
        entry = {"data": images, "fine_labels": (np.arange(n) % 100).tolist()}
        (folder / name).write_bytes(pickle.dumps(entry))
    (folder / "meta").write_bytes(pickle.dumps({"fine_label_names": [str(i) for i in range(100)]}))
    data = load_dataset("cifar100", data_dir=tmp_path, val_size=100)
    assert data.num_classes == 100 and (len(data.train), len(data.val)) == (200, 100)
    assert torch.bincount(data.val.labels).tolist() == [1] * 100


def test_svhn_from_generated_mat_files(tmp_path, monkeypatch):
    scipy_io = pytest.importorskip("scipy.io")
    monkeypatch.setattr("torchvision.datasets.svhn.check_integrity", lambda *a, **k: True)
    rng = np.random.default_rng(0)
    for name, n in (("train", 120), ("test", 30)):
        x = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)  # SVHN's (H, W, C, N)
        y = (np.arange(n) % 10 + 1).reshape(n, 1)  # digit 0 is stored as label 10
        scipy_io.savemat(tmp_path / f"{name}_32x32.mat", {"X": x, "y": y})
    data = load_dataset("svhn", data_dir=tmp_path, val_size=20)
    assert (len(data.train), len(data.val), len(data.test)) == (100, 20, 30)
    assert data.num_classes == 10 and set(data.test.labels.tolist()) == set(range(10))
    x_test = scipy_io.loadmat(tmp_path / "test_32x32.mat")["X"]
    assert torch.equal(data.test.images, torch.from_numpy(x_test).permute(3, 2, 0, 1))
    assert data.test.labels[:3].tolist() == [1, 2, 3] and data.test.labels[9].item() == 0


# ---- synthetic -----------------------------------------------------------------------------


def test_synthetic_defaults_sizes_and_determinism():
    data = load_dataset("synthetic")
    assert (len(data.train), len(data.val), len(data.test)) == (2000, 500, 500)
    assert data.image_shape == (3, 32, 32) and data.num_classes == 10
    assert torch.bincount(data.train.labels).tolist() == [200] * 10
    again = load_dataset("synthetic")
    assert torch.equal(again.train.images, data.train.images)
    assert torch.equal(again.val.labels, data.val.labels)


def test_synthetic_test_set_does_not_depend_on_pool_size():
    a = make_synthetic(100, 30, image_size=8)
    b = make_synthetic(200, 30, image_size=8)
    assert torch.equal(a[1].images, b[1].images)
    assert not torch.equal(a[0].images, make_synthetic(100, 30, image_size=8, seed=1)[0].images)


def test_synthetic_image_size_is_generated_directly():
    data = load_dataset("synthetic", train_size=100, val_size=20, test_size=10, image_size=16)
    assert data.image_shape == (3, 16, 16) and len(data.test) == 10


# ---- batches and augmentation --------------------------------------------------------------


def _crops(image: torch.Tensor, padding: int = 4) -> torch.Tensor:
    """Every crop and flip of one (C, H, W) image: (2 * (2p+1)^2, C, H, W)."""
    h, w = image.shape[1:]
    padded = F.pad(image, (padding,) * 4)
    out = [
        padded[:, dy : dy + h, dx : dx + w]
        for dy in range(2 * padding + 1)
        for dx in range(2 * padding + 1)
    ]
    return torch.stack(out + [c.flip(-1) for c in out])


def test_augmentation_gives_crops_and_flips_of_the_labelled_image():
    images = torch.randint(1, 256, (24, 3, 12, 12), dtype=torch.uint8)
    split = Split(images, torch.arange(24))  # label = index: checks alignment
    gen = torch.Generator().manual_seed(0)
    kwargs = {"mean": (0.0,) * 3, "std": (1 / 255,) * 3, "shuffle": True, "augment": True}
    batches = list(iterate_batches(split, 10, generator=gen, **kwargs))
    assert [tuple(x.shape) for x, _ in batches] == [(10, 3, 12, 12)] * 2 + [(4, 3, 12, 12)]
    assert all(x.dtype == torch.float32 and y.dtype == torch.int64 for x, y in batches)
    x = torch.cat([b[0] for b in batches]).round().to(torch.uint8)  # std 1/255: raw pixels
    y = torch.cat([b[1] for b in batches])
    assert sorted(y.tolist()) == list(range(24))
    seen_flip = seen_shift = False
    for image, label in zip(x, y.tolist(), strict=True):
        candidates = _crops(images[label])
        match = (candidates == image).flatten(1).all(1).nonzero().flatten().tolist()
        assert match, "not a crop/flip of the image with this label"
        seen_flip |= any(m >= 81 for m in match)
        seen_shift |= 40 not in match and 121 not in match  # not the centred crop
    assert seen_flip and seen_shift


def test_batches_are_seeded_by_the_generator():
    data = load_dataset("synthetic", train_size=200, val_size=0, image_size=16)

    def first(seed):
        gen = torch.Generator().manual_seed(seed)
        kw = {"mean": data.mean, "std": data.std, "shuffle": True, "augment": True}
        return next(iterate_batches(data.train, 32, generator=gen, **kw))

    assert torch.equal(first(0)[0], first(0)[0]) and torch.equal(first(0)[1], first(0)[1])
    assert not torch.equal(first(0)[0], first(1)[0])


def test_validation_batches_are_the_normalised_images_in_order():
    data = load_dataset("synthetic", train_size=100, val_size=50, image_size=16)
    x, y = zip(*iterate_batches(data.val, 16, mean=data.mean, std=data.std), strict=True)
    mean = torch.tensor(data.mean).view(1, 3, 1, 1)
    std = torch.tensor(data.std).view(1, 3, 1, 1)
    expected = (data.val.images.float() / 255 - mean) / std
    assert torch.allclose(torch.cat(x), expected, atol=1e-5)
    assert torch.equal(torch.cat(y), data.val.labels)
    normalised = torch.cat([b for b, _ in iterate_batches(data.train, 100, mean=data.mean,
                                                          std=data.std)])  # fmt: skip
    assert normalised.mean(dim=(0, 2, 3)).abs().max() < 1e-4
    assert (normalised.std(dim=(0, 2, 3)) - 1).abs().max() < 1e-2


def test_drop_last_and_argument_checks():
    split = Split(torch.zeros(10, 3, 8, 8, dtype=torch.uint8), torch.zeros(10, dtype=torch.int64))
    kw = {"mean": (0.5,) * 3, "std": (0.25,) * 3}
    assert [len(y) for _, y in iterate_batches(split, 4, drop_last=True, **kw)] == [4, 4]
    with pytest.raises(ValueError, match="`generator`"):
        next(iterate_batches(split, 4, shuffle=True, **kw))
    with pytest.raises(ValueError, match="`batch_size`"):
        next(iterate_batches(split, 0, **kw))
    with pytest.raises(ValueError, match="`images`"):
        Split(torch.zeros(10, 3, 8, 8), torch.zeros(10, dtype=torch.int64))


def test_library_leaves_the_global_rng_alone():
    torch.manual_seed(123)
    state = torch.get_rng_state()
    data = load_dataset("synthetic", train_size=100, val_size=20, image_size=8)
    gen = torch.Generator().manual_seed(0)
    list(iterate_batches(data.train, 32, mean=data.mean, std=data.std, shuffle=True,
                         augment=True, generator=gen))  # fmt: skip
    assert torch.equal(torch.get_rng_state(), state)


# ---- real CIFAR-10 -------------------------------------------------------------------------

REAL_DATA = Path(os.environ.get("EAS_DATA_DIR") or Path(__file__).parents[2] / "shared" / "data")
HAVE_CIFAR10 = (REAL_DATA / "cifar-10-batches-py" / "data_batch_1").is_file()


@pytest.mark.skipif(
    not HAVE_CIFAR10,
    reason=f"real CIFAR-10 not found in {REAL_DATA}/cifar-10-batches-py (set EAS_DATA_DIR)",
)
def test_real_cifar10_paper_split():
    data = load_dataset("cifar10", data_dir=REAL_DATA)
    assert (len(data.train), len(data.val), len(data.test)) == (45000, 5000, 10000)
    assert torch.bincount(data.val.labels).tolist() == [500] * 10
    assert np.allclose(data.mean, (0.491, 0.482, 0.447), atol=0.01)
