"""agents.sb3: PPO, A2C and MaskablePPO on EASEnv through the standard SB3 APIs."""

import numpy as np
import pytest

pytest.importorskip("stable_baselines3")
pytest.importorskip("sb3_contrib")

from sb3_contrib.common.maskable.utils import get_action_masks, is_masking_supported  # noqa: E402
from stable_baselines3.common.callbacks import BaseCallback  # noqa: E402

from agents.sb3 import (  # noqa: E402
    SB3_ALGOS,
    algo_class,
    make_sb3_model,
    make_sb3_vec_env,
    train_sb3,
)

SURROGATE = "EAS-Surrogate-v0"
MEMORY = {"store": ":memory:"}
EPISODE = 9  # len("WWWWDDDDD")


class RecordInfos(BaseCallback):
    """Records every step's infos and the masks the policy saw."""

    def __init__(self):
        super().__init__()
        self.infos = []

    def _on_step(self) -> bool:
        self.infos += list(self.locals["infos"])
        return True


def predict(model, venv, obs):
    masks = get_action_masks(venv) if isinstance(model, algo_class("maskable-ppo")) else None
    kwargs = {} if masks is None else {"action_masks": masks}
    action, _ = model.predict(obs, deterministic=True, **kwargs)
    return action


def test_bad_algo_raises():
    with pytest.raises(ValueError, match=r"`algo`.*'ppo', 'a2c', 'maskable-ppo'.*'dqn'"):
        train_sb3("dqn", SURROGATE, num_networks=1, env_kwargs=MEMORY)
    venv = make_sb3_vec_env(SURROGATE, 1, seed=0, env_kwargs=MEMORY)
    with pytest.raises(ValueError, match="'dqn'"):
        make_sb3_model("dqn", venv, seed=0)
    with pytest.raises(ValueError, match="num_networks"):
        train_sb3("ppo", SURROGATE, num_networks=0, env_kwargs=MEMORY)


@pytest.mark.parametrize("algo", ["ppo", "maskable-ppo"])
def test_defaults_hold_whole_episodes(algo):
    venv = make_sb3_vec_env(SURROGATE, 2, seed=0, env_kwargs=MEMORY)
    model = make_sb3_model(algo, venv, seed=0)
    assert model.n_steps == EPISODE
    assert model.batch_size == EPISODE * 2
    assert model.gamma == 1.0 and model.gae_lambda == 1.0
    assert make_sb3_model(algo, venv, seed=0, n_steps=3, batch_size=2).batch_size == 2


@pytest.mark.parametrize("algo", SB3_ALGOS)
def test_learns_a_few_steps(algo):
    record = RecordInfos()
    model = train_sb3(
        algo, SURROGATE, num_networks=4, num_envs=2, env_kwargs=MEMORY, callback=record
    )
    assert model.num_timesteps == 4 * EPISODE
    assert sum("episode" in info for info in record.infos) == 4  # Monitor: whole episodes
    assert all(info["episode"]["l"] == EPISODE for info in record.infos if "episode" in info)


def test_masks_reach_maskable_ppo_through_wrappers():
    venv = make_sb3_vec_env(SURROGATE, 2, seed=0, env_kwargs=MEMORY)
    venv.reset()
    assert is_masking_supported(venv)
    expected = np.stack([env.unwrapped.action_masks() for env in venv.envs])
    np.testing.assert_array_equal(get_action_masks(venv), expected)
    assert not expected.all()  # the masks do forbid something


@pytest.mark.parametrize("algo", ["ppo", "maskable-ppo"])
def test_maskable_ppo_takes_only_legal_actions(algo):
    record = RecordInfos()
    train_sb3(algo, SURROGATE, num_networks=6, num_envs=2, env_kwargs=MEMORY, callback=record)
    assert len(record.infos) == 6 * EPISODE
    illegal = sum(info["illegal_action"] for info in record.infos)
    assert illegal == 0 if algo == "maskable-ppo" else illegal > 0  # unmasked PPO is not


def test_same_seed_same_model():
    a, b = (
        train_sb3("ppo", SURROGATE, num_networks=2, num_envs=2, env_kwargs=MEMORY) for _ in "ab"
    )
    for p, q in zip(a.policy.parameters(), b.policy.parameters(), strict=True):
        assert p.detach().equal(q.detach())


@pytest.mark.parametrize("algo", SB3_ALGOS)
def test_save_load_predicts_the_same(algo, tmp_path):
    model = train_sb3(algo, SURROGATE, num_networks=2, num_envs=2, env_kwargs=MEMORY)
    venv = model.get_env()
    obs = venv.reset()
    model.save(tmp_path / "model.zip")
    loaded = algo_class(algo).load(tmp_path / "model.zip", device="cpu")
    np.testing.assert_array_equal(predict(model, venv, obs), predict(loaded, venv, obs))


def test_synthetic_smoke(tmp_path):
    record = RecordInfos()
    env_kwargs = {"store": str(tmp_path / "evals.sqlite"), "schedule": "WD"}
    model = train_sb3(
        "maskable-ppo",
        "EAS-Synthetic-v0",
        num_networks=2,
        num_envs=2,
        env_kwargs=env_kwargs,
        callback=record,
    )
    assert model.num_timesteps == 2 * 2
    assert all(0.0 <= info["accuracy"] <= 1.0 for info in record.infos if info["accuracy"])
    assert not any(info["illegal_action"] for info in record.infos)


