"""Scoring children: fine-tune and evaluate (or ask the surrogate), backed by the store.

:class:`~eas_gym.eval_config.EvalConfig` is everything besides the net string that decides a
child's accuracy; its :meth:`~eas_gym.eval_config.EvalConfig.key` is the store's configuration
key. :class:`ChildScorer` is the part of a step that costs: it trains the start network once per
configuration, checks each transform on the probe batch (building the child once), trains each
new child, and serves children already in the evaluation store.

Two ways to cache (the env's ``cache_by``):

* ``"lineage"`` (default): a child is found only when the same computation was done before, the
  same start network, transforms, noise seed and training seeds (its *lineage*). A hit then
  equals what training would give, so an episode does not depend on what the store holds
  (resumed searches and repeated seeds still train nothing twice).
* ``"net"``: the paper's cache, by net string alone. A network reached again by another path or
  seed reuses the first evaluation, so results depend on the store's history.

The configuration and its keys live in :mod:`eas_gym.eval_config`; this module builds, checks
and scores children under one configuration.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass
from typing import Any

import torch
from gymnasium import logger

from eas_gym.data import DataBundle, iterate_batches
from eas_gym.eval_config import EvalConfig
from eas_gym.family import AnyArch, Family
from eas_gym.net import StateDict
from eas_gym.net2net import fp32_exact, state_digest
from eas_gym.prepared import load_prepared
from eas_gym.store import BY_NET, Evaluation, open_store
from eas_gym.store_types import Store
from eas_gym.train import TrainConfig, evaluate, fine_tune

__all__ = ["CACHE_BY", "PRESERVATION_TOL", "ChildScorer", "Score", "Verified"]

CACHE_BY = ("lineage", "net")
"""The env's ``cache_by`` choices (see the module docstring)."""

PRESERVATION_TOL = 1e-4
"""fp32 drift the run-time check allows, relative to the logits' scale, when noise is off."""


@dataclass(frozen=True)
class Verified:
    """A transformed child checked on the probe batch: its module, logits and logit change."""

    net: torch.nn.Module  # the child's module: `score` trains it, or loads a store hit's weights
    logits: torch.Tensor  # its logits on the probe batch (what the next check compares to)
    error: float  # max absolute logit change from the parent's


