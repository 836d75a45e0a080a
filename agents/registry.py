"""Agent names, their classes and their options: ``reinforce``, ``reinforce[lr=0.01]``, ``m:Cls``.

An *agent spec* names an agent and optionally sets its constructor options, e.g.
``reinforce[lr=0.01,entropy_weight=0]`` or ``evolution[population_size=50]``. Options are
checked against the constructor's keyword arguments and parsed to their declared types before
anything runs. SB3 algorithms (``ppo``, ``a2c``, ``maskable-ppo``) take the algorithm's
constructor arguments (values as JSON, e.g. ``maskable-ppo[learning_rate=0.001]``).
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import re
import sys
from typing import Any

from eas_gym.settings import parse_value

__all__ = [
    "AGENTS",
    "SB3_AGENTS",
    "AgentSpec",
    "load_agent_class",
    "parse_agent_spec",
    "split_agent_specs",
]

AGENTS = {
    "reinforce": "agents.reinforce:Reinforce",
    "random": "agents.random_search:RandomSearch",
    "evolution": "agents.evolution:RegularizedEvolution",
    "local-search": "agents.local_search:LocalSearch",
}
"""Built-in protocol agents (:class:`agents.base.Agent`)."""

SB3_AGENTS = ("ppo", "a2c", "maskable-ppo")
"""stable-baselines3 / sb3-contrib algorithms, run through their own APIs."""

_PROTOCOL_METHODS = ("act", "observe", "update", "state_dict", "load_state_dict")
_SPEC = re.compile(r"^\s*([^\[\]\s]+)\s*(?:\[(.*)\])?\s*$")


class AgentSpec:
    """A parsed agent spec: the agent's name and its options.

    Args:
        name: A built-in name, an SB3 algorithm or ``module:Class``.
        options: Constructor keyword arguments, already parsed to their types.
    """

    def __init__(self, name: str, options: dict[str, Any]) -> None:
        self.name, self.options = name, options

    @property
    def is_sb3(self) -> bool:
        """Whether the agent is an SB3 algorithm."""
        return self.name in SB3_AGENTS

    def label(self) -> str:
        """The spec as text, options sorted: ``reinforce[lr=0.01]``."""
        if not self.options:
            return self.name
        inner = ",".join(f"{k}={json.dumps(v)}" for k, v in sorted(self.options.items()))
        return f"{self.name}[{inner}]"

    def folder_name(self) -> str:
        """A file-system-safe name for the spec's run folders."""
        return re.sub(r"[^A-Za-z0-9._=-]+", "-", self.label()).strip("-")


def load_agent_class(name: str) -> type:
    """The class named by a built-in name or ``module:Class``; ValueError if it cannot load."""
    target = AGENTS.get(name, name)
    if ":" not in target:
        raise ValueError(
            f"unknown agent {name!r}; expected one of {(*AGENTS, *SB3_AGENTS)} or 'module:Class'"
        )
    module_name, _, class_name = target.partition(":")
    try:
        cls = getattr(_import_from_here(module_name), class_name)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"cannot load agent {name!r}: {e}") from e
    missing = [m for m in _PROTOCOL_METHODS if not callable(getattr(cls, m, None))]
    if missing:
        raise ValueError(f"agent {name!r} does not implement {missing} (see agents.base.Agent)")
    return cls


def _import_from_here(module_name: str) -> Any:
    """Import a module, also from the working directory (as ``python -m`` would).

    An installed console script does not put the working directory on ``sys.path``, so a
    user's ``my_agent.py`` next to them would not load as ``--agent my_agent:Cls`` otherwise.
    """
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        here = os.getcwd()
        if here in sys.path or not _is_missing(e, module_name):
            raise
        sys.path.append(here)  # after site-packages: nothing installed is shadowed
        try:
            return importlib.import_module(module_name)
        except ModuleNotFoundError as again:
            sys.path.remove(here)
            raise again from None


def _is_missing(error: ModuleNotFoundError, module_name: str) -> bool:
    """Whether `error` is about `module_name` (or a parent package) itself, not its imports."""
    return error.name is not None and (module_name + ".").startswith(error.name + ".")


def parse_agent_spec(spec: str, options: list[str] | tuple[str, ...] = ()) -> AgentSpec:
    """Parse ``name[key=value,...]`` plus extra ``key=value`` `options` (``--agent-set``).

    Raises:
        ValueError: An unknown agent, an unknown option (the message lists the valid ones), or
            a value that does not parse as the option's type.

    >>> parse_agent_spec("reinforce[lr=0.01]").options
    {'lr': 0.01}
    >>> parse_agent_spec("evolution", ["population_size=50"]).label()
    'evolution[population_size=50]'
    """
    match = _SPEC.match(spec) if isinstance(spec, str) else None
    if match is None:
        raise ValueError(f"bad agent spec {spec!r}; expected NAME or NAME[key=value,...]")
    name, inner = match.group(1), match.group(2)
    items = [s for s in (inner or "").split(",") if s.strip()] + list(options)
    if name in SB3_AGENTS:
        return AgentSpec(name, _parse_sb3_options(name, items))
    arguments = _constructor_options(load_agent_class(name))
    values: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or key not in arguments:
            valid = ", ".join(sorted(arguments)) or "none"
            raise ValueError(f"agent {name!r} has no option {key!r}; valid options: {valid}")
        values[key] = _parse_option(key, text.strip(), arguments[key])
    return AgentSpec(name, values)


def _parse_option(key: str, text: str, annotation: str) -> Any:
    """A typed option as :func:`eas_gym.settings.parse_value`; unannotated ones as JSON."""
    kinds = {part.strip() for part in annotation.split("|")} - {"None"}
    if kinds and kinds <= {"bool", "int", "float", "str"}:
        return parse_value(key, text, annotation)
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _constructor_options(cls: type) -> dict[str, str]:
    """Keyword-only constructor arguments besides ``seed``, with their annotations."""
    params = inspect.signature(cls).parameters  # the constructor's, without ``self``
    return {
        n: str(p.annotation)
        for n, p in params.items()
        if p.kind is p.KEYWORD_ONLY and n != "seed" and p.default is not p.empty
    }


def _parse_sb3_options(name: str, items: list[str]) -> dict[str, Any]:
    try:
        from agents.sb3 import algo_class
    except ImportError as e:
        raise ValueError(
            f"agent {name!r} needs stable-baselines3 and sb3-contrib ({e}): "
            'pip install "eas-gym[sb3]"'
        ) from e

    params = inspect.signature(algo_class(name).__init__).parameters
    allowed = sorted(n for n in params if n not in ("self", "policy", "env", "seed", "kwargs"))
    values: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or key not in allowed:
            raise ValueError(
                f"agent {name!r} has no option {key!r}; valid options: {', '.join(allowed)}"
            )
        try:
            values[key] = json.loads(text)
        except json.JSONDecodeError:
            values[key] = text.strip()
    return values


def split_agent_specs(text: str) -> list[str]:
    """``"reinforce[lr=0.01,entropy_weight=0],random"`` -> the two specs (commas in [] kept)."""
    agents, depth, current = [], 0, ""
    for char in text:
        depth += {"[": 1, "]": -1}.get(char, 0)
        if char == "," and depth == 0:
            agents.append(current.strip())
            current = ""
        else:
            current += char
    agents.append(current.strip())
    return [a for a in agents if a]
