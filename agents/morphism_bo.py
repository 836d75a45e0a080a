"""Morphism-aware Bayesian optimisation: a GP over architectures with an edit-distance kernel.

The method AutoKeras 0.4 and NNI's NetworkMorphismTuner shipped (Jin, Song and Hu, "Auto-Keras:
an efficient neural architecture search system", KDD 2019), which both projects later dropped.
Here, per batch of episodes:

1. Candidates: action sequences (genomes, :mod:`agents.genome`) mutated from the best ones seen
   (one step redrawn among its legal actions) and some drawn at random, each played in the
   *simulator* (:class:`agents.base.SimulatorUser`: the run's env with the weightless surrogate
   evaluator) to learn the network it gives, with no training. Networks already evaluated are
   left out.
2. A Gaussian process over networks, fitted on the episodes' (network, return) pairs: kernel
   ``exp(-d / l)`` (:func:`edit_distance_kernel`) with ``d`` the edit distance between the two
   layer sequences (:func:`layer_distance`: inserting or deleting a layer costs 1, a conv or
   FC layer becomes one of its kind for ``|log2(w/w')| / 2`` plus 0.5 for another kernel size,
   at most 1, and a layer of another kind costs 1), ``l`` the median distance between the
   networks seen.
   Returns are standardised; the noise variance is a parameter (retrained networks differ).
3. The batch plays the candidates of highest upper confidence bound ``mean + beta * sd``,
   distinct networks.

An edit-distance kernel is not guaranteed positive definite, and on this env's networks it is
not: over 200 of them the smallest eigenvalue is about -0.8 for ``exp(-d^2 / (2 l^2))`` and
-0.15 for ``exp(-d / l)`` (hence this kernel, whose GP also ranks held-out networks better).
AutoKeras and NNI made it so with a Bourgain embedding of the distances, and where the Cholesky
factorisation still failed NNI's GP silently stopped updating (NNI #3324). Here
(:func:`positive_definite_cholesky`, with ``scipy.linalg.cho_factor``) the factorisation is
retried with a little jitter (rounding), and otherwise the kernel's negative eigenvalues are
clipped to 0 before the noise is added, and the candidates' cross-covariances are clipped alike
(:func:`positive_projection`). The GP always goes on, and the ``update()`` metrics report the
jitter (-1: clipped). The first `n_initial` episodes are random; the GP is fitted on at most
the `max_history` best episodes (its cost is cubic in them; 200 by default).

State: the generator and every episode's genome, network and return (plain data), so a
resumed search plans what an uninterrupted one would. ``recommend`` replays the best episode.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any, cast

import numpy as np
from gymnasium import spaces

from agents.base import split_masks

__all__ = [
    "MorphismBO",
    "edit_distance_kernel",
    "layer_distance",
    "positive_definite_cholesky",
    "positive_projection",
]

_LAYER = re.compile(r"^(C|FC)(\d+)(?:-(\d+))?$")


def _tokens(net: str) -> tuple[tuple[str, int, int], ...]:
    """``"C16-3 MP FC32"`` -> ``(("C", 16, 3), ("MP", 0, 0), ("FC", 32, 0))``."""
    tokens = []
    for word in net.split():
        match = _LAYER.match(word)
        if match:
            tokens.append((match[1], int(match[2]), int(match[3] or 0)))
        else:
            tokens.append((word, 0, 0))
    return tuple(tokens)


def _substitution(a: tuple[str, int, int], b: tuple[str, int, int]) -> float:
    if a[0] != b[0]:
        return 1.0
    if a[0] not in ("C", "FC"):
        return 0.0
    cost = abs(math.log2(a[1] / b[1])) / 2 + (0.5 if a[2] != b[2] else 0.0)
    return min(cost, 1.0)


@lru_cache(maxsize=200_000)
def layer_distance(a: str, b: str) -> float:
    """Weighted edit distance between two net strings' layer sequences (module docstring)."""
    x, y = _tokens(a), _tokens(b)
    previous = [float(j) for j in range(len(y) + 1)]
    for i, token in enumerate(x, start=1):
        row = [float(i)]
        for j, other in enumerate(y, start=1):
            row.append(
                min(
                    previous[j] + 1.0,
                    row[j - 1] + 1.0,
                    previous[j - 1] + _substitution(token, other),
                )
            )
        previous = row
    return previous[-1]


