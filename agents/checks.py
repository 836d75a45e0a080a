"""Checks that make mistakes fail early: a run's settings, and the agent's contract.

The contract is :class:`agents.base.Agent`'s.

* Before anything is written, :func:`check_env_args` refuses an unknown env id, bad env
  arguments or a missing dataset, and :func:`check_agent` builds the agent on the env's spaces
  (an SB3 model on a vector env): a bad option value is one line naming the agent and its
  options, not a traceback after ``config.json`` was written. For SB3 agents it also refuses
  an ``n_steps`` that makes a rollout sample more networks than the budget.
* At the first checkpoint a run writes, :func:`check_state` round-trips the agent's
  ``state_dict()`` through the checkpoint's safe loader (``torch.load(weights_only=True)``), so a
  state that could not be resumed fails at that update, naming its key.
* At the first step after that checkpoint, :func:`check_resume` builds a second agent from the
  checkpointed state and compares its actions with the running agent's: a state that leaves
  something out (``{}`` from an agent with a generator) is a warning, a restored agent that
  cannot act (it expected numpy arrays, which come back as lists) an error.
* :func:`warn_illegal` warns when an agent takes actions the masks forbid.

:class:`RunChecks` does the last three for a run: once each, whatever update it starts from.
"""

from __future__ import annotations

import contextlib
import io
import math
import random
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from agents.base import Agent
from agents.registry import AgentSpec, load_agent_class
from agents.run_folder import plain_data

__all__ = [
    "RunChecks",
    "check_agent",
    "check_env_args",
    "check_resume",
    "check_state",
    "make_agent",
    "warn_illegal",
]

STATE_TYPES = (
    "tensors, None, bools, ints, floats, strings, and lists, tuples and dicts of them "
    "(numpy arrays and scalars are saved as lists and Python numbers)"
)
"""What ``state_dict()`` may hold (the checkpoint is read with ``weights_only=True``)."""


@contextlib.contextmanager
def _global_rng_kept() -> Iterator[None]:
    """Restore Python's, numpy's and torch's global generators afterwards.

    A check builds agents (and SB3 models, which seed all three); the run must draw as it would
    without the check.
    """
    python, numpy = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        try:
            yield
        finally:
            random.setstate(python)
            np.random.set_state(numpy)


def _options_text(spec: AgentSpec) -> str:
    options = spec.label()[len(spec.name) + 1 : -1]  # the label's ``[...]``, values as parsed
    return f"its options ({options})" if options else "its default options"


def check_env_args(env_id: str, env_kwargs: dict[str, Any]) -> None:
    """Refuse an unknown id, bad env arguments or a missing dataset before anything is written."""
    import gymnasium as gym

    from eas_gym.data import check_dataset

    if env_id not in gym.registry:
        known = sorted(k for k in gym.registry if k.startswith("EAS-"))
        raise ValueError(f"unknown env {env_id!r}; registered: {', '.join(known)}")
    kwargs = {**gym.spec(env_id).kwargs, **env_kwargs}
    try:
        gym.make(env_id, **{**env_kwargs, "store": ":memory:"}).close()
    except TypeError as e:  # gymnasium wraps the env's TypeError with the whole spec: shorten
        raise ValueError(str(e).split(" was raised from the environment creator")[0]) from e
    if kwargs.get("evaluator", "train") == "train":
        check_dataset(
            kwargs.get("dataset", "cifar10"), kwargs.get("data_dir"), kwargs.get("download", False)
        )


def make_agent(spec: AgentSpec, observation_space: Any, action_space: Any, seed: int) -> Agent:
    """``cls(observation_space, action_space, seed=seed, **options)`` of a protocol agent."""
    cls = load_agent_class(spec.name)
    return cls(observation_space, action_space, seed=seed, **spec.options)


def check_agent(
    spec: AgentSpec,
    env_id: str,
    env_kwargs: dict[str, Any],
    *,
    seed: int,
    nets: int,
    batch: int,
) -> None:
    """Build the agent of `spec` on `env_id`'s spaces, writing and training nothing.

    Args:
        spec: The parsed agent spec (its option types are already checked).
        env_id: A registered env id.
        env_kwargs: The run's env arguments (the store is replaced by an in-memory one).
        seed: The run's seed.
        nets: Networks the run samples.
        batch: Networks per update (SB3: environments side by side).

    Raises:
        ValueError: The agent refuses its options (the message names them), or an SB3 rollout
            would sample more networks than `nets` allows.
    """
    import gymnasium as gym

    kwargs = {**env_kwargs, "store": ":memory:"}
    with _global_rng_kept():
        if spec.is_sb3:
            _check_sb3(spec, env_id, kwargs, seed=seed, nets=nets, batch=batch)
            return
        env = gym.make(env_id, **kwargs)
        try:
            make_agent(spec, env.observation_space, env.action_space, seed)
        except (ValueError, TypeError, AssertionError) as e:
            raise ValueError(f"agent {spec.name!r} refuses {_options_text(spec)}: {e}") from e
        finally:
            env.close()


