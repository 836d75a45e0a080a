"""Same seed, same episode, whatever the store holds; checkers on fresh stores; safe loading.

The store's own tests (migration, damaged files) are in test_store.py.
"""

import os
import pickle
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env, data_equivalence

import eas_gym  # noqa: F401
from eas_gym.arch import Arch
from eas_gym.densenet import DENSE_SMALL_START, build_dense_net, dense_deeper, dense_widen_units
from eas_gym.morph import net2deeper, net2wider
from eas_gym.net import build_net

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SHORT = {"epochs": 0.05, "start_epochs": 0.05, "train_size": 500, "val_size": 250}


def _short(env_id):
    """An id's arguments with training cut to a few steps (synthetic data if CIFAR is absent)."""
    spec = gym.spec(env_id).kwargs
    if spec.get("evaluator") == "surrogate":
        return {}
    kwargs = dict(SHORT)
    if spec.get("dataset", "cifar10") == "cifar10":
        if (DATA / "cifar-10-batches-py").exists():
            kwargs["data_dir"] = str(DATA)
        else:
            kwargs["dataset"] = "synthetic"
    return kwargs


CPU_IDS = [
    "EAS-Surrogate-v0",
    "EAS-Synthetic-v0",
    "EAS-CIFAR10-CPU-v0",
    "EAS-CIFAR10-CPU-v1",
    "EAS-CIFAR10-CPU-v2",
    "EAS-DenseNet-CIFAR10-CPU-v0",
]


@pytest.mark.parametrize("env_id", CPU_IDS)
def test_checkers_pass_on_a_fresh_store(env_id, tmp_path):
    kwargs = {**_short(env_id), "store": str(tmp_path / "gym.sqlite")}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        env = gym.make(env_id, **kwargs).unwrapped
        check_env(env, skip_render_check=True)
    allowed = ("is out of date",)  # gym.make's note on EAS-CIFAR10-CPU-v0, kept on purpose
    assert [str(w.message) for w in caught if not any(a in str(w.message) for a in allowed)] == []
    sb3_checker = pytest.importorskip("stable_baselines3.common.env_checker")  # the sb3 extra
    kwargs["store"] = str(tmp_path / "sb3.sqlite")
    sb3_checker.check_env(gym.make(env_id, **kwargs), warn=True)


def _trajectory(env, seed, actions=None, steps=None):
    obs, info = env.reset(seed=seed)
    out, taken = [(obs, info)], []
    rng = np.random.default_rng(seed)
    terminated, t = False, 0
    while not terminated:
        if actions is None:
            masks = tuple(np.asarray(m, np.int8) for m in info["action_mask"])
            env.action_space.seed(int(rng.integers(2**31)))
            action = env.action_space.sample(mask=masks)
        else:
            action = actions[t]
        taken.append(action)
        obs, reward, terminated, truncated, info = env.step(action)
        out.append((obs, reward, terminated, truncated, info))
        t += 1
    return out, taken


@pytest.mark.parametrize("reward_mode", ["dense", "sparse"])
def test_same_seed_same_episode_whatever_the_store_holds(tmp_path, reward_mode):
    kwargs = {"schedule": "WWD", "reward_mode": reward_mode}
    fresh = gym.make("EAS-Synthetic-v0", store=str(tmp_path / "fresh.sqlite"), **kwargs)
    reference, actions = _trajectory(fresh, seed=5)

    shared = str(tmp_path / "shared.sqlite")
    other = gym.make("EAS-Synthetic-v0", store=shared, **kwargs)
    _trajectory(other, seed=6, actions=actions)  # another search, same nets, other seeds
    _trajectory(other, seed=5, actions=actions)  # and this very episode: the store is warm
    again = gym.make("EAS-Synthetic-v0", store=shared, **kwargs)
    warm, _ = _trajectory(again, seed=5, actions=actions)
    assert again.unwrapped.last_episode_provenance["cache_hits"] >= 1  # served from the store
    assert data_equivalence(warm, reference, exact=True)

    repeated, _ = _trajectory(fresh, seed=5, actions=actions)  # one instance, reset twice
    assert data_equivalence(repeated, reference, exact=True)


