"""``--set key=value`` overrides of env arguments, parsed to each argument's declared type.

One parser for the command line and the benchmarks: a key must be an argument of
:class:`eas_gym.env.EASEnv`, and a value must parse as that argument's type (``bool``: true,
false, yes, no, 1, 0; ``int``; ``float``; ``str``; ``none``/``null`` where None is allowed).
Anything else is a ``ValueError`` that names the key and lists what is allowed.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import re
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "DICT_FIELD",
    "add_dataclass_options",
    "add_set_option",
    "check_env_arguments",
    "env_arguments",
    "field_docs",
    "parse_set",
    "parse_value",
]

_TRUE, _FALSE, _NONE = ("true", "yes", "1", "on"), ("false", "no", "0", "off"), ("none", "null")
_NOT_SETTABLE = ("render_mode",)
# The env is found by its registered entry point, not imported: it checks its own arguments
# with check_env_arguments, so it imports this module.
_ENV_ENTRY_POINT = "eas_gym.env:EASEnv"


def env_arguments() -> dict[str, str]:
    """The env's keyword arguments and their annotations, e.g. ``{"epochs": "float", ...}``."""
    from gymnasium.envs.registration import load_env_creator

    params = inspect.signature(load_env_creator(_ENV_ENTRY_POINT)).parameters
    return {
        name: str(p.annotation)
        for name, p in params.items()
        if p.kind is p.KEYWORD_ONLY and name not in _NOT_SETTABLE
    }


def parse_value(key: str, text: str, annotation: str) -> Any:
    """`text` as a value of `annotation` (``"int | None"``, ``"bool"``...); ValueError if not."""
    kinds = [part.strip() for part in annotation.split("|")]
    lowered = text.strip().lower()
    if "None" in kinds and lowered in _NONE:
        return None
    kind = next(k for k in kinds if k != "None")
    if kind == "bool":
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
    elif kind in ("int", "float"):
        try:
            return int(text) if kind == "int" else float(text)
        except ValueError:
            pass
    elif kind == "str":
        return text
    else:  # pragma: no cover - a new argument type must be taught here
        raise TypeError(f"cannot parse `{key}` of type {annotation}")
    expected = {"bool": "true or false", "int": "an integer", "float": "a number"}[kind]
    none = " or none" if "None" in kinds else ""
    raise ValueError(f"--set {key}={text!r}: expected {expected}{none}")


def parse_set(items: Iterable[str], *, env_id: str | None = None) -> dict[str, Any]:
    """``["epochs=8", "noise=false"]`` -> ``{"epochs": 8.0, "noise": False}``.

    Args:
        items: ``key=value`` strings.
        env_id: Named in the error for an unknown key (optional).

    Raises:
        ValueError: An item without ``=``, an unknown key, or a value of the wrong type.

    >>> parse_set(["epochs=8", "noise=no", "image_size=none"])
    {'epochs': 8.0, 'noise': False, 'image_size': None}
    """
    arguments = env_arguments()
    values: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"--set expects key=value, got {item!r}")
        if key not in arguments:
            where = f" of {env_id}" if env_id else ""
            raise ValueError(
                f"--set {key}: not an argument{where}; valid keys: {', '.join(sorted(arguments))}"
            )
        values[key] = parse_value(key, text, arguments[key])
    return values


def add_set_option(parser: argparse.ArgumentParser) -> None:
    """Give `parser` the repeatable ``--set KEY=VALUE`` option; read it with :func:`parse_set`.

    >>> parser = argparse.ArgumentParser()
    >>> add_set_option(parser)
    >>> parse_set(parser.parse_args(["--set", "epochs=8"]).set)
    {'epochs': 8.0}
    """
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an env argument, e.g. epochs=8 (repeatable; typed as EASEnv's arguments)",
    )


DICT_FIELD = "dict[str, Any]"
"""A dataclass field of this type becomes a repeatable ``KEY=VALUE`` option."""


