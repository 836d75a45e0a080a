"""agents.fixed: the preset probe's fixed policies as agents, and compare's best-fixed family."""

import hashlib
import importlib.util
import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from agents.base import split_masks
from agents.compare import report
from agents.fixed import DEFAULT_KERNELS, POLICIES, FixedPolicy
from agents.registry import load_agent_class, parse_agent_spec
from agents.runner import SearchArgs, run_search
from eas_gym.arch import SearchSpace
from eas_gym.net2net import LayerKind
from eas_gym.vector import make_vector_env

SURROGATE = "EAS-Surrogate-v0"
PROBE = Path(__file__).parents[1] / "benchmarks" / "preset_probe.py"

# Episode 3 of every policy on the surrogate env, as benchmarks/preset_probe.py drew it before
# its policies moved to agents.fixed (generator default_rng([policy index, 3]) over the probe's
# policy order): the final net and a digest of the actions.
BEFORE = {
    "random": (
        "C16-3 C16-1 C16-3 C16-3 MP C16-3 MP C8-3 C8-3 C8-1 MP C16-3 GAP FC16",
        "efc356d032a16309",
    ),
    "widen-all": (
        "C20-3 C20-5 MP C20-3 MP C20-3 C20-5 C20-5 MP C20-3 C20-3 C20-1 GAP FC40",
        "aa5651412aa7f88f",
    ),
    "never-widen": (
        "C4-3 MP C4-3 C4-3 MP C4-3 MP C4-3 C4-1 C4-3 C4-3 GAP FC8 FC8",
        "c177f728c79e8a59",
    ),
    "kernel-1": (
        "C12-3 C12-1 C12-1 MP C8-3 C8-1 C8-1 MP C8-3 MP C8-3 C8-1 GAP FC32",
        "56887175e24400ca",
    ),
    "kernel-5": (
        "C8-3 C8-5 MP C20-3 C20-5 C20-5 C20-5 MP C8-3 MP C8-3 C8-5 GAP FC24",
        "1e6eec67d85a9630",
    ),
    "deepen-first": (
        "C20-3 C20-3 C20-3 C20-5 MP C12-3 MP C4-3 MP C8-3 GAP FC24 FC24 FC24",
        "f938d948d4ca9d83",
    ),
    "widen-all-kernel-3": (
        "C20-3 C20-3 C20-3 MP C20-3 MP C20-3 C20-3 C20-3 MP C20-3 C20-3 GAP FC40",
        "20dc47526e2045fc",
    ),
    "kernel-3": (
        "C8-3 C8-3 C8-3 C8-3 MP C12-3 MP C16-3 C16-3 MP C16-3 GAP FC24 FC24",
        "f983892876cf7551",
    ),
    "deepen-fc": (
        "C16-3 C16-3 MP C12-3 C12-3 MP C12-3 MP C8-3 GAP FC16 FC16 FC16 FC16",
        "0107a5a35c15e2f5",
    ),
}


def _digest(actions):
    return hashlib.sha256(json.dumps(actions).encode()).hexdigest()[:16]


