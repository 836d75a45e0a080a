"""EASEnv: API conformance, determinism, schedule, masks, errors, rendering, resets."""

import os
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from conftest import rollout
from gymnasium.utils.env_checker import check_env, data_equivalence

from eas_gym.arch import SMALL_SPACE
from eas_gym.spaces import WIDER

L = SMALL_SPACE.max_layers
DATA_DIR = Path(os.environ.get("EAS_DATA_DIR") or Path(__file__).parents[2] / "shared" / "data")


def test_gymnasium_check_env_no_unexpected_warnings():
    env = gym.make("EAS-Surrogate-v0", store=":memory:").unwrapped
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env, skip_render_check=False)
    allowed = ()  # no warning is expected
    unexpected = [str(w.message) for w in caught if not str(w.message).startswith(allowed or "~")]
    assert not unexpected, unexpected


def test_sb3_check_env():
    sb3_checker = pytest.importorskip("stable_baselines3.common.env_checker")
    env = gym.make("EAS-Surrogate-v0", store=":memory:")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sb3_checker.check_env(env, warn=True)
    assert not [str(w.message) for w in caught], [str(w.message) for w in caught]


def test_same_seed_same_trajectory():
    a = gym.make("EAS-Surrogate-v0", store=":memory:")
    b = gym.make("EAS-Surrogate-v0", store=":memory:")
    a.action_space.seed(3)
    b.action_space.seed(3)
    assert data_equivalence(rollout(a, 7), rollout(b, 7), exact=True)


def test_same_seed_same_trajectory_with_training(tmp_path):
    runs = []
    for i in range(2):
        env = gym.make("EAS-Synthetic-v0", store=str(tmp_path / f"s{i}.sqlite"), schedule="WD")
        env.action_space.seed(1)
        runs.append(rollout(env, 5))
    assert data_equivalence(runs[0], runs[1], exact=True)
    assert runs[0][-1][5] is not None  # the last child was trained and scored


def test_reset_returns_start_net(surrogate):
    obs, info = surrogate.reset(seed=0)
    assert info["net"] == "C4-3 MP C4-3 MP C4-3 MP C4-3 GAP FC8"
    assert obs["num_layers"] == 8 and obs["steps_left"] == 9 and obs["step_kind"] == WIDER
    assert list(obs["kind"][:8]) == [1, 2, 1, 2, 1, 2, 1, 3] and not obs["kind"][8:].any()
    assert surrogate.observation_space.contains(obs)


def test_schedule_and_termination(surrogate):
    traj = rollout(surrogate, 0)
    assert len(traj) == 10
    assert [t[2] for t in traj[1:]] == [False] * 8 + [True]
    assert not any(t[3] for t in traj[1:])
    with pytest.raises(RuntimeError, match="reset"):
        surrogate.unwrapped.step(surrogate.action_space.sample())


def test_action_outside_space_raises(surrogate):
    surrogate.reset(seed=0)
    with pytest.raises(ValueError, match="not in MultiDiscrete"):
        surrogate.step(np.full(L + 2, 5))
    with pytest.raises(ValueError, match="not in"):
        surrogate.step(np.zeros(3, dtype=np.int64))


def test_illegal_flags_are_ignored_and_flagged(surrogate):
    surrogate.reset(seed=0)
    action = np.zeros(L + 2, dtype=np.int64)
    action[[0, 1, 15]] = 1  # layer 0 is legal; 1 is a pool, 15 is padding
    _, _, _, _, info = surrogate.step(action)
    assert info["illegal_action"] and info["net"].startswith("C8-3 MP C4-3")