def _check_sb3(
    spec: AgentSpec, env_id: str, kwargs: dict[str, Any], *, seed: int, nets: int, batch: int
) -> None:
    from agents.sb3 import make_sb3_model, make_sb3_vec_env

    venv = make_sb3_vec_env(env_id, batch, seed=seed, env_kwargs=kwargs)
    try:
        episode = len(venv.get_attr("schedule", indices=0)[0])
        try:
            make_sb3_model(spec.name, venv, seed=seed, **spec.options)
        except (ValueError, TypeError, AssertionError) as e:
            raise ValueError(f"agent {spec.name!r} refuses {_options_text(spec)}: {e}") from e
    finally:
        venv.close()
    _check_sb3_ranges(spec)
    n_steps = spec.options.get("n_steps", episode)
    if n_steps % episode:
        raise ValueError(
            f"agent {spec.name!r} option n_steps={n_steps}: expected a multiple of the episode "
            f"length, {episode} steps, so that each rollout holds whole episodes"
        )
    per_rollout = n_steps // episode * batch
    total = math.ceil(nets / batch) * batch
    if total % per_rollout:
        raise ValueError(
            f"agent {spec.name!r} option n_steps={n_steps} makes each rollout sample "
            f"{per_rollout} networks ({n_steps // episode} episodes x {batch} environments), "
            f"so {total} networks cannot be sampled; use a number of networks that is a "
            f"multiple of {per_rollout}, or n_steps={episode} (one episode per environment)"
        )


_SB3_RANGES: dict[str, tuple[Callable[[float], bool], str]] = {
    "gamma": (lambda v: 0 <= v <= 1, "a number in [0, 1]"),
    "gae_lambda": (lambda v: 0 <= v <= 1, "a number in [0, 1]"),
    "n_epochs": (lambda v: v >= 1, "an integer >= 1"),
    "learning_rate": (lambda v: v >= 0, "a number >= 0"),  # 0: an untrained control
    "clip_range": (lambda v: v > 0, "a number > 0"),
    "vf_coef": (lambda v: v >= 0, "a number >= 0"),
    "max_grad_norm": (lambda v: v > 0, "a number > 0"),
}
"""Numeric options SB3 takes without checking (``n_epochs=0`` fails mid-training, ``gamma=2``
trains on growing returns): their ranges, checked before anything is written."""


def _check_sb3_ranges(spec: AgentSpec) -> None:
    for key, value in spec.options.items():
        if key in _SB3_RANGES and isinstance(value, int | float) and not isinstance(value, bool):
            allowed, text = _SB3_RANGES[key]
            if not allowed(value):
                raise ValueError(f"agent {spec.name!r} option {key}={value!r}: expected {text}")


def check_actions(actions: Any, space: Any, single: Any) -> np.ndarray:
    """`actions`, what the agent's ``act()`` returned, as the vector env's integer array.

    Args:
        actions: ``act()``'s return value.
        space: The vector env's batched action space, of shape ``(num_envs, entries)``.
        single: One environment's ``MultiDiscrete`` action space.

    Raises:
        ValueError: Not integers of the space's shape, or a value outside the space.
    """
    array = np.asarray(actions)
    if array.shape != space.shape or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(
            f"act() returned {array.dtype} of shape {array.shape}; expected integers of shape "
            f"{space.shape}: one row of {space.shape[-1]} choices per environment (see "
            "agents.base.Agent.act)"
        )
    shown = array.tolist()
    if array.max(initial=0) > np.iinfo(np.int64).max:  # a huge unsigned value: beyond any nvec
        array = np.full(array.shape, -1)
    array = array.astype(np.int64)  # unsigned or narrow integers: the space's dtype
    if not space.contains(array):
        raise ValueError(
            f"act() returned a value outside the action space: {shown} against "
            f"nvec {single.nvec.tolist()} (row values from 0 to nvec - 1)"
        )
    return array


def check_update_metrics(label: str, metrics: Any) -> dict[str, float]:
    """`metrics`, what the agent's ``update()`` returned, if it is a dict of numbers.

    Raises:
        ValueError: It is not a dict (``None`` included: a forgotten ``return {}``), or a value
            is not a number; the message names it.
    """
    if not isinstance(metrics, dict):
        raise ValueError(
            f"agent {label}: update() returned {type(metrics).__name__}, expected a dict of "
            "metrics to log ({} for none; see agents.base.Agent.update)"
        )
    for key, value in metrics.items():
        try:
            float(value)
        except (TypeError, ValueError):
            raise ValueError(
                f"agent {label}: update() returned {key!r}: {value!r}, expected a number"
            ) from None
    return metrics


def check_state(label: str, state: Any) -> dict[str, Any]:
    """`state` as a resumed run reads it back from the checkpoint.

    Args:
        label: The agent spec's label, for the message.
        state: What the agent's ``state_dict()`` returned.

    Raises:
        ValueError: `state` is not a dict, or holds something the checkpoint's safe loader
            refuses; the message names the key.
    """
    if not isinstance(state, dict):
        raise ValueError(
            f"agent {label}: state_dict() returned a {type(state).__name__}, expected a dict "
            "(see agents.base.Agent.state_dict)"
        )
    try:
        return _round_trip(state)
    except Exception:  # anything the loader refuses: find the key below
        path, value = _first_bad("state_dict()", state)
        raise ValueError(
            f"agent {label}: {path} holds a {type(value).__module__}.{type(value).__qualname__}, "
            "which the checkpoint cannot hold (it is read with torch.load(weights_only=True), "
            f"so the search could not resume); state_dict() may hold {STATE_TYPES}"
        ) from None