def field_docs(cls: type) -> dict[str, str]:
    """The docstrings of a dataclass's fields (the string literal under each), one line each."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body if isinstance(tree.body[0], ast.ClassDef) else []
    docs = {}
    for node, after in zip(body, body[1:], strict=False):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            docs[node.target.id] = " ".join(after.value.value.split())
    return docs


def add_dataclass_options(
    parser: argparse.ArgumentParser,
    cls: type,
    names: Sequence[str],
    *,
    flags: Mapping[str, str] | None = None,
    choices: Mapping[str, Sequence[str]] | None = None,
) -> None:
    """Give `parser` an option per field `names` of dataclass `cls`: its default, its docstring.

    ``--field-name`` unless `flags` names another flag; ``bool | None`` fields are
    ``--x/--no-x``, ``int`` fields are parsed as ints, :data:`DICT_FIELD` fields are repeatable
    ``KEY=VALUE`` strings (the caller parses them). Help is the field's docstring without markup.
    """
    docs, flags, choices = field_docs(cls), flags or {}, choices or {}
    for f in dataclasses.fields(cls):
        if f.name not in names:
            continue
        flag = flags.get(f.name, "--" + f.name.replace("_", "-"))
        help = re.sub(r":\w+:|`", "", docs.get(f.name, "")).replace("%", "%%")
        kinds = {part.strip() for part in str(f.type).split("|")} - {"None"}
        kwargs: dict[str, Any] = {"default": f.default, "help": help}
        if f.type == DICT_FIELD:
            kwargs.update(action="append", metavar="KEY=VALUE", default=None)
            kwargs["help"] += " (repeatable)"
        else:
            kwargs["dest"] = f.name
        if kinds == {"bool"}:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif kinds == {"int"}:
            kwargs["type"] = int
        if f.name in choices:
            kwargs["choices"] = choices[f.name]
        parser.add_argument(flag, **kwargs)


_AT_LEAST_ONE = ("train_size", "val_size", "image_size", "batch_size", "probe_size")
_NON_NEGATIVE = ("epochs", "start_epochs", "lr", "start_lr", "cost_weight")
_PATHS = ("store", "data_dir")


def check_env_arguments(values: dict[str, Any]) -> None:
    """Refuse env arguments of the wrong type or range before anything is built.

    Types follow :class:`eas_gym.env.EASEnv`'s annotations (``bool`` flags must be bools, an
    ``int`` must not be a float or bool, numbers must be finite); sizes are >= 1, epochs,
    learning rates and `cost_weight` >= 0; `store` and `data_dir` are non-empty paths.

    Raises:
        TypeError: A value of the wrong type (the message names the argument and the value).
        ValueError: A value out of range, or a `device` this machine does not have.
    """
    import math
    import os

    for name, annotation in env_arguments().items():
        if name not in values:
            continue
        value = values[name]
        kinds = {part.strip() for part in annotation.split("|")}
        if value is None:
            if "None" not in kinds:
                raise TypeError(f"Expected `{name}` of type {annotation}, actually: None")
            continue
        if name in _PATHS:
            if not isinstance(value, str | os.PathLike) or not str(value):
                raise TypeError(f"Expected `{name}` to be a non-empty path, actually: {value!r}")
            continue
        ok = {
            "bool": isinstance(value, bool),
            "int": isinstance(value, int) and not isinstance(value, bool),
            "float": isinstance(value, int | float) and not isinstance(value, bool),
            "str": isinstance(value, str),
        }
        if not any(ok.get(kind, False) for kind in kinds):
            raise TypeError(f"Expected `{name}` of type {annotation}, actually: {value!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"Expected a finite `{name}`, actually: {value}")
        if name in _AT_LEAST_ONE and value < 1:
            raise ValueError(f"Expected `{name}` >= 1, actually: {value}")
        if name in _NON_NEGATIVE and value < 0:
            raise ValueError(f"Expected `{name}` >= 0, actually: {value}")
    if "device" in values:
        _check_device(values["device"])


def _check_device(device: str) -> None:
    import torch

    if device == "auto":
        return
    try:
        target = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(
            f"Expected `device` 'auto', 'cpu', 'cuda' or 'cuda:N', actually: {device!r}"
        ) from e
    if target.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"`device` {device!r}: CUDA is not available on this machine")
        if target.index is not None and target.index >= torch.cuda.device_count():
            raise ValueError(
                f"`device` {device!r}: this machine has {torch.cuda.device_count()} CUDA devices"
            )
    elif target.type != "cpu":
        raise ValueError(f"Expected `device` 'auto', 'cpu' or 'cuda[:N]', actually: {device!r}")
