"""ChildScorer: cache hits skip training, child settings spare the start net, one build a step."""

import warnings

import gymnasium as gym
import pytest
import torch
from conftest import rollout

import eas_gym.scorer as scorer_module
from eas_gym.family import DenseFamily, PlainFamily
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


_DENSE_SYNTHETIC = {"dataset": "synthetic", "train_size": 200, "val_size": 100, "epochs": 0.2}


@pytest.mark.parametrize(
    ("env_id", "family", "kwargs"),
    [
        ("EAS-Synthetic-v0", PlainFamily, {}),
        ("EAS-DenseNet-CIFAR10-CPU-v0", DenseFamily, {**_DENSE_SYNTHETIC, "start_epochs": 0.2}),
    ],
    ids=["plain", "densenet"],
)
@pytest.mark.parametrize("reward_mode", ["dense", "sparse"])
def test_each_step_builds_its_child_once(
    tmp_path, monkeypatch, env_id, family, kwargs, reward_mode
):
    """Checked, trained and (the second time) served with stored weights: one module a step,
    and the served run sees exactly what the trained one did."""
    builds = []
    real = family.build
    monkeypatch.setattr(
        family, "build", lambda self, *a, **k: builds.append(1) or real(self, *a, **k)
    )
    store = str(tmp_path / "s.sqlite")
    seen = []
    for run in range(2):  # the second run is served from the store (weights kept)
        env = gym.make(
            env_id,
            store=store,
            schedule="WWDD",
            noise=False,
            reward_mode=reward_mode,
            keep_weights=True,
            **kwargs,
        ).unwrapped
        env.action_space.seed(0)
        obs, info = env.reset(seed=0)
        steps = []
        for _ in range(len(env.schedule)):
            builds.clear()
            obs, reward, _, _, info = env.step(env.action_space.sample(info["action_mask"]))
            assert len(builds) <= 1, f"run {run}: {len(builds)} builds in one step"
            steps.append((info["net"], info["accuracy"], info["preservation_error"], reward))
        seen.append(steps)
        hits = env.last_episode_provenance["cache_hits"]
        assert hits == 0 if run == 0 else hits > 0
        env.close()
    assert seen[1] == seen[0]


def test_verify_warns_only_when_exactness_was_expected():
    env = gym.make("EAS-Synthetic-v0", store=":memory:", schedule="W").unwrapped
    env.reset(seed=0)
    scorer, arch = env.scorer, env.start_arch
    state = env.family.build(arch, generator=torch.Generator().manual_seed(0)).state_dict()
    parent_logits = scorer.logits(env.family.build(arch, state))
    same = scorer.verify(arch, state, parent_logits, exact=True)
    assert same.error == 0.0 and torch.equal(same.logits, parent_logits)
    with pytest.warns(UserWarning, match="changed the logits"):
        moved = scorer.verify(arch, state, parent_logits + 1.0, exact=True)
    assert moved.error == pytest.approx(1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # noise on: a change is expected, no warning
        scorer.verify(arch, state, parent_logits + 1.0, exact=False)


@pytest.mark.parametrize("recorded", ["same", "other"])
def test_a_start_net_trained_again_records_its_own_accuracy(tmp_path, recorded):
    """Its weights file lost, the start net is trained again; its row then names the new
    weights and what they score, warning when that differs from what it recorded before."""
    store_path = str(tmp_path / "store.sqlite")
    env = gym.make("EAS-Synthetic-v0", store=store_path, schedule="W")
    env.reset(seed=0)
    key, net = env.unwrapped.eval_config.start_key(), env.unwrapped.start_arch.to_string()
    env.close()
    store = EvalStore(store_path)
    row = store.get(net, key)
    trained = row.accuracy
    (store.root / row.weights).unlink()
    if recorded == "other":  # as if the lost weights had scored otherwise
        store._conn.execute("UPDATE evaluations SET accuracy = 0.01 WHERE net = ?", (net,))
    again = gym.make("EAS-Synthetic-v0", store=store_path, schedule="W")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again.reset(seed=0)
    again.close()
    lost = [w for w in caught if "weights file was lost" in str(w.message)]
    assert len(lost) == (recorded == "other")
    if lost:
        assert "not the 1.000% its row recorded" in str(lost[0].message)
    row = EvalStore(store_path).get(net, key)
    assert row.accuracy == trained  # the synthetic start retrains bit for bit
    assert (store.root / row.weights).is_file()
