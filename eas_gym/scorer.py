"""Scoring children: fine-tune and evaluate (or ask the surrogate), backed by the store.

:class:`ChildScorer` is the part of a step that costs: it trains the start network once per
configuration, trains each new child, and serves children already in the evaluation store.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from gymnasium import logger

from eas_gym.data import DataBundle, iterate_batches, load_dataset
from eas_gym.family import AnyArch, Family
from eas_gym.net import StateDict
from eas_gym.store import Evaluation, config_key, open_store
from eas_gym.train import TrainConfig, fine_tune

__all__ = ["ChildScorer", "Score"]

_CHILD_ONLY = ("train", "reward_mode", "noise")  # config entries that do not touch the start


@dataclass(frozen=True)
class Score:
    """A scored child: its weights after scoring, its accuracy, and how it was obtained."""

    state: StateDict
    accuracy: float
    cache_hit: bool = False
    train_seconds: float = 0.0
    diverged: bool = False
    oom: bool = False
    trained: bool = False


class ChildScorer:
    """Trains or looks up children for one configuration (dataset, sizes, training, start net).

    Args:
        config: Everything besides the net string that decides a child's accuracy; its hash is
            the store's configuration key.
        family: The architecture family (builds networks; the surrogate reads its space).
        start_arch: The start network.
        train_config: Each child's fine-tune.
        start_config: The start network's training from scratch.
        evaluator: ``"train"`` or ``"surrogate"``.
        device: Where data, weights and training live.
        store_path: The SQLite store.
        keep_weights: Save every child's weights in the store.
        probe_size: Training images in the probe batch (preservation check, deeper BN stats).
        data_kwargs: Passed to :func:`eas_gym.data.load_dataset` (name, folder, sizes).
    """

    def __init__(
        self,
        *,
        config: dict[str, Any],
        family: Family,
        start_arch: AnyArch,
        train_config: TrainConfig,
        start_config: TrainConfig,
        evaluator: str,
        device: torch.device,
        store_path: str,
        keep_weights: bool,
        probe_size: int,
        data_kwargs: dict[str, Any],
    ) -> None:
        self.config, self.config_key = config, config_key(config)
        self.family, self.start_arch = family, start_arch
        self.train_config, self.start_config = train_config, start_config
        self.evaluator, self.device = evaluator, device
        self.store_path, self.keep_weights = store_path, keep_weights
        self.probe_size, self.data_kwargs = probe_size, data_kwargs
        self.data: DataBundle | None = None
        self.store: Any = None  # an EvalStore, or a RemoteStore on a Ray cluster
        self.probe: torch.Tensor | None = None

    def setup(self) -> None:
        """Open the store, load the data and fix the probe batch (once)."""
        if self.store is not None:
            return
        self.store = open_store(self.store_path)
        if self.evaluator == "surrogate":
            size = self.data_kwargs.get("image_size") or 32
            g = torch.Generator().manual_seed(0)
            self.probe = torch.rand(self.probe_size, 3, size, size, generator=g).to(self.device)
            return
        self.data = load_dataset(device=self.device, **self.data_kwargs)
        if self.data.num_classes != self.start_arch.num_classes:
            raise ValueError(
                f"{self.data.name} has {self.data.num_classes} classes, "
                f"expected {self.start_arch.num_classes}"
            )
        self.probe, _ = next(
            iterate_batches(
                self.data.train, self.probe_size, mean=self.data.mean, std=self.data.std
            )
        )

    def start(self) -> tuple[StateDict, float]:
        """The start network's trained weights and accuracy, from the store or trained now."""
        self.setup()
        net_string = self.start_arch.to_string()
        # Only what decides the start network: a child-only setting must not retrain it.
        config = {k: v for k, v in self.config.items() if k not in _CHILD_ONLY} | {"role": "start"}
        key = config_key(config)
        with self.store.lock(f"start-{key}"):  # one process trains it, the others wait
            found = self.store.get(net_string, key)
            state = None if found is None else self.store.load_weights(found)
            if state is None:
                net = self.family.build(self.start_arch, generator=torch.Generator().manual_seed(0))
                accuracy, seconds, _ = self._train(net, self.start_config, seed=0)
                state = net.state_dict()
                weights = self.store.save_weights(net_string, key, state)
                self.store.put(
                    Evaluation(
                        net_string,
                        key,
                        accuracy,
                        seconds=seconds,
                        params=self.start_arch.num_params(),
                        config=config,
                        seed=0,
                        weights=weights,
                    )
                )
            else:
                accuracy = found.accuracy
        return {k: v.to(self.device) for k, v in state.items()}, accuracy

    def score(
        self,
        arch: AnyArch,
        state: StateDict,
        *,
        parent: AnyArch,
        transforms: list[dict[str, Any]],
        seed: int,
    ) -> Score:
        """Fine-tune and evaluate `arch` from `state`, or take its accuracy from the store.

        A cache hit continues from the stored weights when they were kept, else from `state`.
        The store records the child with `parent` and the `transforms` that led from it.
        """
        if self.evaluator == "surrogate":  # free: no lookups, so `info` stays seed-determined
            return self._evaluate(arch, state, parent=parent, transforms=transforms, seed=seed)
        # Two processes reaching the same child: one trains it, the other gets a cache hit.
        with self.store.lock(f"child-{self.config_key}-{arch.to_string()}"):
            found = self.store.get(arch.to_string(), self.config_key)
            if found is None:
                return self._evaluate(arch, state, parent=parent, transforms=transforms, seed=seed)
        weights = self.store.load_weights(found)
        if weights is not None:
            state = {k: v.to(self.device) for k, v in weights.items()}
        return Score(
            state,
            found.accuracy,
            cache_hit=True,
            diverged=found.diverged,
            trained=weights is not None,
        )

    def _evaluate(
        self,
        arch: AnyArch,
        state: StateDict,
        *,
        parent: AnyArch,
        transforms: list[dict[str, Any]],
        seed: int,
    ) -> Score:
        """Train (or ask the surrogate) and record the child in the store."""
        net_string = arch.to_string()
        net = self.family.build(arch, state)
        accuracy, seconds, flags = self._train(net, self.train_config, seed)
        # A diverged child's weights are NaN: the episode goes on from its untrained weights.
        trained = self.evaluator == "train" and not flags.get("diverged", False)
        if trained:
            state = net.state_dict()
        weights = (
            self.store.save_weights(net_string, self.config_key, state)
            if self.keep_weights
            else None
        )
        self.store.put(
            Evaluation(
                net_string,
                self.config_key,
                accuracy,
                params=arch.num_params(),
                flops=arch.num_flops(self.probe.shape[-1]),
                seconds=seconds,
                parent=parent.to_string(),
                transforms=transforms,
                config=self.config,
                seed=seed,
                diverged=flags.get("diverged", False),
                oom=flags.get("oom", False),
                weights=weights,
            )
        )
        return Score(state, accuracy, train_seconds=seconds, trained=trained, **flags)

    def close(self) -> None:
        """Close the store."""
        if self.store is not None:
            self.store.close()
            self.store = None

    def _train(
        self, net: torch.nn.Module, config: TrainConfig, seed: int
    ) -> tuple[float, float, dict[str, bool]]:
        """(accuracy, seconds, flags) of training `net` in place, or of the surrogate."""
        if self.evaluator == "surrogate":
            return self.family.surrogate(net.arch), 0.0, {}
        result = fine_tune(
            net,
            self.data,
            config,
            generator=torch.Generator().manual_seed(seed),
            device=self.device,
        )
        chance = 1.0 / self.data.num_classes
        accuracy = chance if result.eval_accuracy is None else result.eval_accuracy
        if result.diverged or result.oom:
            logger.warn(f"training {net.arch} diverged={result.diverged} oom={result.oom}")
        return accuracy, result.seconds, {"diverged": result.diverged, "oom": result.oom}
