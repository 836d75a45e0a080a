"""The tpe agent: Optuna's TPE over episodes, legal, seeded, resumable, better than random."""

import builtins

import numpy as np
import pytest

pytest.importorskip("optuna")

from agents.agent_checker import check_agent_contract  # noqa: E402
from agents.runner import SearchArgs, run_search  # noqa: E402
from agents.tpe import TPESearch, _nearest_legal  # noqa: E402


def test_a_forbidden_suggestion_goes_to_the_nearest_legal_value():
    legal = np.array([False, True, False, False, True, False])
    assert [_nearest_legal(v, legal) for v in range(6)] == [1, 1, 1, 4, 4, 4]
    assert _nearest_legal(2, np.array([False, True, False, True])) == 1  # a tie: the lower


def test_tpe_keeps_the_contract_legal_seeded_and_resumed_as_never_stopped():
    verdicts = check_agent_contract("tpe[n_startup_trials=4]", updates=3, batch=4)
    assert all(v.passed for v in verdicts), verdicts


def test_tpe_learns_on_the_surrogate(tmp_path):
    def last_third(agent, seed):
        args = SearchArgs(
            env_id="EAS-Surrogate-v0",
            agent=agent,
            nets=60,
            batch=10,
            seed=seed,
            out=str(tmp_path / f"{agent}-{seed}"),
            progress=False,
        )
        return np.mean([c["accuracy"] for c in run_search(args)[40:]])

    for seed in (0, 1):
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
