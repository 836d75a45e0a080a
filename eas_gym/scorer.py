"""Scoring children: fine-tune and evaluate (or ask the surrogate), backed by the store.

:class:`EvalConfig` is everything besides the net string that decides a child's accuracy; its
:meth:`~EvalConfig.key` is the store's configuration key. :class:`ChildScorer` is the part of a
step that costs: it trains the start network once per configuration, trains each new child, and
serves children already in the evaluation store.

Two ways to cache (the env's ``cache_by``):

* ``"lineage"`` (default): a child is found only when the same computation was done before, the
  same start network, transforms, noise seed and training seeds (its *lineage*). A hit then
  equals what training would give, so an episode does not depend on what the store holds
  (resumed searches and repeated seeds still train nothing twice).
* ``"net"``: the paper's cache, by net string alone. A network reached again by another path or
  seed reuses the first evaluation, so results depend on the store's history.

Over 400 lines with its docstrings (about 330 of code): the key, the start network and each
child's scoring are one concept, what a child's accuracy is and where it comes from.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any

import torch
from gymnasium import logger

from eas_gym.data import DataBundle, iterate_batches, load_dataset
from eas_gym.family import AnyArch, Family
from eas_gym.net import StateDict
from eas_gym.store import BY_NET, Evaluation, config_key, open_store
from eas_gym.train import TrainConfig, evaluate, fine_tune

__all__ = ["CACHE_BY", "ChildScorer", "EvalConfig", "Score", "lineage_step"]

CACHE_BY = ("lineage", "net")
"""The env's ``cache_by`` choices (see the module docstring)."""

KEY_VERSION = 2
"""Child keys of eas_gym 0.1.0 were version 1: no ``probe_size``, no version (see
:meth:`EvalConfig.legacy_key`)."""

_LEGACY_PROBE_SIZE = 64  # 0.1.0's default probe size: its rows are read as this probe size


@dataclass(frozen=True)
class EvalConfig:
    """What decides a child's accuracy besides its net string (and, by lineage, its history).

    Args:
        dataset: The dataset's name.
        train_size: Training images (None: all but the validation split).
        val_size: Validation images (None: the paper's 5,000).
        image_size: Downsampled image side, or None.
        evaluator: ``"train"`` or ``"surrogate"``.
        start_net: The start network's net string.
        start_train: The start network's training from scratch.
        train: Each child's fine-tune.
        num_classes: Classes of the dataset.
        reward_mode: ``"dense"`` fine-tunes after every transform, ``"sparse"`` once at the end.
        noise: The paper's symmetry-breaking noise on new units.
        device_type: ``"cpu"`` or ``"cuda"`` (fp32 on CPU, bf16 autocast on CUDA).
        probe_size: Training images in the probe batch, which sets the BN statistics of every
            plain deeper step.
    """

    dataset: str
    train_size: int | None
    val_size: int | None
    image_size: int | None
    evaluator: str
    start_net: str
    start_train: TrainConfig
    train: TrainConfig
    num_classes: int
    reward_mode: str
    noise: bool
    device_type: str
    probe_size: int

    def record(self) -> dict[str, Any]:
        """The configuration as JSON-able data (stored with every row, for people)."""
        values = dataclasses.asdict(self)
        values["start_train"], values["train"] = self.start_train.to_dict(), self.train.to_dict()
        return values

    def start_record(self) -> dict[str, Any]:
        """What decides the start network: child-only settings must not retrain it."""
        child_only = ("train", "reward_mode", "noise", "probe_size")
        return {k: v for k, v in self.record().items() if k not in child_only} | {"role": "start"}

    def start_key(self) -> str:
        """The start network's configuration key (unchanged since 0.1.0)."""
        return config_key(self.start_record())

    def key(self) -> str:
        """The children's configuration key."""
        return config_key({**self.record(), "key_version": KEY_VERSION})

    def legacy_key(self) -> str | None:
        """The key 0.1.0 gave these children, if its rows can stand for them.

        0.1.0 left ``probe_size`` out of the key; its rows are read as rows of probe size 64,
        its default (the documented compatibility rule), and only by the net-string cache.
        """
        if self.probe_size != _LEGACY_PROBE_SIZE:
            return None
        return config_key({k: v for k, v in self.record().items() if k != "probe_size"})


