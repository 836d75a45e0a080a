"""Shared fixtures: tiny networks whose weights look trained, and surrogate-env rollouts."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import gymnasium as gym
import pytest
import torch

from eas_gym.arch import Arch
from eas_gym.net import EASNet, build_net

# Tiny networks: one thread is as fast, and a test process must not take every core of a
# shared machine (processes x threads <= cores; see eas_gym.vector.worker_threads).
torch.set_num_threads(1)


def trained_like(arch: Arch, seed: int = 0) -> EASNet:
    """A net with random BN affine/statistics and O(1) logits (a fresh init hides BN bugs)."""
    g = torch.Generator().manual_seed(seed)
    net = build_net(arch, generator=g)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm1d | torch.nn.BatchNorm2d):
                m.weight.copy_(0.5 + torch.rand(m.weight.shape, generator=g))
                m.bias.copy_(0.2 * torch.randn(m.bias.shape, generator=g))
                m.running_mean.copy_(0.2 * torch.randn(m.running_mean.shape, generator=g))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))
        net.classifier.weight.normal_(0.0, 0.5, generator=g)
    return net.eval()


def probe_batch(arch: Arch, n: int = 8, size: int = 16, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, arch.in_channels, size, size, generator=g)


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(1234)


def rollout(env, seed, steps=None):
    obs, info = env.reset(seed=seed)
    trajectory = [(obs, info["net"])]
    terminated = False
    while not terminated:
        action = env.action_space.sample(info["action_mask"])
        obs, r, terminated, truncated, info = env.step(action)
        trajectory.append((obs, r, terminated, truncated, info["net"], info["accuracy"]))
    return trajectory


@pytest.fixture
def surrogate():
    env = gym.make("EAS-Surrogate-v0", store=":memory:")
    env.action_space.seed(0)
    yield env
    env.close()


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """Stores and prepared datasets of the suite go to a temporary folder, not ~/.cache."""
    import os

    if "EAS_CACHE_DIR" in os.environ:
        yield
        return
    os.environ["EAS_CACHE_DIR"] = str(tmp_path_factory.mktemp("eas_cache"))
    yield
    del os.environ["EAS_CACHE_DIR"]


def legal_actions(agent, obs, infos, envs, *, recommend=False):
    """`agent.act` (or its `recommend`) on a vector env's step; asserts every action is legal."""
    import numpy as np

    from agents.base import split_masks

    masks = np.stack([np.concatenate(m) for m in infos["action_mask"]])
    actions = (agent.recommend if recommend else agent.act)(obs, masks)
    for legal, column in zip(split_masks(masks, envs.single_action_space), actions.T, strict=True):
        assert legal[np.arange(len(column)), column].all()
    return actions


def surrogate_search(tmp_path, agent: str, seed: int, nets: int = 60):
    """The child records of a `nets`-network search of `agent` on EAS-Surrogate-v0 (batch 10)."""
    from agents.runner import SearchArgs, run_search

    out = tmp_path / f"{agent}-{seed}"
    args = SearchArgs(
        env_id="EAS-Surrogate-v0", agent=agent, nets=nets, batch=10, seed=seed, out=str(out)
    )
    args.progress = False
    return run_search(args)


@contextlib.contextmanager
def held_by_another_process(folder: Path) -> Iterator[int]:
    """Run folder `folder` held (``hold_run_folder``) by a second process, for real: its pid.

    flock is per open file and the lock is reentrant within a process, so only another
    process shows what a second writer meets.
    """
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from pathlib import Path\n"
            "from agents.run_folder import hold_run_folder\n"
            "with hold_run_folder(Path(sys.argv[1])):\n"
            "    print('held', flush=True); time.sleep(60)",
            str(folder),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        yield holder.pid
    finally:
        holder.kill()
        holder.wait()
