"""EAS-Bench: a surrogate of ``EAS-CIFAR10-CPU-v2``'s child training, fitted on real evaluations.

A :class:`BenchModel` answers what fine-tuning a network of the small space on ``-v2`` would
score, in a fraction of a millisecond instead of 35 s of CPU: :meth:`BenchModel.mean` is the
expected validation accuracy, :meth:`BenchModel.sd` the spread of one training around it (the
noise of training the same network again, calibrated against networks that were trained more
than once), and :meth:`BenchModel.sample` draws one training's accuracy from a given RNG, so a
seeded episode is reproducible. :func:`arch_features` (:mod:`eas_gym.bench_features`) is the
fixed-length description of a network the model reads. ``benchmarks/bench_fit.py`` rebuilds the
data set from the study records, compares model families and writes the packaged model file
(:data:`DEFAULT_MODEL_PATH`); the model is evaluated here with numpy alone (no LightGBM).

This module imports neither torch nor gymnasium.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from eas_gym.arch import Arch
from eas_gym.bench_features import (
    arch_features,
    as_bench_arch,
    check_start_accuracy,
    feature_names,
    features_matrix,
)

__all__ = [
    "DEFAULT_MODEL_PATH",
    "MODEL_FORMAT",
    "BenchModel",
    "arch_features",
    "default_model",
    "default_model_digest",
    "feature_names",
    "features_matrix",
    "trees_from_lightgbm",
]

MODEL_FORMAT = "eas-bench-v1"
"""The ``format`` field of a model file this module reads."""
DEFAULT_MODEL_PATH = Path(__file__).resolve().parent / "bench_models" / "cifar10_cpu_v2.json"
"""The packaged model of ``EAS-CIFAR10-CPU-v2``, written by ``benchmarks/bench_fit.py``."""
CACHE_SIZE = 1 << 16
"""Networks whose mean and sd a model keeps (per start accuracy), least recently used first out."""

Archs = Sequence[Arch | str]


class _Trees:
    """One regression-tree ensemble (a boosted model): the sum of its trees' leaf values.

    The file's node arrays hold every tree's split nodes; a child index ``>= 0`` is a split
    node, a negative one ``~j`` is leaf ``j``. A sample goes left when ``x[feature] <= threshold``
    (LightGBM's numerical split; the features are never missing). For speed each tree is laid
    out as a complete binary tree of the ensemble's depth (a leaf above the bottom becomes
    splits that always go left onto copies of its value), so a query is ``depth`` gathers.
    """

    MAX_DEPTH = 12

    def __init__(self, spec: dict[str, Any], num_features: int) -> None:
        try:
            roots = [int(r) for r in spec["roots"]]
            feature = [int(f) for f in spec["feature"]]
            threshold = [float(t) for t in spec["threshold"]]
            left = [int(i) for i in spec["left"]]
            right = [int(i) for i in spec["right"]]
            leaf_value = [float(v) for v in spec["leaf_value"]]
            depth = int(spec["depth"])
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"bad tree ensemble in the model file: {e!r}") from e
        nodes = len(feature)
        if (
            {len(threshold), len(left), len(right)} != {nodes}
            or not roots
            or not 0 <= depth <= self.MAX_DEPTH
            or any(not -len(leaf_value) <= c < nodes for c in (*roots, *left, *right))
            or any(not 0 <= f < num_features for f in feature)
        ):
            raise ValueError("bad tree ensemble in the model file: inconsistent node arrays")
        self.depth = depth
        splits = 2**depth - 1
        self.feature = np.zeros((len(roots), max(splits, 1)), dtype=np.int64)
        self.threshold = np.full((len(roots), max(splits, 1)), np.inf)
        self.leaf = np.zeros((len(roots), 2**depth))

        def place(t: int, node: int, pos: int, level: int) -> None:
            if node < 0:  # a leaf: every bottom slot under `pos` holds its value
                first = pos
                for _ in range(depth - level):
                    first = 2 * first + 1
                width = 2 ** (depth - level)
                self.leaf[t, first - splits : first - splits + width] = leaf_value[~node]
                return
            if level >= depth:
                raise ValueError("bad tree ensemble in the model file: deeper than `depth`")
            self.feature[t, pos], self.threshold[t, pos] = feature[node], threshold[node]
            place(t, left[node], 2 * pos + 1, level + 1)
            place(t, right[node], 2 * pos + 2, level + 1)

        for t, root in enumerate(roots):
            place(t, root, 0, 0)
        self._feature, self._threshold = self.feature.ravel(), self.threshold.ravel()
        self._base = np.arange(len(roots)) * self.feature.shape[1]
        self._leaf = self.leaf.ravel()
        self._leaf_base = np.arange(len(roots)) * self.leaf.shape[1] - splits

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Sum over trees of the leaf each row of `x` (shape ``(N, F)``) reaches: ``(N,)``."""
        # flat 1-D takes: several times faster than 2-D fancy indexing
        x = np.ascontiguousarray(x, dtype=np.float64)
        rows = (np.arange(len(x)) * x.shape[1])[:, None]  # (N, 1)
        pos = np.zeros((len(x), len(self._base)), dtype=np.int64)  # (N, T)
        for _ in range(self.depth):
            at = self._base + pos
            right = x.take(rows + self._feature.take(at)) > self._threshold.take(at)
            pos = 2 * pos + 1 + right
        return self._leaf.take(self._leaf_base + pos).sum(axis=1)