def test_illegal_deeper_position_is_a_noop():
    env = gym.make("EAS-Surrogate-v0", store=":memory:", schedule="D")
    env.reset(seed=0)
    action = np.zeros(L + 2, dtype=np.int64)
    action[L] = 1  # a pool
    _, r, terminated, _, info = env.step(action)
    assert info["illegal_action"] and info["net"] == "C4-3 MP C4-3 MP C4-3 MP C4-3 GAP FC8"
    assert r == 0.0 and terminated


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"dataset": "mnist"}, "`dataset`"),
        ({"space": "huge"}, "`space`"),
        ({"reward_mode": "both"}, "`reward_mode`"),
        ({"schedule": "WXD"}, "`schedule`"),
        ({"schedule": ""}, "`schedule`"),
        ({"start_net": "C5-3 GAP"}, "width 5 not in"),
        ({"start_net": "C4-7 GAP"}, "kernel 7 not in"),
        ({"start_net": "C4-3 MP"}, "pool at layer 1 must be followed by a conv"),
        ({"evaluator": "oracle"}, "`evaluator`"),
        ({"probe_size": 0}, "`probe_size`"),
        ({"cost_weight": -1.0}, "`cost_weight`"),
        ({"render_mode": "rgb"}, "`render_mode`"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        gym.make("EAS-Surrogate-v0", store=":memory:", **kwargs)


def test_action_masks_flat_matches_info(surrogate):
    _, info = surrogate.reset(seed=0)
    flat = surrogate.unwrapped.action_masks()
    assert flat.dtype == bool and flat.shape == (sum(surrogate.action_space.nvec),)
    assert np.array_equal(flat, np.concatenate(info["action_mask"]).astype(bool))


def test_preservation_is_reported_and_exact_without_noise():
    # The weightless surrogate checks nothing (no weights): the trained ids do.
    kwargs = {"store": ":memory:", "schedule": "WWDD", "epochs": 0.2, "reward_mode": "sparse"}
    env = gym.make("EAS-Synthetic-v0", noise=False, **kwargs)
    env.action_space.seed(0)
    obs, info = env.reset(seed=0)
    for _ in range(4):
        obs, _, _, _, info = env.step(env.action_space.sample(info["action_mask"]))
        assert 0.0 <= info["preservation_error"] < 1e-5
    noisy = gym.make("EAS-Synthetic-v0", **kwargs)
    noisy.reset(seed=0)
    action = np.zeros(L + 2, dtype=np.int64)
    action[0] = 1
    assert noisy.step(action)[4]["preservation_error"] > 0.0


def test_render_ansi():
    env = gym.make("EAS-Surrogate-v0", store=":memory:", render_mode="ansi")
    env.reset(seed=0)
    assert env.render().startswith("C4-3 MP C4-3 MP C4-3 MP C4-3 GAP FC8 (acc=")


def test_registered_kwargs_are_json_able():
    for env_id in ("EAS-CIFAR10-v0", "EAS-CIFAR10-CPU-v0", "EAS-Synthetic-v0", "EAS-Surrogate-v0"):
        assert gym.spec(env_id).to_json()


@pytest.mark.skipif(
    not (DATA_DIR / "cifar-10-batches-py").is_dir(), reason=f"no CIFAR-10 under {DATA_DIR}"
)
def test_cpu_preset_on_real_cifar10(tmp_path):
    env = gym.make(
        "EAS-CIFAR10-CPU-v0",
        data_dir=str(DATA_DIR),
        store=str(tmp_path / "store.sqlite"),
        train_size=2000,
        val_size=500,
        start_epochs=6.0,
        epochs=1.0,
        schedule="WD",
    )
    env.action_space.seed(0)
    traj = rollout(env, 0)
    assert env.unwrapped._start[1] > 0.2  # the start net learned something real (chance: 0.1)
    assert traj[-1][2] and 0.15 < traj[-1][5] <= 1.0


def test_reset_from_a_stored_network(tmp_path):
    store = str(tmp_path / "store.sqlite")
    env = gym.make("EAS-Synthetic-v0", store=store, schedule="W", keep_weights=True)
    env.reset(seed=0)
    action = np.zeros(L + 2, dtype=np.int64)
    action[0] = 1
    _, _, _, _, info = env.step(action)
    obs, again = env.reset(seed=1, options={"net": info["net"]})
    assert again["net"] == info["net"] and again["accuracy"] == info["accuracy"]
    assert obs["width"][0] == 1  # the widened first layer
    with pytest.raises(ValueError, match="no stored weights"):
        env.reset(options={"net": "C8-3 MP C8-3 MP C4-3 MP C4-3 GAP FC8"})


def test_the_surrogate_writes_nothing_and_checks_no_weights(tmp_path):
    store = tmp_path / "store.sqlite"
    env = gym.make("EAS-Surrogate-v0", store=str(store), keep_weights=True)
    env.action_space.seed(0)
    _, info = env.reset(seed=0)
    assert env.unwrapped.weightless and env.unwrapped.last_episode_provenance is None
    for _ in range(9):
        _, _, terminated, _, info = env.step(env.action_space.sample(info["action_mask"]))
        assert info["preservation_error"] == 0.0 and info["lineage"]
    assert terminated and not store.exists()  # no rows, no weights, no file
    assert env.unwrapped.last_episode_provenance["start_digest"] is None
