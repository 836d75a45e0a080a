"""The agent protocol: what a custom agent implements to run in ``eas-gym search``.

An agent drives a batch of environments in lockstep (the paper: 10 networks per controller
update). Each episode the runner calls :meth:`Agent.act` once per step with the batch of
observations and flat action masks, passes the step's rewards to :meth:`Agent.observe`, and
after the episode ends calls :meth:`Agent.update` once. The runner checkpoints
:meth:`Agent.state_dict` after every update and restores it with :meth:`Agent.load_state_dict`
when a search resumes.

The runner constructs an agent as ``cls(observation_space, action_space, seed=seed)`` with the
single-environment spaces, so ``--agent my_module:MyAgent`` works for any class of that shape.

What the runner checks (:mod:`agents.registry`, :mod:`agents.checks`), so a mistake fails early:

* before anything is written: that the constructor takes the two spaces and a ``seed``
  keyword; that each option (``my_module:MyAgent[n=5]``) is one of its keyword arguments (any,
  with ``**kwargs``) and parses as its annotated type, or else as its default's type (``n=1.5``
  is refused where the default is ``3``); then it builds the agent once on the env's spaces, so
  a value the constructor refuses is one line naming the agent's options;
* at the first checkpoint: that :meth:`Agent.state_dict` round-trips through the checkpoint's
  safe loader (``torch.load(weights_only=True)``), else a ValueError names the key; at the next
  update's first step, that an agent restored from that state acts as the running one does,
  else a warning (a resumed search would differ: ``{}`` from an agent that draws from a
  generator);
* every step: illegal actions (the masks forbid them; the env applies only the legal part) are
  counted in each child record's ``illegal_actions``, with a warning once per run.

Three optional hooks, used when the agent has them (an agent without them runs as before):

* ``observe_info(infos)`` (:class:`InfoObserver`): called after :meth:`Agent.observe` at every
  step, search and recheck, with the step's vector ``infos`` (each key an array over the batch:
  ``net``, ``accuracy``, ``params``, ... of the last step's network; the env's ``## Information``
  section lists them). A model-based agent (Bayesian optimisation) learns its (net, accuracy)
  pairs here: the dense reward cannot be inverted without the start network's score.
* ``recommend(obs, masks)`` (:class:`Recommender`): the agent's best guess, called instead of
  :meth:`Agent.act` by the recheck (``eas-gym compare --recheck K``,
  :func:`agents.runner.run_recheck`). The recheck restores the finished search's final state
  and runs K fresh episodes (new seeds, every child fine-tuned again, never read from the
  store) with no :meth:`Agent.update`; without ``recommend`` it samples them with
  :meth:`Agent.act`, which for a model-based agent is another round of exploration.
  :meth:`Agent.observe` and ``observe_info`` still see the recheck's steps.
* ``use_simulator(make_env)`` (:class:`SimulatorUser`): called once after construction with a
  function that makes a *simulator*: the same env with the weightless surrogate evaluator and
  a private store, whose networks, masks and observations follow the same actions exactly,
  with no training. A model-based agent plays candidate action sequences there to learn which
  network each gives before it chooses (:mod:`agents.morphism_bo`).

The ``fixed[policy=...]`` agents (:mod:`agents.fixed`) show the protocol at its smallest.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np
from gymnasium import spaces

__all__ = ["Agent", "InfoObserver", "Recommender", "SimulatorUser", "split_masks"]


@runtime_checkable
class Agent(Protocol):
    """A search agent over a batch of EAS environments."""

    def act(self, obs: dict[str, np.ndarray], masks: np.ndarray) -> np.ndarray:
        """Choose actions.

        Args:
            obs: The batch of observations; each value has a leading batch dimension ``B``.
            masks: ``(B, sum(nvec))`` booleans, legal values of every action entry in turn.

        Returns:
            ``(B, len(nvec))`` integer actions.
        """
        ...

    def observe(self, rewards: np.ndarray, terminated: np.ndarray) -> None:
        """Receive the ``(B,)`` rewards and termination flags of the last :meth:`act`."""
        ...

    def update(self) -> dict[str, float]:
        """Learn from the finished episodes; returns metrics to log (may be empty)."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: parameters, optimiser, baseline, RNG state.

        Everything :meth:`act` depends on, so a restored agent acts as this one would. The
        checkpoint is read with ``torch.load(weights_only=True)``, so the dict may hold only
        tensors, ``None``, bools, ints, floats, strings, and lists, tuples and dicts of them
        (``module.state_dict()``, ``optimizer.state_dict()``, ``generator.get_state()`` and
        ``np.random.Generator.bit_generator.state`` all qualify). Numpy arrays and scalars are
        saved as lists and Python numbers: :meth:`load_state_dict` gets lists back (use
        ``np.asarray``), or store tensors instead. Any other object fails the run at its first
        checkpoint, naming the key.
        """
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        ...


@runtime_checkable
class InfoObserver(Protocol):
    """An agent with the optional ``observe_info`` hook."""

    def observe_info(self, infos: dict[str, Any]) -> None:
        """Receive the vector ``infos`` of the last step (each value has a leading ``B``)."""
        ...


@runtime_checkable
class Recommender(Protocol):
    """An agent with the optional ``recommend`` hook, used by the recheck instead of ``act``."""

    def recommend(self, obs: dict[str, np.ndarray], masks: np.ndarray) -> np.ndarray:
        """The agent's best guess: ``(B, len(nvec))`` actions, as :meth:`Agent.act` returns."""
        ...


@runtime_checkable
class SimulatorUser(Protocol):
    """An agent with the optional ``use_simulator`` hook."""

    def use_simulator(self, make_env: Any) -> None:
        """Keep `make_env`: ``make_env()`` returns a fresh weightless copy of the run's env."""
        ...


def split_masks(masks: np.ndarray, action_space: spaces.MultiDiscrete) -> list[np.ndarray]:
    """Split flat ``(B, sum(nvec))`` masks into one ``(B, nvec[d])`` array per action entry."""
    bounds = np.cumsum(action_space.nvec)[:-1]
    return np.split(np.asarray(masks, dtype=bool), bounds, axis=1)
