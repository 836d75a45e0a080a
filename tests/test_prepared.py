"""Datasets prepared once per machine: equal to a fresh load, memory-mapped, keyed by content."""

import os
from pathlib import Path

import numpy as np
import pytest
import torch

import eas_gym.prepared as prepared
from eas_gym.data import load_dataset
from eas_gym.prepared import load_prepared, prepared_path

DATA = Path(__file__).parents[2] / "shared" / "data"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EAS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("EAS_PREPARED", raising=False)
    return tmp_path / "cache" / "prepared"


@pytest.fixture
def own(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "mine.npz"
    np.savez(
        path,
        x_train=rng.integers(0, 256, (120, 8, 8, 3), dtype=np.uint8),
        y_train=np.arange(120) % 4,
        x_test=rng.integers(0, 256, (40, 8, 8, 3), dtype=np.uint8),
        y_test=np.arange(40) % 4,
    )
    return str(path)


def _same(a, b):
    assert (a.name, a.mean, a.std, a.num_classes) == (b.name, b.mean, b.std, b.num_classes)
    for split in ("train", "val", "test"):
        x, y = getattr(a, split), getattr(b, split)
        assert torch.equal(x.images, y.images) and torch.equal(x.labels, y.labels)


def test_a_prepared_dataset_equals_a_fresh_load_and_is_read_back(cache, own, monkeypatch):
    kwargs = {"name": own, "val_size": 20, "image_size": 6}
    first = load_prepared(**kwargs)
    _same(first, load_dataset(**kwargs))
    assert [p.name for p in cache.iterdir()] == [prepared_path(**kwargs).name]

    def no_load(**kw):
        raise AssertionError("prepared again")

    monkeypatch.setattr(prepared, "load_dataset", no_load)
    _same(load_prepared(**kwargs), first)  # read from the file, not prepared again


def test_other_settings_or_content_give_another_file(cache, own):
    kwargs = {"name": own, "val_size": 20}
    path = prepared_path(**kwargs)
    assert prepared_path(**{**kwargs, "val_size": 40}) != path
    assert prepared_path(**{**kwargs, "data_dir": "/elsewhere"}) == path  # own data: its path
    arrays = dict(np.load(own))
    arrays["x_train"][0] ^= 1
    np.savez(own, **arrays)
    assert prepared_path(**kwargs) != path


def test_a_damaged_file_is_prepared_again_and_the_cache_can_be_turned_off(cache, own, monkeypatch):
    kwargs = {"name": own, "val_size": 20}
    load_prepared(**kwargs)
    path = prepared_path(**kwargs)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.warns(UserWarning, match="preparing it again"):
        _same(load_prepared(**kwargs), load_dataset(**kwargs))
    monkeypatch.setenv("EAS_PREPARED", "0")
    assert prepared_path(**kwargs) is None
    assert prepared_path(name="synthetic") is None


@pytest.mark.skipif(not (DATA / "cifar-10-batches-py").is_dir(), reason="no CIFAR-10 here")
def test_cifar10_prepared_is_memory_mapped_and_keyed_by_its_files(cache):
    kwargs = {"name": "cifar10", "data_dir": str(DATA), "train_size": 1000, "val_size": 500}
    kwargs["image_size"] = 8
    data = load_prepared(**kwargs)
    _same(data, load_dataset(**kwargs))
    again = load_prepared(**kwargs)
    maps = Path("/proc/self/maps")
    if maps.exists():  # Linux: the splits are pages of the file, shared between processes
        assert str(prepared_path(**kwargs)) in maps.read_text()
    assert again.train.images.sum() == data.train.images.sum()
    assert os.path.getsize(prepared_path(**kwargs)) < 3 * (1500 + 10_000) * 3 * 64


def test_the_envs_of_one_process_share_one_copy_on_a_gpu(cache, own):
    """A SyncVectorEnv's (or SB3's DummyVecEnv's) envs on one GPU hold the data once."""
    import gc

    kwargs = {"name": own, "val_size": 20, "image_size": 6}
    first = load_prepared(device="meta", **kwargs)  # a device off the CPU, as a GPU is
    assert first.train.images.device.type == "meta"
    assert load_prepared(device="meta", **kwargs) is first
    del first
    gc.collect()
    assert not prepared._ON_DEVICES  # handed back with its last holder
    # on the CPU each call maps the file again: the page cache is the shared copy
    assert load_prepared(**kwargs) is not load_prepared(**kwargs)


def test_plain_cuda_shares_the_current_gpus_copy(cache, own, monkeypatch):
    """``device="cuda"`` and ``"cuda:0"`` in one process (GPU 0 current) hold one copy."""
    loads = []

    class Bundle:  # a stand-in for the GPU copy (weakly referenced, as the real one)
        pass

    def fake_load(path, device, kwargs):
        loads.append(device)
        return Bundle()

    monkeypatch.setattr(prepared, "_load_prepared", fake_load)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    kwargs = {"name": own, "val_size": 20, "image_size": 6}
    first = load_prepared(device="cuda", **kwargs)
    assert load_prepared(device="cuda:0", **kwargs) is first
    assert load_prepared(device="cuda:1", **kwargs) is not first
    assert [str(d) for d in loads] == ["cuda", "cuda:1"]