def edit_distance_kernel(a: list[str], b: list[str], lengthscale: float) -> np.ndarray:
    """``(len(a), len(b))`` kernel ``exp(-d / l)`` on the edit distance :func:`layer_distance`.

    Not positive definite in general: these five networks (a common ``C16-3`` head and
    ``GAP FC32`` tail around ``MP C32-3 MP``, ``C32-3 MP C32-3``, ``MP C32-3``, ``C32-3`` and
    ``C32-3 MP``) are at distances 1 and 2 like the complete bipartite graph K(2,3), whose
    kernel has a negative eigenvalue (about -0.028) at ``l = 5``. Searches on the surrogate see
    such matrices from about a hundred networks on (:func:`positive_definite_cholesky`).
    """
    return np.exp(-_distance_matrix(a, b) / lengthscale)


def _distance_matrix(a: list[str], b: list[str]) -> np.ndarray:
    return np.array([[layer_distance(x, y) for y in b] for x in a]).reshape(len(a), len(b))


def positive_definite_cholesky(
    kernel: np.ndarray, noise: float = 0.0, tries: int = 5
) -> tuple[Any, float]:
    """``(cho_factor(K'), jitter)`` with ``K'`` near ``kernel + noise * I``; never fails.

    1. ``kernel + (noise + jitter) * I``, jitter 0 and then growing tenfold from 1e-10 of the
       mean diagonal, `tries` times: enough for rounding (duplicate networks), too little to
       change the model.
    2. Otherwise `kernel` is indefinite: its negative eigenvalues are clipped to 0 (the nearest
       positive semi-definite matrix in the Frobenius norm, Higham 1988;
       :func:`positive_projection`) before ``noise * I`` (and 1e-8 of the mean diagonal, so
       that ``noise = 0`` factors too) is added; jitter is reported as -1. Clipping
       ``kernel + noise * I`` instead would leave near-zero eigenvalues where `kernel`'s were
       below ``-noise``, and the GP's mean would blow up along them.

    Args:
        kernel: A symmetric ``(n, n)`` kernel matrix.
        noise: The noise variance added to the diagonal.
        tries: Jitter values tried before clipping.

    Returns:
        ``scipy.linalg.cho_factor``'s ``(factor, lower)`` and the jitter used (-1: clipped).
    """
    from scipy.linalg import LinAlgError, cho_factor

    scale = float(np.mean(np.diag(kernel))) or 1.0
    eye = np.eye(len(kernel))
    for jitter in [0.0, *(scale * 1e-10 * 10**k for k in range(tries))]:
        try:
            return cho_factor(kernel + (noise + jitter) * eye, lower=True), jitter
        except LinAlgError:
            continue
    projection = positive_projection(kernel)
    clipped = projection @ kernel @ projection  # its negative eigenvalues set to 0
    return cho_factor(clipped + (noise + 1e-8 * scale) * eye, lower=True), -1.0


def positive_projection(kernel: np.ndarray) -> np.ndarray:
    """``(n, n)`` projection onto the span of `kernel`'s eigenvectors of positive eigenvalue.

    ``P K P`` is `kernel` with its negative eigenvalues clipped to 0, and ``k @ P`` applies the
    same clip to a new point's cross-covariances ``k`` (Chen et al., "Similarity-based
    classification: concepts and algorithms", JMLR 2009): a fitted network's row of `kernel`
    becomes its row of ``P K P``, so the GP predicts where it fitted, and no new network draws
    on the directions the clip took out (divided by the noise alone, they would blow the mean
    up).
    """
    values, vectors = np.linalg.eigh((kernel + kernel.T) / 2)
    kept = vectors[:, values > 0]
    return kept @ kept.T


