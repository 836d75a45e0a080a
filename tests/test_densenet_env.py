"""The DenseNet space in the environment: encoding, masks, env ids, agents, an end-to-end search."""

import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from hypothesis import given, settings
from hypothesis import strategies as st

import eas_gym  # noqa: F401  (registers the EAS-* ids)
from agents.base import split_masks
from agents.final import final_train
from agents.random_search import RandomSearch
from agents.reinforce import Reinforce, _block_positions
from agents.runner import SearchArgs, read_children, run_search
from agents.show import describe_run
from eas_gym import load_model
from eas_gym.densenet import spaces as dense
from eas_gym.densenet.arch import DENSE_SMALL_SPACE, DENSE_SMALL_START, DenseArch
from eas_gym.family import FAMILIES, build_model, parse_net
from eas_gym.spaces import DEEPER, WIDER
from eas_gym.vector import make_vector_env

SPACE = DENSE_SMALL_SPACE
FAMILY = FAMILIES["dense-small"]
DENSE_IDS = (
    "EAS-DenseNet-CIFAR10-v0",
    "EAS-DenseNet-CIFAR10-NoAug-v0",
    "EAS-DenseNet-CIFAR10-CPU-v0",
)
# The CPU preset on a tiny synthetic set: a few seconds per search.
SYNTHETIC = {
    "dataset": "synthetic",
    "train_size": 200,
    "val_size": 100,
    "epochs": 0.5,
    "start_epochs": 1.0,
    "probe_size": 8,
}


@st.composite
def small_space_archs(draw, num_blocks=None):
    """DenseNets inside DENSE_SMALL_SPACE: listed growth rates, unit limits respected."""
    blocks, room = [], SPACE.max_units
    count = num_blocks or draw(st.integers(1, 3))
    for b in range(count):
        most = min(SPACE.max_units_per_block, room - (count - b - 1))
        block = draw(st.lists(st.sampled_from(SPACE.growths), min_size=1, max_size=most))
        blocks.append(tuple(block))
        room -= len(block)
    return DenseArch(stem=draw(st.sampled_from([4, 8])), blocks=tuple(blocks))


def state_of(arch, seed=0):
    return build_model(arch, generator=torch.Generator().manual_seed(seed)).state_dict()


def apply(decoded, arch):
    probe = torch.rand(2, 3, 8, 8)
    g = torch.Generator().manual_seed(0)
    return FAMILY.apply(decoded, arch, state_of(arch), noise=False, generator=g, probe=probe)


@settings(max_examples=30, deadline=None)
@given(arch=small_space_archs())
def test_encoding_fits_the_space_and_reads_back(arch):
    obs_space = dense.observation_space(SPACE, arch.num_blocks, 9)
    obs = dense.encode_observation(arch, SPACE, WIDER, 9)
    assert obs_space.contains(obs)
    slots = dense.slot_units(arch)
    assert obs["num_layers"] == arch.num_units + arch.num_blocks - 1 == len(slots)
    for i, unit in enumerate(slots):
        if unit is None:
            assert obs["kind"][i] == dense.TRANSITION
        else:
            assert obs["kind"][i] == dense.UNIT
            assert SPACE.growths[obs["width"][i]] == arch.blocks[unit[0]][unit[1]]
    assert not obs["kind"][len(slots) :].any()
    # The controller splits slots into blocks at transitions: block and position of each unit.
    block_of, position_of = _block_positions(torch.as_tensor(obs["kind"])[None])
    for i, unit in enumerate(slots):
        expected = (-1, -1) if unit is None else unit
        assert (int(block_of[0, i]), int(position_of[0, i])) == expected


