"""ChildScorer: cache hits skip training, child-only settings spare the start net, config keys."""

import gymnasium as gym
import pytest
from conftest import rollout

import eas_gym.scorer as scorer_module
from eas_gym.store import EvalStore


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


def test_probe_size_is_part_of_the_key():
    a = gym.make("EAS-Surrogate-v0", store=":memory:", probe_size=8).unwrapped
    b = gym.make("EAS-Surrogate-v0", store=":memory:", probe_size=16).unwrapped
    assert a.config_key != b.config_key
    assert a.eval_config.start_key() == b.eval_config.start_key()  # the start net is shared
