"""agents.checks and agents.registry: an agent that breaks the contract fails early, in one line."""

import json
import sys
import textwrap
import warnings

import pytest

from agents.cli import main
from agents.run_folder import load_checkpoint, read_children, read_jsonl
from agents.runner import SearchArgs, run_search

SURROGATE = "EAS-Surrogate-v0"

AGENTS = '''
import numpy as np
import torch

from agents.base import split_masks


class Base:
    """Uniform among legal values; subclasses break one rule each."""

    def __init__(self, observation_space, action_space, *, seed):
        self.action_space = action_space
        self.rng = np.random.default_rng(seed)

    def act(self, obs, masks):
        parts = split_masks(masks, self.action_space)
        return np.array(
            [[self.rng.choice(np.flatnonzero(p[b])) for p in parts] for b in range(len(masks))]
        )

    def observe(self, rewards, terminated):
        pass

    def update(self):
        return {}

    def state_dict(self):
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state):
        self.rng.bit_generator.state = state["rng"]


class HoldsAnObject(Base):
    def state_dict(self):
        return {"rng": self.rng.bit_generator.state, "memory": {"best": [1, object()]}}


class ActsInFloats(Base):
    def act(self, obs, masks):
        return super().act(obs, masks).astype(float)


class ActsFlat(Base):
    def act(self, obs, masks):
        return super().act(obs, masks)[0]


class ActsOutOfRange(Base):
    def act(self, obs, masks):
        return super().act(obs, masks) + 100


class ForgetsToReturn(Base):
    def update(self):
        self.rng.random()  # learns, but returns nothing


class ReturnsText(Base):
    def update(self):
        return {"loss": "low"}


class ForgetsItsGenerator(Base):
    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


class WantsArraysBack(Base):
    def __init__(self, observation_space, action_space, *, seed):
        super().__init__(observation_space, action_space, seed=seed)
        self.counts = np.zeros(3)

    def update(self):
        self.counts += 1
        return {}

    def state_dict(self):
        return {"rng": self.rng.bit_generator.state, "counts": self.counts}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.counts = state["counts"]

    def act(self, obs, masks):
        self.counts.fill(self.counts.sum())  # a list has no fill: a resume would fail here
        return super().act(obs, masks)


class IgnoresMasks(Base):
    def act(self, obs, masks):
        return np.ones((len(masks), len(self.action_space.nvec)), dtype=np.int64)


class NoSeed(Base):
    def __init__(self, observation_space, action_space, *, n=3):
        super().__init__(observation_space, action_space, seed=0)


class Untyped(Base):
    def __init__(self, observation_space, action_space, *, seed, n=3, name="a"):
        super().__init__(observation_space, action_space, seed=seed)
        self.n, self.name = n, name


class TakesKwargs(Base):
    def __init__(self, observation_space, action_space, *, seed, **kwargs):
        super().__init__(observation_space, action_space, seed=seed)
        self.kwargs = kwargs
        torch.save(kwargs, "kwargs.pt")
'''


@pytest.fixture
def custom(tmp_path, monkeypatch):
    """The agents above as module ``custom_agents`` (``--agent custom_agents:Cls``)."""
    (tmp_path / "custom_agents.py").write_text(textwrap.dedent(AGENTS))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "custom_agents", raising=False)
    monkeypatch.chdir(tmp_path)
    yield "custom_agents"
    sys.modules.pop("custom_agents", None)


def _args(out, agent, nets=4, batch=2):
    return SearchArgs(
        env_id=SURROGATE, agent=agent, nets=nets, batch=batch, out=str(out), progress=False
    )


def _search(out, agent, *more):
    argv = ["search", "--env", SURROGATE, "--agent", agent, "--nets", "4", "--batch", "2"]
    return main([*argv, *more, "--out", str(out), "--no-progress"])


# ---- state_dict (issue 31, item 1) ------------------------------------------------------