def test_an_sb3_search_logs_every_rollout_in_metrics_jsonl(tmp_path, capsys):
    import json

    from agents.runner import SearchArgs, run_search

    args = {"env_id": SURROGATE, "agent": "ppo", "batch": 2, "out": str(tmp_path / "run")}
    run_search(SearchArgs(**args, nets=6, progress=False))
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [(x["update"], x["nets"]) for x in lines] == [(0, 2), (1, 4), (2, 6)]
    assert all("train/value_loss" in x and "charts/batch_mean_acc" in x for x in lines)
    capsys.readouterr()
    with pytest.warns(UserWarning, match="illegal actions"):  # plain PPO sees no masks
        run_search(SearchArgs(**args, nets=8, progress=False))  # extended from its checkpoint
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["nets"] for x in lines] == [2, 4, 6, 8]
    said = capsys.readouterr().err
    assert "6 of 8 networks done" in said and "differs" not in said


def test_an_sb3_search_shows_the_search_bar(tmp_path, capsys):
    from agents.runner import SearchArgs, run_search

    args = {"env_id": SURROGATE, "agent": "maskable-ppo", "batch": 2, "out": str(tmp_path / "r")}
    run_search(SearchArgs(**args, nets=4, progress=True))
    bar = capsys.readouterr().err
    assert "maskable-ppo seed 0" in bar and "4/4" in bar and "net" in bar


TIMING = ("train_seconds", "cpu_seconds")


def _records(path):
    import json

    lines = path.read_text().splitlines()
    return [{k: v for k, v in json.loads(x).items() if k not in TIMING} for x in lines]


@pytest.mark.parametrize("algo", ["ppo", "maskable-ppo"])
def test_an_interrupted_sb3_search_resumes_exactly(algo, tmp_path, monkeypatch):
    import json
    import warnings

    from agents import sb3_runner
    from agents.runner import SearchArgs, run_search

    def search(out, nets=8):
        args = SearchArgs(env_id=SURROGATE, agent=algo, batch=2, nets=nets, out=str(out))
        args.progress = False
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # plain PPO's illegal actions
            run_search(args)

    search(tmp_path / "whole")
    original = sb3_runner._RecordChildren._on_rollout_start
    rollouts = []

    def stop_at_the_third_rollout(self):
        original(self)  # saves the checkpoint first, as a crash after it would find
        rollouts.append(1)
        if len(rollouts) == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(sb3_runner._RecordChildren, "_on_rollout_start", stop_at_the_third_rollout)
    with pytest.raises(KeyboardInterrupt):
        search(tmp_path / "stopped")
    monkeypatch.undo()
    assert len(_records(tmp_path / "stopped" / "children.jsonl")) == 4  # 2 rollouts saved
    search(tmp_path / "stopped")
    whole = _records(tmp_path / "whole" / "children.jsonl")
    assert len(whole) == 8 and _records(tmp_path / "stopped" / "children.jsonl") == whole
    losses = [
        [
            {k: v for k, v in json.loads(line).items() if k.startswith("train/")}
            for line in (tmp_path / run / "metrics.jsonl").read_text().splitlines()
        ]
        for run in ("whole", "stopped")
    ]
    assert losses[0] == losses[1] and len(losses[0]) == 4  # the same updates, loss for loss


def test_an_sb3_checkpoint_without_generators_resumes_and_says_it_differs(tmp_path, capsys):
    import torch

    from agents.runner import SearchArgs, run_search

    args = SearchArgs(env_id=SURROGATE, agent="maskable-ppo", batch=2, nets=2, out=str(tmp_path))
    args.progress = False
    run_search(args)
    path = tmp_path / "sb3_state.pt"
    state = torch.load(path, weights_only=True)
    for key in ("generators", "n_updates", "ep_info_buffer", "ep_success_buffer"):
        del state[key]  # as written before 2026-12-05
    torch.save(state, path)
    capsys.readouterr()
    args.nets = 4
    assert len(run_search(args)) == 4
    assert "predates exact SB3 resumes: the rest differs" in capsys.readouterr().err


def test_an_sb3_record_replays_from_its_seed_and_actions(tmp_path):
    """Each record holds its actions and starts from the protocol's seed of its update, so the
    network can be grown again (what a comparison's test column does for a best network)."""
    import gymnasium as gym

    from agents.run_folder import episode_seed
    from agents.runner import SearchArgs, run_search

    args = SearchArgs(env_id=SURROGATE, agent="maskable-ppo", batch=2, nets=4, out=str(tmp_path))
    args.progress = False
    children = run_search(args)
    env = gym.make(SURROGATE, store=":memory:")
    for record in children:
        assert len(record["actions"]) == EPISODE
        _, info = env.reset(seed=episode_seed(0, record["update"], 2) + record["env"])
        for action in record["actions"]:
            _, _, _, _, info = env.step(np.asarray(action, dtype=np.int64))
        assert (info["net"], info["accuracy"]) == (record["net"], record["accuracy"])


def test_a_gpu_policy_has_its_cuda_generators_saved_and_restored(monkeypatch):
    """A policy on a GPU samples from CUDA's generators: a resume must restore them too."""
    import torch

    from agents import sb3_runner

    saved_cuda = [torch.tensor([1, 2, 3], dtype=torch.uint8), torch.tensor([4], dtype=torch.uint8)]
    restored = []
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: saved_cuda)
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda s, i: restored.append((i, s)))
    states = sb3_runner._generator_states()
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    sb3_runner._set_generator_states(states)
    assert restored == [(0, saved_cuda[0]), (1, saved_cuda[1])]
    restored.clear()  # resumed where fewer GPUs show (another node, CUDA_VISIBLE_DEVICES)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    sb3_runner._set_generator_states(states)
    assert restored == [(0, saved_cuda[0])]
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)  # a CPU run: no CUDA state
    assert "cuda" not in sb3_runner._generator_states()
