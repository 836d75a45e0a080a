"""EvalConfig: what decides a child's accuracy, its store keys, and lineages."""

import dataclasses

import gymnasium as gym
import pytest

from eas_gym import EvalConfig, TrainConfig
from eas_gym.eval_config import KEY_VERSION, device_key, lineage_step
from eas_gym.store import config_key

BASE = EvalConfig(
    dataset="cifar10",
    train_size=10000,
    val_size=2000,
    image_size=16,
    evaluator="train",
    start_net="C8-3 MP C8-3 GAP FC16",
    start_train=TrainConfig(epochs=30.0, lr=0.1, batch_size=64),
    train=TrainConfig(epochs=6.0, lr=0.1, batch_size=64),
    num_classes=10,
    reward_mode="sparse",
    noise=True,
    device_type="cpu",
    probe_size=64,
)

CHILD_ONLY = {
    "train": TrainConfig(epochs=8.0, lr=0.1, batch_size=64),
    "reward_mode": "dense",
    "noise": False,
    "probe_size": 32,
}
SHARED = {
    "dataset": "svhn",
    "val_size": 5000,
    "image_size": 32,
    "start_net": "C16-3 MP C8-3 GAP FC16",
    "start_train": TrainConfig(epochs=10.0, lr=0.1, batch_size=64),
    "device_type": "cuda",
}


@pytest.mark.parametrize(("field", "value"), list(CHILD_ONLY.items()), ids=list(CHILD_ONLY))
def test_child_only_settings_change_the_key_but_not_the_start_key(field, value):
    other = dataclasses.replace(BASE, **{field: value})
    assert other.key() != BASE.key()
    assert other.start_key() == BASE.start_key()  # the start network is trained once for both


@pytest.mark.parametrize(("field", "value"), list(SHARED.items()), ids=list(SHARED))
def test_shared_settings_change_both_keys(field, value):
    other = dataclasses.replace(BASE, **{field: value})
    assert other.key() != BASE.key() and other.start_key() != BASE.start_key()


def test_keys_are_stable_and_versioned():
    same = dataclasses.replace(BASE)
    assert same.key() == BASE.key() and same.start_key() == BASE.start_key()
    assert BASE.key() == config_key({**BASE.record(), "key_version": KEY_VERSION})
    assert BASE.start_record()["role"] == "start" and "train" not in BASE.start_record()
    with pytest.raises(dataclasses.FrozenInstanceError):
        BASE.noise = False  # type: ignore[misc]


def test_legacy_key_only_for_the_old_default_probe_size():
    old = {k: v for k, v in BASE.record().items() if k != "probe_size"}
    assert BASE.legacy_key() == config_key(old)  # how eas_gym 0.1.0 keyed these children
    assert dataclasses.replace(BASE, probe_size=32).legacy_key() is None


def test_probe_size_is_part_of_the_env_key():
    a = gym.make("EAS-Surrogate-v0", store=":memory:", probe_size=8).unwrapped
    b = gym.make("EAS-Surrogate-v0", store=":memory:", probe_size=16).unwrapped
    assert a.config_key != b.config_key
    assert a.eval_config.start_key() == b.eval_config.start_key()  # the start net is shared


def test_lineage_depends_on_every_part_and_its_order():
    wider, deeper = {"op": "wider", "widths": [1]}, {"op": "deeper", "layer": 0, "kernel": 3}
    base = lineage_step("start", wider, 7)
    assert base == lineage_step("start", wider, 7) and len(base) == 24
    assert len({base, lineage_step("start", wider, 8), lineage_step("other", wider, 7)}) == 3
    assert lineage_step(lineage_step("s", wider), deeper) != lineage_step(
        lineage_step("s", deeper), wider
    )


def test_gpu_children_and_start_nets_are_keyed_apart_from_the_old_bf16_rows():
    """GPUs train in fp32 since 2026-12: a store's bf16 rows (keyed "cuda") must not serve."""
    old = dataclasses.replace(BASE, device_type="cuda")
    new = dataclasses.replace(BASE, device_type=device_key("cuda"))
    assert new.key() != old.key() and new.start_key() != old.start_key()
    assert dataclasses.replace(BASE, device_type=device_key("cpu")).key() == BASE.key()
