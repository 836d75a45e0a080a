"""EASEnv: Efficient Architecture Search (Cai et al., AAAI 2018) as a Gymnasium environment.

Over 400 lines because of its documentation: the class docstring is the env's card in
Gymnasium's style (spaces, rewards, info, attributes, arguments, versions); the code is about
345 lines.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from eas_gym.arch import Arch
from eas_gym.data import dataset_classes, dataset_identity, resolve_device
from eas_gym.eval_config import WEIGHTLESS_EVALUATORS, EvalConfig, device_key, lineage_step
from eas_gym.family import FAMILIES, AnyArch
from eas_gym.net2net import WIDER, StateDict, parse_schedule
from eas_gym.own_data import check_own_dataset, is_own_dataset
from eas_gym.render import architecture_image
from eas_gym.reward import COSTS, REWARDS, reward
from eas_gym.scorer import CACHE_BY, ChildScorer
from eas_gym.settings import check_env_arguments
from eas_gym.store import BY_NET, default_store_path
from eas_gym.train import TrainConfig

__all__ = ["EASEnv", "NUM_CLASSES"]

NUM_CLASSES = {"cifar10": 10, "cifar100": 100, "svhn": 10, "synthetic": 10}
"""Classes of the built-in datasets (your own: :func:`eas_gym.data.dataset_classes`)."""
_REWARD_MODES = ("dense", "sparse")
_EVALUATORS = ("train", *WEIGHTLESS_EVALUATORS)
ObsType = dict[str, Any]


@dataclass
class _Episode:
    """The search in progress, from ``reset()`` on: the network, its weights, the schedule."""

    arch: AnyArch
    state: StateDict  # empty for the weightless evaluators
    logits: torch.Tensor | None  # on the probe batch (what the next check compares to)
    generator: torch.Generator  # the transforms' noise
    scored_parent: AnyArch  # the last scored network (the store records it as parent)
    t: int = 0  # steps taken


class EASEnv(gym.Env[ObsType, np.ndarray]):
    """Grow a trained CNN with function-preserving transforms; the reward is its accuracy.

    ## Description

    The state is a trained network (architecture and weights). Each step applies one of the
    paper's function-preserving transforms: a *wider* step (Net2Wider on any subset of layers,
    each to the next width of the space's list) or a *deeper* step (Net2Deeper: an identity
    layer inserted after a conv or FC layer). The child inherits its parent's weights, so it
    only needs a short fine-tune, after which it is scored on the validation split. A fixed
    schedule decides which kind each step is (the paper: 4 wider then 5 deeper steps). Every
    transform is verified on a fixed probe batch: the largest logit change is reported.

    The ``dense-*`` spaces search DenseNet-BC instead (the paper's second setting): a wider step
    raises the growth rate of any subset of units, a deeper step inserts a copy of a unit right
    after it. They use the same action and observation layout with one slot per unit and per
    transition (see :mod:`eas_gym.densenet.spaces`), so agents need no change.

    ## Action Space

    ``MultiDiscrete([2] * L + [L, K])`` with ``L = space.max_layers`` and ``K`` kernels:

    | index | meaning | read on |
    |---|---|---|
    | 0 .. L-1 | 1: widen layer i to its next width | wider steps |
    | L | insert a layer after layer i | deeper steps |
    | L+1 | kernel index of an inserted conv (ignored after an FC) | deeper steps |

    DenseNet: ``L = max_units + blocks - 1`` slots (units and transitions), flags widen units
    to their next growth rate, entry L duplicates the unit in slot i, and ``K = 1``.

    An action outside the space raises ``ValueError``. An action inside the space that cannot
    be applied is not an error: flags on pools, padding or maximal layers are ignored (the
    legal flags are applied), and an illegal insert position makes the step a no-op; either way
    ``info["illegal_action"]`` is True. ``action_masks()`` and ``info["action_mask"]`` give the
    legal values (``action_space.sample(mask=info["action_mask"])`` draws a legal action).

    ## Observation Space

    A ``Dict`` of:

    | key | meaning | min | max |
    |---|---|---|---|
    | kind | per slot: 0 padding, 1 conv, 2 pool, 3 FC (DenseNet: 1 unit, 2 transition) | 0 | 3 |
    | width | per slot: index in the kind's width list (DenseNet: growth rates) | 0 | W-1 |
    | kernel | per slot: index in ``space.kernels`` (0 if not conv) | 0 | K-1 |
    | num_layers | layers in the network (pools included) | 1 | L |
    | step_kind | the next step: 0 wider, 1 deeper | 0 | 1 |
    | steps_left | steps remaining in the episode | 0 | T |

    ## Rewards

    ``R(acc) = tan(acc * pi / 2)`` (accuracy clipped to 0.999), or ``acc`` with
    ``reward_shape="acc"``, minus ``cost_weight * log(cost / start_cost)`` when `cost_weight`
    is set (cost: parameters or FLOPs). With ``reward_mode="dense"`` every changed child is
    fine-tuned and ``r_t = R(acc_t) - R(acc_{t-1})``, so the return is ``R(final) - R(start)``;
    with ``"sparse"`` (the paper) only the last child is trained and ``r_T = R(acc_T)``.

    ## Starting State

    The start network with trained weights. It is trained once per configuration and kept in
    the evaluation store, so later resets and other processes reuse it.

    ## Episode End

    1. *Termination*: the schedule's last step was taken (``len(schedule)`` steps). This budget
       is part of the MDP; wall-clock or step limits are left to ``TimeLimit``.

    ## Information

    | key | meaning |
    |---|---|
    | net | the network's net string |
    | accuracy | validation accuracy in [0, 1] of the current network (None until trained) |
    | params, flops | trainable parameters; multiply-adds per image |
    | preservation_error | max abs logit change of the transform on the probe batch (0 if none) |
    | lineage | the store row of ``accuracy`` (hash of its start, transforms and seeds) |
    | diverged | training stopped on a non-finite loss (acc = chance); step only |
    | oom | always False (running out of memory raises ``torch.OutOfMemoryError``); step only |
    | illegal_action | part of the action could not be applied; step only |
    | action_mask | legal values of each action entry for the next step |

    ``lineage`` is "" for the start network and rows of the net-string cache, None while a
    sparse child is unscored. Everything in ``info`` follows from the seed and the actions.
    How a child was scored does not (it depends on what the store held and on the clock), so
    it is kept apart:
    ``env.unwrapped.step_provenance`` (``cache_hit``, ``train_seconds`` and ``cpu_seconds``,
    the wall and process CPU time of the last step's fine-tune) and
    ``last_episode_provenance`` (``cache_hits``, ``train_seconds``, ``cpu_seconds`` summed over
    the last finished episode, and the episode's ``start_accuracy`` and ``start_digest``, a
    SHA-256 prefix of the start weights; vector envs:
    ``envs.get_attr("last_episode_provenance")``).

    ## Determinism and the store

    Same seed and same actions give the same observations, rewards and ``info`` whether the
    store is empty, warm or shared with other searches: with ``cache_by="lineage"`` (default)
    a child is served from the store only if the same computation (start network, transforms,
    noise seed, training seeds) was done before, and then it equals a fresh evaluation; a
    dense episode that goes on from a hit without stored weights trains it again. With
    ``cache_by="net"`` (the paper's cache) a network reached again by any path reuses its first
    evaluation: cheaper, but results then depend on the store's history.

    All of this is bit for bit on the CPU. On a GPU it is not: cuDNN's convolution algorithms
    (chosen per shape) and atomic adds make two fine-tunes of the same child differ, by
    rounding at first and by chaos after many epochs, so a store hit equals *one* fresh
    evaluation, not every one, and a rerun of a seed that trains (rather than hits) may differ.
    ``nondeterministic=True`` in the GPU ids' registration says so.

    ## Attributes

    Public and stable, for agents and wrappers (read them through ``env.unwrapped``, or
    ``get_attr`` on a vector env):

    * ``schedule``: the step kinds of an episode (``WIDER``/``DEEPER`` codes of
      :mod:`eas_gym.net2net`); its length is the episode length.
    * ``family``, ``search_space``: the architecture family (parse, build, encode) and its space.
    * ``start_arch``: the start network's architecture.
    * ``eval_config``, ``config_key``: what decides a child's accuracy, and its store key.
    * ``scorer``: the :class:`~eas_gym.scorer.ChildScorer` (its ``store``, ``probe`` batch).
    * ``step_provenance``, ``last_episode_provenance``: store hit or training, and seconds.
    * ``weightless``: the evaluator (``"surrogate"``, ``"bench"``) needs no weights: steps
      transform the architecture alone, with no probe, no training and no store writes.
    * ``on_episode_end``: a callback given the final ``info`` (progress displays).

    ## Arguments

    >>> import gymnasium as gym
    >>> import eas_gym
    >>> env = gym.make("EAS-Surrogate-v0", store=":memory:")
    >>> obs, info = env.reset(seed=0)
    >>> info["net"]
    'C4-3 MP C4-3 MP C4-3 MP C4-3 GAP FC8'

    | Parameter | Type | Default | Description |
    |---|---|---|---|
    | dataset | str | "cifar10" | cifar10, cifar100, svhn, synthetic, or your own (a path) |
    | data_dir | str or None | None | dataset folder; else ``$EAS_DATA_DIR``, else a cache |
    | download | bool | False | let torchvision download missing files |
    | train_size, val_size | int or None | None | class-balanced subsets (paper: 45k / 5k) |
    | image_size | int or None | None | downsample images (a CPU departure from the paper) |
    | space | str | "paper" | "paper", "small" (plain CNN), "dense-paper", "dense-small" |
    | start_net | str or None | None | start net string; default: the space's start net |
    | schedule | str | "WWWWDDDDD" | step kinds: W wider, D deeper |
    | reward_mode | str | "dense" | "dense" or "sparse" (see Rewards) |
    | reward_shape | str | "tan" | "tan" or "acc" |
    | cost, cost_weight | str, float | "params", 0.0 | optional cost penalty |
    | evaluator | str | "train" | "train", "surrogate" (a formula), "bench" (a model of -v2) |
    | epochs, lr, batch_size | float, float, int | 20, 0.02, 64 | each child's fine-tune |
    | start_epochs, start_lr | float, float | 60, 0.1 | the start net's training |
    | noise | bool | True | the paper's symmetry-breaking noise on new units |
    | augment | bool | True | pad-4 crop and flip while training (the paper's "+" sets) |
    | probe_size | int | 64 | training images in the preservation-check batch |
    | device | str | "auto" | CUDA when available, else CPU |
    | store | str or None | None | SQLite path, ":memory:", or None: ``default_store_path()`` |
    | keep_weights | bool | False | save every child's weights (multi-stage search) |
    | cache | bool | True | use and fill the store; False: train every child afresh (a recheck) |
    | cache_by | str | "lineage" | "lineage" or "net" (see Determinism and the store) |
    | render_mode | str or None | None | "ansi" (text) or "rgb_array" (the network as bars) |

    ## Version History

    * v0: Initial version. Since then, within package version 0.1.0: ``cache_hit`` and
      ``train_seconds`` left ``info`` for ``step_provenance``; ``lineage`` joined it;
      ``cache_by`` and ``cache`` were added.
    * EAS-CIFAR10-CPU-v1: a CPU preset where architecture matters (``benchmarks/RESULTS.md``).
    * EAS-CIFAR10-CPU-v2: v1 with 17-epoch fine-tunes and 20k validation images, the first
      preset to pass the probe's whole gate.
    * EAS-Bench-CIFAR10-CPU-v2: v2's MDP with accuracies from a model of its fine-tunes
      (``eas_gym.bench``); training and data arguments other than v2's are refused.
    """

    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 1}
    action_space: spaces.MultiDiscrete

    def __init__(
        self,
        *,
        dataset: str = "cifar10",
        data_dir: str | None = None,
        download: bool = False,
        train_size: int | None = None,
        val_size: int | None = None,
        image_size: int | None = None,
        space: str = "paper",
        start_net: str | None = None,
        schedule: str = "WWWWDDDDD",
        reward_mode: str = "dense",
        reward_shape: str = "tan",
        cost: str = "params",
        cost_weight: float = 0.0,
        evaluator: str = "train",
        epochs: float = 20.0,
        lr: float = 0.02,
        batch_size: int = 64,
        start_epochs: float = 60.0,
        start_lr: float = 0.1,
        noise: bool = True,
        augment: bool = True,
        probe_size: int = 64,
        device: str = "auto",
        store: str | None = None,
        keep_weights: bool = False,
        cache: bool = True,
        cache_by: str = "lineage",
        render_mode: str | None = None,
    ) -> None:
        arguments = {k: v for k, v in locals().items() if k != "self"}
        check_env_arguments(arguments)
        if is_own_dataset(dataset):
            check_own_dataset(dataset)  # a ValueError naming the built-in names and formats
        for label, value, allowed in (
            ("space", space, tuple(FAMILIES)),
            ("reward_mode", reward_mode, _REWARD_MODES),
            ("reward_shape", reward_shape, REWARDS),
            ("cost", cost, COSTS),
            ("evaluator", evaluator, _EVALUATORS),
            ("cache_by", cache_by, CACHE_BY),
            ("render_mode", render_mode, (None, *self.metadata["render_modes"])),
        ):
            if value not in allowed:
                raise ValueError(f"Expected `{label}` in {allowed}, actually: {value!r}")
        self.family = FAMILIES[space]
        self.search_space = self.family.space
        start = self.family.start.to_string() if start_net is None else start_net
        num_classes = dataset_classes(dataset)  # your own file's errors name the file, not this
        try:
            self.start_arch = self.family.parse(start, num_classes)
        except ValueError as e:
            raise ValueError(f"`start_net` {start!r}: {e}") from e
        self.family.check(self.start_arch)
        self.schedule = parse_schedule(schedule)
        self.reward_mode, self.reward_shape = reward_mode, reward_shape
        self.cost, self.cost_weight = cost, cost_weight
        self.noise = noise
        self.device = resolve_device(device)
        self.weightless = evaluator in WEIGHTLESS_EVALUATORS
        """The evaluator needs no weights: transforms act on the architecture alone."""
        if evaluator == "bench" and space != "small":
            raise ValueError(
                f"Expected `space` 'small' with `evaluator` 'bench' (the bench models "
                f"EAS-CIFAR10-CPU-v2's space), actually: {space!r}"
            )
        if evaluator == "bench":
            _check_bench_arguments(arguments, self.start_arch, self.family)
        data_sizes = {"train_size": train_size, "val_size": val_size, "image_size": image_size}
        self.eval_config = EvalConfig(
            dataset=dataset_identity(dataset),  # your own: its file name and content hash
            **data_sizes,
            evaluator=evaluator,
            start_net=self.start_arch.to_string(),
            start_train=TrainConfig(
                epochs=start_epochs, lr=start_lr, batch_size=batch_size, augment=augment
            ),
            train=TrainConfig(epochs=epochs, lr=lr, batch_size=batch_size, augment=augment),
            num_classes=self.start_arch.num_classes,
            # a sparse child is fine-tuned once after several transforms, a dense one after
            # each; a GPU trains with TF32 convolutions, the CPU in plain fp32
            reward_mode=reward_mode,
            noise=noise,
            device_type=device_key(self.device.type),
            probe_size=probe_size,
        )
        """Everything besides the net string that decides a child's accuracy (the cache key)."""
        self.scorer = ChildScorer(
            config=self.eval_config,
            family=self.family,
            start_arch=self.start_arch,
            device=self.device,
            store_path=str(default_store_path() if store is None else store),
            keep_weights=keep_weights,
            cache=cache,
            cache_by=cache_by,
            data_kwargs={"name": dataset, "data_dir": data_dir, "download": download, **data_sizes},
        )
        self.render_mode = render_mode

        self.observation_space = self.family.observation_space(self.start_arch, len(self.schedule))
        widths = self.observation_space.spaces["width"]
        self._num_widths = int(widths.nvec[0]) if isinstance(widths, spaces.MultiDiscrete) else 1
        self.action_space = self.family.action_space(self.start_arch)
        self._action_bounds: tuple[spaces.Space, np.ndarray, np.ndarray] | None = None

        self._start_key = self.eval_config.start_key()  # a hash: once, not at every reset
        self.config_key = self.scorer.config_key
        """The store's key of this configuration's children (``eval_config.key()``)."""
        self.step_provenance: dict[str, Any] = _no_training()
        """How the last step's child was scored: from the store or trained, in how long."""
        self.last_episode_provenance: dict[str, Any] | None = None
        """The same summed over the last finished episode (kept through the next reset)."""
        self.on_episode_end: Callable[[dict[str, Any]], None] | None = None
        """Called with the final ``info`` when an episode ends (progress displays)."""
        self._episode_provenance: dict[str, Any] = {}
        self._lineage = ""
        self._evaluation: str | None = None
        self._start: tuple[StateDict, float] | None = None
        self._start_digest: str | None = None
        self._episode: _Episode | None = None
        self._accuracy: float | None = None
        self._pending: list[dict[str, Any]] = []  # transforms since the last scored network

    def step(self, action: np.ndarray) -> tuple[ObsType, float, bool, bool, dict[str, Any]]:
        """Apply one transform, verify it, train and score the child as the mode says."""
        action = np.asarray(action)
        if not self._in_action_space(action):
            shown = repr(action.tolist()).replace("\n", " ")  # one line, whatever the shape
            shown = shown if len(shown) <= 200 else shown[:200] + "..."
            space = f"MultiDiscrete({self.action_space.nvec.tolist()})"
            raise ValueError(f"action {shown} not in {space}")
        ep = self._episode
        if ep is None or ep.t >= len(self.schedule):
            raise RuntimeError("Call `reset()` before `step()` (and after an episode ends)")
        kind = self.schedule[ep.t]
        decoded = self.family.decode(action, ep.arch, kind)
        parent, state = ep.arch, ep.state
        if self.weightless:  # the architecture alone: no weights, no probe, nothing drawn
            arch, transforms = self.family.apply_arch(decoded, ep.arch)
        else:
            arch, state, transforms = self.family.apply(
                decoded,
                ep.arch,
                ep.state,
                noise=self.noise,
                generator=ep.generator,
                probe=self.scorer.probe,
            )
        self._pending += transforms
        error, net = 0.0, None
        if arch != parent and ep.logits is not None:  # checked here once, trained below
            checked = self.scorer.verify(arch, state, ep.logits, exact=not self.noise)
            error, net, ep.logits = checked.error, checked.net, checked.logits
        ep.t += 1
        terminated = ep.t == len(self.schedule)
        seed = int(self.np_random.integers(2**31))
        self._lineage = lineage_step(self._lineage, transforms, seed)
        previous = self._reward(parent, self._accuracy)
        info: dict[str, Any] = {"diverged": False, "oom": False}
        self.step_provenance = _no_training()
        if self.reward_mode == "dense" and arch != parent:
            state, info = self._score(arch, state, seed, net, needs_weights=not terminated)
        elif self.reward_mode == "sparse" and terminated and arch != self.start_arch:
            state, info = self._score(arch, state, seed, net)
        elif self.reward_mode == "sparse" and arch != parent:
            self._accuracy = self._evaluation = None  # an untrained child's: unknown
        ep.arch, ep.state = arch, state
        tally = self._episode_provenance
        tally["train_seconds"] += self.step_provenance["train_seconds"]
        tally["cpu_seconds"] += self.step_provenance["cpu_seconds"]
        tally["cache_hits"] += int(self.step_provenance["cache_hit"])
        if terminated:
            self.last_episode_provenance = dict(tally)
            if self.on_episode_end is not None:
                self.on_episode_end(self._info())

        if self.reward_mode == "dense":
            r = self._reward(arch, self._accuracy) - previous
        else:
            r = self._reward(arch, self._accuracy) if terminated else 0.0
        info.update(self._info(), preservation_error=error, illegal_action=decoded.illegal)
        return self._obs(), float(r), terminated, False, info

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[ObsType, dict[str, Any]]:
        """Start from the trained start network (trained once per configuration, then cached).

        ``options={"net": NET_STRING}`` starts instead from a network evaluated earlier under
        this configuration with ``keep_weights=True`` (the paper's next search stage).
        """
        super().reset(seed=seed)
        unknown = sorted(set(options or {}) - {"net"})
        if unknown:
            raise ValueError(f"unknown `options` {unknown} of reset(); allowed: ['net']")
        if self._start is None and self.weightless:
            self._start = {}, self._weightless_accuracy(self.start_arch, None)
        elif self._start is None:
            self._start = self.scorer.start()
            self._start_digest = self.scorer.start_digest
        generator_seed = int(self.np_random.integers(2**63))
        generator = torch.Generator().manual_seed(generator_seed)
        arch: AnyArch = self.start_arch
        state, self._accuracy = self._start
        origin, evaluation = self._start_key, BY_NET
        if options and options.get("net") is not None:
            arch, state, self._accuracy, evaluation = self._stored(options["net"])
            origin = lineage_step(arch.to_string(), evaluation)
        self._lineage = lineage_step(origin, generator_seed)
        self._evaluation = evaluation
        logits = None if self.weightless else self.scorer.logits(self.family.build(arch, state))
        self._episode = _Episode(arch, state, logits, generator, scored_parent=arch)
        self._pending = []
        self.step_provenance = _no_training()
        self._episode_provenance = {
            "train_seconds": 0.0,
            "cpu_seconds": 0.0,
            "cache_hits": 0,
            "start_accuracy": self._start[1],
            "start_digest": self._start_digest,
        }
        return self._obs(), {**self._info(), "preservation_error": 0.0}

    def render(self) -> str | np.ndarray | None:
        """The network: ``"ansi"`` as text with its accuracy, ``"rgb_array"`` as bars.

        See :func:`eas_gym.render.architecture_image` for the picture.
        """
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; pass render_mode='ansi'")
            return None
        if self.render_mode == "rgb_array":
            return architecture_image(self._obs(), self._num_widths)
        acc = "untrained" if self._accuracy is None else f"acc={self._accuracy:.4f}"
        arch = None if self._episode is None else self._episode.arch
        return f"{arch} ({acc})\n"

    def close(self) -> None:
        """Close the evaluation store."""
        self.scorer.close()

    def network(self) -> tuple[AnyArch, StateDict]:
        """The episode's current network and its weights (after the last step's training).

        Empty weights with a weightless evaluator.

        Raises:
            RuntimeError: No episode has started.
        """
        ep = self._live()
        return ep.arch, ep.state

    def read_store_as(self, key: str) -> None:
        """Read the store as a search on another kind of device wrote it; score nothing.

        A child's store key holds its device's numerics (``"cpu"``, ``"cuda-fp32"``, or
        ``"cuda"`` for eas_gym's bf16 GPU rows before 2026-12), and so does the start
        network's, so a GPU search's rows are not served to a CPU search. To read a run folder
        on another kind of machine than its search ran on (its ``config.json`` records
        ``device_key``), call this before the first reset: :attr:`config_key`, the start
        network and stored weights are then looked up under `key`; whatever is
        evaluated here (test accuracies of stored weights) still runs on :attr:`device`. The
        env then trains and stores nothing: a missing start network is a ``ValueError`` and
        :meth:`step` a ``RuntimeError``, as a child trained here does not belong under that key.

        Raises:
            ValueError: `key` is not one of the keys above.
            RuntimeError: The start network was already looked up (after a reset).
        """
        keys = ("cpu", "cuda-fp32", "cuda")
        if key not in keys:
            raise ValueError(f"Expected `key` in {keys}, actually: {key!r}")
        if self._start is not None or self.scorer._start_digest is not None:
            raise RuntimeError("call `read_store_as` before the first reset")
        self.eval_config = dataclasses.replace(self.eval_config, device_type=key)
        self.scorer.config, self.scorer.config_key = self.eval_config, self.eval_config.key()
        self.scorer.read_only = True
        self.config_key = self.scorer.config_key
        self._start_key = self.eval_config.start_key()

    def action_masks(self) -> np.ndarray:
        """Flat boolean mask over ``sum(nvec)`` choices (sb3-contrib MaskablePPO)."""
        return np.concatenate(self._mask()).astype(bool)

    # ---- helpers -------------------------------------------------------------------------

    def _in_action_space(self, action: np.ndarray) -> bool:
        """``action_space.contains(action)``, a third of its time for a MultiDiscrete space."""
        space = self.action_space
        if not isinstance(space, spaces.MultiDiscrete):
            return space.contains(action)
        if self._action_bounds is None or self._action_bounds[0] is not space:  # once per space
            self._action_bounds = (space, space.start, space.start + space.nvec - 1)
        _, low, high = self._action_bounds
        return (
            action.shape == space.shape
            and np.can_cast(action.dtype, space.dtype)
            and bool(((low <= action) & (action <= high)).all())
        )

    def _live(self) -> _Episode:
        if self._episode is None:
            raise RuntimeError("Call `reset()` first: no episode is running")
        return self._episode

    def _stored(self, net: str) -> tuple[AnyArch, StateDict, float, str]:
        """A network from the store, with its weights, to start an episode from (and origin).

        The newest evaluation of `net` with kept weights is used; returns its lineage too.
        """
        if not isinstance(net, str):
            raise ValueError(f"`options['net']` must be a net string, got {net!r}")
        arch = self.family.parse(net, self.start_arch.num_classes)
        self.family.check(arch)
        if not self.observation_space.contains(self.family.encode(arch, WIDER, 0)):
            raise ValueError(  # e.g. a DenseNet with another number of blocks
                f"`options['net']` {net!r} does not fit this search's observation space "
                f"(start net {self.start_arch})"
            )
        if self.weightless:  # an evaluator needs no weights: any network of the space will do
            return arch, {}, self._weightless_accuracy(arch, None), BY_NET
        found = self.scorer.store.with_weights(
            arch.to_string(), self.config_key, self.scorer.start_digest
        )
        weights = None if found is None else self.scorer.store.load_weights(found)
        if found is None or weights is None:
            raise ValueError(
                f"`options['net']` {net!r} has no stored weights under this configuration; "
                "evaluate it first with `keep_weights=True`"
            )
        state = {k: v.to(self.device) for k, v in weights.items()}
        return arch, state, found.accuracy, found.lineage

    def _score(
        self,
        arch: AnyArch,
        state: StateDict,
        seed: int,
        net: torch.nn.Module | None,
        needs_weights: bool = False,
    ) -> tuple[StateDict, dict[str, Any]]:
        """Score the child, training `net` in place if given.

        The store records its last scored ancestor and the transforms since (in sparse mode
        that ancestor is the episode's start network) and its lineage. The weightless
        evaluators record nothing.
        """
        ep = self._live()
        if self.weightless:
            ep.scored_parent, self._pending = arch, []
            self._accuracy, self._evaluation = self._weightless_accuracy(arch, seed), self._lineage
            return state, {"diverged": False, "oom": False}
        score = self.scorer.score(
            arch,
            state,
            parent=ep.scored_parent,
            transforms=self._pending,
            seed=seed,
            lineage=self._lineage,
            needs_weights=needs_weights,
            net=net,
        )
        ep.scored_parent, self._pending = arch, []
        if score.trained:  # the weights moved: the next check compares against them
            moved = score.net if score.net is not None else self.family.build(arch, score.state)
            ep.logits = self.scorer.logits(moved)
        self._accuracy, self._evaluation = score.accuracy, score.lineage
        self.step_provenance = {
            "cache_hit": score.cache_hit,
            "train_seconds": score.train_seconds,
            "cpu_seconds": score.cpu_seconds,
        }
        return score.state, {"diverged": score.diverged, "oom": score.oom}

    def _reward(self, arch: AnyArch, accuracy: float | None) -> float:
        if accuracy is None:
            return 0.0
        cost = reference = None
        if self.cost_weight:
            size = self._input_size()
            measure = (
                (lambda a: a.num_params())
                if self.cost == "params"
                else (lambda a: a.num_flops(size))
            )
            cost, reference = measure(arch), measure(self.start_arch)
        return reward(
            accuracy,
            shape=self.reward_shape,
            cost=cost,
            reference_cost=reference,
            cost_weight=self.cost_weight,
        )

    def _mask(self) -> tuple[np.ndarray, ...]:
        ep = self._live()
        kind = self.schedule[min(ep.t, len(self.schedule) - 1)]
        return self.family.mask(ep.arch, kind)

    def _obs(self) -> ObsType:
        ep = self._live()
        done = ep.t >= len(self.schedule)
        kind = WIDER if done else self.schedule[ep.t]
        return self.family.encode(ep.arch, kind, len(self.schedule) - ep.t)

    def _info(self) -> dict[str, Any]:
        arch = self._live().arch
        net, params, flops = _describe(arch, self._input_size())
        return {
            "net": net,
            "accuracy": self._accuracy,
            "params": params,
            "flops": flops,
            "lineage": self._evaluation,
            "action_mask": self._mask(),
        }

    def _input_size(self) -> int:
        """The images' side (what FLOPs are counted at)."""
        if self.weightless:
            return self.scorer.data_kwargs.get("image_size") or 32
        return int(self.scorer.probe.shape[-1])

    def _weightless_accuracy(self, arch: AnyArch, seed: int | None) -> float:
        """The surrogate's accuracy, or the bench's (noisy from `seed`; None: the start's)."""
        if self.eval_config.evaluator == "surrogate":
            return self.family.surrogate(arch)
        from eas_gym.bench import default_model  # numpy only; loaded for the bench ids alone

        model = default_model()
        if seed is None:
            return model.start_accuracy
        assert isinstance(arch, Arch)  # the bench's space is the small plain one (__init__)
        return model.sample(arch, np.random.default_rng(seed))


BENCH_FIXED_ARGUMENTS = (
    "dataset",
    "train_size",
    "val_size",
    "image_size",
    "start_net",
    "epochs",
    "lr",
    "batch_size",
    "start_epochs",
    "start_lr",
    "noise",
    "augment",
    "reward_mode",
)
"""What decides a trained child's accuracy (a dense episode fine-tunes after every step, a
sparse one once): with the bench, these must be its env's own. Another ``schedule`` is allowed:
its networks are of the same space, scored as the model extrapolates."""


def _check_bench_arguments(given: dict[str, Any], start_arch: AnyArch, family: Any) -> None:
    """Refuse a training or data argument the bench cannot honour (it would be ignored).

    The bench's accuracies are draws from a model of one env's fine-tunes (the model file's
    ``env_id``), so every argument that decides a trained child's accuracy must be that env's.
    """
    import inspect

    from eas_gym.bench import default_model

    modelled = default_model().env_id
    defaults = {
        k: v.default
        for k, v in inspect.signature(EASEnv.__init__).parameters.items()
        if v.default is not inspect.Parameter.empty
    }
    fixed = {**defaults, **gym.spec(modelled).kwargs}
    for key in BENCH_FIXED_ARGUMENTS:
        value, allowed = given[key], fixed[key]
        if key == "start_net":  # None is the space's own start net
            value = start_arch.to_string()
            allowed = family.parse(allowed or family.start.to_string(), 10).to_string()
        if value != allowed:
            raise ValueError(
                f"Expected `{key}` {allowed!r} with `evaluator` 'bench', actually: "
                f"{given[key]!r}: the bench draws each child's accuracy from a model of "
                f"{modelled}'s fine-tunes and trains nothing, so it cannot honour another "
                "value; train for real on that id instead"
            )


@functools.lru_cache(maxsize=2**16)
def _describe(arch: AnyArch, input_size: int) -> tuple[str, int, int]:
    """Net string, parameters and FLOPs (pure; the weightless ids revisit networks fast)."""
    return arch.to_string(), arch.num_params(), arch.num_flops(input_size)


def _no_training() -> dict[str, Any]:
    """A step's provenance before it scores anything."""
    return {"cache_hit": False, "train_seconds": 0.0, "cpu_seconds": 0.0}
