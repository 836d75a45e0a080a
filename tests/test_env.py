"""EASEnv: API conformance, determinism, masks, cache, rewards, concurrency."""

import math
import multiprocessing as mp
import os
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env, data_equivalence

import eas_gym
import eas_gym.scorer as scorer_module
from eas_gym.arch import SMALL_SPACE, Arch
from eas_gym.morph import net2deeper, widen_layers
from eas_gym.reward import reward
from eas_gym.spaces import DEEPER, WIDER, action_mask, decode_action
from eas_gym.store import EvalStore, Evaluation
from eas_gym.vector import make_vector_env

L = SMALL_SPACE.max_layers
DATA_DIR = Path(os.environ.get("EAS_DATA_DIR", Path(__file__).parents[2] / "shared" / "data"))


def rollout(env, seed, steps=None):
    obs, info = env.reset(seed=seed)
    trajectory = [(obs, info["net"])]
    terminated = False
    while not terminated:
        action = env.action_space.sample(info["action_mask"])
        obs, r, terminated, truncated, info = env.step(action)
        trajectory.append((obs, r, terminated, truncated, info["net"], info["accuracy"]))
    return trajectory


@pytest.fixture
def surrogate():
    env = gym.make("EAS-Surrogate-v0", store=":memory:")
    env.action_space.seed(0)
    yield env
    env.close()


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


def test_dense_rewards_telescope(surrogate):
    for seed in range(3):
        traj = rollout(surrogate, seed)
        total = sum(t[1] for t in traj[1:])
        start = surrogate.unwrapped._start[1]
        assert math.isclose(total, reward(traj[-1][5]) - reward(start), rel_tol=1e-9, abs_tol=1e-9)


def test_sparse_reward_only_at_the_end():
    env = gym.make("EAS-Surrogate-v0", store=":memory:", reward_mode="sparse")
    env.action_space.seed(0)
    traj = rollout(env, 0)
    rewards = [t[1] for t in traj[1:]]
    assert rewards[:-1] == [0.0] * 8
    assert rewards[-1] == pytest.approx(reward(traj[-1][5])) and rewards[-1] > 0
    assert all(t[5] is None for t in traj[1:-1])  # untrained children have no accuracy