def test_the_papers_net_cache_shares_across_seeds(tmp_path):
    kwargs = {"schedule": "WD", "reward_mode": "sparse", "cache_by": "net"}
    store = str(tmp_path / "s.sqlite")
    env = gym.make("EAS-Synthetic-v0", store=store, **kwargs)
    first, actions = _trajectory(env, seed=1)
    second, _ = _trajectory(env, seed=2, actions=actions)
    assert env.unwrapped.last_episode_provenance["cache_hits"] == 1
    assert second[-1][4]["accuracy"] == first[-1][4]["accuracy"]


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_transforms_follow_the_weights_dtype(dtype):
    arch = Arch.from_string("C4-3 MP C4-3 GAP FC8")
    net = build_net(arch, generator=torch.Generator().manual_seed(0)).to(dtype).eval()
    x = torch.rand(4, 3, 16, 16, dtype=dtype)
    a2, s2 = net2deeper(arch, net.state_dict(), 0, 3, batch=x)
    a3, s3 = net2wider(a2, s2, 0, 8)
    child = build_net(a3, s3).eval()
    assert next(child.parameters()).dtype == dtype
    # Not bit-equal even in float64: the wider layer sums more channels, in another order, and
    # oneDNN picks its kernels by memory alignment (1 run in 6 differed in the last bit).
    tolerance = 1e-9 if dtype == torch.float64 else 5e-2
    assert (child(x) - net(x)).abs().max() <= tolerance * max(1.0, net(x).abs().max())

    dense = build_dense_net(DENSE_SMALL_START, generator=torch.Generator().manual_seed(0))
    dense = dense.to(dtype).eval()
    d2, ds2 = dense_deeper(DENSE_SMALL_START, dense.state_dict(), 0, 1, source=0)
    d3, ds3 = dense_widen_units(d2, ds2, {(0, 0): 6})
    grown = build_dense_net(d3, ds3).eval()
    assert next(grown.parameters()).dtype == dtype
    assert (grown(x) - dense(x)).abs().max() <= tolerance * max(1.0, dense(x).abs().max())


# ---- files from elsewhere ----------------------------------------------------------------


class _Payload:
    def __reduce__(self):
        return (Path.touch, (Path(os.environ["EAS_PAYLOAD_MARK"]),))


def _plant(path: Path, mark: Path) -> None:
    os.environ["EAS_PAYLOAD_MARK"] = str(mark)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps({"agent": _Payload()}))


def test_files_from_elsewhere_do_not_run_code(tmp_path, capsys):
    from agents.cli import main
    from agents.run_folder import load_checkpoint
    from eas_gym.export import load_model

    mark = tmp_path / "ran"
    _plant(tmp_path / "run" / "checkpoint.pt", mark)
    argv = ["search", "--env", "EAS-Surrogate-v0", "--nets", "2", "--batch", "2"]
    assert main([*argv, "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    assert "it could run code" in capsys.readouterr().err and not mark.exists()
    with pytest.raises(ValueError, match="not loaded"):
        load_checkpoint(tmp_path / "run" / "checkpoint.pt")

    _plant(tmp_path / "sb3" / "sb3_state.pt", mark)
    argv = ["search", "--env", "EAS-Surrogate-v0", "--agent", "ppo", "--nets", "2", "--batch", "2"]
    assert main([*argv, "--out", str(tmp_path / "sb3"), "--no-progress"]) == 2
    assert not mark.exists()

    # a saved model whose weights file was swapped for a payload
    out = tmp_path / "good"
    assert (
        main(
            [
                "search",
                "--env",
                "EAS-Surrogate-v0",
                "--nets",
                "2",
                "--batch",
                "2",
                "--out",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    _plant(out / "best" / "weights.pt", mark)
    with pytest.raises(ValueError):
        load_model(out / "best")
    assert not mark.exists()
