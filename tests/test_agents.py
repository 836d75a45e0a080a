"""Agents: shapes, masking, determinism, resumable state, and learning on the surrogate env."""

import numpy as np
import pytest
import torch

from agents.base import Agent, split_masks
from agents.random_search import RandomSearch
from agents.reinforce import Reinforce, _block_positions
from eas_gym.vector import make_vector_env


def make_envs(n=4, **kwargs):
    kwargs = {"store": ":memory:", "device": "cpu", "probe_size": 4, "noise": False, **kwargs}
    return make_vector_env("EAS-Surrogate-v0", n, asynchronous=False, **kwargs)


def flat_masks(infos):
    return np.stack([np.concatenate(m) for m in infos["action_mask"]]).astype(bool)


def run_episodes(envs, agent, updates, seed=0):
    """Run `updates` batches; returns the mean final accuracy of each batch."""
    means = []
    for u in range(updates):
        obs, infos = envs.reset(seed=seed * 10_000 + u * envs.num_envs)
        terminated = np.zeros(envs.num_envs, dtype=bool)
        while not terminated.all():
            masks = flat_masks(infos)
            actions = agent.act(obs, masks)
            parts = split_masks(masks, envs.single_action_space)
            for d, legal in enumerate(parts):  # masked choices are never taken
                assert legal[np.arange(envs.num_envs), actions[:, d]].all(), d
            obs, rewards, terminated, _, infos = envs.step(actions)
            assert not infos["illegal_action"].any()
            agent.observe(rewards, terminated)
        agent.update()
        means.append(float(np.mean(infos["accuracy"])))
    return means


@pytest.mark.parametrize("cls", [Reinforce, RandomSearch])
def test_protocol_shapes_and_masks(cls):
    envs = make_envs()
    agent = cls(envs.single_observation_space, envs.single_action_space, seed=0)
    assert isinstance(agent, Agent)
    obs, infos = envs.reset(seed=0)
    actions = agent.act(obs, flat_masks(infos))
    assert actions.shape == (4, len(envs.single_action_space.nvec)) and actions.dtype == np.int64
    run_episodes(envs, agent, updates=2)


def test_reinforce_masked_choices_have_zero_probability():
    envs = make_envs(n=2, schedule="D")
    agent = Reinforce(envs.single_observation_space, envs.single_action_space, seed=0)
    obs, infos = envs.reset(seed=0)
    masks = flat_masks(infos)
    L = envs.single_observation_space["kind"].shape[0]
    only = np.flatnonzero(split_masks(masks, envs.single_action_space)[L][0])[-1]
    start = int(np.sum(envs.single_action_space.nvec[:L]))
    masks[:, start : start + L] = False
    masks[:, start + only] = True  # one legal insert position left
    for _ in range(20):
        assert (agent.act(obs, masks)[:, L] == only).all()


def test_block_positions():
    kind = torch.tensor([[1, 1, 2, 1, 2, 1, 3, 3, 0, 0]])
    block, position = _block_positions(kind)
    assert block.tolist() == [[0, 0, -1, 1, -1, 2, 3, 3, -1, -1]]
    assert position.tolist() == [[0, 1, -1, 0, -1, 0, 0, 1, -1, -1]]


@pytest.mark.parametrize("cls", [Reinforce, RandomSearch])
def test_same_seed_same_actions_and_state_round_trip(cls):
    envs = make_envs()
    a = cls(envs.single_observation_space, envs.single_action_space, seed=3)
    b = cls(envs.single_observation_space, envs.single_action_space, seed=3)
    assert run_episodes(envs, a, 2) == run_episodes(envs, b, 2)
    c = cls(envs.single_observation_space, envs.single_action_space, seed=99)
    c.load_state_dict(a.state_dict())
    obs, infos = envs.reset(seed=5)
    assert np.array_equal(a.act(obs, flat_masks(infos)), c.act(obs, flat_masks(infos)))


