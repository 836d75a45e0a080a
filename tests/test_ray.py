"""RayVectorEnv and `eas-gym search --executor ray` on a local 2-CPU Ray instance."""

import json
import os
import sys
import time

import gymnasium
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import data_equivalence

from agents.cli import main
from agents.runner import read_children
from eas_gym.ray_store import RemoteStore, StoreService, start_store_service
from eas_gym.ray_vector import import_ray
from eas_gym.store import EvalStore, Evaluation, Store, open_store
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


def test_search_on_ray_records_its_actors_device_key(ray_instance, tmp_path, monkeypatch):
    # the head guesses a GPU; its actors (no GPUs in this instance) train on the CPU
    import agents.runner
    from agents.runner import SearchArgs, run_search

    monkeypatch.setattr(agents.runner, "_device_key", lambda env_id, env_kwargs: "cuda-fp32")
    out = tmp_path / "run"
    args = SearchArgs(env_id="EAS-Synthetic-v0", agent="random", nets=2, batch=2, out=str(out))
    args.env_kwargs = {"schedule": "WD", "reward_mode": "sparse"}
    args.executor, args.progress = "ray", False
    run_search(args)
    assert json.loads((out / "config.json").read_text())["device_key"] == "cpu"


@pytest.mark.parametrize("store_service", [False, True], ids=["store-file", "store-service"])
def test_dead_worker_is_restarted_and_replays(ray_instance, tmp_path, store_service):
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
        store_service=store_service,
        **SYNTHETIC,
    )
    assert envs.store.startswith("ray-store:") == store_service
    with pytest.warns(RuntimeWarning, match="restarted; it replayed 1 steps .1 store hits"):
        trajectory, infos = rollout(envs, seed=5, action_seed=0)
    envs.close()
    # Through the service or not, every result is in the one file, once: the start net and
    # each child (the one trained before the crash was served again, not retrained).
    rows = EvalStore(tmp_path / "r.sqlite").all()
    nets = {net for item in trajectory if isinstance(item, list) for net, _ in item}
    assert sum(r.parent is None for r in rows) == 1
    assert sorted(r.net for r in rows if r.parent is not None) == sorted(nets)
    assert all(r.weights and (tmp_path / r.weights).exists() for r in rows)
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
    if "ppo" in argv:
        pytest.importorskip("sb3_contrib")  # without it, the missing extra is the first error
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


def test_store_service_leases_expire_when_the_holder_stops_renewing(tmp_path):
    service = StoreService(str(tmp_path / "s.sqlite"))
    assert service.acquire("start", "a", lease=0.2)
    assert not service.acquire("start", "b", lease=0.2)  # held
    assert service.acquire("start", "a", lease=0.2)  # the holder renews
    service.release("start", "b")  # not the holder: no effect
    assert not service.acquire("start", "b", lease=0.2)
    time.sleep(0.3)  # "a" died without releasing: its lease runs out
    assert service.acquire("start", "b", lease=0.2)
    service.release("start", "b")
    assert service.acquire("start", "c", lease=0.2)
    service.close()


def test_remote_store_serves_the_file_from_any_process(ray_instance, tmp_path):
    path = str(tmp_path / "s.sqlite")
    actor, address = start_store_service(path)
    store = open_store(address)
    assert isinstance(store, RemoteStore) and isinstance(store, Store)
    state = {"w": torch.arange(6.0).reshape(2, 3)}
    weights = store.save_weights("C4-3 GAP", "k", state)
    store.put(Evaluation("C4-3 GAP", "k", 0.5, weights=weights))
    found = store.get("C4-3 GAP", "k")
    assert found.accuracy == 0.5 and torch.equal(store.load_weights(found)["w"], state["w"])

    @ray_instance.remote
    def from_a_worker(store, name):
        with store.lock(name):  # a lock taken in another process, through the service
            return store.get("C4-3 GAP", "k").accuracy

    assert ray_instance.get(from_a_worker.remote(store, "x")) == 0.5

    @ray_instance.remote
    def locked_at(store, name):
        with store.lock(name):
            return time.time()

    # A 0.3 s lease held for 1 s: renewals keep the other process out until the release.
    holder = RemoteStore(address, lease_seconds=0.3)
    with holder.lock("y"):
        other = locked_at.remote(holder, "y")
        time.sleep(1.0)
        released = time.time()
    assert ray_instance.get(other) >= released
    ray_instance.get(actor.close.remote())
    ray_instance.kill(actor)
    assert EvalStore(path).get("C4-3 GAP", "k").accuracy == 0.5  # it was the file all along
    with pytest.raises(ValueError, match="no store service 'ray-store:nobody'"):
        RemoteStore("ray-store:nobody")