class MorphismBO:
    """Bayesian optimisation over architectures (see the module docstring).

    Args:
        observation_space: The single-environment observation space (``steps_left`` tells the
            step).
        action_space: The single-environment ``MultiDiscrete`` action space.
        seed: Seeds every draw.
        n_initial: Random episodes before the GP chooses.
        candidates: Candidate genomes scored per batch.
        beta: The upper confidence bound's weight on the GP's standard deviation.
        noise: The GP's noise variance, in units of the standardised returns' variance.
        max_history: The most (best) episodes the GP is fitted on.
    """

    def __init__(
        self,
        observation_space: spaces.Dict,
        action_space: spaces.MultiDiscrete,
        *,
        seed: int,
        n_initial: int = 10,
        candidates: int = 100,
        beta: float = 2.0,
        noise: float = 0.1,
        max_history: int = 200,
    ) -> None:
        for name, value in (("n_initial", n_initial), ("candidates", candidates)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"Expected `{name}` >= 1, actually: {value!r}")
        if not isinstance(max_history, int) or max_history < 2:
            raise ValueError(f"Expected `max_history` >= 2, actually: {max_history!r}")
        if not beta >= 0 or not noise > 0:
            raise ValueError(f"Expected `beta` >= 0 and `noise` > 0, got {beta!r}, {noise!r}")
        self.action_space = action_space
        steps_left = cast(spaces.Discrete, observation_space["steps_left"])
        self.num_steps = int(steps_left.n) - 1
        self.n_initial, self.candidates, self.beta = n_initial, candidates, float(beta)
        self.noise, self.max_history = float(noise), max_history
        self.rng = np.random.default_rng(seed)
        self.history: list[dict[str, Any]] = []  # {"genome", "net", "value"} per episode
        self._make_simulator: Callable[[], Any] | None = None
        self._simulator: Any = None
        self._plans: list[list[list[int]] | None] = []
        self._taken: list[list[list[int]]] = []
        self._returns: np.ndarray | None = None
        self._nets: list[str | None] = []
        self._metrics: dict[str, float] = {}
        self._finished = False  # the batch's episodes ended at the last step observed

    # ---- the protocol and its hooks ------------------------------------------------------

    def use_simulator(self, make_env: Callable[[], Any]) -> None:
        """Keep the factory of the weightless simulator (built when first needed)."""
        self._make_simulator = make_env

    def act(self, obs: dict[str, np.ndarray], masks: np.ndarray) -> np.ndarray:
        """Play the batch's planned genomes (random ones until the GP has data)."""
        t = self.num_steps - int(np.asarray(obs["steps_left"])[0])
        parts = split_masks(masks, self.action_space)
        batch = parts[0].shape[0]
        if t == 0:
            self._plans = self._plan(batch)
            self._taken = [[] for _ in range(batch)]
            self._returns = np.zeros(batch)
            self._nets = [None] * batch
        actions = np.zeros((batch, len(parts)), dtype=np.int64)
        for b in range(batch):
            legal = [p[b] for p in parts]
            plan = self._plans[b]
            wanted = plan[t] if plan is not None and t < len(plan) else None
            actions[b] = [
                a if wanted is not None and m[a] else self._uniform(m)
                for a, m in zip(wanted or [0] * len(legal), legal, strict=True)
            ]
            self._taken[b].append(actions[b].tolist())
        return actions

    def observe(self, rewards: np.ndarray, terminated: np.ndarray) -> None:
        """Sum the rewards of each episode."""
        if self._returns is not None:
            self._returns += np.asarray(rewards, dtype=float)
            self._finished = bool(np.all(terminated))

    def observe_info(self, infos: dict[str, Any]) -> None:
        """At the episodes' end, record each (genome, network, return)."""
        if self._returns is None or not self._finished:
            return
        for b, net in enumerate(infos["net"]):
            self.history.append(
                {"genome": self._taken[b], "net": str(net), "value": float(self._returns[b])}
            )
        self._returns = None

    def update(self) -> dict[str, float]:
        """The last plan's GP figures (jitter, fitted episodes, best predicted UCB)."""
        metrics, self._metrics = self._metrics, {}
        if self.history:
            metrics["bo/best_return"] = max(h["value"] for h in self.history)
        return metrics

    def recommend(self, obs: dict[str, np.ndarray], masks: np.ndarray) -> np.ndarray:
        """Replay the best episode's genome (illegal entries drawn uniformly)."""
        t = self.num_steps - int(np.asarray(obs["steps_left"])[0])
        parts = split_masks(masks, self.action_space)
        best = max(self.history, key=lambda h: h["value"])["genome"] if self.history else None
        actions = np.zeros((parts[0].shape[0], len(parts)), dtype=np.int64)
        for b in range(actions.shape[0]):
            wanted = best[t] if best is not None and t < len(best) else [0] * len(parts)
            actions[b] = [
                a if p[b][a] else self._uniform(p[b]) for a, p in zip(wanted, parts, strict=True)
            ]
        return actions

    def state_dict(self) -> dict[str, Any]:
        """The generator state and every episode's genome, network and return."""
        return {"rng": self.rng.bit_generator.state, "history": [dict(h) for h in self.history]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        self.rng.bit_generator.state = state["rng"]
        self.history = [
            {
                "genome": [[int(a) for a in step] for step in h["genome"]],
                "net": str(h["net"]),
                "value": float(h["value"]),
            }
            for h in state["history"]
        ]

    # ---- planning ------------------------------------------------------------------------

    def _plan(self, batch: int) -> list[list[list[int]] | None]:
        """The genomes the batch plays: None (random) until `n_initial` episodes are seen."""
        if len(self.history) < self.n_initial or self._make_simulator is None:
            return [None] * batch
        pool = self._candidates()
        if not pool:
            return [None] * batch
        nets = [net for net, _ in pool]
        mean, sd = self._posterior(nets)
        score = mean + self.beta * sd
        chosen = [pool[i][1] for i in np.argsort(-score, kind="stable")[:batch]]
        self._metrics["bo/best_ucb"] = float(score.max())
        return [*chosen, *([None] * (batch - len(chosen)))]

    def _candidates(self) -> list[tuple[str, list[list[int]]]]:
        """(network, genome) pairs: mutations of the best and random ones, new networks only."""
        seen = {h["net"] for h in self.history}
        ranked = sorted(self.history, key=lambda h: -h["value"])[:10]
        pool: dict[str, list[list[int]]] = {}
        for k in range(self.candidates):
            parent = ranked[k % len(ranked)]["genome"] if k < 0.7 * self.candidates else None
            net, genome = self._simulate(parent, int(self.rng.integers(self.num_steps)))
            if net not in seen:
                pool.setdefault(net, genome)
        return list(pool.items())

    def _simulate(self, parent: list[list[int]] | None, redraw: int) -> tuple[str, list[list[int]]]:
        """Play `parent` with step `redraw` drawn again (or a random genome) in the simulator."""
        if self._simulator is None:
            assert self._make_simulator is not None
            self._simulator = self._make_simulator()
        _, info = self._simulator.reset(seed=0)
        genome: list[list[int]] = []
        for t in range(self.num_steps):
            legal = [np.asarray(m, dtype=bool) for m in info["action_mask"]]
            if parent is None or t == redraw or t >= len(parent):
                action = [self._uniform(m) for m in legal]
            else:
                action = [
                    a if m[a] else self._uniform(m) for a, m in zip(parent[t], legal, strict=True)
                ]
            genome.append(action)
            _, _, terminated, _, info = self._simulator.step(np.asarray(action, dtype=np.int64))
            if terminated:
                break
        return str(info["net"]), genome

    def _posterior(self, nets: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """The GP's mean and standard deviation of the standardised return at `nets`."""
        from scipy.linalg import cho_solve

        fitted = sorted(self.history, key=lambda h: -h["value"])[: self.max_history]
        seen = [h["net"] for h in fitted]
        y = np.array([h["value"] for h in fitted])
        y = (y - y.mean()) / (y.std() or 1.0)
        d_seen = _distance_matrix(seen, seen)
        off_diagonal = d_seen[np.triu_indices(len(seen), 1)]
        scale = (
            float(np.median(off_diagonal[off_diagonal > 0])) if (off_diagonal > 0).any() else 1.0
        )
        kernel = np.exp(-d_seen / scale)
        factor, jitter = positive_definite_cholesky(kernel, self.noise)
        cross = edit_distance_kernel(nets, seen, scale)  # (candidates, fitted)
        if jitter < 0:  # fitted on the clipped kernel: clip the cross-covariances alike
            cross = cross @ positive_projection(kernel)
        mean = cross @ cho_solve(factor, y)
        v = cho_solve(factor, cross.T)
        var = np.clip(1.0 - np.sum(cross.T * v, axis=0), 1e-12, None)
        self._metrics.update(
            {"bo/jitter": jitter, "bo/fitted": float(len(seen)), "bo/lengthscale": scale}
        )
        return mean, np.sqrt(var)

    def _uniform(self, legal: np.ndarray) -> int:
        return int(self.rng.choice(np.flatnonzero(legal)))