@dataclass(frozen=True)
class Score:
    """A scored child: its weights after scoring, its accuracy, and how it was obtained."""

    state: StateDict
    accuracy: float
    cache_hit: bool = False
    train_seconds: float = 0.0
    cpu_seconds: float = 0.0  # process CPU time of the fine-tune (0 for hits and the surrogate)
    diverged: bool = False
    oom: bool = False
    trained: bool = False
    net: torch.nn.Module | None = None  # the module holding `state`, when scoring changed it
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
        self._store: Store | None = None  # an EvalStore, or a RemoteStore on a Ray cluster
        self._probe: torch.Tensor | None = None
        self._start_digest: str | None = None  # of the start network's weights, once known
        self.read_only = False
        """Train and store nothing (a store keyed as another device wrote it: see
        :meth:`~eas_gym.env.EASEnv.read_store_as`)."""

    @property
    def store(self) -> Store:
        """The evaluation store (an :class:`~eas_gym.store.EvalStore`, or a service's client).

        Raises:
            RuntimeError: Before :meth:`setup` (or :meth:`start`) opened it, or after :meth:`close`.
        """
        if self._store is None:
            raise RuntimeError("no store open: call `setup()` or `start()` first")
        return self._store

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
        if self._store is not None:
            return
        self._store = open_store(self.store_path)
        size = self.config.probe_size
        if self.config.evaluator == "surrogate":
            side = self.data_kwargs.get("image_size") or 32
            g = torch.Generator().manual_seed(0)
            self._probe = torch.rand(size, 3, side, side, generator=g, device="cpu").to(self.device)
            return
        self.data = load_prepared(device=self.device, **self.data_kwargs)
        if self.data.num_classes != self.start_arch.num_classes:
            raise ValueError(
                f"{self.data.name} has {self.data.num_classes} classes, "
                f"expected {self.start_arch.num_classes}"
            )
        self._probe, _ = next(
            iterate_batches(self.data.train, size, mean=self.data.mean, std=self.data.std)
        )

    def logits(self, net: torch.nn.Module) -> torch.Tensor:
        """`net`'s logits on the probe batch, in eval mode (left in eval mode), in full fp32.

        TF32 is off for the forward (:func:`~eas_gym.net2net.fp32_exact`): on a GPU it alone
        would move the logits by ~1e-3 and trip the preservation check.
        """
        with torch.no_grad(), fp32_exact():
            return net.eval()(self.probe)

    def verify(
        self, arch: AnyArch, state: StateDict, parent_logits: torch.Tensor, *, exact: bool
    ) -> Verified:
        """Build the child once and measure how far its logits moved from its parent's.

        Warns when the change is not finite, or when `exact` (noise off) and it exceeds
        :data:`PRESERVATION_TOL` times the logits' scale: the transform was not
        function-preserving. The returned module is the one :meth:`score` trains.
        """
        net = self.family.build(arch, state)
        logits = self.logits(net)
        error = float((logits - parent_logits).abs().max())
        scale = max(1.0, float(logits.abs().max()))
        if not math.isfinite(error) or (exact and error > PRESERVATION_TOL * scale):
            logger.warn(f"transform to {arch} changed the logits by {error:.3g}")
        return Verified(net, logits, error)

    @property
    def start_digest(self) -> str:
        """The weights digest of the start network (loaded, or trained, on first use).

        Every child's store row carries it, so rows grown from another start network of the
        same configuration (trained on another CPU) are never served.
        """
        if self._start_digest is None:
            self.start()
        assert self._start_digest is not None
        return self._start_digest

    def start(self) -> tuple[StateDict, float]:
        """The start network's trained weights and accuracy, from the store or trained now.

        Raises:
            ValueError: Training the start network diverged (nothing is stored).
        """
        state, accuracy = self._start()
        self._start_digest = state_digest(state)
        return state, accuracy

    def _start(self) -> tuple[StateDict, float]:
        self.setup()
        net_string, key = self.start_arch.to_string(), self.config.start_key()
        with self.store.lock(f"start-{key}"):  # one process trains it, the others wait
            found = self.store.get(net_string, key)
            state = None if found is None else self.store.load_weights(found)
            if found is not None and state is not None:
                return {k: v.to(self.device) for k, v in state.items()}, found.accuracy
            if self.read_only:
                raise ValueError(
                    f"the store {self.store_path} holds no start network {net_string} with "
                    f"weights trained on a {self.config.device_type} device; it is read here, "
                    "not trained"
                )
            net = self.family.build(self.start_arch, generator=torch.Generator().manual_seed(0))
            accuracy, seconds, _, flags = self._train(
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
                if accuracy != found.accuracy:  # the row must describe the weights it names
                    warnings.warn(
                        f"the start network {net_string}'s weights file was lost; trained "
                        f"again it scores {100 * accuracy:.3f}%, not the "
                        f"{100 * found.accuracy:.3f}% its row recorded: the row now says "
                        f"{100 * accuracy:.3f}% (children stored earlier grew from the lost "
                        "weights)",
                        stacklevel=2,
                    )
                self.store.set_weights(dataclasses.replace(found, accuracy=accuracy), weights)
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
        holding `state` (from :meth:`verify`), is trained in place if given, or takes a hit's
        stored weights (so a step builds its child once).
        """
        if self.read_only:
            raise RuntimeError(
                f"this env reads its store as a {self.config.device_type} device wrote it "
                "(read_store_as): it scores no child; make another env to search"
            )
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
            if net is not None:  # the step's module takes the stored weights: no second build
                net.load_state_dict(state)
                state = net.state_dict()
        elif needs_weights and self.cache_by == "lineage":  # the same result as the row's
            score = self._evaluate(arch, state, lineage=row_lineage, record=False, **kwargs)
            return dataclasses.replace(score, lineage=found.lineage)
        return Score(
            state,
            found.accuracy,
            cache_hit=True,
            diverged=found.diverged,
            trained=weights is not None,
            net=net if weights is not None else None,
            lineage=found.lineage,
        )

    def test_accuracy(self, arch: AnyArch, lineage: str | None = None) -> float | None:
        """Test-split accuracy of `arch`'s stored (fine-tuned) weights; None if none were kept.

        None too when the dataset has no test images (your own may have none).
        `lineage` picks the evaluation (None: the newest with weights). The surrogate evaluator
        has no test set: its accuracy is the surrogate's value.
        """
        self.setup()
        if self.config.evaluator == "surrogate":
            return self.family.surrogate(arch)
        net_string = arch.to_string()
        found = (
            self.store.with_weights(net_string, self.config_key, self.start_digest)
            if lineage is None
            else self.store.get(net_string, self.config_key, lineage, self.start_digest)
        )
        weights = None if found is None else self.store.load_weights(found)
        return None if weights is None else self.test_accuracy_of(arch, weights)

    def test_accuracy_of(self, arch: AnyArch, state: StateDict) -> float | None:
        """Test-split accuracy of `arch` with weights `state`; None if there are no test images."""
        self.setup()
        data = self._dataset()
        if len(data.test) == 0:
            return None
        net = self.family.build(arch, state).to(self.device)
        accuracy, _ = evaluate(net, data.test.to(self.device), mean=data.mean, std=data.std)
        return accuracy

    def close(self) -> None:
        """Close the store."""
        if self._store is not None:
            self._store.close()
            self._store = None

    # ---- helpers -------------------------------------------------------------------------

    def _lookup(self, net_string: str, lineage: str) -> Evaluation | None:
        found = self.store.get(net_string, self.config_key, lineage, self.start_digest)
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
        cpu_seconds = 0.0
        if self.config.evaluator == "surrogate":
            accuracy, seconds, net = self.family.surrogate(arch), 0.0, None
        else:
            net = self.family.build(arch, state) if net is None else net
            accuracy, seconds, cpu_seconds, flags = self._train(arch, net, self.config.train, seed)
            if flags.get("diverged", False):
                net = None  # NaN weights: the episode goes on from its untrained ones
            else:
                state = net.state_dict()
        result = Score(
            state,
            accuracy,
            train_seconds=seconds,
            cpu_seconds=cpu_seconds,
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
                start_digest=self.start_digest,
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
    ) -> tuple[float, float, float, dict[str, bool]]:
        """(accuracy, wall seconds, CPU seconds, flags) of training `net` (of `arch`) in place."""
        if self.config.evaluator == "surrogate":
            return self.family.surrogate(arch), 0.0, 0.0, {}
        data = self._dataset()
        result = fine_tune(
            net,
            data,
            config,
            generator=torch.Generator().manual_seed(seed),
            device=self.device,
        )
        if result.oom:  # chance would be a lie the agent learns from: stop instead
            raise torch.OutOfMemoryError(
                f"{self.device} ran out of memory training {arch} (its evaluation already "
                "retried at smaller batches); a child that does not fit is not scored: give "
                "each worker more memory (fewer workers per GPU) or search a smaller space"
            )
        chance = 1.0 / data.num_classes
        accuracy = chance if result.eval_accuracy is None else result.eval_accuracy
        if result.diverged:
            logger.warn(f"training {arch} diverged: scored as chance ({chance:.3f})")
        flags = {"diverged": result.diverged, "oom": result.oom}
        return accuracy, result.seconds, result.cpu_seconds, flags
