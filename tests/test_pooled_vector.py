"""PooledVectorEnv: fewer processes than environments, and the same results as SyncVectorEnv."""

import gymnasium as gym
import numpy as np
import pytest

import eas_gym  # noqa: F401  (registers the EAS-* ids)
from eas_gym.pooled_vector import PooledVectorEnv, env_groups
from eas_gym.vector import make_vector_env

SURROGATE = {"store": ":memory:", "probe_size": 4}


def _fns(n, **kwargs):
    return [lambda: gym.make("EAS-Surrogate-v0", **SURROGATE, **kwargs) for _ in range(n)]


def _play(envs, steps, seed=3):
    """Observations, rewards, ends and infos of `steps` masked random steps (with autoresets)."""
    obs, info = envs.reset(seed=seed)
    rng = np.random.default_rng(0)
    trace = [(obs, info)]
    for _ in range(steps):
        masks = info["action_mask"]
        actions = np.stack(
            [[rng.choice(np.flatnonzero(m)) for m in masks[i]] for i in range(envs.num_envs)]
        )
        obs, reward, terminated, truncated, info = envs.step(actions)
        trace.append((obs, reward, terminated, truncated, info))
    return trace


def _assert_equal(a, b):
    if isinstance(a, dict):
        assert set(a) == set(b)
        for key in a:
            _assert_equal(a[key], b[key])
    elif isinstance(a, tuple | list) or (isinstance(a, np.ndarray) and a.dtype == object):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _assert_equal(x, y)
    else:
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_groups_are_contiguous_and_balanced():
    assert env_groups(10, 2) == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]
    assert env_groups(3, 3) == [[0], [1], [2]]
    with pytest.raises(ValueError, match=r"`workers` <= num_envs \(3\), actually: 4"):
        env_groups(3, 4)
    with pytest.raises(ValueError, match="`workers`"):
        env_groups(3, 0)


def test_two_workers_step_five_envs_as_sync_vector_env_does():
    steps = 12  # past the 9-step episode: the next-step autoreset runs in the workers
    sync = gym.vector.SyncVectorEnv(_fns(5))
    expected = _play(sync, steps)
    sync.close()
    pooled = PooledVectorEnv(_fns(5), workers=2)
    try:
        assert pooled.observation_space == sync.observation_space
        assert pooled.action_space == sync.action_space
        got = _play(pooled, steps)
        assert pooled.get_attr("schedule") == tuple(sync.get_attr("schedule"))
        masks = pooled.call("action_masks")
        assert len(masks) == 5 and all(m.dtype == bool for m in masks)
        pooled.set_attr("cost_weight", [0.0, 0.1, 0.2, 0.3, 0.4])
        assert pooled.get_attr("cost_weight") == (0.0, 0.1, 0.2, 0.3, 0.4)
    finally:
        pooled.close()
    _assert_equal(got, expected)
    assert any(t[2].any() for t in got[1:])  # an episode did end inside the trace


def test_a_failure_in_a_worker_is_raised_here_with_its_traceback():
    pooled = PooledVectorEnv(_fns(3), workers=2)
    try:
        pooled.reset(seed=0)
        with pytest.raises(ValueError, match="not in MultiDiscrete") as raised:
            pooled.step(np.full(pooled.action_space.shape, 10**6))
        assert any("in worker 0 of PooledVectorEnv" in note for note in raised.value.__notes__)
        with pytest.raises(ValueError, match="Expected 3 seeds, actually: 2"):
            pooled.reset(seed=[1, 2])
    finally:
        pooled.close()


def test_a_worker_whose_env_cannot_be_made_says_why_at_the_first_command():
    fns = _fns(1) + [lambda: gym.make("EAS-Surrogate-v0", reward_shape="nope", **SURROGATE)]
    probe_is_fine = PooledVectorEnv(fns, workers=2)  # the spaces come from the first env
    try:
        with pytest.raises(ValueError, match="nope") as raised:
            probe_is_fine.reset(seed=0)
        assert any("in worker 1" in note for note in raised.value.__notes__)
    finally:
        probe_is_fine.close()


def test_make_vector_env_pools_its_copies_on_cpu_only():
    envs = make_vector_env("EAS-Surrogate-v0", 3, workers=2, threads=1, **SURROGATE)
    try:
        assert isinstance(envs, PooledVectorEnv) and envs.groups == [[0, 1], [2]]
    finally:
        envs.close()
    with pytest.raises(ValueError, match="`workers` None with CUDA devices"):
        make_vector_env("EAS-Surrogate-v0", 3, workers=2, device="cuda", **SURROGATE)


def test_the_runner_runs_no_more_training_processes_than_cores(monkeypatch):
    from agents.executors import training_processes
    from agents.search_args import SearchArgs
    from eas_gym import vector

    monkeypatch.setattr(vector.os, "sched_getaffinity", lambda _: {0, 1}, raising=False)
    args = SearchArgs(env_id="EAS-CIFAR10-CPU-v2")
    assert training_processes(args, {}, 10) == 2
    assert training_processes(args, {}, 2) is None  # one per env
    assert training_processes(args, {"device": "meta"}, 10) is None
    assert training_processes(SearchArgs(workers=4), {}, 10) == 4
    assert training_processes(SearchArgs(workers=10), {}, 10) is None


@pytest.mark.parametrize("cores", [1, 2])
def test_real_children_on_a_gpu_train_in_worker_processes_by_default(monkeypatch, cores):
    """On CUDA each environment gets its own process by default, whatever the cores.

    8 processes sharing an H200 fine-tuned 5.9x the images/s of one (benchmarks/RESULTS.md);
    stepping the batch in one process left the GPU waiting on each child in turn.
    """
    import torch

    from agents.executors import runs_asynchronously, training_processes
    from agents.search_args import SearchArgs
    from eas_gym import vector

    monkeypatch.setattr(vector.os, "sched_getaffinity", lambda _: set(range(cores)), raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    args = SearchArgs(env_id="EAS-CIFAR10-v0")  # device "auto": the GPU
    assert runs_asynchronously(args, {}, 10) and training_processes(args, {}, 10) is None
    assert not runs_asynchronously(args, {}, 1)  # one network per update: nothing to share
    assert not runs_asynchronously(args, {"dataset": "synthetic"}, 10)  # too cheap
    assert not runs_asynchronously(SearchArgs(env_id="EAS-Surrogate-v0"), {"device": "cuda"}, 10)
    assert not runs_asynchronously(SearchArgs(env_id="EAS-CIFAR10-v0", asynchronous=False), {}, 10)
    assert runs_asynchronously(args, {"device": "cpu"}, 10) == (cores > 1)


def test_workers_below_one_are_refused_before_anything_is_written(tmp_path):
    from agents.runner import run_search
    from agents.search_args import SearchArgs

    out = tmp_path / "run"
    with pytest.raises(ValueError, match="Expected `workers` >= 1 or None, actually: 0"):
        run_search(SearchArgs(env_id="EAS-Surrogate-v0", workers=0, out=str(out)))
    assert not out.exists()
