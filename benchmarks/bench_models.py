"""EAS-Bench's candidate models, grouped cross-validation and ranking metrics.

Read by ``benchmarks/bench_fit.py``. Every candidate is a regressor with ``fit(X, y)`` and
``predict(X)`` on :func:`eas_gym.bench_features.arch_features` rows (all of them, or the
``arch`` set: the per-block and whole-network features without the per-slot ones). Needs
``pip install lightgbm scikit-learn`` (the ``bench`` extra).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from scipy import stats

from eas_gym.bench import feature_names


class Regressor(Protocol):
    """What a candidate model does."""

    def fit(self, x: np.ndarray, y: np.ndarray) -> Regressor: ...  # noqa: D102

    def predict(self, x: np.ndarray) -> np.ndarray: ...  # noqa: D102


LGBM_PARAMS: dict[str, Any] = {
    "objective": "regression",
    "learning_rate": 0.06,
    "num_leaves": 7,
    "min_data_in_leaf": 20,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "verbose": -1,
    "num_threads": 1,
    "deterministic": True,
    "force_row_wise": True,
}
LGBM_ROUNDS = 300


class Boosted:
    """A LightGBM booster (or several with different seeds, averaged)."""

    def __init__(self, members: int = 1, rounds: int = LGBM_ROUNDS, **params: Any) -> None:
        self.members, self.rounds = members, rounds
        self.params = {**LGBM_PARAMS, **params}
        self.boosters: list[Any] = []

    def fit(self, x: np.ndarray, y: np.ndarray) -> Boosted:  # noqa: D102
        import lightgbm as lgb

        self.boosters = [
            lgb.train({**self.params, "seed": k}, lgb.Dataset(x, y), self.rounds)
            for k in range(self.members)
        ]
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:  # noqa: D102
        return np.mean([b.predict(x, num_threads=1) for b in self.boosters], axis=0)


class Centered:
    """A scikit-learn model on standardized features, fitted to ``y - mean(y)`` (zero prior)."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def fit(self, x: np.ndarray, y: np.ndarray) -> Centered:  # noqa: D102
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        self.offset = float(np.mean(y))
        self.pipe = make_pipeline(StandardScaler(), self.model)
        with warnings.catch_warnings():  # the GP's bounds, the MLP's iterations
            warnings.simplefilter("ignore")
            self.pipe.fit(x, y - self.offset)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:  # noqa: D102
        return self.pipe.predict(x) + self.offset


class Averaged:
    """The mean of several models' predictions."""

    def __init__(self, *models: Regressor) -> None:
        self.models = models

    def fit(self, x: np.ndarray, y: np.ndarray) -> Averaged:  # noqa: D102
        for m in self.models:
            m.fit(x, y)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:  # noqa: D102
        return np.mean([m.predict(x) for m in self.models], axis=0)


def _ridge() -> Regressor:
    from sklearn.linear_model import RidgeCV

    return Centered(RidgeCV(alphas=np.logspace(-2, 4, 13)))


def _krr() -> Regressor:
    from sklearn.kernel_ridge import KernelRidge

    return Centered(KernelRidge(kernel="laplacian", alpha=0.3, gamma=0.005))


def _gp() -> Regressor:
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import RBF, WhiteKernel
    from sklearn.gaussian_process.kernels import ConstantKernel as Const

    return Centered(GaussianProcessRegressor(Const(1e-4) * RBF(10.0) + WhiteKernel(1e-4)))


def _mlp() -> Regressor:
    from sklearn.neural_network import MLPRegressor

    return Centered(
        MLPRegressor(
            hidden_layer_sizes=(64, 64),
            alpha=1.0,
            max_iter=2000,
            early_stopping=True,
            random_state=0,
        )
    )


@dataclass(frozen=True)
class Candidate:
    """A model family with its settings, and the features it reads (``all`` or ``arch``)."""

    name: str
    kind: str
    columns: str
    make: Callable[[], Regressor]
    exportable: bool = False
    """Whether ``eas_gym.bench`` can evaluate it (LightGBM trees)."""
    trees: int = 0
    """Trees a query evaluates (its cost), for an exportable model."""