class _Noise:
    """The sd of one training around the mean: ``exp((a + sum_k b_k (f_k - c_k)) / 2)``.

    A log-linear model of the variance in a few features (none: a constant sd), each clipped
    to the range it was calibrated on, so the sd does not run off outside the measured nets.
    """

    def __init__(self, spec: dict[str, Any], names: list[str]) -> None:
        try:
            self.log_var = float(spec["log_var"])
            used = list(spec["features"])
            self.columns = np.asarray([names.index(f) for f in used], dtype=np.int64)
            self.slopes, self.centers, self.lows, self.highs = (
                np.asarray(spec[k], dtype=np.float64).reshape(len(used))
                for k in ("slopes", "centers", "lows", "highs")
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"bad noise model in the model file: {e!r}") from e

    def sd(self, x: np.ndarray) -> np.ndarray:
        f = np.clip(x[:, self.columns], self.lows, self.highs)
        return np.exp(0.5 * (self.log_var + (f - self.centers) @ self.slopes))


class BenchModel:
    """EAS-Bench's surrogate of one preset's child training: mean accuracy and retrain noise.

    A query is a network of the small space (an :class:`~eas_gym.arch.Arch` or its net string)
    grown from a start network of a given validation accuracy (by default the start network the
    model was fitted for, :attr:`start_accuracy`). :meth:`mean` is deterministic and cached per
    net string; :meth:`sample` adds one draw of the training noise from the caller's RNG. The
    records it was fitted on grew from a few start networks (``spec["start_accuracies_seen"]``,
    35.4% to 36.1% for ``-v2``); trees do not extrapolate, so outside that range a start's
    effect stays at the nearest one seen.

    Args:
        spec: A parsed model file (see :meth:`load`).

    Raises:
        ValueError: If `spec` is not a model file of :data:`MODEL_FORMAT` or uses features
            :func:`~eas_gym.bench_features.feature_names` no longer has.

    Example:
        >>> model = default_model()
        >>> net = "C8-3 C8-3 MP C8-3 MP C8-3 MP C8-3 C8-3 GAP FC16 FC16"
        >>> bool(0 < model.mean([net])[0] < 1 and 0 < model.sd([net])[0] < 0.05)
        True
        >>> rng = np.random.default_rng(0)
        >>> model.sample(net, rng) == model.sample(net, np.random.default_rng(0))
        True
    """

    def __init__(self, spec: dict[str, Any]) -> None:
        if not isinstance(spec, dict) or spec.get("format") != MODEL_FORMAT:
            got = spec.get("format") if isinstance(spec, dict) else type(spec).__name__
            raise ValueError(f"not an EAS-Bench model file (format {got!r}, want {MODEL_FORMAT})")
        names = feature_names()
        unknown = [f for f in spec.get("features", []) if f not in names]
        if unknown or not spec.get("features"):
            raise ValueError(
                f"the model file's features {unknown or '[]'} are not computed by "
                "eas_gym.bench_features: refit it (benchmarks/bench_fit.py)"
            )
        self.spec = spec
        self.columns = np.asarray([names.index(f) for f in spec["features"]], dtype=np.int64)
        members = spec.get("members") or []
        if not members:
            raise ValueError("the model file has no `members`")
        self._members = [_Trees(m, len(self.columns)) for m in members]
        self._noise = _Noise(spec.get("noise", {}), names)
        self.start_accuracy = check_start_accuracy(spec.get("default_start_accuracy"))
        """The start network's accuracy a query assumes when given none."""
        self._cache: OrderedDict[tuple[str, float], tuple[float, float]] = OrderedDict()

    @classmethod
    def load(cls, path: str | Path | None = None) -> BenchModel:
        """Read a model file (JSON), by default the packaged ``EAS-CIFAR10-CPU-v2`` model.

        Raises:
            FileNotFoundError: If `path` does not exist.
            ValueError: If it is not a valid model file.
        """
        path = DEFAULT_MODEL_PATH if path is None else Path(path)
        try:
            spec = json.loads(Path(path).read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{path} is not JSON: {e}") from e
        return cls(spec)

    @property
    def env_id(self) -> str:
        """The preset whose training the model stands in for."""
        return str(self.spec.get("env_id", ""))

    def mean(self, archs: Archs, *, start_accuracy: float | None = None) -> np.ndarray:
        """Expected validation accuracy (a fraction in [0, 1]) of each network: shape ``(N,)``.

        Raises:
            TypeError: If `archs` is a single network rather than a sequence of them.
            ValueError: If a network lies outside the space or `start_accuracy` outside [0, 1].
        """
        return self._batch(archs, start_accuracy)[:, 0]

    def sd(self, archs: Archs, *, start_accuracy: float | None = None) -> np.ndarray:
        """Sd (fraction) of one training's accuracy around :meth:`mean`: shape ``(N,)``.

        The retrain noise, calibrated on the networks that were trained more than once; the
        surrogate's own error is not in it (the mean is the benchmark's ground truth).
        """
        return self._batch(archs, start_accuracy)[:, 1]

    def sample(
        self, arch: Arch | str, rng: np.random.Generator, start_accuracy: float | None = None
    ) -> float:
        """One training's accuracy: ``mean + Normal(0, sd)`` drawn from `rng`, clipped to [0, 1].

        Raises:
            TypeError: If `rng` is not a ``numpy.random.Generator``.
        """
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"Expected `rng` to be a numpy.random.Generator, got {rng!r}")
        mean, sd = self._query(arch, start_accuracy)
        return float(min(max(rng.normal(mean, sd), 0.0), 1.0))

    # ---- private ---------------------------------------------------------------------------

    def _key(self, arch: Arch | str, start_accuracy: float | None) -> tuple[str, float]:
        start = self.start_accuracy if start_accuracy is None else start_accuracy
        start = check_start_accuracy(start)
        if isinstance(arch, str):
            return arch.strip(), start
        return as_bench_arch(arch).to_string(), start

    def _query(self, arch: Arch | str, start_accuracy: float | None) -> tuple[float, float]:
        row = self._rows([arch], start_accuracy)[0]
        return float(row[0]), float(row[1])

    def _batch(self, archs: Archs, start_accuracy: float | None) -> np.ndarray:
        if isinstance(archs, str | Arch) or not isinstance(archs, Sequence):
            raise TypeError(
                f"Expected `archs` to be a sequence of networks, got {type(archs).__name__}; "
                "wrap one network in a list"
            )
        return self._rows(archs, start_accuracy)

    def _rows(self, archs: Archs, start_accuracy: float | None) -> np.ndarray:
        """(mean, sd) per network: cached ones looked up, the rest computed in one pass."""
        keys = [self._key(a, start_accuracy) for a in archs]
        todo = {k: a for k, a in zip(keys, archs, strict=True) if k not in self._cache}
        if todo:
            x = np.stack([arch_features(a, start) for (_, start), a in todo.items()])
            mean = np.mean([m.predict(x[:, self.columns]) for m in self._members], axis=0)
            rows = np.stack([np.clip(mean, 0.0, 1.0), self._noise.sd(x)], axis=1)
            for k, row in zip(todo, rows, strict=True):
                self._cache[k] = (float(row[0]), float(row[1]))
        out = np.empty((len(keys), 2))
        for i, k in enumerate(keys):
            self._cache.move_to_end(k)
            out[i] = self._cache[k]
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return out


