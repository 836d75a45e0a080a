"""Agent names, their classes and their options: ``reinforce``, ``reinforce[lr=0.01]``, ``m:Cls``.

An *agent spec* names an agent and optionally sets its constructor options, e.g.
``reinforce[lr=0.01,entropy_weight=0]`` or ``evolution[population_size=50]``. Before anything
runs, the constructor's signature is checked (``cls(observation_space, action_space, seed=...)``
must bind) and each option against its keyword arguments: a value is parsed to the declared
type (``bool``, ``int``, ``float``, ``str``, optionally ``| None``), or to the type of the
default where there is no annotation; other types take JSON. A constructor with ``**kwargs``
takes any option (as JSON). Options without a default must be given. SB3 algorithms (``ppo``,
``a2c``, ``maskable-ppo``) take the algorithm's constructor arguments (values as JSON, e.g.
``maskable-ppo[learning_rate=0.001]``), checked against their simple annotated types.
The values themselves (a negative learning rate...) are checked by building the agent
(:func:`agents.checks.check_agent`), also before anything is written.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import re
import sys
import types
import typing
from collections.abc import Callable
from typing import Any

from eas_gym.settings import parse_value

__all__ = [
    "AGENTS",
    "SB3_AGENTS",
    "AgentSpec",
    "load_agent_class",
    "parse_agent_spec",
    "split_agent_specs",
    "split_top_level",
]

AGENTS = {
    "reinforce": "agents.reinforce:Reinforce",
    "random": "agents.random_search:RandomSearch",
    "evolution": "agents.evolution:RegularizedEvolution",
    "local-search": "agents.local_search:LocalSearch",
    "fixed": "agents.fixed:FixedPolicy",
    "tpe": "agents.tpe:TPESearch",
    "bo": "agents.morphism_bo:MorphismBO",
}
"""Built-in protocol agents (:class:`agents.base.Agent`)."""

SB3_AGENTS = ("ppo", "a2c", "maskable-ppo")
"""stable-baselines3 / sb3-contrib algorithms, run through their own APIs."""

_PROTOCOL_METHODS = ("act", "observe", "update", "state_dict", "load_state_dict")
_SPEC = re.compile(r"^\s*([^\[\]\s]+)\s*(?:\[(.*)\])?\s*$")
_WORD = re.compile(r"^[A-Za-z_][A-Za-z0-9_.+-]*$")


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
        """The spec as text, options sorted: ``reinforce[lr=0.01]``, ``fixed[policy=widen-all]``.

        Values are JSON, except plain words (``widen-all``), which parse back as the same string.
        """
        if not self.options:
            return self.name
        inner = ",".join(f"{k}={_value_text(v)}" for k, v in sorted(self.options.items()))
        return f"{self.name}[{inner}]"

    def folder_name(self) -> str:
        """A file-system-safe name for the spec's run folders."""
        return re.sub(r"[^A-Za-z0-9._=-]+", "-", self.label()).strip("-")


def _value_text(value: Any) -> str:
    """`value` as JSON, or bare if it is a plain word that JSON would not read as another value."""
    if isinstance(value, str) and _WORD.match(value):
        try:
            json.loads(value)
        except json.JSONDecodeError:
            return value
    return json.dumps(value)


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
        ValueError: An unknown agent, a constructor that cannot take the spaces and ``seed``,
            an unknown option (the message lists the valid ones), a missing required option, or
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
    items = split_top_level(inner or "") + list(options)
    if name in SB3_AGENTS:
        return AgentSpec(name, _parse_sb3_options(name, items))
    arguments, open_ended = _constructor_options(name, load_agent_class(name))
    values: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key or (key not in arguments and not open_ended):
            valid = ", ".join(sorted(arguments)) or "none"
            raise ValueError(f"agent {name!r} has no option {key!r}; valid options: {valid}")
        values[key] = _parse_option(name, key, text.strip(), arguments.get(key, ""))
    missing = sorted(k for k, p in arguments.items() if p.default is p.empty and k not in values)
    if missing:
        example = ",".join(f"{k}=..." for k in missing)
        raise ValueError(
            f"agent {name!r} needs the option(s) {', '.join(missing)}: {name}[{example}]"
        )
    return AgentSpec(name, values)


def _parse_option(name: str, key: str, text: str, parameter: inspect.Parameter | str) -> Any:
    """A typed option as :func:`eas_gym.settings.parse_value`; others as JSON (else as text)."""
    annotation = _annotation_text(parameter) if isinstance(parameter, inspect.Parameter) else ""
    kinds = {part.strip() for part in annotation.split("|")} - {"None"}
    if kinds and kinds <= {"bool", "int", "float", "str"}:
        if "str" in kinds and text.startswith('"'):  # a label's JSON string
            try:
                return str(json.loads(text))
            except json.JSONDecodeError:
                pass
        try:
            return parse_value(key, text, annotation)
        except ValueError as e:  # its message names --set, the env's option: name the agent's
            expected = str(e).removeprefix(f"--set {key}={text!r}: ")
            raise ValueError(f"agent {name!r} option {key}={text!r}: {expected}") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = text
    if annotation.startswith("list") and not isinstance(value, list | None):
        try:  # a list option given bare, as --agent-set kernels=1,3 or kernels=3
            return json.loads(f"[{text}]")
        except json.JSONDecodeError:
            pass
    return value