@settings(max_examples=30, deadline=None)
@given(arch=small_space_archs())
def test_masks_agree_with_what_the_transforms_accept(arch):
    slots = dense.num_slots(SPACE, arch.num_blocks)
    flags = dense.action_mask(arch, SPACE, WIDER)[:slots]
    for i in range(slots):
        action = np.zeros(slots + 2, np.int64)
        action[i] = 1
        decoded = dense.decode_action(action, arch, SPACE, WIDER)
        assert decoded.illegal == (not flags[i][1])
        if flags[i][1]:
            child, _, _ = apply(decoded, arch)
            assert child.num_units == arch.num_units and child != arch
    position = dense.action_mask(arch, SPACE, DEEPER)[slots]
    any_legal = bool(dense.legal_deepen(arch, SPACE))
    for i in range(slots):
        action = np.zeros(slots + 2, np.int64)
        action[slots] = i
        decoded = dense.decode_action(action, arch, SPACE, DEEPER)
        if any_legal:
            assert decoded.illegal == (not position[i])
        if decoded.layer is not None:
            child, _, records = apply(decoded, arch)
            block, unit = dense.slot_units(arch)[i]
            assert child.num_units == arch.num_units + 1
            assert child.blocks[block][unit + 1] == arch.blocks[block][unit]
            assert records == [
                {"op": "deeper", "block": block, "position": unit + 1, "source": unit}
            ]
        else:  # every slot refused: the mask keeps slot 0 as the step's no-op
            assert not any_legal or not position[i]
    if not any_legal:
        assert position[0] and position.sum() == 1


def test_full_block_and_full_space_refuse_deeper():
    full_block = DenseArch(stem=8, blocks=((4,) * SPACE.max_units_per_block, (4,)))
    legal = dense.legal_deepen(full_block, SPACE)
    assert legal == [SPACE.max_units_per_block + 1]  # only the second block's unit
    full = DenseArch(stem=8, blocks=((4,) * 6, (4,) * 6))
    assert dense.legal_deepen(full, SPACE) == []
    top = DenseArch(stem=8, blocks=((SPACE.growths[-1], 4),))
    assert dense.legal_widen(top, SPACE) == [1]


def test_transitions_and_padding_are_never_legal():
    arch = DENSE_SMALL_START  # slots: u u T u u T u u, then padding
    wider = dense.action_mask(arch, SPACE, WIDER)
    deeper = dense.action_mask(arch, SPACE, DEEPER)
    slots = dense.num_slots(SPACE, 3)
    for i in (2, 5, *range(8, slots)):
        assert not wider[i][1] and not deeper[slots][i]
    action = np.zeros(slots + 2, np.int64)
    action[2] = 1  # widen a transition
    assert dense.decode_action(action, arch, SPACE, WIDER).illegal
    action[slots] = 5  # insert after a transition
    assert dense.decode_action(action, arch, SPACE, DEEPER).illegal


def test_start_net_outside_the_space_is_refused():
    with pytest.raises(ValueError, match="growth rate 5 not in"):
        dense.check_arch_in_space(DenseArch(stem=8, blocks=((5,),)), SPACE)
    with pytest.raises(ValueError, match="exceeds the space's limits"):
        dense.check_arch_in_space(DenseArch(stem=8, blocks=((4,) * 7,)), SPACE)
    with pytest.raises(ValueError, match="growth rate"):
        gym.make("EAS-DenseNet-CIFAR10-CPU-v0", start_net="D8 3x2", store=":memory:")


def test_env_ids_register_the_three_settings():
    envs = [gym.make(env_id, store=":memory:").unwrapped for env_id in DENSE_IDS]
    assert [e.search_space.name for e in envs] == ["dense-paper", "dense-paper", "dense-small"]
    assert [e.eval_config.train.augment for e in envs] == [True, False, True]
    assert str(envs[0].start_arch) == "D24 12x16 T 12x16 T 12x16"
    assert envs[0].config_key != envs[1].config_key  # augmentation changes every accuracy
    assert envs[2].observation_space["kind"].shape == (SPACE.max_units + 2,)
    for env in envs:
        env.close()


def test_check_env_and_sb3_check_env_pass():
    sb3_checker = pytest.importorskip("stable_baselines3.common.env_checker")
    env = gym.make("EAS-DenseNet-CIFAR10-CPU-v0", evaluator="surrogate", store=":memory:")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped, skip_render_check=False)
        sb3_checker.check_env(env, warn=True)
    assert not [str(w.message) for w in caught], [str(w.message) for w in caught]


