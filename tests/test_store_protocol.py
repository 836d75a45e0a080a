"""`EvalStore` and `RemoteStore` both satisfy the `Store` protocol (statically: mypy checks
`open_store` and `ray_store._REMOTE_IS_A_STORE`; here: at run time, without Ray)."""

import inspect

import pytest

from eas_gym.ray_store import RemoteStore
from eas_gym.store import EvalStore, Evaluation, Store, open_store

METHODS = sorted(
    name for name, value in vars(Store).items() if inspect.isfunction(value) and name[0] != "_"
)


def _uses(store: Store) -> float | None:
    """A function typed with the protocol, as the scorer's store is used."""
    store.put(Evaluation("C4-3 GAP", "k", 0.5))
    with store.lock("start-k"):
        found = store.get("C4-3 GAP", "k")
    return None if found is None else found.accuracy


def test_eval_store_is_a_store():
    store = open_store(":memory:")
    assert isinstance(store, EvalStore) and isinstance(store, Store)
    assert _uses(store) == 0.5
    store.close()


def test_the_protocol_names_what_the_scorer_calls():
    assert METHODS == [
        "all",
        "close",
        "get",
        "load_weights",
        "lock",
        "put",
        "save_weights",
        "set_weights",
        "with_weights",
    ]


@pytest.mark.parametrize("cls", [EvalStore, RemoteStore])
@pytest.mark.parametrize("name", METHODS)
def test_each_store_takes_the_protocols_arguments(cls, name):
    def parameters(function):
        params = inspect.signature(function).parameters.values()
        return [(p.name, p.kind, p.default) for p in params]

    assert parameters(getattr(cls, name)) == parameters(getattr(Store, name))


def test_a_remote_store_without_its_service_is_refused_before_ray_is_needed():
    with pytest.raises(ValueError, match="Expected a store address ray-store:"):
        RemoteStore("no-prefix")
