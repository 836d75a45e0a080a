"""RayVectorEnv and `eas-gym search --executor ray` on a local 2-CPU Ray instance."""

import json
import os
import sys

import gymnasium
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import data_equivalence

from agents.runner import read_children
from eas_gym.cli import main
from eas_gym.ray_vector import import_ray
from eas_gym.vector import make_vector_env

SEARCH = ["search", "--env", "EAS-Surrogate-v0", "--nets", "4", "--batch", "2", "--seed", "3"]
SYNTHETIC = {"schedule": "WWD", "keep_weights": True}


@pytest.fixture(scope="module")
def ray_instance():
    ray = pytest.importorskip("ray")
    # The crash wrapper below lives in this test module: ship it to the workers by value.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def crash_mid_episode(marker):
    """A wrapper whose worker process dies once, when asked for an episode's second step."""

    class CrashOnce(gymnasium.Wrapper):
        def reset(self, **kwargs):
            self.steps = 0
            return super().reset(**kwargs)

        def step(self, action):
            self.steps += 1
            if self.steps == 2:
                try:  # O_EXCL: exactly one worker of all the copies dies, once
                    os.close(os.open(marker, os.O_CREAT | os.O_EXCL))
                except FileExistsError:
                    pass
                else:
                    os._exit(1)
            return super().step(action)

    return CrashOnce


def rollout(envs, seed, action_seed):
    """Random legal actions from a fixed RNG; the whole batched trajectory."""
    rng = np.random.default_rng(action_seed)
    obs, infos = envs.reset(seed=seed)
    trajectory, terminated = [obs], np.zeros(envs.num_envs, dtype=bool)
    while not terminated.all():
        actions = np.stack(
            [
                [rng.choice(np.flatnonzero(m)) for m in mask]
                for mask in infos["action_mask"]  # a tuple of masks per copy
            ]
        )
        obs, rewards, terminated, truncated, infos = envs.step(actions)
        trajectory.append((obs, rewards, terminated, truncated))
        trajectory.append(list(zip(infos["net"].tolist(), infos["accuracy"].tolist(), strict=True)))
    return trajectory, infos


def test_search_on_ray_equals_local(ray_instance, tmp_path):
    for executor in ("local", "ray"):
        out = str(tmp_path / executor)
        assert main([*SEARCH, "--out", out, "--executor", executor, "--no-progress"]) == 0
    key = ("update", "env", "net", "accuracy", "params", "return")
    local, ray = (read_children(tmp_path / e) for e in ("local", "ray"))
    assert len(ray) == 4
    assert [[c[k] for k in key] for c in ray] == [[c[k] for k in key] for c in local]
    assert not (tmp_path / "ray" / "ray_failures.jsonl").exists()


def test_dead_worker_is_restarted_and_replays(ray_instance, tmp_path):
    from eas_gym.ray_vector import RayVectorEnv

    torch_threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each 1-CPU actor: bitwise equal training
    try:
        local = make_vector_env(
            "EAS-Synthetic-v0", 2, asynchronous=False, store=str(tmp_path / "l.sqlite"), **SYNTHETIC
        )
        expected, _ = rollout(local, seed=5, action_seed=0)
        local.close()
    finally:
        torch.set_num_threads(torch_threads)

    log = tmp_path / "failures.jsonl"
    envs = RayVectorEnv(
        "EAS-Synthetic-v0",
        2,
        store=str(tmp_path / "r.sqlite"),
        failure_log=log,
        wrappers=[crash_mid_episode(str(tmp_path / "crashed"))],
        **SYNTHETIC,
    )
    with pytest.warns(RuntimeWarning, match="restarted; it replayed 1 steps .1 store hits"):
        trajectory, infos = rollout(envs, seed=5, action_seed=0)
    envs.close()
    assert (tmp_path / "crashed").exists(), "the hook did not fire"
    assert data_equivalence(trajectory, expected, exact=True)
    assert infos["worker_restarts"].sum() == 1 and envs.worker_restarts.sum() == 1
    (record,) = [json.loads(line) for line in log.read_text().splitlines()]
    assert record["replayed"] == 1 and record["hits"] == 1  # the first child was not retrained


def test_missing_ray_is_one_clear_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(ImportError, match=r'pip install "eas-gym\[ray\]"'):
        import_ray()
    assert main([*SEARCH, "--out", str(tmp_path / "r"), "--executor", "ray"]) == 2
    err = capsys.readouterr().err
    assert 'pip install "eas-gym[ray]"' in err and err.count("\n") == 1
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--agent", "ppo", "--executor", "ray"], "SB3 agents (ppo) evaluate children locally"),
        (["--ray-address", "auto"], "`ray_address` needs `executor='ray'`"),
    ],
)
def test_executor_user_errors(argv, message, tmp_path, capsys):
    assert main([*SEARCH, *argv, "--out", str(tmp_path / "r")]) == 2
    assert message in capsys.readouterr().err


def test_ray_vector_env_argument_errors(ray_instance):
    from eas_gym.ray_vector import RayVectorEnv

    with pytest.raises(ValueError, match="`num_gpus` >= 0"):
        RayVectorEnv("EAS-Surrogate-v0", 2, num_gpus=1.5)
    with pytest.raises(ValueError, match="`device` in"):
        RayVectorEnv("EAS-Surrogate-v0", 2, device="cuda:1")
    with pytest.raises(ValueError, match="needs `num_gpus` > 0"):
        RayVectorEnv("EAS-Surrogate-v0", 2, device="cuda", store=":memory:")