def _annotation_text(parameter: inspect.Parameter) -> str:
    """``"int | None"``-style text of a parameter's type; without one, its default's type."""
    annotation = parameter.annotation
    if annotation is parameter.empty:
        default = parameter.default
        simple = isinstance(default, bool | int | float | str)
        return type(default).__name__ if simple else ""
    if isinstance(annotation, str):  # ``from __future__ import annotations``
        return annotation
    if isinstance(annotation, type):
        return annotation.__name__
    members = typing.get_args(annotation) if _is_union(annotation) else ()
    names = ["None" if m is type(None) else getattr(m, "__name__", "?") for m in members]
    return " | ".join(names)


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


def _constructor_options(name: str, cls: type) -> tuple[dict[str, inspect.Parameter], bool]:
    """The constructor's options (its keyword arguments besides the spaces and ``seed``).

    Returns:
        The options by name, and whether the constructor takes ``**kwargs`` (any option).

    Raises:
        ValueError: ``cls(observation_space, action_space, seed=seed)`` cannot bind.
    """
    try:
        signature = inspect.signature(cls)  # the constructor's, without ``self``
        spaces = signature.bind_partial(None, None).arguments
    except (TypeError, ValueError) as e:
        raise ValueError(
            f"agent {name!r} cannot be built as cls(observation_space, action_space, seed=...) "
            f"({e}); see agents.base.Agent"
        ) from None
    params = signature.parameters
    open_ended = any(p.kind is p.VAR_KEYWORD for p in params.values())
    seed = params.get("seed")
    if not open_ended and (
        seed is None or seed.kind not in (seed.KEYWORD_ONLY, seed.POSITIONAL_OR_KEYWORD)
    ):
        raise ValueError(
            f"agent {name!r} takes no `seed` keyword: its constructor must accept "
            "cls(observation_space, action_space, *, seed, ...) (see agents.base.Agent)"
        )
    keyword = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    options = {
        n: p for n, p in params.items() if p.kind in keyword and n != "seed" and n not in spaces
    }
    return options, open_ended


def _parse_sb3_options(name: str, items: list[str]) -> dict[str, Any]:
    try:
        from agents.sb3 import algo_class
    except ImportError as e:
        raise ValueError(
            f"agent {name!r} needs stable-baselines3 and sb3-contrib ({e}): "
            'pip install "eas-gym[sb3]"'
        ) from e

    params = inspect.signature(algo_class(name).__init__).parameters
    fixed = ("self", "policy", "env", "seed", "kwargs")  # set by the search itself
    allowed = sorted(n for n in params if n not in fixed and not n.startswith("_"))
    values: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if key == "seed":
            raise ValueError(f"agent {name!r}: its seed is the search's (--seed), not an option")
        if not sep or key not in allowed:
            raise ValueError(
                f"agent {name!r} has no option {key!r}; valid options: {', '.join(allowed)}"
            )
        try:
            values[key] = json.loads(text)
        except json.JSONDecodeError:
            values[key] = text.strip()
        _check_json_type(name, key, text.strip(), values[key], params[key].annotation)
    return values


_JSON_TYPES: dict[type, tuple[str, Callable[[Any], bool]]] = {
    bool: ("true or false", lambda v: isinstance(v, bool)),
    int: ("an integer", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    float: ("a number", lambda v: isinstance(v, int | float) and not isinstance(v, bool)),
    str: ("a string", lambda v: isinstance(v, str)),
}


def _check_json_type(name: str, key: str, text: str, value: Any, annotation: Any) -> None:
    """Refuse a JSON value that cannot be of an annotation made of simple types.

    ``float | Callable[[float], float]`` (a schedule) takes a number: no JSON value is callable.
    Annotations with any other type (``dict | None``, ``torch.device | str``) are left to the
    constructor.
    """
    members = typing.get_args(annotation) if _is_union(annotation) else (annotation,)
    if value is None and type(None) in members:
        return
    kinds = [m for m in members if m is not type(None) and typing.get_origin(m) is not Callable]
    if not kinds or any(k not in _JSON_TYPES for k in kinds):
        return
    if not any(_JSON_TYPES[k][1](value) for k in kinds):
        expected = " or ".join(_JSON_TYPES[k][0] for k in kinds)
        none = " or null" if type(None) in members else ""
        raise ValueError(f"agent {name!r} option {key}={text!r}: expected {expected}{none}")


def split_agent_specs(text: str) -> list[str]:
    """``"reinforce[lr=0.01,entropy_weight=0],random"`` -> the two specs (commas in [] kept)."""
    return split_top_level(text)


def split_top_level(text: str) -> list[str]:
    """`text` split at its commas outside brackets and quotes, each part stripped, none empty.

    >>> split_top_level('kernels=[1,3],policy=kernel-1,label="a,b"')
    ['kernels=[1,3]', 'policy=kernel-1', 'label="a,b"']
    """
    parts, depth, quoted, current = [], 0, False, ""
    for char in text:
        if char == '"':
            quoted = not quoted
        elif not quoted:
            depth = max(0, depth + {"[": 1, "]": -1, "{": 1, "}": -1}.get(char, 0))
        if char == "," and depth == 0 and not quoted:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    parts.append(current.strip())
    return [part for part in parts if part]
