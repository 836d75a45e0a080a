"""The tpe agent: Optuna's TPE over episodes, legal, seeded, resumable, better than random."""

import builtins

import numpy as np
import pytest
import torch

pytest.importorskip("optuna")

from conftest import legal_actions, surrogate_search

from agents.agent_checker import check_agent_contract  # noqa: E402
from agents.tpe import TPESearch, _nearest_legal  # noqa: E402
from eas_gym.vector import make_vector_env  # noqa: E402


@pytest.fixture
def envs():
    envs = make_vector_env("EAS-Surrogate-v0", 3, asynchronous=False, store=":memory:")
    yield envs
    envs.close()


def _episode(envs, agent, seed, *, recommend=False):
    """One batch; checks every action is legal; returns the actions and the final nets."""
    obs, infos = envs.reset(seed=seed)
    terminated, taken = np.zeros(envs.num_envs, bool), []
    while not terminated.all():
        actions = legal_actions(agent, obs, infos, envs, recommend=recommend)
        taken.append(actions.tolist())
        obs, rewards, terminated, _, infos = envs.step(actions)
        agent.observe(rewards, terminated)
    return taken, list(infos["net"])


def _search(envs, agent, updates, first=0):
    runs = []
    for update in range(first, first + updates):
        runs.append(_episode(envs, agent, seed=update))
        agent.update()
    return runs


def test_legal_seeded_and_resumed_through_the_safe_loader(envs, tmp_path):
    spaces = envs.single_observation_space, envs.single_action_space
    never_stopped = TPESearch(*spaces, seed=7, n_startup_trials=3)
    same_seed = TPESearch(*spaces, seed=7, n_startup_trials=3)
    first = _search(envs, never_stopped, 3)
    assert first == _search(envs, same_seed, 3)  # same seed, same actions and networks
    assert first != _search(envs, TPESearch(*spaces, seed=8, n_startup_trials=3), 3)

    torch.save(same_seed.state_dict(), tmp_path / "tpe.pt")
    resumed = TPESearch(*spaces, seed=7, n_startup_trials=3)
    resumed.load_state_dict(torch.load(tmp_path / "tpe.pt", weights_only=True))
    assert _search(envs, resumed, 3, first=3) == _search(envs, never_stopped, 3, first=3)


def test_recommend_replays_the_best_trial(envs):
    agent = TPESearch(envs.single_observation_space, envs.single_action_space, seed=0)
    runs = _search(envs, agent, 3)
    nets = [net for _, batch_nets in runs for net in batch_nets]
    best = nets[int(np.argmax([t["value"] for t in agent.trials]))]
    _, recommended = _episode(envs, agent, seed=99, recommend=True)
    assert recommended == [best] * envs.num_envs


def test_a_forbidden_suggestion_goes_to_the_nearest_legal_value():
    legal = np.array([False, True, False, False, True, False])
    assert [_nearest_legal(v, legal) for v in range(6)] == [1, 1, 1, 4, 4, 4]
    assert _nearest_legal(2, np.array([False, True, False, True])) == 1  # a tie: the lower


def test_tpe_keeps_the_contract_legal_seeded_and_resumed_as_never_stopped():
    verdicts = check_agent_contract("tpe[n_startup_trials=4]", updates=3, batch=4)
    assert all(v.passed for v in verdicts), verdicts


def test_tpe_learns_on_the_surrogate(tmp_path):
    def last_third(agent, seed):
        return np.mean([c["accuracy"] for c in surrogate_search(tmp_path, agent, seed)[40:]])

    for seed in (0, 1):  # the margins: 0.071 and 0.041 (Optuna 3.6 to 5.1 sample the same)
        assert last_third("tpe", seed) > last_third("random", seed) + 0.02


def test_without_optuna_the_error_names_the_extra(monkeypatch):
    real_import = builtins.__import__

    def no_optuna(name, *args, **kwargs):
        if name == "optuna":
            raise ImportError("No module named 'optuna'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_optuna)
    with pytest.raises(ValueError, match=r'pip install -e "\.\[tpe\]"'):
        TPESearch(None, None, seed=0)
