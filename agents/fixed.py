"""Fixed heuristic policies: what a learned agent must beat besides random search.

Each policy fixes one kind of choice and draws everything else uniformly among the legal values
(the env's masks), as random search does:

* ``widen-all``: every wider step widens every layer it may;
* ``never-widen``: no wider step widens anything;
* ``kernel-1``, ``kernel-3``, ``kernel-5``: deeper steps insert only that kernel size;
* ``deepen-first``: deeper steps insert only into the first block (before the first pool);
* ``deepen-fc``: deeper steps insert only after FC layers;
* ``widen-all-kernel-3``: ``widen-all`` and ``kernel-3`` together.

Where a policy's wish is illegal at a step (no legal position in the first block, no legal
kernel of that size), it falls back to a uniform legal draw. In the preset probe
(``benchmarks/preset_probe.py``, which runs these same functions) ``deepen-first`` beat random
search by 2.5 to 2.9 points on ``EAS-CIFAR10-CPU-v2``, more than any learned policy, so a
comparison (:mod:`agents.compare`) tests every learned agent against its best ``fixed[...]`` arm
too. As an agent: ``fixed[policy=deepen-first]``.
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from agents.base import split_masks
from agents.random_search import SeededHeuristic
from eas_gym.arch import SearchSpace
from eas_gym.net2net import LayerKind

__all__ = ["POLICIES", "FixedPolicy", "fixed_action"]

POLICIES = (
    "widen-all",
    "never-widen",
    "kernel-1",
    "kernel-3",
    "kernel-5",
    "deepen-first",
    "deepen-fc",
    "widen-all-kernel-3",
)
"""The fixed policies; :func:`fixed_action` also takes ``"random"``, which fixes nothing."""

DEFAULT_KERNELS: tuple[int, ...] = SearchSpace(filters=(1,), units=(1,)).kernels
"""The kernel sizes of every registered plain-CNN space, ``(1, 3, 5)``."""


def _uniform(legal: np.ndarray, rng: np.random.Generator) -> int:
    return int(rng.choice(np.flatnonzero(legal)))


def fixed_action(
    policy: str,
    obs: dict[str, np.ndarray],
    masks: list[np.ndarray],
    kernels: tuple[int, ...],
    rng: np.random.Generator,
) -> np.ndarray:
    """One environment's action under a fixed policy (see the module docstring).

    Every entry is first drawn uniformly among its legal values, in order, then the policy
    overrides what it fixes, so all policies use the generator alike.

    Args:
        policy: One of :data:`POLICIES`, or ``"random"``.
        obs: One environment's observation (no batch dimension).
        masks: One boolean mask per action entry (:func:`agents.base.split_masks`, one row).
        kernels: The kernel size of each kernel index (the search space's ``kernels``).
        rng: The generator of the uniform draws.

    Returns:
        The ``(len(masks),)`` integer action.
    """
    slots = len(masks) - 2
    action = np.array([_uniform(m, rng) for m in masks], dtype=np.int64)
    if int(obs["step_kind"]) == 0:  # wider step: the flags
        if policy.startswith("widen-all"):
            action[:slots] = [int(m[1]) for m in masks[:slots]]
        elif policy == "never-widen":
            action[:slots] = 0
        return action
    position, kernel = masks[slots].copy(), masks[slots + 1].copy()
    kind = np.asarray(obs["kind"])
    if policy == "deepen-first":
        first_pool = (np.flatnonzero(kind == LayerKind.POOL)[:1].tolist() or [slots])[0]
        first = np.arange(slots) < first_pool
        position = position & first if (position & first).any() else position
    elif policy == "deepen-fc":
        fc = kind == LayerKind.FC
        position = position & fc if (position & fc).any() else position
    if policy.startswith("kernel-") or policy.endswith("kernel-3"):
        size = int(policy.rsplit("-", 1)[1])
        wanted = np.array([k == size for k in kernels])
        kernel = kernel & wanted if (kernel & wanted).any() else kernel
    action[slots] = _uniform(position, rng)
    action[slots + 1] = _uniform(kernel, rng)
    return action


class FixedPolicy(SeededHeuristic):
    """A fixed heuristic policy as an :class:`agents.base.Agent`: ``fixed[policy=NAME]``.

    Args:
        observation_space: The single-environment observation space.
        action_space: The single-environment ``MultiDiscrete`` action space.
        seed: Seeds the uniform draws.
        policy: One of :data:`POLICIES`.
        kernels: The kernel size of each kernel index; None: ``(1, 3, 5)`` (every registered
            plain-CNN space) when the space has 3 kernels. With one kernel the choice is forced,
            so the kernel policies then draw as random search does.

    Raises:
        ValueError: An unknown `policy`, or `kernels` that do not fit the action space.
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.MultiDiscrete,
        *,
        seed: int,
        policy: str,
        kernels: list[int] | None = None,
    ) -> None:
        if policy not in POLICIES:
            raise ValueError(f"Expected `policy` in {POLICIES}, actually: {policy!r}")
        num_kernels = int(action_space.nvec[-1])
        if kernels is None:
            kernels = list(DEFAULT_KERNELS) if num_kernels == len(DEFAULT_KERNELS) else None
            if num_kernels == 1:
                kernels = [3]  # forced anyway; the probe's choice for DenseNet
        if kernels is None and "kernel" in policy:
            raise ValueError(
                f"`policy` {policy!r} needs `kernels`, the size of each of the space's "
                f"{num_kernels} kernel indices, e.g. kernels=[1,3,5]"
            )
        if kernels is not None and len(kernels) != num_kernels:
            raise ValueError(
                f"Expected `kernels` to list {num_kernels} sizes (the action space's kernel "
                f"indices), actually: {kernels!r}"
            )
        self.action_space, self.policy = action_space, policy
        self.kernels = tuple(int(k) for k in kernels or ())
        self.rng = np.random.default_rng(seed)

    def act(self, obs: dict[str, np.ndarray], masks: np.ndarray) -> np.ndarray:
        """Each environment's action, in batch order."""
        parts = split_masks(masks, self.action_space)
        batch = parts[0].shape[0]
        return np.stack(
            [
                fixed_action(
                    self.policy,
                    {k: np.asarray(v)[b] for k, v in obs.items()},
                    [p[b] for p in parts],
                    self.kernels,
                    self.rng,
                )
                for b in range(batch)
            ]
        )