def _round_trip(value: Any) -> Any:
    buffer = io.BytesIO()
    torch.save(plain_data(value), buffer)
    buffer.seek(0)
    return torch.load(buffer, map_location="cpu", weights_only=True)


def _first_bad(path: str, value: Any) -> tuple[str, Any]:
    """The path of the innermost value of `value` that does not round-trip, and that value."""
    if isinstance(value, dict):
        items: list[tuple[Any, Any]] = list(value.items())
    elif isinstance(value, list | tuple):
        items = list(enumerate(value))
    else:
        return path, value
    for key, item in items:
        try:
            _round_trip(item)
        except Exception:
            return _first_bad(f"{path}[{key!r}]", item)
    for key, _ in items:  # the values load, so a key does not
        try:
            _round_trip({key: None})
        except Exception:
            return f"{path}, key {key!r},", key
    return path, value


def check_resume(
    label: str,
    restore: Callable[[], Agent],
    obs: dict[str, np.ndarray],
    masks: np.ndarray,
    actions: np.ndarray,
    update: int,
) -> None:
    """Compare a restored agent's actions with the running agent's on the same step.

    Args:
        label: The agent spec's label, for the messages.
        restore: Builds a fresh agent and loads the checkpointed state, as a resume does.
        obs: The step's observations.
        masks: The step's flat masks.
        actions: What the running agent chose.
        update: The update whose checkpoint was restored (for the message).

    Raises:
        ValueError: The restored agent fails to load its state or to act.
    """
    with _global_rng_kept():
        try:
            again = np.asarray(restore().act(obs, masks))
        except Exception as e:  # any failure here is one a resume would hit
            raise ValueError(
                f"agent {label}: restored from its checkpoint after update {update}, it fails "
                f"({type(e).__name__}: {e}), so the search could not resume; note that numpy "
                f"arrays in state_dict() come back as lists (state_dict() may hold {STATE_TYPES})"
            ) from e
    if again.shape != np.shape(actions) or not np.array_equal(again, actions):
        warnings.warn(
            f"agent {label}: restored from its checkpoint after update {update}, it acts "
            "differently from the running agent, so a resumed search would not repeat this "
            "one: state_dict() must hold everything act() depends on (parameters, generator "
            "states, counters; see agents.base.Agent)",
            stacklevel=3,
        )


def warn_illegal(label: str, records: list[dict[str, Any]]) -> bool:
    """Warn if the records' episodes took illegal actions; returns whether it warned."""
    illegal = [r.get("illegal_actions", 0) for r in records]
    if not any(illegal):
        return False
    first, last = records[0]["update"], records[-1]["update"]
    when = f"update {first}" if first == last else f"updates {first}-{last}"
    warnings.warn(
        f"agent {label} took {sum(illegal)} illegal actions in {sum(map(bool, illegal))} of "
        f"{len(records)} episodes ({when}): it ignores the masks, so the "
        "env applied only the legal part of those steps; each child record counts them "
        "(`illegal_actions`)",
        stacklevel=3,
    )
    return True


class RunChecks:
    """The checks of one protocol-agent run, each done once (see the module docstring).

    Args:
        label: The agent spec's label, for the messages.
        rebuild: Builds a fresh agent as the run built its own (a resume's first step).
    """

    def __init__(self, label: str, rebuild: Callable[[], Agent]) -> None:
        self.label, self.rebuild = label, rebuild
        self.state: dict[str, Any] | None = None  # the first checkpoint's, as a resume reads it
        self.update: int | None = None  # the updates done at that checkpoint
        self.warned = False

    def first_step(self, update: int) -> Callable[..., None] | None:
        """The hook of update `update`'s first step: the resume check, or None.

        The check runs once, in the update right after the first checkpoint.
        """
        if self.state is None or update != self.update:
            return None
        state = self.state

        def restore() -> Agent:
            agent = self.rebuild()
            agent.load_state_dict(state)
            return agent

        def hook(obs: dict[str, np.ndarray], masks: np.ndarray, actions: np.ndarray) -> None:
            check_resume(self.label, restore, obs, masks, actions, update)

        return hook

    def episodes_done(self, records: list[dict[str, Any]]) -> None:
        """Warn about illegal actions in `records`, once per run."""
        self.warned = self.warned or warn_illegal(self.label, records)

    def metrics(self, metrics: Any) -> dict[str, float]:
        """What ``update()`` returned, checked (ValueError if not a dict of numbers)."""
        return check_update_metrics(self.label, metrics)

    def checkpoint(self, state: Any, update: int) -> None:
        """Check the state of the first checkpoint, after `update` updates (ValueError if bad)."""
        if self.state is None:
            self.state, self.update = check_state(self.label, state), update
