"""A comparison's pinned start network: copied out of one store, into another that lacks it."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch

from agents.pinned_start import PIN_FOLDER, pin_start, restore_start
from eas_gym.store import EvalStore, Evaluation, StoreError

NET, KEY = "C4-3 GAP FC8", "startkey"


def _store_with_start(path, accuracy=0.36125, seed=0):
    store = EvalStore(path)
    state = {"w": torch.randn(4, 3, generator=torch.Generator().manual_seed(seed))}
    weights = store.save_weights(NET, KEY, state)
    store.put(Evaluation(NET, KEY, accuracy, config={"role": "start"}, seed=0, weights=weights))
    return store, state


def test_a_pinned_start_goes_into_a_fresh_store_as_it_was(tmp_path):
    source, state = _store_with_start(tmp_path / "a" / "store.sqlite")
    record = pin_start(tmp_path / "cmp", source, NET, KEY)
    assert record is not None and json.loads(record.read_text())["accuracy"] == 0.36125
    fresh = EvalStore(tmp_path / "b" / "store.sqlite")
    assert restore_start(tmp_path / "cmp", fresh, NET, KEY)
    found = fresh.get(NET, KEY)
    assert found is not None and found.accuracy == 0.36125 and found.config == {"role": "start"}
    assert torch.equal(fresh.load_weights(found)["w"], state["w"])
    assert not restore_start(tmp_path / "cmp", fresh, NET, KEY)  # there already: nothing to do


def test_the_first_pin_stays(tmp_path):
    first, _ = _store_with_start(tmp_path / "a" / "store.sqlite", accuracy=0.35)
    other, _ = _store_with_start(tmp_path / "b" / "store.sqlite", accuracy=0.36, seed=1)
    assert pin_start(tmp_path / "cmp", first, NET, KEY) is not None
    before = sorted(p.name for p in (tmp_path / "cmp" / PIN_FOLDER).iterdir())
    assert pin_start(tmp_path / "cmp", other, NET, KEY) is None
    assert sorted(p.name for p in (tmp_path / "cmp" / PIN_FOLDER).iterdir()) == before
    pinned = json.loads((tmp_path / "cmp" / PIN_FOLDER / "evaluation.json").read_text())
    assert pinned["accuracy"] == 0.35


def test_nothing_is_pinned_from_a_store_without_the_start_weights(tmp_path):
    store = EvalStore(tmp_path / "store.sqlite")
    assert pin_start(tmp_path / "cmp", store, NET, KEY) is None
    store.put(Evaluation(NET, KEY, 0.3))  # a row without weights
    assert pin_start(tmp_path / "cmp", store, NET, KEY) is None
    assert not (tmp_path / "cmp" / PIN_FOLDER).exists()


def test_a_store_with_its_own_start_keeps_it_and_says_so(tmp_path):
    source, _ = _store_with_start(tmp_path / "a" / "store.sqlite", accuracy=0.35)
    pin_start(tmp_path / "cmp", source, NET, KEY)
    own, state = _store_with_start(tmp_path / "b" / "store.sqlite", accuracy=0.36, seed=1)
    with pytest.warns(UserWarning, match=r"start network of its own at 36\.000%"):
        assert not restore_start(tmp_path / "cmp", own, NET, KEY)
    assert torch.equal(own.load_weights(own.get(NET, KEY))["w"], state["w"])


def test_a_store_row_whose_weights_file_is_gone_gets_the_pinned_weights(tmp_path):
    source, state = _store_with_start(tmp_path / "a" / "store.sqlite")
    pin_start(tmp_path / "cmp", source, NET, KEY)
    store, _ = _store_with_start(tmp_path / "b" / "store.sqlite", seed=1)
    (store.root / store.get(NET, KEY).weights).unlink()
    assert restore_start(tmp_path / "cmp", store, NET, KEY)
    assert torch.equal(store.load_weights(store.get(NET, KEY))["w"], state["w"])


def test_a_pin_of_another_start_or_configuration_is_not_used(tmp_path):
    source, _ = _store_with_start(tmp_path / "a" / "store.sqlite")
    pin_start(tmp_path / "cmp", source, NET, KEY)
    fresh = EvalStore(tmp_path / "b" / "store.sqlite")
    with pytest.warns(UserWarning, match="not this comparison's start"):
        assert not restore_start(tmp_path / "cmp", fresh, NET, "otherkey")
    assert fresh.get(NET, "otherkey") is None and len(fresh) == 0
    other = EvalStore(tmp_path / "c" / "store.sqlite")
    weights = other.save_weights(NET, "otherkey", {"w": torch.zeros(2)})
    other.put(Evaluation(NET, "otherkey", 0.4, weights=weights))
    with pytest.warns(UserWarning, match="it stays, and this start is not pinned"):
        assert pin_start(tmp_path / "cmp", other, NET, "otherkey") is None


def test_a_store_row_of_another_accuracy_without_its_weights_is_named_as_such(tmp_path):
    source, _ = _store_with_start(tmp_path / "a" / "store.sqlite", accuracy=0.35)
    pin_start(tmp_path / "cmp", source, NET, KEY)
    store, _ = _store_with_start(tmp_path / "b" / "store.sqlite", accuracy=0.36, seed=1)
    (store.root / store.get(NET, KEY).weights).unlink()
    with pytest.warns(UserWarning, match="its weights file is gone, so the runs to come train"):
        assert not restore_start(tmp_path / "cmp", store, NET, KEY)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("missing", "are missing"),
        ("altered", "do not match"),
        ("no checksum", "do not match"),
        ("not weights", "read as weights"),
    ],
)
def test_damaged_pinned_weights_are_refused(tmp_path, damage, message):
    source, _ = _store_with_start(tmp_path / "a" / "store.sqlite")
    record_path = pin_start(tmp_path / "cmp", source, NET, KEY)
    record = json.loads(record_path.read_text())
    weights = record_path.parent / record["weights"]
    if damage == "missing":
        weights.unlink()
    elif damage == "altered":
        data = bytearray(weights.read_bytes())
        data[-10] ^= 0xFF
        weights.write_bytes(bytes(data))
    elif damage == "no checksum":  # an empty SHA-256 prefix matches every file
        weights.rename(record_path.parent / "sha256-.pt")
        record_path.write_text(json.dumps({**record, "weights": "sha256-.pt"}))
    else:  # bytes whose name matches their hash, but no weights
        junk = b"not a torch file"
        name = f"sha256-{hashlib.sha256(junk).hexdigest()[:40]}.pt"
        (record_path.parent / name).write_bytes(junk)
        record_path.write_text(json.dumps({**record, "weights": name}))
    fresh = EvalStore(tmp_path / "b" / "store.sqlite")
    with pytest.raises(StoreError, match=message):
        restore_start(tmp_path / "cmp", fresh, NET, KEY)
    assert len(fresh) == 0
