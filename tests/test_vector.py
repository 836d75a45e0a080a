"""make_vector_env: sub-envs in their own processes share one store."""

import numpy as np

from eas_gym.store import EvalStore
from eas_gym.vector import make_vector_env


def test_vector_env_shares_one_store(tmp_path):
    store = str(tmp_path / "store.sqlite")
    kwargs = {"device": "cpu", "reward_mode": "sparse", "schedule": "WD", "epochs": 0.2}
    envs = make_vector_env("EAS-Synthetic-v0", 2, store=store, **kwargs)  # trains: it stores
    obs, infos = envs.reset(seed=0)
    assert obs["num_layers"].shape == (2,)
    for _ in range(2):
        masks = infos["action_mask"]  # (num_envs,) object array of per-env mask tuples
        actions = np.stack([envs.single_action_space.sample(masks[i]) for i in range(2)])
        obs, rewards, terminated, truncated, infos = envs.step(actions)
    assert terminated.all() and (rewards > 0).all()
    envs.close()
    assert 1 <= len(EvalStore(store).all()) <= 3  # two children and the start net at most