@pytest.fixture(scope="module")
def probe():
    spec = importlib.util.spec_from_file_location("preset_probe", PROBE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_probe_draws_what_it_drew_before_and_the_agent_draws_the_same(probe):
    env = gym.make(SURROGATE, store=":memory:")
    envs = make_vector_env(SURROGATE, 1, asynchronous=False, store=":memory:")
    assert tuple(probe.ALL_POLICIES) == tuple(BEFORE)
    for index, policy in enumerate(probe.ALL_POLICIES):
        rng = np.random.default_rng([index, 3])
        record = probe.run_episode(env, probe.make_policy(policy, (1, 3, 5)), seed=3, rng=rng)
        assert (record["net"], _digest(record["actions"])) == BEFORE[policy], policy
        if policy == "random":
            continue
        agent = FixedPolicy(
            envs.single_observation_space, envs.single_action_space, seed=0, policy=policy
        )
        agent.rng = np.random.default_rng([index, 3])
        obs, infos = envs.reset(seed=3)
        taken = []
        for _ in range(9):
            masks = np.stack([np.concatenate(m) for m in infos["action_mask"]])
            action = agent.act(obs, masks)
            taken.append(action[0].tolist())
            obs, _, _, _, infos = envs.step(action)
        assert (infos["net"][0], _digest(taken)) == BEFORE[policy], policy
    env.close()
    envs.close()


@pytest.mark.parametrize(
    "spec, extra",
    [
        ("fixed[policy=kernel-1,kernels=[1,3,5]]", []),  # a list inside the brackets
        ("fixed[policy=kernel-1]", ["kernels=[1,3,5]"]),
        ("fixed[policy=kernel-1]", ["kernels=1,3,5"]),  # --agent-set, bare
    ],
)
def test_a_list_option_parses_in_brackets_and_bare(spec, extra):
    parsed = parse_agent_spec(spec, extra)
    assert parsed.options == {"policy": "kernel-1", "kernels": [1, 3, 5]}
    assert parse_agent_spec(parsed.label()).options == parsed.options


def test_compare_agent_set_reaches_a_module_class_agent_and_keeps_list_options():
    from agents.cli import _apply_agent_set

    agents = ["random", "agents.reinforce:Reinforce", "fixed[policy=kernel-1]"]
    items = ["agents.reinforce:Reinforce:lr=0.5", "fixed:kernels=1,3,5"]  # a bare list too
    assert _apply_agent_set(agents, items) == [
        "random",
        "agents.reinforce:Reinforce[lr=0.5]",
        "fixed[kernels=[1, 3, 5],policy=kernel-1]",
    ]


def test_a_null_list_option_stays_none():
    assert parse_agent_spec("fixed[policy=deepen-first,kernels=null]").options == {
        "policy": "deepen-first",
        "kernels": None,
    }


def test_each_policy_fixes_what_it_says():
    envs = make_vector_env(SURROGATE, 6, asynchronous=False, store=":memory:")
    space = envs.single_action_space
    slots = len(space.nvec) - 2
    assert DEFAULT_KERNELS == SearchSpace(filters=(4,), units=(8,)).kernels
    for policy in POLICIES:
        agent = FixedPolicy(envs.single_observation_space, space, seed=1, policy=policy)
        obs, infos = envs.reset(seed=5)
        for _ in range(9):
            masks = np.stack([np.concatenate(m) for m in infos["action_mask"]])
            action = agent.act(obs, masks)
            parts = split_masks(masks, space)
            for b in range(6):
                legal = [p[b] for p in parts]
                assert all(legal[d][a] for d, a in enumerate(action[b])), policy
                if obs["step_kind"][b] == 0:
                    flags = action[b, :slots]
                    if policy.startswith("widen-all"):
                        assert flags.tolist() == [int(m[1]) for m in legal[:slots]]
                    if policy == "never-widen":
                        assert not flags.any()
                    continue
                position, kernel = action[b, slots], action[b, slots + 1]
                kind = obs["kind"][b]
                pools = np.flatnonzero(kind == LayerKind.POOL)
                first = [i for i in range(pools[0]) if legal[slots][i]]
                if policy == "deepen-first" and first:
                    assert position < pools[0]
                fc = [i for i in range(slots) if legal[slots][i] and kind[i] == LayerKind.FC]
                if policy == "deepen-fc" and fc:
                    assert position in fc
                if policy in ("kernel-5", "kernel-1", "widen-all-kernel-3") and legal[-1].all():
                    assert kernel == {"kernel-5": 2, "kernel-1": 0}.get(policy, 1)
            obs, _, _, _, infos = envs.step(action)
    envs.close()


def test_fixed_is_a_registered_agent_with_checked_options():
    spec = parse_agent_spec("fixed[policy=deepen-first]")
    assert spec.options == {"policy": "deepen-first"}
    assert spec.label() == "fixed[policy=deepen-first]"
    assert parse_agent_spec(spec.label()).options == spec.options  # the label parses back
    assert load_agent_class("fixed") is FixedPolicy
    with pytest.raises(ValueError, match=r"agent 'fixed' needs the option\(s\) policy"):
        parse_agent_spec("fixed")
    envs = make_vector_env(SURROGATE, 1, asynchronous=False, store=":memory:")
    obs_space, act_space = envs.single_observation_space, envs.single_action_space
    with pytest.raises(ValueError, match="`policy` in .*'deepen-first'.*actually: 'deepen'"):
        FixedPolicy(obs_space, act_space, seed=0, policy="deepen")
    with pytest.raises(ValueError, match="`kernels` to list 3 sizes"):
        FixedPolicy(obs_space, act_space, seed=0, policy="kernel-1", kernels=[1, 3])
    envs.close()


def test_a_fixed_search_resumes_exactly(tmp_path):
    def args(out, nets):
        return SearchArgs(
            env_id=SURROGATE,
            agent="fixed[policy=kernel-5]",
            nets=nets,
            batch=2,
            out=str(out),
            progress=False,
        )

    whole = run_search(args(tmp_path / "whole", 6))
    run_search(args(tmp_path / "parts", 2))
    parts = run_search(args(tmp_path / "parts", 6))
    assert [c["net"] for c in parts] == [c["net"] for c in whole]
    assert all(c["illegal_actions"] == 0 for c in whole)


def _finished_run(folder, agent, options, seed, bonus):
    rng = np.random.default_rng([seed, len(agent), len(json.dumps(options))])
    folder.mkdir(parents=True)
    config = {"agent": agent, "agent_options": options, "seed": seed, "nets": 9, "batch": 3}
    (folder / "config.json").write_text(json.dumps({**config, "env_id": "EAS-Fake-v0"}))
    records = [
        {
            "update": k // 3,
            "env": k % 3,
            "net": f"net-{agent}-{seed}-{k}",
            "accuracy": float(0.5 + bonus + rng.normal(0, 0.003)),
            "params": int(rng.integers(5_000, 9_000)),
            "flops": int(rng.integers(100_000, 200_000)),
            "cache_hit": False,
            "train_seconds": 1.0,
        }
        for k in range(9)
    ]
    (folder / "children.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def test_learned_agents_are_tested_against_the_best_fixed_arm(tmp_path):
    arms = {
        ("random", ()): 0.0,
        ("fixed", (("policy", "never-widen"),)): -0.02,
        ("fixed", (("policy", "deepen-first"),)): 0.03,
        ("reinforce", ()): 0.02,
        ("evolution", ()): 0.04,
    }
    for (agent, options), bonus in arms.items():
        label = parse_agent_spec(agent, [f"{k}={v}" for k, v in options]).folder_name()
        for seed in range(4):
            _finished_run(tmp_path / label / f"seed-{seed}", agent, dict(options), seed, bonus)
    report(str(tmp_path))
    result = json.loads((tmp_path / "report.json").read_text())
    rows, families = result["agents"], result["families"]
    best = "fixed[policy=deepen-first]"
    for learned in ("reinforce", "evolution"):
        for metric in ("last_third_mean", "best"):
            test = rows[learned][metric]["vs_best_fixed"]
            assert test["other"] == best
            expected = arms[(learned, ())] - 0.03
            assert test["diff"] == pytest.approx(expected, abs=0.006)
            assert 0 <= test["p"] <= test["p_holm"] <= 1
    for label in ("random", best, "fixed[policy=never-widen]"):
        assert all("vs_best_fixed" not in cell for cell in rows[label].values())
    # one family: every pair the best fixed arm could have been picked from, 2 learned agents
    # x 2 fixed arms x 2 metrics, Holm over those 8 tests (4 of them shown)
    assert families["vs_best_fixed"]["tests"] == 8
    assert families["vs_best_fixed"]["method"] == "Holm"
    table = (tmp_path / "report.md").read_text()
    assert "best fixed" in table and "adjusted over the 8 tests of its family" in table
    assert f"| reinforce | last-third mean (val) | {best} |" in table
