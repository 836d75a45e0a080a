"""Your own dataset: .npz files and ImageFolders, through loading, the env and the store."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from PIL import Image

import eas_gym  # noqa: F401
from eas_gym.data import check_dataset, dataset_classes, dataset_identity, load_dataset

CLASSES = ("cat", "dog", "frog")


def _images(n: int, size: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(n, size, size, 3) uint8 images whose first pixel encodes their index; labels i % 3."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    x[:, 0, 0, 0] = np.arange(n) % 256
    return x, np.arange(n) % len(CLASSES)


def _write_folder(root, x, y, part="train"):
    for i, (image, label) in enumerate(zip(x, y, strict=True)):
        folder = root / part / CLASSES[label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{i:04d}.png")


def _pairs(split):
    return sorted(zip(split.images.flatten(1).tolist(), split.labels.tolist(), strict=True))


@pytest.fixture
def npz(tmp_path):
    x, y = _images(90)
    xt, yt = _images(30, seed=1)
    path = tmp_path / "mine.npz"
    np.savez(path, x_train=x, y_train=y, x_test=xt, y_test=yt)
    return path


def test_an_npz_loads_as_a_class_balanced_dataset(npz):
    data = load_dataset(str(npz), val_size=30, train_size=45)
    assert data.num_classes == 3 and data.image_shape == (3, 12, 12)
    assert (len(data.train), len(data.val), len(data.test)) == (45, 30, 30)
    assert torch.bincount(data.val.labels).tolist() == [10, 10, 10]
    assert torch.bincount(data.train.labels).tolist() == [15, 15, 15]
    x, y = _images(90)  # every image is one of the file's, with its own label
    for split in (data.train, data.val):
        index = split.images[:, 0, 0, 0].long().numpy()
        assert np.array_equal(split.images.permute(0, 2, 3, 1).numpy(), x[index])
        assert np.array_equal(split.labels.numpy(), y[index])
    train_ids, val_ids = (set(s.images[:, 0, 0, 0].tolist()) for s in (data.train, data.val))
    assert train_ids.isdisjoint(val_ids)
    assert dataset_classes(str(npz)) == 3


def test_channel_first_and_grayscale_npz_give_the_same_rgb_images(tmp_path):
    x, y = _images(60)
    np.savez(tmp_path / "nhwc.npz", x_train=x, y_train=y)
    np.savez(tmp_path / "nchw.npz", x_train=x.transpose(0, 3, 1, 2), y_train=y)
    np.savez(tmp_path / "gray.npz", x_train=x[..., 0], y_train=y)
    a, b = (load_dataset(str(tmp_path / f), val_size=12) for f in ("nhwc.npz", "nchw.npz"))
    assert torch.equal(a.train.images, b.train.images) and torch.equal(a.val.labels, b.val.labels)
    assert len(a.test) == 0  # no x_test: an empty test split
    gray = load_dataset(str(tmp_path / "gray.npz"), val_size=12, image_size=8)
    assert gray.image_shape == (3, 8, 8)
    assert torch.equal(gray.train.images[:, 0], gray.train.images[:, 2])


def test_an_image_folder_loads_the_same_images_as_the_npz(tmp_path, npz):
    x, y = _images(90)
    xt, yt = _images(30, seed=1)
    _write_folder(tmp_path / "folder", x, y)
    _write_folder(tmp_path / "folder", xt, yt, part="test")
    folder = load_dataset(str(tmp_path / "folder"), val_size=30)
    arrays = load_dataset(str(npz), val_size=30)
    assert folder.num_classes == 3 and dataset_classes(str(tmp_path / "folder")) == 3
    for a, b in ((folder.train, arrays.train), (folder.val, arrays.val)):
        # the same multiset of (image, label) pairs; file order differs from array order
        assert _pairs(a) == _pairs(b)
    assert sorted(folder.test.labels.tolist()) == sorted(arrays.test.labels.tolist())


def test_a_folder_of_class_folders_alone_is_all_training_images(tmp_path):
    x, y = _images(30)
    _write_folder(tmp_path, x, y, part="flat")
    data = load_dataset(str(tmp_path / "flat"), val_size=6)
    assert (len(data.train), len(data.val), len(data.test), data.num_classes) == (24, 6, 0, 3)


def test_the_identity_follows_the_contents_not_the_path(tmp_path, npz):
    copy = tmp_path / "copy" / "mine.npz"
    copy.parent.mkdir()
    copy.write_bytes(npz.read_bytes())
    assert dataset_identity(str(npz)) == dataset_identity(str(copy))
    assert dataset_identity(str(npz)).startswith("mine.npz@sha256:")
    x, y = _images(90)
    x[0, 5, 5, 1] ^= 1  # one bit of one pixel
    np.savez(copy, x_train=x, y_train=y)
    assert dataset_identity(str(copy)) != dataset_identity(str(npz))
    assert dataset_identity("cifar10") == "cifar10"  # built-in keys are unchanged


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"x_train": np.zeros((6, 4, 4, 3), np.float32), "y_train": np.arange(6) % 2}, "uint8"),
        ({"x_train": np.zeros((6, 4, 4, 3), np.uint8)}, "lacks y_train"),
        ({"x_train": np.zeros((6, 4, 4, 3), np.uint8), "y_train": np.arange(5) % 2}, "5 labels"),
        ({"x_train": np.zeros((6, 4, 4, 3), np.uint8), "y_train": np.zeros(6, int)}, "2 classes"),
        ({"x_train": np.zeros((6, 4, 4, 5), np.uint8), "y_train": np.arange(6) % 2}, "shape"),
        (
            {
                "x_train": np.zeros((6, 4, 4, 3), np.uint8),
                "y_train": np.arange(6) % 2,
                "x_test": np.zeros((2, 4, 4, 3), np.uint8),
                "y_test": np.array([0, 2]),
            },
            "outside 0..1",
        ),
    ],
)
def test_a_bad_npz_names_what_is_wrong(tmp_path, arrays, message):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError, match=message):
        load_dataset(str(tmp_path / "bad.npz"), val_size=2)


def test_the_env_blames_a_bad_file_not_its_start_net(tmp_path):
    y = np.array([0, 1, 12, 1, 0, 1])  # a label past the 2 classes the others make
    np.savez(tmp_path / "bad.npz", x_train=np.zeros((6, 4, 4, 3), np.uint8), y_train=y)
    with pytest.raises(ValueError) as raised:
        gym.make("EAS-Synthetic-v0", dataset=str(tmp_path / "bad.npz"), store=":memory:")
    assert "bad.npz" in str(raised.value) and "start_net" not in str(raised.value)


@pytest.mark.parametrize(
    "arrays",
    [
        {"x_train": np.zeros((6, 4, 4, 3), np.uint8), "y_train": np.arange(5) % 2},  # counts
        {"x_train": np.zeros((6, 1, 4, 4, 3), np.uint8), "y_train": np.arange(6) % 2},  # 5-D
        {"x_train": np.zeros((6, 4, 4, 3), np.float32), "y_train": np.arange(6) % 2},  # floats
        {
            "x_train": np.zeros((6, 4, 4, 3), np.uint8),
            "y_train": np.arange(6) % 2,
            "x_test": np.zeros((2, 8, 8, 3), np.uint8),  # another size than x_train
            "y_test": np.array([0, 1]),
        },
    ],
)
def test_a_bad_npz_stops_a_search_before_its_folder_is_written(tmp_path, arrays):
    from agents.runner import SearchArgs, run_search

    np.savez(tmp_path / "bad.npz", **arrays)
    out = tmp_path / "run"
    args = SearchArgs(env_id="EAS-Synthetic-v0", agent="random", nets=2, batch=2, out=str(out))
    args.env_kwargs = {"dataset": str(tmp_path / "bad.npz"), "val_size": 2}
    with pytest.raises(ValueError, match="bad.npz"):
        run_search(args)
    assert not out.exists()


def test_a_file_that_is_not_an_npz_archive_is_never_unpickled(tmp_path):
    (tmp_path / "notes.npz").write_text("hello\n")
    with pytest.raises(ValueError, match="not an .npz archive of arrays") as raised:
        load_dataset(str(tmp_path / "notes.npz"))
    assert "allow_pickle" not in str(raised.value)


def test_bad_folders_and_unknown_names_say_what_is_allowed(tmp_path):
    with pytest.raises(ValueError, match=r"'cifar-10'.*does not exist.*cifar10.*\.npz"):
        load_dataset("cifar-10")
    with pytest.raises(ValueError, match="does not exist"):
        check_dataset(str(tmp_path / "nope.npz"), None, download=False)
    with pytest.raises(ValueError, match="Unknown `dataset`"):
        gym.make("EAS-Synthetic-v0", dataset=str(tmp_path / "nope"))
    x, y = _images(6)
    _write_folder(tmp_path / "sizes", x, y)
    Image.fromarray(np.zeros((9, 7, 3), np.uint8)).save(tmp_path / "sizes/train/cat/odd.png")
    with pytest.raises(ValueError, match="7x9.*resize the images to one size"):
        load_dataset(str(tmp_path / "sizes"), val_size=3)
    (tmp_path / "one" / "train" / "cat").mkdir(parents=True)
    with pytest.raises(ValueError, match="at least 2"):
        load_dataset(str(tmp_path / "one"))


def test_the_env_searches_your_own_dataset(tmp_path, npz):
    """A search on an .npz: the classifier has its classes and the store keys by its contents."""
    env = gym.make(
        "EAS-Synthetic-v0",
        dataset=str(npz),
        train_size=60,
        val_size=30,
        image_size=12,
        schedule="WD",
        noise=False,  # preservation to rounding: the paper's noise can reach 1e-4 by itself
        store=str(tmp_path / "store.sqlite"),
    )
    env.action_space.seed(0)  # the same actions every run
    obs, info = env.reset(seed=0)
    base = env.unwrapped
    assert base.start_arch.num_classes == 3
    assert base.eval_config.dataset == dataset_identity(str(npz))
    terminated = False
    while not terminated:
        action = env.action_space.sample(info["action_mask"])
        obs, reward, terminated, truncated, info = env.step(action)
    assert 0.0 <= info["accuracy"] <= 1.0 and info["preservation_error"] < 1e-4
    env.close()


def test_folder_layouts_the_review_found(tmp_path):
    x, y = _images(30)
    # a class folder named "test" inside train/ is a class; a test/ folder may hold one class;
    # hidden folders are not classes
    for i, image in enumerate(x[:6]):
        (tmp_path / "a/train/test").mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(tmp_path / f"a/train/test/{i}.png")
    _write_folder(tmp_path / "a", x, y)
    _write_folder(tmp_path / "a", x[:3], np.zeros(3, int), part="test")
    (tmp_path / "a/train/.ipynb_checkpoints").mkdir()
    data = load_dataset(str(tmp_path / "a"), val_size=8)
    assert data.num_classes == 4 and len(data.test) == 3
    assert data.test.labels.tolist() == [0, 0, 0]  # "cat", first in sorted order
    # val/ is the test split when there is no test/
    _write_folder(tmp_path / "b", x, y)
    _write_folder(tmp_path / "b", x[:6], y[:6], part="val")
    assert len(load_dataset(str(tmp_path / "b"), val_size=6).test) == 6
    # a held-out folder beside class folders, with no train/, is refused, not ignored
    _write_folder(tmp_path / "c", x, y, part="flat")
    _write_folder(tmp_path / "c/flat", x[:3], y[:3], part="test")
    with pytest.raises(ValueError, match="has test/ but no train/"):
        load_dataset(str(tmp_path / "c/flat"), val_size=3)


def test_non_square_images_are_resized_to_image_size(tmp_path):
    x, y = _images(30, size=24)
    with open(tmp_path / "wide.NPZ", "wb") as file:  # any suffix case
        np.savez(file, x_train=x[:, :, :16], y_train=y)  # 24 high, 16 wide
    data = load_dataset(str(tmp_path / "wide.NPZ"), val_size=6, image_size=24)
    assert data.image_shape == (3, 24, 24)


def test_keras_labels_and_label_mistakes(tmp_path):
    x, y = _images(30)
    np.savez(tmp_path / "keras.npz", x_train=x, y_train=y.reshape(-1, 1))  # (N, 1), as Keras
    assert load_dataset(str(tmp_path / "keras.npz"), val_size=6).num_classes == 3
    np.savez(tmp_path / "gap.npz", x_train=x, y_train=np.where(y == 1, 3, y))  # no class 1
    with pytest.raises(ValueError, match=r"no images of classes \[1\]"):
        load_dataset(str(tmp_path / "gap.npz"), val_size=6)
    np.savez(tmp_path / "half.npz", x_train=x, y_train=y, y_test=y[:3])
    with pytest.raises(ValueError, match="lacks x_test"):
        load_dataset(str(tmp_path / "half.npz"), val_size=6)


def test_ray_actors_get_an_absolute_dataset_path(tmp_path, monkeypatch, npz):
    from eas_gym.ray_vector import _absolute_paths

    monkeypatch.chdir(npz.parent)
    kwargs = _absolute_paths({"dataset": "mine.npz", "store": ":memory:"})
    assert kwargs["dataset"] == str(npz.resolve())
    assert _absolute_paths({"dataset": "cifar10", "store": ":memory:"})["dataset"] == "cifar10"
