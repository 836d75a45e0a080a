"""Fuzzing the public entries: bad input is a ValueError/TypeError naming it, never a crash."""

import json
import os

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import eas_gym  # noqa: F401
from eas_gym.family import parse_net
from eas_gym.settings import env_arguments, parse_set

FUZZ = settings(
    max_examples=int(os.environ.get("EAS_FUZZ_EXAMPLES", "150")),  # more for a long fuzz
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TOKENS = st.sampled_from(
    [
        "C4-3",
        "C16-5",
        "C0-3",
        "C8-4",
        "C99999-3",
        "MP",
        "GAP",
        "FC8",
        "FC0",
        "T",
        "D8",
        "4x2",
        "4",
        "x",
        "",
        "C\uff18-3",
        "-1",
        "conv-4-3",
        "pool",
        "fc-8",
        "D",
        "4x",
        "C4-",
        "1e3",
    ]
)


@FUZZ
@given(st.lists(TOKENS, max_size=8), st.sampled_from([" ", "_"]))
def test_net_strings(tokens, sep):
    text = sep.join(tokens)
    try:
        arch = parse_net(text)
    except ValueError as e:
        assert str(e)  # a message, one line
        assert "\n" not in str(e)
    else:
        assert parse_net(arch.to_string()) == arch


@FUZZ
@given(st.text(max_size=30))
def test_any_text_is_a_net_or_a_clear_error(text):
    try:
        parse_net(text)
    except ValueError as e:
        assert "\n" not in str(e)


@pytest.fixture(scope="module")
def surrogate():
    env = gym.make("EAS-Surrogate-v0", store=":memory:", probe_size=4)
    env.reset(seed=0)
    return env


ACTIONS = st.one_of(
    st.lists(st.integers(-3, 30), min_size=0, max_size=30).map(np.array),
    st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=22, max_size=22).map(
        np.array
    ),
    st.just(np.zeros((2, 22), dtype=np.int64)),
    st.just("widen"),
    st.just(None),
)


@FUZZ
@given(ACTIONS)
def test_steps_with_any_action(surrogate, action):
    surrogate.reset(seed=1)
    space = surrogate.action_space
    try:
        surrogate.step(action)
    except ValueError as e:
        assert "not in MultiDiscrete" in str(e) and "\n" not in str(e)
    else:
        assert space.contains(np.asarray(action))


VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 10**7),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6),
    st.just([1, 2]),
)


@FUZZ
@given(st.sampled_from(sorted(env_arguments())), VALUES)
def test_make_with_any_argument_value(name, value):
    try:
        env = gym.make("EAS-Surrogate-v0", **{"store": ":memory:", name: value})
    except (ValueError, TypeError) as e:
        message = str(e).split(" was raised from the environment creator")[0]
        assert name in message or "`" in message, message
    else:
        env.close()


@FUZZ
@given(st.sampled_from(sorted(env_arguments())), st.text(max_size=8))
def test_set_parses_or_names_the_key(name, text):
    try:
        values = parse_set([f"{name}={text}"])
    except ValueError as e:
        assert name in str(e) and "\n" not in str(e)
    else:
        assert set(values) == {name}


@FUZZ
@given(st.dictionaries(st.text(max_size=5), st.integers(), max_size=3))
def test_reset_options(surrogate, options):
    try:
        surrogate.reset(seed=0, options=options)
    except ValueError as e:
        assert "options" in str(e)
    else:
        assert set(options) <= {"net"}


@settings(max_examples=40, deadline=None)
@given(st.binary(max_size=300))
def test_damaged_child_records_are_named(tmp_path_factory, data):
    from agents.run_folder import read_jsonl

    path = tmp_path_factory.mktemp("r") / "children.jsonl"
    path.write_bytes(json.dumps({"a": 1}).encode() + b"\n" + data)
    try:
        records = read_jsonl(path)
    except ValueError as e:
        assert "children.jsonl, line" in str(e)
    else:
        assert records[0] == {"a": 1}