def test_reinforce_keeps_to_the_cpu_under_a_callers_default_device():
    """A script's ``torch.set_default_device("cuda")`` must not move the controller (the meta
    device stands in: it raises where a CPU tensor meets it, as CUDA does)."""
    envs = make_envs()
    space = (envs.single_observation_space, envs.single_action_space)
    expected = run_episodes(envs, Reinforce(*space, seed=3), 2)
    with torch.device("meta"):
        agent = Reinforce(*space, seed=3)
        got = run_episodes(envs, agent, 2)
        agent.load_state_dict(agent.state_dict())
    assert got == expected
    assert {p.device.type for p in agent.controller.parameters()} == {"cpu"}


def test_reinforce_update_changes_parameters_and_baseline():
    envs = make_envs()
    agent = Reinforce(envs.single_observation_space, envs.single_action_space, seed=0)
    before = {k: v.clone() for k, v in agent.controller.state_dict().items()}
    run_episodes(envs, agent, 1)
    assert agent.baseline is not None and agent.num_updates == 1
    after = agent.controller.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)


def test_reinforce_beats_random_search_on_the_surrogate():
    """The surrogate rewards wide and deep nets: the controller must learn to grow them."""
    envs = make_envs(n=8, reward_mode="sparse")
    gaps = []
    for seed in range(2):
        rl = Reinforce(envs.single_observation_space, envs.single_action_space, seed=seed)
        rnd = RandomSearch(envs.single_observation_space, envs.single_action_space, seed=seed)
        rl_acc = run_episodes(envs, rl, 15, seed=seed)
        rnd_acc = run_episodes(envs, rnd, 15, seed=seed)
        gaps.append(np.mean(rl_acc[-5:]) - np.mean(rnd_acc[-5:]))
    assert min(gaps) > 0.02, gaps


def test_the_start_network_is_trained_here_before_workers_start(tmp_path, monkeypatch):
    import agents.executors as executors
    from agents.search_args import SearchArgs
    from eas_gym.store import EvalStore

    made = []
    monkeypatch.setattr(executors, "make_vector_env", lambda *a, **k: made.append(k) or "envs")
    store = str(tmp_path / "store.sqlite")
    kwargs = {"store": store, "schedule": "W", "start_epochs": 0.2}
    args = SearchArgs(env_id="EAS-Synthetic-v0", asynchronous=True, out=str(tmp_path))
    assert executors.make_envs(args, tmp_path, kwargs, num_envs=2) == "envs"
    rows = EvalStore(store).all()
    assert len(rows) == 1 and rows[0].config["role"] == "start"  # in the store before workers
    assert made and made[0]["asynchronous"]
    args = SearchArgs(env_id="EAS-Synthetic-v0", asynchronous=False, out=str(tmp_path))
    calls = []
    monkeypatch.setattr(executors, "train_start_here", lambda *a: calls.append(a))
    executors.make_envs(args, tmp_path, kwargs, num_envs=2)
    assert calls == []  # an in-process run trains it at its first reset


def test_the_start_network_trained_here_hands_back_its_gpu_cache(tmp_path, monkeypatch):
    """The workers' GPU memory shares do not count this process: its cached blocks go back."""
    import weakref

    import gymnasium as gym
    import torch

    import agents.executors as executors

    made, emptied = [], []
    real_make = gym.make

    def make(*args, **kwargs):
        env = real_make(*args, **kwargs)
        made.append(weakref.ref(env.unwrapped.scorer))
        return env

    monkeypatch.setattr(gym, "make", make)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    # by then nothing holds the env's data and networks, so their blocks can go back
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: emptied.append(made[0]() is None))
    kwargs = {"store": str(tmp_path / "store.sqlite"), "schedule": "W", "start_epochs": 0.2}
    executors.train_start_here("EAS-Synthetic-v0", kwargs)
    assert emptied == [True]