def lineage_step(lineage: str, *parts: Any) -> str:
    """The lineage after `parts` (transforms, seeds) happened to a network of `lineage`.

    >>> lineage_step("start", {"op": "wider"}, 7) == lineage_step("start", {"op": "wider"}, 7)
    True
    """
    text = json.dumps([lineage, *parts], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


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
    net: torch.nn.Module | None = None  # the trained module, when training made `state`
    lineage: str | None = None  # the store row's lineage (None: not recorded)


class ChildScorer:
    """Trains or looks up children of one :class:`EvalConfig`.

    Args:
        config: What decides a child's accuracy; its key is the store's configuration key.
        family: The architecture family (builds networks; the surrogate reads its space).
        start_arch: The start network (``config.start_net`` parsed).
        device: Where data, weights and training live.
        store_path: The SQLite store.
        keep_weights: Save every child's weights in the store.
        data_kwargs: Passed to :func:`eas_gym.data.load_dataset` (name, folder, sizes).
        cache: Look children up in the store and record them; False trains every child afresh
            and writes nothing (an honest re-evaluation; the start network still comes from
            the store).
        cache_by: ``"lineage"`` or ``"net"`` (see the module docstring).
    """

    def __init__(
        self,
        *,
        config: EvalConfig,
        family: Family[Any, Any],
        start_arch: AnyArch,
        device: torch.device,
        store_path: str,
        keep_weights: bool,
        data_kwargs: dict[str, Any],
        cache: bool = True,
        cache_by: str = "lineage",
    ) -> None:
        if cache_by not in CACHE_BY:
            raise ValueError(f"Expected `cache_by` in {CACHE_BY}, actually: {cache_by!r}")
        self.config, self.config_key = config, config.key()
        self.family, self.start_arch = family, start_arch
        self.device, self.store_path, self.keep_weights = device, store_path, keep_weights
        self.data_kwargs, self.cache, self.cache_by = data_kwargs, cache, cache_by
        self.data: DataBundle | None = None
        self.store: Any = None  # an EvalStore, or a RemoteStore on a Ray cluster
        self._probe: torch.Tensor | None = None

    @property
    def probe(self) -> torch.Tensor:
        """The fixed probe batch: training images (or noise for the surrogate), on the device.

        It checks transforms and initialises the BN of plain deeper steps.

        Raises:
            RuntimeError: Before :meth:`setup` (or :meth:`start`) drew it.
        """
        if self._probe is None:
            raise RuntimeError("no probe batch yet: call `setup()` or `start()` first")
        return self._probe

    def setup(self) -> None:
        """Open the store, load the data and fix the probe batch (once)."""
        if self.store is not None:
            return
        self.store = open_store(self.store_path)
        size = self.config.probe_size
        if self.config.evaluator == "surrogate":
            side = self.data_kwargs.get("image_size") or 32
            g = torch.Generator().manual_seed(0)
            self._probe = torch.rand(size, 3, side, side, generator=g).to(self.device)
            return
        self.data = load_dataset(device=self.device, **self.data_kwargs)
        if self.data.num_classes != self.start_arch.num_classes:
            raise ValueError(
                f"{self.data.name} has {self.data.num_classes} classes, "
                f"expected {self.start_arch.num_classes}"
            )
        self._probe, _ = next(
            iterate_batches(self.data.train, size, mean=self.data.mean, std=self.data.std)
        )

    def start(self) -> tuple[StateDict, float]:
        """The start network's trained weights and accuracy, from the store or trained now.

        Raises:
            ValueError: Training the start network diverged (nothing is stored).
        """
        self.setup()
        net_string, key = self.start_arch.to_string(), self.config.start_key()
        with self.store.lock(f"start-{key}"):  # one process trains it, the others wait
            found = self.store.get(net_string, key)
            state = None if found is None else self.store.load_weights(found)
            if state is not None:
                return {k: v.to(self.device) for k, v in state.items()}, found.accuracy
            net = self.family.build(self.start_arch, generator=torch.Generator().manual_seed(0))
            accuracy, seconds, flags = self._train(
                self.start_arch, net, self.config.start_train, seed=0
            )
            if flags.get("diverged") or flags.get("oom"):
                raise ValueError(
                    f"training the start network {net_string} failed ({flags}); lower "
                    f"`start_lr` (now {self.config.start_train.lr}) or the batch size"
                )
            state = net.state_dict()
            weights = self.store.save_weights(net_string, key, state)
            if found is not None:  # its weights file was lost: point the row at the new one
                self.store.set_weights(found, weights)
                accuracy = found.accuracy
            else:
                self.store.put(
                    Evaluation(
                        net_string,
                        key,
                        accuracy,
                        seconds=seconds,
                        params=self.start_arch.num_params(),
                        config=self.config.start_record(),
                        seed=0,
                        weights=weights,
                    )
                )
        return {k: v.to(self.device) for k, v in state.items()}, accuracy

    def score(
        self,
        arch: AnyArch,
        state: StateDict,
        *,
        parent: AnyArch,
        transforms: list[dict[str, Any]],
        seed: int,
        lineage: str,
        needs_weights: bool = False,
        net: torch.nn.Module | None = None,
    ) -> Score:
        """Fine-tune and evaluate `arch` from `state`, or take its accuracy from the store.

        A hit continues from the stored weights when they were kept. Cached by lineage, a hit
        without weights that `needs_weights` (a dense episode goes on from it) is trained again
        instead, which gives the same result. The store records the child with `parent`, the
        `transforms` that led from it and its `lineage`. `net`, the module of `arch` already
        holding `state`, is trained in place if given (so a step builds its child once).
        """
        kwargs: dict[str, Any] = {"parent": parent, "transforms": transforms, "seed": seed}
        kwargs["net"] = net
        # The surrogate is free: no lookups, so `info` stays seed-determined.
        if self.config.evaluator == "surrogate" or not self.cache:
            return self._evaluate(arch, state, lineage=lineage, record=self.cache, **kwargs)
        row_lineage = lineage if self.cache_by == "lineage" else BY_NET
        # Two processes reaching the same child: one trains it, the other gets a cache hit.
        with self.store.lock(f"child-{self.config_key}-{arch.to_string()}-{row_lineage}"):
            found = self._lookup(arch.to_string(), row_lineage)
            if found is None:
                return self._evaluate(arch, state, lineage=row_lineage, **kwargs)
        weights = self.store.load_weights(found)
        if weights is not None:
            state = {k: v.to(self.device) for k, v in weights.items()}
        elif needs_weights and self.cache_by == "lineage":  # the same result as the row's
            score = self._evaluate(arch, state, lineage=row_lineage, record=False, **kwargs)
            return dataclasses.replace(score, lineage=found.lineage)
        return Score(
            state,
            found.accuracy,
            cache_hit=True,
            diverged=found.diverged,
            trained=weights is not None,
            lineage=found.lineage,
        )

    def test_accuracy(self, arch: AnyArch, lineage: str | None = None) -> float | None:
        """Test-split accuracy of `arch`'s stored (fine-tuned) weights; None if none were kept.

        `lineage` picks the evaluation (None: the newest with weights). The surrogate evaluator
        has no test set: its accuracy is the surrogate's value.
        """
        self.setup()
        if self.config.evaluator == "surrogate":
            return self.family.surrogate(arch)
        net_string = arch.to_string()
        found = (
            self.store.with_weights(net_string, self.config_key)
            if lineage is None
            else self.store.get(net_string, self.config_key, lineage)
        )
        weights = None if found is None else self.store.load_weights(found)
        if weights is None:
            return None
        net = self.family.build(arch, weights).to(self.device)
        data = self._dataset()
        accuracy, _ = evaluate(net, data.test.to(self.device), mean=data.mean, std=data.std)
        return accuracy

    def close(self) -> None:
        """Close the store."""
        if self.store is not None:
            self.store.close()
            self.store = None

    # ---- helpers -------------------------------------------------------------------------

    def _lookup(self, net_string: str, lineage: str) -> Evaluation | None:
        found = self.store.get(net_string, self.config_key, lineage)
        legacy = self.config.legacy_key()
        if found is None and lineage == BY_NET and legacy is not None:
            found = self.store.get(net_string, legacy)  # a row written by eas_gym 0.1.0
        return found

    def _evaluate(
        self,
        arch: AnyArch,
        state: StateDict,
        *,
        parent: AnyArch,
        transforms: list[dict[str, Any]],
        seed: int,
        lineage: str,
        record: bool = True,
        net: torch.nn.Module | None = None,
    ) -> Score:
        """Train (or ask the surrogate) and record the child in the store (if `record`)."""
        net_string = arch.to_string()
        flags: dict[str, bool] = {}
        if self.config.evaluator == "surrogate":
            accuracy, seconds, net = self.family.surrogate(arch), 0.0, None
        else:
            net = self.family.build(arch, state) if net is None else net
            accuracy, seconds, flags = self._train(arch, net, self.config.train, seed)
            if flags.get("diverged", False):
                net = None  # NaN weights: the episode goes on from its untrained ones
            else:
                state = net.state_dict()
        result = Score(
            state,
            accuracy,
            train_seconds=seconds,
            trained=net is not None,
            net=net,
            diverged=flags.get("diverged", False),
            oom=flags.get("oom", False),
        )
        if not record:
            return result
        result = dataclasses.replace(result, lineage=lineage)
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
                config=self.config.record(),
                seed=seed,
                diverged=flags.get("diverged", False),
                oom=flags.get("oom", False),
                weights=weights,
                lineage=lineage,
            )
        )
        return result

    def _dataset(self) -> DataBundle:
        """The loaded dataset (the surrogate evaluator loads none)."""
        if self.data is None:
            raise RuntimeError("no dataset: the surrogate evaluator neither trains nor tests")
        return self.data

    def _train(
        self, arch: AnyArch, net: torch.nn.Module, config: TrainConfig, seed: int
    ) -> tuple[float, float, dict[str, bool]]:
        """(accuracy, seconds, flags) of training `net` (of `arch`) in place, or the surrogate's."""
        if self.config.evaluator == "surrogate":
            return self.family.surrogate(arch), 0.0, {}
        data = self._dataset()
        result = fine_tune(
            net,
            data,
            config,
            generator=torch.Generator().manual_seed(seed),
            device=self.device,
        )
        chance = 1.0 / data.num_classes
        accuracy = chance if result.eval_accuracy is None else result.eval_accuracy
        if result.diverged or result.oom:
            logger.warn(f"training {arch} diverged={result.diverged} oom={result.oom}")
        return accuracy, result.seconds, {"diverged": result.diverged, "oom": result.oom}
