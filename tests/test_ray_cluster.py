"""A two-node Ray cluster (ray.cluster_utils, both nodes on this machine): the store service."""

import sys

import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import data_equivalence

from eas_gym.store import EvalStore
from eas_gym.vector import make_vector_env

SYNTHETIC = {"schedule": "WD", "keep_weights": True}


@pytest.fixture(scope="module")
def two_nodes():
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "include_dashboard": False},
    )
    cluster.add_node(num_cpus=1)
    ray.init(address=cluster.address, log_to_driver=False)
    cluster.wait_for_nodes()
    yield ray
    ray.shutdown()
    cluster.shutdown()


def rollout(envs, seed):
    """Random legal actions from a fixed RNG; the batched trajectory."""
    rng = np.random.default_rng(0)
    obs, infos = envs.reset(seed=seed)
    trajectory, terminated = [obs], np.zeros(envs.num_envs, dtype=bool)
    while not terminated.all():
        actions = np.stack(
            [[rng.choice(np.flatnonzero(m)) for m in mask] for mask in infos["action_mask"]]
        )
        obs, rewards, terminated, truncated, infos = envs.step(actions)
        trajectory.append((obs, rewards, terminated, truncated))
        trajectory.append(list(zip(infos["net"].tolist(), infos["accuracy"].tolist(), strict=True)))
    return trajectory


def test_several_nodes_use_the_store_service_and_match_local(two_nodes, tmp_path):
    from eas_gym.ray_vector import RayVectorEnv

    assert len([n for n in two_nodes.nodes() if n["Alive"]]) == 2
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each 1-CPU actor: bitwise equal training
    try:
        local = make_vector_env(
            "EAS-Synthetic-v0", 2, asynchronous=False, store=str(tmp_path / "l.sqlite"), **SYNTHETIC
        )
        expected = rollout(local, seed=7)
        local.close()
    finally:
        torch.set_num_threads(torch_threads)

    envs = RayVectorEnv("EAS-Synthetic-v0", 2, store=str(tmp_path / "r.sqlite"), **SYNTHETIC)
    # Chosen because the cluster has two nodes; each 1-CPU actor has a node to itself.
    assert envs.store.startswith("ray-store:") and envs.num_cpus == 1
    trajectory = rollout(envs, seed=7)
    envs.close()
    assert data_equivalence(trajectory, expected, exact=True)
    rows = EvalStore(tmp_path / "r.sqlite").all()
    nets = {net for item in trajectory if isinstance(item, list) for net, _ in item}
    assert sum(r.parent is None for r in rows) == 1
    assert sorted(r.net for r in rows if r.parent is not None) == sorted(nets)