def test_cost_penalty_lowers_reward():
    plain = gym.make("EAS-Surrogate-v0", store=":memory:", reward_mode="sparse")
    costly = gym.make("EAS-Surrogate-v0", store=":memory:", reward_mode="sparse", cost_weight=0.5)
    for env in (plain, costly):
        env.action_space.seed(0)
    r_plain, r_costly = rollout(plain, 0)[-1][1], rollout(costly, 0)[-1][1]
    assert r_costly < r_plain


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
        ({"render_mode": "human"}, "`render_mode`"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        gym.make("EAS-Surrogate-v0", store=":memory:", **kwargs)


def test_masks_agree_with_transforms():
    """Every value a mask allows applies cleanly; every value it forbids is flagged illegal."""
    rng = np.random.default_rng(0)
    arch = Arch.from_string("C4-3 C8-3 C4-3 C4-3 MP C40-3 GAP FC80")
    state = eas_gym.build_net(arch).state_dict()
    for kind in (WIDER, DEEPER):
        mask = action_mask(arch, SMALL_SPACE, kind)
        for _ in range(50):
            action = np.array([rng.integers(len(m)) for m in mask])
            decoded = decode_action(action, arch, SMALL_SPACE, kind)
            read = slice(0, L) if kind == WIDER else slice(L, L + 2)  # the entries a step reads
            allowed = all(m[a] for m, a in zip(mask[read], action[read], strict=True))
            assert decoded.illegal == (not allowed)
            if decoded.widths:
                widen_layers(arch, state, decoded.widths, space=SMALL_SPACE)
            if decoded.layer is not None:
                net2deeper(arch, state, decoded.layer, decoded.kernel, space=SMALL_SPACE)
    deeper = action_mask(arch, SMALL_SPACE, DEEPER)[L]
    assert list(np.flatnonzero(deeper)) == [5, 6]  # first block is full (4 convs)
    wider = action_mask(arch, SMALL_SPACE, WIDER)
    assert not wider[5][1] and not wider[6][1] and wider[0][1]  # at max width


def test_action_masks_flat_matches_info(surrogate):
    _, info = surrogate.reset(seed=0)
    flat = surrogate.unwrapped.action_masks()
    assert flat.dtype == bool and flat.shape == (sum(surrogate.action_space.nvec),)
    assert np.array_equal(flat, np.concatenate(info["action_mask"]).astype(bool))


def test_preservation_is_reported_and_exact_without_noise():
    env = gym.make("EAS-Surrogate-v0", store=":memory:", noise=False)
    env.action_space.seed(0)
    obs, info = env.reset(seed=0)
    for _ in range(9):
        obs, _, _, _, info = env.step(env.action_space.sample(info["action_mask"]))
        assert 0.0 <= info["preservation_error"] < 1e-5
    noisy = gym.make("EAS-Surrogate-v0", store=":memory:")
    noisy.reset(seed=0)
    action = np.zeros(L + 2, dtype=np.int64)
    action[0] = 1
    assert noisy.step(action)[4]["preservation_error"] > 0.0


@pytest.mark.parametrize(("keep_weights", "retrained"), [(True, 0), (False, 2)])
def test_cache_hits_skip_training(tmp_path, monkeypatch, keep_weights, retrained):
    calls = []
    real = scorer_module.fine_tune

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(scorer_module, "fine_tune", counting)
    store = str(tmp_path / "store.sqlite")
    kwargs = {"store": store, "schedule": "WWD", "noise": False, "keep_weights": keep_weights}
    first = gym.make("EAS-Synthetic-v0", **kwargs)
    first.action_space.seed(0)
    traj1 = rollout(first, 3)
    trained = len(calls)
    assert trained == 1 + 3  # the start net, then three changed children
    assert first.unwrapped.last_episode_provenance["cache_hits"] == 0
    second = gym.make("EAS-Synthetic-v0", **kwargs)
    second.action_space.seed(0)
    traj2 = rollout(second, 3)
    # Dense: a hit without stored weights is trained again when the episode goes on from it
    # (same result); the last child and the start net are never trained again.
    assert len(calls) == trained + retrained
    assert second.unwrapped.last_episode_provenance["cache_hits"] == 3 - retrained
    assert [t[1:] for t in traj2[1:]] == [t[1:] for t in traj1[1:]]
    assert len(EvalStore(store).all(first.unwrapped.config_key)) == 3


def test_child_settings_do_not_retrain_the_start_net(tmp_path, monkeypatch):
    calls = []
    real = scorer_module.fine_tune
    monkeypatch.setattr(
        scorer_module, "fine_tune", lambda *a, **k: calls.append(1) or real(*a, **k)
    )
    store = str(tmp_path / "store.sqlite")
    for epochs in (1.0, 0.5):
        env = gym.make("EAS-Synthetic-v0", store=store, schedule="W", epochs=epochs)
        env.reset(seed=0)
        env.close()
    assert len(calls) == 1  # trained for the first env, served from the store for the second


def _write_rows(path, worker, count):
    store = EvalStore(path)
    for i in range(count):
        store.put(Evaluation(f"C{4 * (worker + 1)}-3 GAP FC{i + 1}", "key", 0.5, seed=worker))
    store.close()


def test_two_processes_writing_one_store_lose_nothing(tmp_path):
    path = str(tmp_path / "store.sqlite")
    EvalStore(path).close()
    ctx = mp.get_context("spawn")
    workers = [ctx.Process(target=_write_rows, args=(path, w, 150)) for w in range(2)]
    for p in workers:
        p.start()
    for p in workers:
        p.join(60)
        assert p.exitcode == 0
    rows = EvalStore(path).all("key")
    assert len(rows) == 300 and {r.seed for r in rows} == {0, 1}


def _open_at_once(path, barrier):
    barrier.wait()
    EvalStore(path).close()


def test_processes_opening_a_new_store_at_once_all_succeed(tmp_path):
    # Without the open lock about 3% of these opens failed with "database is locked".
    ctx = mp.get_context("fork")
    failed = 0
    for trial in range(20):
        barrier = ctx.Barrier(6)
        path = str(tmp_path / f"store{trial}.sqlite")
        workers = [ctx.Process(target=_open_at_once, args=(path, barrier)) for _ in range(6)]
        for p in workers:
            p.start()
        for p in workers:
            p.join(60)
        failed += sum(p.exitcode != 0 for p in workers)
    assert failed == 0


def test_vector_env_shares_one_store(tmp_path):
    store = str(tmp_path / "store.sqlite")
    envs = make_vector_env("EAS-Surrogate-v0", 2, store=store, device="cpu", reward_mode="sparse")
    obs, infos = envs.reset(seed=0)
    assert obs["num_layers"].shape == (2,)
    for _ in range(9):
        masks = infos["action_mask"]  # (num_envs,) object array of per-env mask tuples
        actions = np.stack([envs.single_action_space.sample(masks[i]) for i in range(2)])
        obs, rewards, terminated, truncated, infos = envs.step(actions)
    assert terminated.all() and (rewards > 0).all()
    envs.close()
    assert 1 <= len(EvalStore(store).all()) <= 3  # two children and the start net at most


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