def test_episode_without_noise_preserves_the_function_at_every_step(tmp_path):
    env = gym.make(
        "EAS-DenseNet-CIFAR10-CPU-v0",
        **SYNTHETIC,
        noise=False,
        reward_mode="sparse",
        store=str(tmp_path / "store.sqlite"),
    )
    obs, info = env.reset(seed=3)
    env.action_space.seed(3)
    grew = 0
    while True:
        before = info["net"]
        obs, reward, terminated, _, info = env.step(env.action_space.sample(info["action_mask"]))
        assert not info["illegal_action"]
        if not terminated:  # the last step's check is against the parent, before training
            assert info["preservation_error"] < 1e-5
        grew += info["net"] != before
        if terminated:
            break
    assert grew >= 5 and 0.0 <= info["accuracy"] <= 1.0 and reward > 0
    env.close()


@pytest.mark.parametrize("cls", [Reinforce, RandomSearch])
def test_agents_take_only_legal_dense_actions(cls):
    envs = make_vector_env(
        "EAS-DenseNet-CIFAR10-CPU-v0",
        4,
        asynchronous=False,
        evaluator="surrogate",
        store=":memory:",
        probe_size=4,
        noise=False,
    )
    agent = cls(envs.single_observation_space, envs.single_action_space, seed=0)
    for update in range(2):
        obs, infos = envs.reset(seed=update * 4)
        terminated = np.zeros(4, dtype=bool)
        while not terminated.all():
            masks = np.stack([np.concatenate(m) for m in infos["action_mask"]]).astype(bool)
            actions = agent.act(obs, masks)
            for d, legal in enumerate(split_masks(masks, envs.single_action_space)):
                assert legal[np.arange(4), actions[:, d]].all(), d
            obs, rewards, terminated, _, infos = envs.step(actions)
            assert not infos["illegal_action"].any()
            agent.observe(rewards, terminated)
        agent.update()
    assert all(parse_net(net).num_units > DENSE_SMALL_START.num_units for net in infos["net"])
    envs.close()


@pytest.mark.parametrize("agent", ["reinforce", "random", "maskable-ppo"])
def test_cpu_preset_search_end_to_end_on_synthetic_data(tmp_path, agent):
    """Search, export, show and final training of a DenseNet run (random: no augmentation)."""
    if agent == "maskable-ppo":
        pytest.importorskip("sb3_contrib")
    out = tmp_path / agent
    args = SearchArgs(
        env_id="EAS-DenseNet-CIFAR10-CPU-v0",
        agent=agent,
        nets=4,
        batch=2,
        out=str(out),
        env_kwargs={**SYNTHETIC, "schedule": "WD", "augment": agent != "random"},
        progress=False,
    )
    run_search(args)
    children = read_children(out)
    assert len(children) == 4
    assert all(c["net"].startswith("D8 ") and c["net"] != "D8 4x2 T 4x2 T 4x2" for c in children)
    net = load_model(out / "best")
    best = max(children, key=lambda c: c["accuracy"])
    assert str(net.arch) == best["net"] and net(torch.rand(2, 3, 16, 16)).shape == (2, 10)
    report = describe_run(out)
    assert "lineage of the best network" in report and "deeper block" in report
    record = final_train(str(out), epochs=0.1, device="cpu")
    assert record["net"] == best["net"] and record["augment"] == (agent != "random")
    assert 0.0 <= record["test_accuracy"] <= 1.0


def test_reset_from_a_stored_dense_net_and_a_misfit_one(tmp_path):
    kwargs = {**SYNTHETIC, "schedule": "D", "keep_weights": True}
    env = gym.make("EAS-DenseNet-CIFAR10-CPU-v0", store=str(tmp_path / "s.sqlite"), **kwargs)
    _, info = env.reset(seed=0)
    _, _, _, _, info = env.step(env.action_space.sample(info["action_mask"]))
    child = info["net"]
    _, info = env.reset(seed=1, options={"net": child})
    assert info["net"] == child and info["accuracy"] is not None
    with pytest.raises(ValueError, match="does not fit this search's observation space"):
        env.reset(options={"net": "D8 4x2 T 4x2"})  # two blocks; the search has three
    env.close()
