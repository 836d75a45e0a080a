"""Morphism-aware BO: the edit distance, a Cholesky that never fails, the contract, learning."""

import numpy as np
import pytest

from agents.agent_checker import check_agent_contract
from agents.morphism_bo import layer_distance, positive_definite_cholesky
from agents.runner import SearchArgs, run_search


def test_the_edit_distance_between_layer_sequences():
    a = "C16-3 MP C32-3 GAP FC64"
    assert layer_distance(a, a) == 0.0
    assert layer_distance(a, "C16-3 MP C32-3 C32-3 GAP FC64") == 1.0  # one inserted layer
    assert layer_distance(a, "C16-3 MP C64-3 GAP FC64") == 0.5  # one layer twice as wide
    assert layer_distance(a, "C16-5 MP C32-3 GAP FC64") == 0.5  # another kernel
    b = "C8-1 MP MP C4-5 GAP"
    assert layer_distance(a, b) == layer_distance(b, a) > 0


def test_the_cholesky_goes_on_with_jitter_where_the_kernel_is_not_positive_definite():
    singular = np.ones((3, 3))  # rank 1: plain Cholesky fails
    with pytest.raises(np.linalg.LinAlgError):
        np.linalg.cholesky(singular - 1e-12 * np.eye(3))
    (factor, _), jitter = positive_definite_cholesky(singular - 1e-12 * np.eye(3))
    assert jitter > 0 and np.all(np.isfinite(factor))
    indefinite = np.array([[1.0, 2.0], [2.0, 1.0]])  # eigenvalues 3 and -1: jitter cannot help
    (factor, _), jitter = positive_definite_cholesky(indefinite, tries=2)
    assert jitter == -1.0 and np.all(np.isfinite(factor))


def test_bo_keeps_the_contract():
    verdicts = check_agent_contract("bo[n_initial=4,candidates=20]", updates=3, batch=4)
    assert all(v.passed for v in verdicts), verdicts


def test_bo_plans_new_distinct_networks_and_learns_on_the_surrogate(tmp_path):
    def run(agent, seed):
        args = SearchArgs(
            env_id="EAS-Surrogate-v0",
            agent=agent,
            nets=60,
            batch=10,
            seed=seed,
            out=str(tmp_path / f"{agent}-{seed}"),
            progress=False,
        )
        return run_search(args)

    for seed in (0, 1):
        planned = run("bo", seed)
        for update in range(1, 6):  # after the 10 random episodes: chosen by the GP
            nets = [c["net"] for c in planned if c["update"] == update]
            earlier = {c["net"] for c in planned if c["update"] < update}
            assert len(set(nets)) == len(nets) and not set(nets) & earlier
        bo = np.mean([c["accuracy"] for c in planned[40:]])
        random = np.mean([c["accuracy"] for c in run("random", seed)[40:]])
        assert bo > random + 0.02
