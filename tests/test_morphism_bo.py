"""Morphism-aware BO: the edit distance, a Cholesky that never fails, the contract, learning."""

import io

import numpy as np
import pytest
import torch
from conftest import legal_actions, surrogate_search

from agents.agent_checker import check_agent_contract
from agents.morphism_bo import (
    MorphismBO,
    edit_distance_kernel,
    layer_distance,
    positive_definite_cholesky,
)
from agents.runner import make_simulator
from eas_gym.vector import make_vector_env

# Five networks at the distances of the complete bipartite graph K(2,3) (1 across, 2 within):
# their exp(-d / l) kernel has a negative eigenvalue at l = 5.
K23 = [
    f"C16-3 {middle} GAP FC32"
    for middle in ("MP C32-3 MP", "C32-3 MP C32-3", "MP C32-3", "C32-3", "C32-3 MP")
]


def test_the_edit_distance_between_layer_sequences():
    a = "C16-3 MP C32-3 GAP FC64"
    assert layer_distance(a, a) == 0.0
    assert layer_distance(a, "C16-3 MP C32-3 C32-3 GAP FC64") == 1.0  # one inserted layer
    assert layer_distance(a, "C16-3 MP C64-3 GAP FC64") == 0.5  # one layer twice as wide
    assert layer_distance(a, "C16-5 MP C32-3 GAP FC64") == 0.5  # another kernel
    b = "C8-1 MP MP C4-5 GAP"
    assert layer_distance(a, b) == layer_distance(b, a) > 0


def test_the_cholesky_goes_on_with_jitter_where_the_kernel_is_not_positive_definite():
    singular = np.ones((3, 3)) - 1e-12 * np.eye(3)  # rank 1 and a hair below: plain fails
    with pytest.raises(np.linalg.LinAlgError):
        np.linalg.cholesky(singular)
    (factor, _), jitter = positive_definite_cholesky(singular)
    assert 0 < jitter < 1e-5 and np.all(np.isfinite(factor))
    indefinite = np.array([[1.0, 2.0], [2.0, 1.0]])  # eigenvalues 3 and -1: jitter cannot help
    (factor, _), jitter = positive_definite_cholesky(indefinite, tries=2)
    lower = np.tril(factor)
    assert jitter == -1.0
    np.testing.assert_allclose(lower @ lower.T, np.full((2, 2), 1.5), atol=1e-6)  # -1 -> 0


def test_an_edit_distance_kernel_that_is_not_positive_definite_still_factors():
    kernel = edit_distance_kernel(K23, K23, lengthscale=5.0)
    assert np.linalg.eigvalsh(kernel).min() < -0.02
    with pytest.raises(np.linalg.LinAlgError):
        np.linalg.cholesky(kernel)
    (factor, _), jitter = positive_definite_cholesky(kernel)
    lower = np.tril(factor)
    assert jitter == -1.0
    assert np.abs(lower @ lower.T - kernel).max() < 0.03  # the nearest PSD matrix: close
    _, jitter = positive_definite_cholesky(kernel, noise=0.1)  # noise above -min eigenvalue
    assert jitter == 0.0


def test_the_gp_keeps_fitting_where_its_kernel_must_be_clipped():
    # Three networks far from K23 and each other set the median lengthscale to 5.5, where the
    # kernel of all eight has an eigenvalue of about -0.03: more than any jitter may add.
    far = [f"C16-3 {' '.join([layer] * 6)} GAP FC32" for layer in ("C64-5", "C8-1", "MP")]
    nets, values = K23 + far, [1.0, 2.0, 3.0, 4.0, 5.0, -3.0, -2.0, -1.0]
    agent = MorphismBO(*_spaces(), seed=0, noise=1e-6)
    agent.history = [
        {"genome": [], "net": n, "value": v} for n, v in zip(nets, values, strict=True)
    ]
    mean, sd = agent._posterior(nets)
    assert agent._metrics["bo/jitter"] == -1.0  # clipped, reported: not frozen, not silent
    assert np.all(np.abs(mean) < 5) and np.all(sd >= 0)
    assert np.corrcoef(mean, values)[0, 1] > 0.9  # still follows the data


def test_bo_keeps_the_contract():
    verdicts = check_agent_contract("bo[n_initial=4,candidates=20]", updates=3, batch=4)
    assert all(v.passed for v in verdicts), verdicts


def _spaces():
    envs = make_vector_env("EAS-Surrogate-v0", 1, asynchronous=False, store=":memory:")
    try:
        return envs.single_observation_space, envs.single_action_space
    finally:
        envs.close()


def _agent(seed=0):
    agent = MorphismBO(*_spaces(), seed=seed, n_initial=4, candidates=20)
    agent.use_simulator(lambda: make_simulator("EAS-Surrogate-v0", {"probe_size": 4}))
    return agent


def _play(envs, agent, updates, seed=0):
    """`updates` batches with every action checked legal; the actions and final networks."""
    played = []
    for update in range(updates):
        obs, infos = envs.reset(seed=seed + update)
        terminated = np.zeros(envs.num_envs, bool)
        actions_taken = []
        while not terminated.all():
            actions = legal_actions(agent, obs, infos, envs)
            actions_taken.append(actions.tolist())
            obs, rewards, terminated, _, infos = envs.step(actions)
            agent.observe(rewards, terminated)
            agent.observe_info(infos)
        agent.update()
        played.append((actions_taken, list(infos["net"])))
    return played


@pytest.fixture
def envs():
    envs = make_vector_env(
        "EAS-Surrogate-v0", 4, asynchronous=False, store=":memory:", probe_size=4
    )
    yield envs
    envs.close()


def test_bo_acts_legally_repeats_with_its_seed_and_resumes_exactly(envs):
    whole = _play(envs, _agent(), updates=4)
    assert _play(envs, _agent(), updates=4) == whole  # same seed, same actions and networks
    for update in range(1, 4):  # chosen by the GP: distinct networks, none seen before
        nets = whole[update][1]
        earlier = {net for _, seen in whole[:update] for net in seen}
        assert len(set(nets)) == len(nets) and not set(nets) & earlier

    stopped = _agent()
    first = _play(envs, stopped, updates=2)
    buffer = io.BytesIO()
    torch.save(stopped.state_dict(), buffer)
    buffer.seek(0)
    resumed = _agent(seed=123)  # the seed must come from the state
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    assert first + _play(envs, resumed, updates=2, seed=2) == whole


def test_bo_beats_random_search_on_the_surrogate(tmp_path):
    def run(agent, seed):
        return surrogate_search(tmp_path, agent, seed)

    for seed in (0, 1):
        planned = run("bo", seed)
        for update in range(1, 6):  # after the 10 random episodes: chosen by the GP
            nets = [c["net"] for c in planned if c["update"] == update]
            earlier = {c["net"] for c in planned if c["update"] < update}
            assert len(set(nets)) == len(nets) and not set(nets) & earlier
        bo = np.mean([c["accuracy"] for c in planned[40:]])
        random = np.mean([c["accuracy"] for c in run("random", seed)[40:]])
        assert bo > random + 0.05  # 0.076 to 0.10 over seeds 0-4