def test_a_state_the_checkpoint_cannot_hold_fails_at_update_1_naming_the_key(custom, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(ValueError) as error:
        run_search(_args(out, f"{custom}:HoldsAnObject"))
    message = str(error.value)
    assert "state_dict()['memory']['best'][1] holds a builtins.object" in message
    assert "weights_only=True" in message and "tensors" in message
    assert load_checkpoint(out / "checkpoint.pt") is None  # nothing a resume would trip on
    assert read_jsonl(out / "children.jsonl") == []


@pytest.mark.parametrize(
    "agent, message",
    [
        ("ForgetsToReturn", "update() returned NoneType, expected a dict of metrics"),
        ("ReturnsText", "update() returned 'loss': 'low', expected a number"),
        ("ActsInFloats", "act() returned float64 of shape (2, 22); expected integers"),
        ("ActsFlat", "act() returned int64 of shape (22,); expected integers of shape (2, 22)"),
        ("ActsOutOfRange", "act() returned a value outside the action space"),
    ],
)
def test_a_broken_act_or_update_is_one_line(custom, agent, message, tmp_path, capsys):
    assert _search(tmp_path / "run", f"{custom}:{agent}") == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_a_state_that_leaves_out_the_generator_is_a_warning(custom, tmp_path):
    with pytest.warns(UserWarning, match="acts differently from the running agent"):
        run_search(_args(tmp_path / "run", f"{custom}:ForgetsItsGenerator"))


def test_a_restored_agent_that_cannot_act_fails_the_run(custom, tmp_path):
    with pytest.raises(ValueError, match="restored from its checkpoint after update 1, it fails"):
        run_search(_args(tmp_path / "run", f"{custom}:WantsArraysBack"))


@pytest.mark.parametrize(
    "agent", ["random", "reinforce", "evolution", "local-search", "fixed[policy=widen-all]"]
)
def test_built_in_agents_keep_the_contract_silently(agent, tmp_path):
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*(acts differently|illegal actions).*")
        children = run_search(_args(tmp_path / "run", agent, nets=6))
    assert [c["illegal_actions"] for c in children] == [0] * 6


# ---- illegal actions (item 2) ---------------------------------------------------------------


def test_illegal_actions_are_counted_per_child_with_one_warning(custom, tmp_path):
    with pytest.warns(UserWarning, match="illegal actions") as caught:
        children = run_search(_args(tmp_path / "run", f"{custom}:IgnoresMasks", nets=6))
    assert len([w for w in caught if "illegal actions" in str(w.message)]) == 1
    assert all(c["illegal_actions"] > 0 for c in children)
    assert read_children(tmp_path / "run") == children


def test_records_without_the_count_still_read(tmp_path):
    out = tmp_path / "run"
    run_search(_args(out, "random"))
    old = [{k: v for k, v in c.items() if k != "illegal_actions"} for c in read_children(out)]
    (out / "checkpoint.pt").unlink()
    (out / "children.jsonl").write_text("".join(json.dumps(c) + "\n" for c in old))
    assert run_search(_args(out, "random")) == old  # a finished run kept without its .pt


def test_sb3_records_count_illegal_actions_and_warn_once(tmp_path):
    pytest.importorskip("sb3_contrib")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # maskable-ppo: no warning
        masked = run_search(_args(tmp_path / "masked", "maskable-ppo"))
    with pytest.warns(UserWarning, match=r"agent ppo took \d+ illegal actions .*\(updates 0-1\)"):
        plain = run_search(_args(tmp_path / "plain", "ppo"))
    assert all(c["illegal_actions"] == 0 for c in masked)
    assert sum(c["illegal_actions"] for c in plain) > 0  # plain PPO does not see the masks


def test_sb3_options_are_not_changed_by_the_model(tmp_path):
    """A2C writes its optimizer class into policy_kwargs: the run's config must stay JSON."""
    pytest.importorskip("sb3_contrib")
    args = _args(tmp_path / "run", 'a2c[policy_kwargs={"net_arch":[8]}]')
    assert len(run_search(args)) == 4
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert "policy_kwargs" in json.dumps(saved) and "optimizer_class" not in json.dumps(saved)


def test_sb3_refuses_worker_processes_it_would_not_use(tmp_path):
    pytest.importorskip("sb3_contrib")
    args = _args(tmp_path / "run", "ppo")
    args.asynchronous = True
    with pytest.raises(ValueError, match="SB3 agents \\(ppo\\) step their environments"):
        run_search(args)
    assert not (tmp_path / "run").exists()


# ---- the constructor and option types (item 3) --------------------------------------------


@pytest.mark.parametrize(
    ("agent", "message"),
    [
        ("NoSeed", "takes no `seed` keyword"),
        ("Untyped[n=1.5]", "option n='1.5': expected an integer"),
        ("Untyped[size=2]", "has no option 'size'; valid options: n, name"),
    ],
)
def test_bad_constructors_and_option_types_are_one_line(custom, agent, message, tmp_path, capsys):
    out = tmp_path / "run"
    assert _search(out, f"{custom}:{agent}") == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()


def test_options_are_typed_by_their_defaults_and_kwargs_take_any(custom, tmp_path):
    from agents.registry import parse_agent_spec

    assert parse_agent_spec(f"{custom}:Untyped[n=5,name=b]").options == {"n": 5, "name": "b"}
    assert _search(tmp_path / "run", f"{custom}:TakesKwargs[width=3,mode=fast]") == 0
    import torch

    assert torch.load(tmp_path / "kwargs.pt") == {"width": 3, "mode": "fast"}


# ---- SB3 budgets (item 7) ------------------------------------------------------------------


def test_an_sb3_rollout_larger_than_the_budget_is_refused(tmp_path, capsys):
    pytest.importorskip("sb3_contrib")
    out = tmp_path / "run"
    argv = ["search", "--env", SURROGATE, "--agent", "maskable-ppo[n_steps=90]", "--nets", "20"]
    assert main([*argv, "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "n_steps=90 makes each rollout sample 100 networks" in err
    assert err.count("\n") == 1 and not out.exists()
    argv = ["search", "--env", SURROGATE, "--agent", "maskable-ppo[n_steps=10]", "--nets", "20"]
    assert main([*argv, "--out", str(out), "--no-progress"]) == 2
    assert "a multiple of the episode length, 9 steps" in capsys.readouterr().err
    two_episodes = ["--agent", "a2c[n_steps=18]", "--nets", "4", "--batch", "2"]
    assert main(["search", "--env", SURROGATE, *two_episodes, "--out", str(out)]) == 0
    assert len(read_children(out)) == 4
    assert json.loads((out / "config.json").read_text())["nets"] == 4


# ---- option values, checked before anything is written (issue 32, item 5) -------------------


@pytest.mark.parametrize(
    ("agent", "message"),
    [
        ("evolution[population_size=0]", "agent 'evolution' refuses its options"),
        ("reinforce[lr=-1]", "agent 'reinforce' refuses its options (lr=-1.0)"),
        ("reinforce[lr=abc]", "agent 'reinforce' option lr='abc': expected a number"),
        ("ppo[n_steps=abc]", "agent 'ppo' option n_steps='abc': expected an integer"),
        ("ppo[learning_rate=fast]", "agent 'ppo' option learning_rate='fast': expected a number"),
        ("ppo[n_steps=0]", "agent 'ppo' refuses its options (n_steps=0)"),
        ("ppo[n_epochs=0]", "agent 'ppo' option n_epochs=0: expected an integer >= 1"),
        ("ppo[gamma=2]", "agent 'ppo' option gamma=2: expected a number in [0, 1]"),
        ("fixed[policy=deepen-last]", "agent 'fixed' refuses its options (policy=deepen-last)"),
    ],
)
def test_bad_option_values_write_nothing_and_the_fix_then_runs(agent, message, tmp_path, capsys):
    if agent.startswith("ppo"):
        pytest.importorskip("stable_baselines3")
    out = tmp_path / "run"
    assert _search(out, agent) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert "--set" not in err  # the agent's option, not an env option
    assert not out.exists()
    fixed = agent.split("[")[0] + ("[policy=deepen-first]" if agent.startswith("fixed") else "")
    assert _search(out, fixed) == 0  # the corrected command is not refused


def test_compare_checks_every_agent_before_the_first_run(tmp_path, capsys):
    out = tmp_path / "cmp"
    argv = ["compare", "--env", SURROGATE, "--agents", "random,reinforce[lr=-1]", "--seeds", "1"]
    assert main([*argv, "--nets", "2", "--batch", "2", "--out", str(out), "--no-progress"]) == 2
    assert "agent 'reinforce' refuses its options (lr=-1.0)" in capsys.readouterr().err
    assert not (out / "random").exists()


# ---- eas-gym check-agent (issue 31, item 8) ---------------------------------------------


def test_check_agent_passes_an_agent_that_keeps_the_contract(custom, capsys):
    assert main(["check-agent", f"{custom}:Base", "--updates", "2"]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert [line.split()[:2] for line in lines[:4]] == [
        ["PASS", "constructor"],
        ["PASS", "state"],
        ["PASS", "masks"],
        ["PASS", "resume"],
    ]
    assert lines[-1] == f"{custom}:Base: keeps the contract"
    assert "resuming" not in captured.err  # the checker's own resumed folders


@pytest.mark.parametrize(
    ("agent", "failed", "words"),
    [
        ("ForgetsItsGenerator", "resume", "differs from an uninterrupted one from network 3"),
        ("IgnoresMasks", "masks", "the masks forbid"),
        ("HoldsAnObject", "state", "builtins.object"),
        ("NoSeed", "constructor", "seed"),
    ],
)
def test_check_agent_fails_each_broken_rule_in_one_line(custom, agent, failed, words):
    from agents.agent_checker import check_agent_contract

    verdicts = {v.check: v for v in check_agent_contract(f"{custom}:{agent}", updates=2, batch=2)}
    assert verdicts[failed].passed is False and words in verdicts[failed].detail
    order = ["constructor", "state", "masks", "resume"]
    assert all(verdicts[c].passed for c in order[: order.index(failed)])


def test_check_agent_exits_1_on_a_broken_agent_and_2_on_bad_input(custom, capsys):
    assert main(["check-agent", f"{custom}:ForgetsItsGenerator", "--updates", "2"]) == 1
    assert "FAIL  resume" in capsys.readouterr().out
    assert main(["check-agent", f"{custom}:Base", "--updates", "1"]) == 2
    assert "`updates` >= 2" in capsys.readouterr().err


@pytest.mark.parametrize("agent", ["random", "reinforce", "evolution", "fixed[policy=widen-all]"])
def test_the_built_in_agents_keep_the_contract(agent):
    from agents.agent_checker import check_agent_contract

    verdicts = check_agent_contract(agent, updates=2, batch=3)
    assert all(v.passed for v in verdicts), verdicts


def test_integer_actions_of_any_kind_are_accepted_as_the_space_s():
    import gymnasium as gym
    import numpy as np
    import torch
    from gymnasium.vector.utils import batch_space

    from agents.checks import check_actions

    single = gym.spaces.MultiDiscrete([3, 4])
    batched = batch_space(single, 2)
    rows = [[1, 2], [0, 3]]
    for actions in (
        rows,
        np.array(rows, dtype=np.uint64),
        np.array(rows, dtype=np.int32),
        torch.tensor(rows),
    ):
        checked = check_actions(actions, batched, single)
        assert checked.dtype == np.int64 and checked.tolist() == rows
    with pytest.raises(ValueError, match=r"outside the action space: \[\[1, 2\], \[0, 9\]\]"):
        check_actions(np.array([[1, 2], [0, 9]], dtype=np.uint64), batched, single)