@functools.cache
def default_model() -> BenchModel:
    """The packaged ``EAS-CIFAR10-CPU-v2`` model, loaded once per process."""
    return BenchModel.load()


@functools.cache
def default_model_digest() -> str:
    """Which fit the bench draws from: the packaged model's SHA-256 (first 16 hex digits).

    Hashed over the parsed file written canonically, so a checkout that rewrites line endings
    keeps it. A bench search records it (``config.json``'s ``bench_model``) and refuses to
    resume under another model, whose accuracies would not be comparable.
    """
    text = json.dumps(default_model().spec, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def trees_from_lightgbm(dump: dict[str, Any]) -> dict[str, Any]:
    """A LightGBM regression booster's trees in this module's format (a model file's member).

    Args:
        dump: ``booster.dump_model()`` of a single-output booster with numerical splits only.

    Returns:
        The JSON-able node arrays :class:`BenchModel` evaluates; its predictions equal
        ``booster.predict`` up to the order of summation.

    Raises:
        ValueError: For a multi-output booster, categorical splits or a missing-value rule.
    """
    if dump.get("num_tree_per_iteration", 1) != 1 or dump.get("average_output"):
        raise ValueError("only single-output boosted (not averaged) LightGBM models are supported")
    out: dict[str, list[Any]] = {
        k: [] for k in ("roots", "feature", "threshold", "left", "right", "leaf_value")
    }
    depth = 0

    def visit(node: dict[str, Any], level: int) -> int:
        nonlocal depth
        if "leaf_value" in node:
            out["leaf_value"].append(float(node["leaf_value"]))
            return ~(len(out["leaf_value"]) - 1)
        if node.get("decision_type") != "<=" or node.get("missing_type") not in ("None", None):
            raise ValueError(f"unsupported LightGBM split {node.get('decision_type')!r}")
        depth = max(depth, level + 1)
        index = len(out["feature"])
        out["feature"].append(int(node["split_feature"]))
        out["threshold"].append(float(node["threshold"]))
        out["left"].append(0)
        out["right"].append(0)
        out["left"][index] = visit(node["left_child"], level + 1)
        out["right"][index] = visit(node["right_child"], level + 1)
        return index

    for tree in dump["tree_info"]:
        out["roots"].append(visit(tree["tree_structure"], 0))
    return {**out, "depth": depth}