CANDIDATES = {
    c.name: c
    for c in (
        Candidate("ridge", "linear", "all", _ridge),
        Candidate("lgbm-all", "boosted trees", "all", Boosted, True, LGBM_ROUNDS),
        Candidate("lgbm", "boosted trees", "arch", Boosted, True, LGBM_ROUNDS),
        Candidate("lgbm-x5", "boosted trees", "arch", lambda: Boosted(5), True, 5 * LGBM_ROUNDS),
        Candidate(
            "lgbm-slow",
            "boosted trees",
            "arch",
            lambda: Boosted(rounds=2 * LGBM_ROUNDS, learning_rate=LGBM_PARAMS["learning_rate"] / 2),
            True,
            2 * LGBM_ROUNDS,
        ),
        Candidate("kernel-ridge", "kernel", "arch", _krr),
        Candidate("gp", "kernel", "arch", _gp),
        Candidate("mlp", "neural", "arch", _mlp),
        Candidate("lgbm+kernel-ridge", "blend", "arch", lambda: Averaged(Boosted(), _krr())),
    )
}


def column_mask(columns: str) -> np.ndarray:
    """Which feature columns a candidate reads: ``all``, or ``arch`` (no per-slot features)."""
    names = feature_names()
    if columns == "all":
        return np.ones(len(names), dtype=bool)
    if columns == "arch":
        return np.array([not n.startswith("slot") for n in names])
    raise ValueError(f"`columns` must be 'all' or 'arch', got {columns!r}")


def ranking_metrics(truth: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """R^2, Spearman, Kendall tau and sparse Kendall tau (both rounded to 0.1 points)."""
    if len(truth) < 3:
        return {}
    r2 = 1.0 - np.sum((truth - pred) ** 2) / np.sum((truth - truth.mean()) ** 2)
    sparse = stats.kendalltau(np.round(truth * 1000), np.round(pred * 1000)).statistic
    return {
        "r2": float(r2),
        "spearman": float(stats.spearmanr(truth, pred).statistic),
        "kendall_tau": float(stats.kendalltau(truth, pred).statistic),
        "sparse_kendall_tau": float(sparse),
        "n": len(truth),
    }


def per_net(values: np.ndarray, nets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct nets and the mean of `values` over each net's trainings."""
    names, inverse = np.unique(nets, return_inverse=True)
    return names, np.bincount(inverse, values) / np.bincount(inverse)


def net_metrics(
    y: np.ndarray, pred: np.ndarray, nets: np.ndarray, mask: np.ndarray
) -> dict[str, float]:
    """:func:`ranking_metrics` over the distinct nets in `mask` (means of their trainings)."""
    _, truth = per_net(y[mask], nets[mask])
    _, guess = per_net(pred[mask], nets[mask])
    return ranking_metrics(truth, guess)


def grouped_folds(nets: np.ndarray, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Train/test index pairs with every training of a net in one fold (shuffled by `seed`)."""
    names, inverse = np.unique(nets, return_inverse=True)
    fold_of_net = np.random.default_rng(seed).permutation(len(names)) % folds
    fold = fold_of_net[inverse]
    return [(np.flatnonzero(fold != k), np.flatnonzero(fold == k)) for k in range(folds)]


def out_of_fold(
    make: Callable[[], Regressor],
    x: np.ndarray,
    y: np.ndarray,
    splits: list[tuple[np.ndarray, np.ndarray]],
    subsample: int | None = None,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Each training's prediction by a model fitted without its net (optionally on a subset)."""
    pred = np.full(len(y), np.nan)
    for train, test in splits:
        if subsample is not None and subsample < len(train):
            assert rng is not None
            train = rng.choice(train, subsample, replace=False)
        pred[test] = make().fit(x[train], y[train]).predict(x[test])
    return pred


def noise_ceiling(y: np.ndarray, nets: np.ndarray, mask: np.ndarray, noise: float) -> dict:
    """What a perfect mean model would score against these noisy per-net means (Gaussian).

    The observed per-net means vary by the between-net spread plus noise ``noise**2 / n``;
    an oracle of the true means correlates with them at rho = spread / observed sd, so R^2 =
    rho^2, Kendall tau = 2/pi asin(rho) and Spearman = 6/pi asin(rho / 2).
    """
    _, means = per_net(y[mask], nets[mask])
    counts = np.unique(nets[mask], return_counts=True)[1].astype(float)
    observed = float(np.var(means, ddof=1))
    spread = max(observed - float(np.mean(noise**2 / counts)), 0.0)
    rho = math.sqrt(spread / observed)
    return {
        "r2": rho**2,
        "spearman": 6 / math.pi * math.asin(rho / 2),
        "kendall_tau": 2 / math.pi * math.asin(rho),
        "between_net_sd_points": 100 * math.sqrt(spread),
        "observed_sd_points": 100 * math.sqrt(observed),
    }
